"""The base-model contract and the streaming scorer that every base model shares.

A base model scores every candidate of a query (log-intensity or log-density of the candidate event
at the query time, from events strictly before it). :func:`rank_candidates` streams over query
batches and keeps, per query, the top-M candidates and the gold answer's time-aware filtered rank
over the full candidate set; no dense [queries x candidates] matrix is ever held. The tie rules are
those of :mod:`lamp.tpp.ranking`; :class:`~lamp.types.CandidateTable` and ``TIE_RULE`` are re-exported
here for older imports.
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from lamp.components import Configurable
from lamp.data.eventlog import EventLog
from lamp.data.queries import QuerySet
from lamp.errors import ConfigError
from lamp.progress import progress_bar
from lamp.tpp.factored import rank_relation_object
from lamp.tpp.ranking import filtered_gold_rank, top_m_of
from lamp.types import TIE_RULE, CandidateTable

log = logging.getLogger(__name__)

__all__ = ["TIE_RULE", "BaseModel", "CandidateTable", "filtered_gold_rank", "rank_candidates", "top_m_of"]


class BaseModel(Configurable, ABC):
    """Scores candidate events. Subclasses implement :meth:`score_batch` and, if trained, :meth:`fit`, and
    describe themselves with a ``Settings`` dataclass (:class:`lamp.components.Configurable`)."""

    name: str = "base"
    vocabulary_bound: bool = False  # True: one learned parameter per training entity; unseen entities are refused
    thread_safe: bool = False  # True: score_batch may run in several threads at once (see rank_candidates)

    def fit(self, log: EventLog, train: QuerySet, valid: QuerySet) -> dict[str, Any]:
        """Fit on events of the train split only; select hyperparameters / checkpoints on ``valid``.

        Returns a small report (e.g. chosen hyperparameters, training curve).
        """
        return {}

    @abstractmethod
    def score_batch(self, log: EventLog, queries: QuerySet, positions: np.ndarray) -> np.ndarray:
        """Scores ``[len(positions), queries.num_candidates]`` (float32, or float64 when ties below float32
        precision matter) for the given query positions; higher is better, never NaN.

        Must use only events ``[0, history_end)`` of each query.
        """

    def save(self, path: Path) -> None:  # pragma: no cover - overridden by models with state
        raise NotImplementedError(f"{type(self).__name__} has no saved state")

    def score(self, log: EventLog, queries: QuerySet, top_m: int, *, batch_size: int = 256,
              progress: bool = False, n_jobs: int | None = None) -> CandidateTable:
        if queries.task == "relation_object":  # R x E candidates: scored factored, see lamp.tpp.factored
            if not hasattr(self, "relation_object_scores"):
                raise ConfigError(f"base model {self.name!r} cannot score relation_object queries: it has no "
                                  "relation_object_scores method (see lamp.tpp.factored.RelationObjectScorer).")
            return rank_relation_object(self, log, queries, top_m, batch_size=batch_size,  # type: ignore[arg-type]
                                        progress=progress)
        return rank_candidates(self, log, queries, top_m, batch_size=batch_size, progress=progress, n_jobs=n_jobs)


def rank_candidates(model: BaseModel, log: EventLog, queries: QuerySet, top_m: int, *,
                    batch_size: int = 256, progress: bool = False, method: str | None = None,
                    n_jobs: int | None = None, dense: bool = False) -> CandidateTable:
    """Stream ``model`` over query batches; keep top-M and the gold's filtered rank.

    A model may define ``rank_batch(log, queries, positions, m) -> (candidates [B, m] int64,
    scores [B, m] float32, gold_rank_filtered [B])``, a faster route to exactly what this function
    computes from ``score_batch`` (the model's tests must show the equality); ``dense=True`` ignores it.
    ``n_jobs``: batches scored at once in threads (numpy releases the GIL in the heavy parts). None:
    2 (at most the CPU count) for models that declare ``thread_safe = True``, else 1.
    """
    n = len(queries)
    m = min(top_m, queries.num_candidates)
    cands = np.zeros((n, m), dtype=np.int64)
    vals = np.zeros((n, m), dtype=np.float32)
    ranks = np.zeros(n, dtype=np.float64)

    fast = None if dense else getattr(model, "rank_batch", None)

    def run(start: int) -> None:
        pos = np.arange(start, min(n, start + batch_size))
        if fast is not None:
            cands[pos], vals[pos], ranks[pos] = fast(log, queries, pos, m)
            return
        scores = np.asarray(model.score_batch(log, queries, pos))
        if scores.dtype != np.float64:  # float64 is kept: heuristic scores can differ below float32 precision
            scores = scores.astype(np.float32, copy=False)
        if scores.shape != (len(pos), queries.num_candidates):
            raise RuntimeError(f"{model.name}.score_batch returned shape {scores.shape}, "
                               f"expected {(len(pos), queries.num_candidates)}")
        try:
            cands[pos], vals[pos] = top_m_of(scores, m)  # raises on NaN at no extra cost
        except ValueError as exc:
            raise RuntimeError(f"{model.name}.score_batch returned NaN scores (batch starting at query {start}); "
                               "this is a bug in the model.") from exc
        ranks[pos] = filtered_gold_rank(scores, queries, pos)

    starts = range(0, n, batch_size)
    if n_jobs is None:
        n_jobs = min(2, os.cpu_count() or 1) if getattr(model, "thread_safe", False) else 1
    bar = progress_bar(total=len(starts), desc=f"scoring {model.name}", unit="batch", enabled=progress)
    if n_jobs <= 1 or len(starts) <= 1:
        for start in starts:
            run(start)
            bar.update()
    else:
        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            for fut in as_completed([pool.submit(run, start) for start in starts]):
                fut.result()
                bar.update()
    bar.close()
    return CandidateTable(method or f"base:{model.name}", queries, m, cands, vals, ranks)
