"""History postings shared by the heuristic baselines, and the frequency baseline ``base:frequency``.

Every task is read as "a key asks for a value": the object task asks (s, r) -> o (with the inverse
copy (o, r + R) -> s of every event, so subject queries are object queries on inverse relations),
the relation task (s, o) -> r, the predicate task (s, o) -> CAMEO root of r, the type task s -> r.
A *strict* key is the whole query, a *relaxed* key drops one field (the object task keeps r, the
relation/predicate tasks keep s, the type task keeps nothing). Postings are time-sorted per key, so
the events a query may see (strictly before its time) are one contiguous range, found by binary
search: no Python loop over queries and no dense [queries x candidates] matrix beyond one batch.

``base:frequency`` scores a value by ``count(strict key, value) / count(strict key)`` over all events
strictly before the query time (no decay, no hyperparameters).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from lamp.components import make_settings
from lamp.data.eventlog import EventLog
from lamp.data.queries import QuerySet
from lamp.errors import ArtifactError, ConfigError
from lamp.tpp.base import BaseModel

HEURISTIC_TASKS = ("object", "relation", "predicate", "type")


def concat_ranges(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ranges ``[starts[i], ends[i])``: (owner i of each element, the element positions), flattened."""
    lengths = np.maximum(ends - starts, 0)
    total = int(lengths.sum())
    owner = np.repeat(np.arange(len(starts)), lengths)
    offsets = np.cumsum(lengths) - lengths
    return owner, np.repeat(starts - offsets, lengths) + np.arange(total)


@dataclass(frozen=True)
class Postings:
    """Events grouped by an integer key and time-sorted within it (``comp = key * n_times + tidx``)."""

    comp: np.ndarray  # int64, ascending
    values: np.ndarray  # int64 value of each event
    tidx: np.ndarray  # int64 index of each event's time in TaskHistory.times
    n_times: int

    @classmethod
    def build(cls, keys: np.ndarray, values: np.ndarray, tidx: np.ndarray, n_times: int) -> Postings:
        comp = keys.astype(np.int64) * n_times + tidx
        order = np.argsort(comp, kind="stable")
        return cls(comp[order], values[order].astype(np.int64), tidx[order], n_times)

    def ranges(self, keys: np.ndarray, cutoffs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per query, the posting range of ``key`` with time index < ``cutoff`` (strictly before)."""
        base = keys.astype(np.int64) * self.n_times
        return np.searchsorted(self.comp, base, "left"), np.searchsorted(self.comp, base + cutoffs, "left")


@dataclass(frozen=True)
class TaskHistory:
    """Strict and relaxed postings of one task over one EventLog, plus (relaxed key, value) pair counts."""

    task: str
    fingerprint: str
    times: np.ndarray  # distinct event times, ascending
    step: float  # one time step of the dataset (decay is per step)
    num_values: int
    num_relaxed: int
    strict: Postings
    relaxed: Postings
    pair_keys: np.ndarray  # distinct relaxed_key * num_values + value, ascending
    pair_comp: np.ndarray  # pair index * n_times + tidx of every event, ascending

    def cutoffs(self, query_times: np.ndarray) -> np.ndarray:
        """Time index of each query: events with ``tidx < cutoff`` are strictly before it."""
        return np.searchsorted(self.times, query_times, "left").astype(np.int64)

    def pair_counts(self, cutoff: int) -> np.ndarray:
        """Count of every (relaxed key, value) pair strictly before time index ``cutoff``."""
        idx = np.arange(len(self.pair_keys), dtype=np.int64) * len(self.times)
        return np.searchsorted(self.pair_comp, idx + cutoff, "left") - np.searchsorted(self.pair_comp, idx, "left")

    def pair_range(self, relaxed_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The slice of ``pair_keys`` holding each relaxed key's pairs."""
        base = relaxed_keys.astype(np.int64) * self.num_values
        return np.searchsorted(self.pair_keys, base, "left"), np.searchsorted(self.pair_keys, base + self.num_values)


def relation_roots(log: EventLog, explicit: np.ndarray | None = None) -> np.ndarray:
    """Root (predicate) index of every relation: ``explicit``, else the log's metadata, else CAMEO."""
    if explicit is not None:
        return np.asarray(explicit, dtype=np.int64)
    roots = log.meta.get("relation_root")
    if roots is None:
        from lamp.data.cameo import attach_cameo  # written by the data package; imported only when needed

        roots = attach_cameo(log).meta["relation_root"]
    return np.asarray(roots, dtype=np.int64)


def build_history(log: EventLog, task: str, roots: np.ndarray | None = None) -> TaskHistory:
    """Index ``log`` for ``task`` (see the module docstring for the keys)."""
    if task not in HEURISTIC_TASKS:
        raise ConfigError(f"The heuristic baselines score tasks {', '.join(HEURISTIC_TASKS)}; got task={task!r}. "
                          "Use relation_object through lamp.tpp.factored, or a neural model for time.")
    t, s, r, o = log.times, log.subjects.astype(np.int64), log.rels.astype(np.int64), log.objects.astype(np.int64)
    n_ent, n_rel = log.num_entities, log.num_relations
    if task == "object":
        t = np.concatenate([t, t])
        s, r, o = np.concatenate([s, o]), np.concatenate([r, r + n_rel]), np.concatenate([o, s])
        strict, relaxed, values, n_values, n_relaxed = s * 2 * n_rel + r, r, o, n_ent, 2 * n_rel
    elif task in ("relation", "predicate"):
        values = r if task == "relation" else relation_roots(log, roots)[r]
        n_values = n_rel if task == "relation" else int(relation_roots(log, roots).max()) + 1
        strict, relaxed, n_relaxed = s * n_ent + o, s, n_ent
    else:  # type: a sequence's own history, and the global type frequencies
        strict, relaxed, values, n_values, n_relaxed = s, np.zeros_like(s), r, n_rel, 1
    keep = values >= 0  # e.g. relations without a CAMEO root cannot be predicate candidates
    if not keep.all():
        t, strict, relaxed, values = t[keep], strict[keep], relaxed[keep], values[keep]
    times = np.unique(t)
    tidx = np.searchsorted(times, t).astype(np.int64)
    step = float(log.time_spec.granularity) if log.time_spec.granularity > 0 else 1.0
    pair = relaxed * n_values + values
    pair_keys, pair_idx = np.unique(pair, return_inverse=True)
    pair_comp = np.sort(pair_idx.astype(np.int64) * len(times) + tidx)
    return TaskHistory(task, log.fingerprint(), times, step, n_values, n_relaxed,
                       Postings.build(strict, values, tidx, len(times)), Postings.build(relaxed, values, tidx, len(times)),
                       pair_keys, pair_comp)


def query_keys(queries: QuerySet, positions: np.ndarray, num_entities: int) -> tuple[np.ndarray, np.ndarray]:
    """Strict and relaxed keys of the given queries, matching :func:`build_history`."""
    f = queries.frame
    s = f["subject"].to_numpy()[positions].astype(np.int64)
    r = f["relation"].to_numpy()[positions].astype(np.int64)
    o = f["object"].to_numpy()[positions].astype(np.int64)
    if queries.task == "object":
        return s * 2 * queries.num_relations + r, r
    if queries.task in ("relation", "predicate"):
        return s * num_entities + o, s
    return s, np.zeros_like(s)


class HistoryCache:
    """The TaskHistory of the last log (by fingerprint) per task, and recent per-cutoff xi matrices."""

    def __init__(self, roots: np.ndarray | None = None, max_cutoffs: int = 8) -> None:
        self.roots = roots
        self.max_cutoffs = max_cutoffs
        self._hist: dict[str, TaskHistory] = {}
        self._counts: dict[tuple[str, str, int], np.ndarray] = {}
        self._xi: dict[tuple[str, str, int], sparse.csr_matrix] = {}
        self._xi_dense: dict[tuple[str, str, int, int | None], np.ndarray] = {}
        self._other: dict[tuple[str, str, str, int], Any] = {}
        self._lock = threading.Lock()

    def history(self, log: EventLog, queries: QuerySet) -> TaskHistory:
        hist = self._hist.get(queries.task)
        if hist is None or hist.fingerprint != log.fingerprint():
            hist = build_history(log, queries.task, self.roots)
            self._hist[queries.task] = hist
            self._counts.clear()
            self._xi.clear()
            self._xi_dense.clear()
            self._other.clear()
        if hist.num_values != queries.num_candidates:
            raise ConfigError(f"The queries have {queries.num_candidates} candidates but the history of "
                              f"{log.name!r} for task {queries.task!r} has {hist.num_values} values; build the "
                              "queries from the same log (and the same relation_roots for predicate).")
        return hist

    def _remember(self, store: dict[Any, Any], key: Any, value: Any, limit: int | None = None) -> Any:
        with self._lock:  # scoring may run in threads
            while store and len(store) >= (limit or self.max_cutoffs):
                store.pop(next(iter(store)))
            store[key] = value
        return value

    def per_cutoff(self, name: str, hist: TaskHistory, cutoff: int, build: Callable[[], Any]) -> Any:
        """A derived per-cutoff structure ``name``, built once by ``build()`` and kept for recent cutoffs."""
        key = (name, hist.task, hist.fingerprint, int(cutoff))
        value = self._other.get(key)
        return value if value is not None else self._remember(self._other, key, build(), limit=2 * self.max_cutoffs)

    def xi_dense(self, hist: TaskHistory, cutoff: int, key_scale: np.ndarray | None = None) -> np.ndarray:
        """:meth:`xi_matrix` as a dense array, rows scaled by ``key_scale`` (the 2 most recent are kept)."""
        token = None if key_scale is None else hash(np.ascontiguousarray(key_scale, dtype=np.float64).tobytes())
        key = (hist.task, hist.fingerprint, int(cutoff), token)
        table = self._xi_dense.get(key)
        if table is None:
            table = self.xi_matrix(hist, cutoff).toarray()
            if key_scale is not None:
                table *= np.asarray(key_scale, dtype=np.float64)[:, None]
            table = self._remember(self._xi_dense, key, table, limit=2)
        return table

    def pair_counts(self, hist: TaskHistory, cutoff: int) -> np.ndarray:
        key = (hist.task, hist.fingerprint, int(cutoff))
        counts = self._counts.get(key)
        return counts if counts is not None else self._remember(self._counts, key, hist.pair_counts(int(cutoff)))

    def xi_matrix(self, hist: TaskHistory, cutoff: int) -> sparse.csr_matrix:
        """[relaxed keys, values] CSR of ``count(key, value) / count(key)`` strictly before ``cutoff``."""
        key = (hist.task, hist.fingerprint, int(cutoff))
        mat = self._xi.get(key)
        if mat is not None:
            return mat
        counts = self.pair_counts(hist, cutoff)
        keep = counts > 0
        rows, cols = hist.pair_keys[keep] // hist.num_values, hist.pair_keys[keep] % hist.num_values
        c = counts[keep].astype(np.float64)
        total = np.bincount(rows, weights=c, minlength=hist.num_relaxed)
        indptr = np.zeros(hist.num_relaxed + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=hist.num_relaxed), out=indptr[1:])
        mat = sparse.csr_matrix((c / total[rows], cols, indptr), shape=(hist.num_relaxed, hist.num_values))
        return self._remember(self._xi, key, mat)


def sum_by_cell(owner: np.ndarray, values: np.ndarray, weights: np.ndarray, n_values: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Distinct flat cells ``owner * n_values + value`` and their weight sums (added in entry order)."""
    uniq, inv = np.unique(owner * n_values + values, return_inverse=True)
    return uniq, np.bincount(inv, weights=weights, minlength=len(uniq))


@dataclass(frozen=True)
class FrequencySettings:
    """Options of ``base:frequency`` (no hyperparameters)."""

    relation_roots: tuple[int, ...] | None = None  # predicate task: root per relation (None = the log's CAMEO map)

    def __post_init__(self) -> None:
        if self.relation_roots is not None:
            object.__setattr__(self, "relation_roots", tuple(int(v) for v in self.relation_roots))


class FrequencyBaseline(BaseModel):
    """``base:frequency``: how often each value followed the query's strict key before the query time.

    >>> model = FrequencyBaseline()
    >>> table = model.score(log, make_queries(log, "object", "test"), top_m=10)  # doctest: +SKIP
    """

    name = "frequency"
    Settings = FrequencySettings
    thread_safe = True

    def __init__(self, settings: FrequencySettings | Mapping[str, Any] | None = None, **overrides: Any) -> None:
        self.settings = make_settings(FrequencySettings, settings, overrides, where="base model 'frequency'")
        roots = self.settings.relation_roots
        self.relation_roots = None if roots is None else np.asarray(roots, dtype=np.int64)
        self._cache = HistoryCache(self.relation_roots)
        self._factored: Any = None

    def score_batch(self, log: EventLog, queries: QuerySet, positions: np.ndarray) -> np.ndarray:
        positions = np.asarray(positions, dtype=np.int64)
        hist = self._cache.history(log, queries)
        strict, _ = query_keys(queries, positions, log.num_entities)
        cut = hist.cutoffs(queries.frame["time"].to_numpy()[positions])
        start, end = hist.strict.ranges(strict, cut)
        owner, pos = concat_ranges(start, end)
        n = np.maximum(end - start, 1).astype(np.float64)
        out = np.zeros((len(positions), hist.num_values), dtype=np.float64)
        cells, sums = sum_by_cell(owner, hist.strict.values[pos], np.ones(len(owner)), hist.num_values)
        out.reshape(-1)[cells] = sums / n[cells // hist.num_values]
        return out

    def rank_batch(self, log: EventLog, queries: QuerySet, positions: np.ndarray, m: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top-m and filtered gold ranks equal to the dense path, without dense rows (lamp.tpp.sparse_ranks)."""
        from lamp.tpp.sparse_ranks import build_parts

        positions = np.asarray(positions, dtype=np.int64)
        parts = build_parts(self._cache.history(log, queries), self._cache, queries, positions, log.num_entities,
                            counts=False)
        sc = parts.frequency()
        ids, vals = parts.top_m(sc, np.ones(len(positions)), m)
        return ids, vals, parts.ranks_explicit_only(sc)

    def relation_object_scores(self, log: EventLog, queries: QuerySet, positions: np.ndarray
                               ) -> tuple[np.ndarray, np.ndarray]:
        """Factored (s, ?, ?, t) scores: log p(r | s) and log p(o | s), see :mod:`lamp.tpp.factored`."""
        from lamp.tpp.factored import SubjectFrequencyScorer

        if self._factored is None:
            self._factored = SubjectFrequencyScorer()
        return self._factored.relation_object_scores(log, queries, positions)

    def config(self) -> dict[str, Any]:
        roots = None if self.relation_roots is None else self.relation_roots.tolist()
        return {"relation_roots": roots}

    def save(self, path: Path) -> None:
        """Save the (hyperparameter-free) configuration; see :mod:`lamp.tpp.checkpoint`."""
        from lamp.tpp.checkpoint import save_checkpoint

        save_checkpoint(path, kind=self.name, tensors={}, config=self.config(), fingerprint=None)

    @classmethod
    def load(cls, path: Path, log: EventLog | None = None) -> FrequencyBaseline:
        from lamp.tpp.checkpoint import load_checkpoint

        ckpt = load_checkpoint(path, kind=cls.name, expected_tensors=set(),
                               fingerprint=None if log is None else log.fingerprint())
        unknown = set(ckpt.config) - {"relation_roots"}
        if unknown:
            raise ArtifactError(f"{path}: unexpected config keys {sorted(unknown)} for base:frequency; "
                                "the checkpoint was written by another version of lamp. Refit the model.")
        return cls(**ckpt.config)
