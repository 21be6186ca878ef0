"""The frequency baseline ``base:frequency``.

It scores a value by ``count(strict key, value) / count(strict key)`` over all events strictly before
the query time (no decay, no hyperparameters), with the keys of :mod:`lamp.tpp.task_history`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lamp.components import make_settings
from lamp.data.eventlog import EventLog
from lamp.data.history import concat_ranges
from lamp.data.queries import QuerySet
from lamp.errors import ArtifactError
from lamp.tpp.base import BaseModel
from lamp.tpp.checkpoint import load_checkpoint, save_checkpoint
from lamp.tpp.factored import SubjectFrequencyScorer
from lamp.tpp.sparse_ranks import build_parts
from lamp.tpp.task_history import HistoryCache, query_keys, sum_by_cell


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
    per_query = True  # a query's scores depend on it and the log only (lamp.parallel)

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

        positions = np.asarray(positions, dtype=np.int64)
        parts = build_parts(self._cache.history(log, queries), self._cache, queries, positions, log.num_entities,
                            counts=False)
        sc = parts.frequency()
        ids, vals = parts.top_m(sc, np.ones(len(positions)), m)
        return ids, vals, parts.ranks_explicit_only(sc)

    def relation_object_scores(self, log: EventLog, queries: QuerySet, positions: np.ndarray
                               ) -> tuple[np.ndarray, np.ndarray]:
        """Factored (s, ?, ?, t) scores: log p(r | s) and log p(o | s), see :mod:`lamp.tpp.factored`."""

        if self._factored is None:
            self._factored = SubjectFrequencyScorer()
        return self._factored.relation_object_scores(log, queries, positions)

    def config(self) -> dict[str, Any]:
        roots = None if self.relation_roots is None else self.relation_roots.tolist()
        return {"relation_roots": roots}

    def save(self, path: Path) -> None:
        """Save the (hyperparameter-free) configuration; see :mod:`lamp.tpp.checkpoint`."""

        save_checkpoint(path, kind=self.name, tensors={}, config=self.config(), fingerprint=None)

    @classmethod
    def load(cls, path: Path, log: EventLog | None = None) -> FrequencyBaseline:

        ckpt = load_checkpoint(path, kind=cls.name, expected_tensors=set(),
                               fingerprint=None if log is None else log.fingerprint())
        unknown = set(ckpt.config) - {"relation_roots"}
        if unknown:
            raise ArtifactError(f"{path}: unexpected config keys {sorted(unknown)} for base:frequency; "
                                "the checkpoint was written by another version of lamp. Refit the model.")
        return cls(**ckpt.config)
