"""The recurrency baseline ``base:recurrency`` (Gastinger et al., "History repeats itself", 2024).

For a query (s, r, ?, t) and a candidate o, over events strictly before t (single-step setting):

- psi, strict recurrency: ``psi(o) = sum_i 2^(-lmbda * (t - t_i)) / Z`` over past events (s, r, o, t_i),
  with ``Z = sum_{k=min_r}^{max_r - 1} 2^(-lmbda * (t - k))`` over the time steps from the first to
  the last step (excluded) at which relation r occurred before t, as ``score_psi`` / ``update_delta_t``
  of nec-research/recurrency_baseline_tkg. Times are counted in dataset steps (``time_spec.granularity``).
- xi, relaxed recurrency: ``xi(o) = count(r, o) / count(r)``, the share of o among the objects of
  relation r (any subject) before t, as ``baselinexi.calculate_obj_distribution`` of that code.
- score ``= alpha * psi + (1 - alpha) * xi`` with alpha capped at ``max_alpha`` = 0.99999, so xi
  always breaks psi's ties, as the original does at test time.

Subject queries are object queries on inverse relations r + R. Hyperparameters lmbda and alpha are
chosen per relation (2R of them, the original's ``-l -1 -alpha -1`` setting) on the VALID queries by
filtered MRR: first lmbda with psi alone, then alpha with that lmbda, on the original's grids;
relations without valid queries keep the original's defaults (lmbda 1.0001, alpha 0.99999).
Differences from the original, all deliberate: ties get the average rank (the original breaks them
at random), a query without (s, r) history gets psi = 0 (the original reuses the previous query's
psi), and a relation whose history before t sits in a single step gets Z of one step (the original
divides by Z = 0 there).

Relation, predicate and type tasks use the same two scores with the keys of
:mod:`lamp.tpp.task_history` ((s, o) -> r strict, s -> r relaxed; type: s -> r and global), with one
global lmbda and alpha chosen on valid. ``score_batch`` gives the dense float64 rows; ``rank_batch``
gives the same top-M and filtered ranks without them (:mod:`lamp.tpp.sparse_ranks`), which is what
``score`` uses.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lamp.components import make_settings, not_in_key
from lamp.data.eventlog import EventLog
from lamp.data.history import concat_ranges
from lamp.data.queries import QuerySet
from lamp.errors import ArtifactError, ConfigError
from lamp.tpp.base import BaseModel
from lamp.tpp.recurrency_select import select_hyperparameters
from lamp.tpp.sparse_ranks import build_parts, decay, psi_normaliser, psi_span
from lamp.tpp.task_history import HistoryCache, TaskHistory, query_keys, sum_by_cell

logger = logging.getLogger(__name__)

LMBDA_GRID = (0.0, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.5, 0.9, 1.0001)
ALPHA_GRID = (0.0, 0.00001, 0.0001, 0.001, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 0.99999, 1.0)
_CONFIG_KEYS = {"task", "per_relation", "lmbda_grid", "alpha_grid", "default_lmbda", "default_alpha", "max_alpha",
                "relation_roots", "fixed_lmbda", "fixed_alpha"}


DENSE_XI_BYTES = 256 * 2**20  # per-cutoff xi kept dense when [relaxed keys x values] fits in this


def relaxed_dense(cache: HistoryCache, hist: TaskHistory, relaxed: np.ndarray, cutoffs: np.ndarray,
                  key_scale: np.ndarray | None = None) -> np.ndarray:
    """Dense [queries, values] rows of ``key_scale[key] * xi`` (xi: the relaxed key's value shares before
    each query's time; ``key_scale`` per relaxed key, default 1)."""
    dense_ok = hist.num_relaxed * hist.num_values * 8 <= DENSE_XI_BYTES
    cuts = np.unique(cutoffs)
    if dense_ok and len(cuts) == 1:
        return cache.xi_dense(hist, int(cuts[0]), key_scale)[relaxed]
    out = np.empty((len(relaxed), hist.num_values), dtype=np.float64)
    for cut in cuts:
        rows = np.flatnonzero(cutoffs == cut)
        if dense_ok:
            out[rows] = cache.xi_dense(hist, int(cut), key_scale)[relaxed[rows]]
        else:
            block = cache.xi_matrix(hist, int(cut))[relaxed[rows]]
            if key_scale is not None:
                block.data = np.repeat(key_scale[relaxed[rows]], np.diff(block.indptr)) * block.data
            out[rows] = block.toarray()
    return out


def psi_terms(hist: TaskHistory, strict: np.ndarray, relaxed: np.ndarray, qtimes: np.ndarray, cutoffs: np.ndarray,
              lmbda: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """psi of every (query, value) cell with strict-key history: (flat cells, psi), Z applied."""
    start, end = hist.strict.ranges(strict, cutoffs)
    owner, pos = concat_ranges(start, end)
    d_last, n_steps = psi_span(hist, relaxed, cutoffs, qtimes)
    d = (qtimes[owner] - hist.times[hist.strict.slot[pos]]) / hist.step - d_last[owner] - 1.0
    cells, raw = sum_by_cell(owner, hist.strict.values[pos], decay(lmbda[owner], d), hist.num_values)
    return cells, raw / psi_normaliser(lmbda, n_steps)[cells // hist.num_values]


@dataclass(frozen=True)
class RecurrencySettings:
    """Options of ``base:recurrency``; ``lmbda`` / ``alpha`` fix a value for every relation instead of choosing
    it on valid, ``per_relation`` chooses one pair per relation (incl. inverses; object task) as the original."""

    lmbda: float | None = None
    alpha: float | None = None
    per_relation: bool = True
    lmbda_grid: tuple[float, ...] = LMBDA_GRID
    alpha_grid: tuple[float, ...] = ALPHA_GRID
    default_lmbda: float = 1.0001  # relations without valid queries (the original's defaults)
    default_alpha: float = 0.99999
    max_alpha: float = 0.99999  # alpha cap at scoring time, so xi breaks psi's ties (1.0 = psi alone)
    relation_roots: tuple[int, ...] | None = None  # predicate task: root per relation (None = the log's CAMEO map)
    chunk_size: int = not_in_key(20000)  # valid queries per selection chunk (memory vs speed)

    def __post_init__(self) -> None:
        for label in ("lmbda_grid", "alpha_grid"):
            object.__setattr__(self, label, tuple(float(v) for v in getattr(self, label)))
            if not getattr(self, label):
                raise ConfigError(f"{label} is empty; give at least one value (e.g. {LMBDA_GRID[:3]}).")
        if self.relation_roots is not None:
            object.__setattr__(self, "relation_roots", tuple(int(v) for v in self.relation_roots))
        if min(self.lmbda_grid) < 0 or (self.lmbda is not None and self.lmbda < 0):
            raise ConfigError("lmbda must be >= 0 (a decay rate per time step), got "
                              f"{self.lmbda if self.lmbda is not None else self.lmbda_grid}.")
        for a in [*self.alpha_grid, *([] if self.alpha is None else [self.alpha]), self.max_alpha, self.default_alpha]:
            if not 0.0 <= a <= 1.0:
                raise ConfigError(f"alpha values must lie in [0, 1], got {a}.")


class RecurrencyBaseline(BaseModel):
    """``base:recurrency``: strict recurrency with time decay (psi) mixed with relaxed frequency (xi).

    >>> model = RecurrencyBaseline()
    >>> report = model.fit(log, train_queries, valid_queries)      # doctest: +SKIP
    >>> table = model.score(log, test_queries, top_m=10)           # doctest: +SKIP

    ``lmbda`` / ``alpha``: fix the value (one for every relation) instead of selecting it on valid.
    ``per_relation``: one (lmbda, alpha) per relation (object task) as the original, else global.
    """

    name = "recurrency"
    Settings = RecurrencySettings
    thread_safe = True
    per_query = True  # a query's scores depend on it and the log only (lamp.parallel)

    def __init__(self, settings: RecurrencySettings | Mapping[str, Any] | None = None, **overrides: Any) -> None:
        s = self.settings = make_settings(RecurrencySettings, settings, overrides, where="base model 'recurrency'")
        self.fixed_lmbda, self.fixed_alpha = s.lmbda, s.alpha
        self.per_relation = s.per_relation
        self.lmbda_grid, self.alpha_grid = s.lmbda_grid, s.alpha_grid
        self.default_lmbda, self.default_alpha, self.max_alpha = s.default_lmbda, s.default_alpha, s.max_alpha
        self.relation_roots = None if s.relation_roots is None else np.asarray(s.relation_roots, dtype=np.int64)
        self.chunk_size = s.chunk_size
        self.task: str | None = None
        self.lmbda: np.ndarray | None = None  # [groups] after fit/load
        self.alpha: np.ndarray | None = None
        self.fingerprint: str | None = None
        self._cache = HistoryCache(self.relation_roots)

    # -- hyperparameters -----------------------------------------------------------------------
    def num_groups(self, queries: QuerySet) -> int:
        return 2 * queries.num_relations if (queries.task == "object" and self.per_relation) else 1

    def groups(self, queries: QuerySet, positions: np.ndarray) -> np.ndarray:
        if queries.task == "object" and self.per_relation:
            return queries.frame["relation"].to_numpy()[positions].astype(np.int64)
        return np.zeros(len(positions), dtype=np.int64)

    def params_for(self, queries: QuerySet, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(lmbda, alpha) of each query; alpha capped at ``max_alpha``."""
        if self.task is not None and queries.task != self.task:
            raise ConfigError(f"This recurrency model was fitted for task {self.task!r}, not {queries.task!r}; "
                              "fit (or load) one model per task.")
        g = self.groups(queries, positions)
        if self.lmbda is not None and self.alpha is not None:
            lam, alp = self.lmbda[g], self.alpha[g]
        else:
            lam = np.full(len(g), self.default_lmbda if self.fixed_lmbda is None else self.fixed_lmbda)
            alp = np.full(len(g), self.default_alpha if self.fixed_alpha is None else self.fixed_alpha)
        return lam.astype(np.float64), np.minimum(alp.astype(np.float64), self.max_alpha)

    def alpha_by_key(self, queries: QuerySet, hist: TaskHistory) -> np.ndarray:
        """Capped alpha per relaxed key: alpha is per relation (= the relaxed key) or one value."""
        if self.alpha is not None and queries.task == "object" and self.per_relation:
            return np.minimum(self.alpha, self.max_alpha).astype(np.float64)
        _, alp = self.params_for(queries, np.zeros(1, dtype=np.int64))
        return np.full(hist.num_relaxed, alp[0])

    def fit(self, log: EventLog, train: QuerySet, valid: QuerySet) -> dict[str, Any]:
        """Choose lmbda and alpha on ``valid`` by filtered MRR (``train`` is unused: the model has no weights)."""
        hist = self._cache.history(log, valid)
        n_groups = self.num_groups(valid)
        lam, alp, report = select_hyperparameters(
            hist, self._cache, valid, log.num_entities, self.groups(valid, np.arange(len(valid))), n_groups,
            lmbda_grid=(self.lmbda_grid if self.fixed_lmbda is None else (self.fixed_lmbda,)),
            alpha_grid=(self.alpha_grid if self.fixed_alpha is None else (self.fixed_alpha,)),
            default_lmbda=self.default_lmbda if self.fixed_lmbda is None else self.fixed_lmbda,
            default_alpha=self.default_alpha if self.fixed_alpha is None else self.fixed_alpha,
            chunk_size=self.chunk_size)
        self.task, self.lmbda, self.alpha, self.fingerprint = valid.task, lam, alp, log.fingerprint()
        logger.debug("recurrency fitted on %s/%s: %s", log.name, valid.task, report)
        return {"task": valid.task, "per_relation": self.per_relation, **report}

    # -- scoring -------------------------------------------------------------------------------
    def score_batch(self, log: EventLog, queries: QuerySet, positions: np.ndarray) -> np.ndarray:
        positions = np.asarray(positions, dtype=np.int64)
        hist = self._cache.history(log, queries)
        lam, alp = self.params_for(queries, positions)
        strict, relaxed = query_keys(queries, positions, log.num_entities)
        qtimes = queries.frame["time"].to_numpy()[positions]
        cut = hist.cutoffs(qtimes)
        cells, psi = psi_terms(hist, strict, relaxed, qtimes, cut, lam)
        out = relaxed_dense(self._cache, hist, relaxed, cut, key_scale=1.0 - self.alpha_by_key(queries, hist))
        # the same float operations as the selection on valid, so ties agree exactly
        out.reshape(-1)[cells] += alp[cells // hist.num_values] * psi
        return out

    def rank_batch(self, log: EventLog, queries: QuerySet, positions: np.ndarray, m: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top-m and filtered gold ranks equal to the dense path, without dense rows (lamp.tpp.sparse_ranks)."""
        positions = np.asarray(positions, dtype=np.int64)
        hist = self._cache.history(log, queries)
        lam, alp = self.params_for(queries, positions)
        parts = build_parts(hist, self._cache, queries, positions, log.num_entities)
        sc = parts.slot_scores(parts.psi(lam), alp)
        ids, vals = parts.top_m(sc, alp, m)
        return ids, vals, parts.ranks(sc, alp)

    # -- persistence -----------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {"task": self.task, "per_relation": self.per_relation, "lmbda_grid": list(self.lmbda_grid),
                "alpha_grid": list(self.alpha_grid), "default_lmbda": self.default_lmbda,
                "default_alpha": self.default_alpha, "max_alpha": self.max_alpha,
                "relation_roots": None if self.relation_roots is None else self.relation_roots.tolist(),
                "fixed_lmbda": self.fixed_lmbda, "fixed_alpha": self.fixed_alpha}

    def save(self, path: Path) -> None:
        """Save the chosen hyperparameters (safetensors) with config and data fingerprint (JSON)."""
        from lamp.tpp.checkpoint import save_checkpoint

        if self.lmbda is None or self.alpha is None:
            raise ArtifactError("This recurrency model has not been fitted, so there is nothing to save; "
                                "call fit(log, train, valid) first (or construct it with lmbda= and alpha=).")
        save_checkpoint(path, kind=self.name, tensors={"lmbda": self.lmbda, "alpha": self.alpha},
                        config=self.config(), fingerprint=self.fingerprint)

    @classmethod
    def load(cls, path: Path, log: EventLog | None = None) -> RecurrencyBaseline:
        """Load strictly; with ``log``, its fingerprint must match the data the model was fitted on."""
        from lamp.tpp.checkpoint import load_checkpoint

        ckpt = load_checkpoint(path, kind=cls.name, expected_tensors={"lmbda", "alpha"},
                               fingerprint=None if log is None else log.fingerprint())
        cfg = dict(ckpt.config)
        if set(cfg) != _CONFIG_KEYS:
            raise ArtifactError(f"{path}: recurrency config keys {sorted(cfg)} differ from the expected "
                                f"{sorted(_CONFIG_KEYS)}; it was saved by another lamp version. Refit the model.")
        task = cfg.pop("task")
        model = cls(lmbda=cfg.pop("fixed_lmbda"), alpha=cfg.pop("fixed_alpha"), **cfg)
        lam, alp = np.asarray(ckpt.tensors["lmbda"], np.float64), np.asarray(ckpt.tensors["alpha"], np.float64)
        if lam.shape != alp.shape or lam.ndim != 1:
            raise ArtifactError(f"{path}: lmbda {lam.shape} and alpha {alp.shape} must be 1-D of equal length.")
        model.task, model.lmbda, model.alpha, model.fingerprint = task, lam, alp, ckpt.data_fingerprint
        return model
