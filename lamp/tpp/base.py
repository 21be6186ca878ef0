"""The base-model contract and the streaming scorer that every base model shares.

A base model scores every candidate of a query (log-intensity or log-density of the candidate event
at the query time, from events strictly before it). :func:`rank_candidates` streams over query
batches and keeps, per query, the top-M candidates and the gold answer's time-aware filtered rank
over the full candidate set; no dense [queries x candidates] matrix is ever held.

Tie rules (documented, deterministic):
- top-M order: higher score first; equal scores by lower candidate id first.
- gold rank: the average ("realistic") rank among tied candidates:
  ``rank = 1 + #{c : score_c > score_gold} + #{c != gold : score_c == score_gold} / 2``,
  after removing the other true answers at the same time step (time-aware filter).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from lamp.data.eventlog import EventLog
from lamp.data.queries import QuerySet

log = logging.getLogger(__name__)

TIE_RULE = "average"


@dataclass(frozen=True)
class CandidateTable:
    """Top-M candidates per query, with the gold answer's filtered rank over the full candidate set."""

    method: str
    queries: QuerySet
    top_m: int
    candidates: np.ndarray  # [Q, M] int64, best first
    scores: np.ndarray  # [Q, M] float32
    gold_rank_filtered: np.ndarray  # [Q] float64, 1-based, average tie rule, time-aware filtered

    def gold_position(self) -> np.ndarray:
        """0-based position of the gold answer in the top-M, -1 where it is not there."""
        target = self.queries.frame["target"].to_numpy()[:, None]
        hit = self.candidates == target
        return np.where(hit.any(axis=1), hit.argmax(axis=1), -1)


class BaseModel(ABC):
    """Scores candidate events. Subclasses implement :meth:`score_batch` and, if trained, :meth:`fit`."""

    name: str = "base"

    def fit(self, log: EventLog, train: QuerySet, valid: QuerySet) -> dict[str, Any]:
        """Fit on events of the train split only; select hyperparameters / checkpoints on ``valid``.

        Returns a small report (e.g. chosen hyperparameters, training curve).
        """
        return {}

    @abstractmethod
    def score_batch(self, log: EventLog, queries: QuerySet, positions: np.ndarray) -> np.ndarray:
        """Scores ``[len(positions), queries.num_candidates]`` (float32) for the given query positions.

        Must use only events ``[0, history_end)`` of each query.
        """

    def save(self, path: Path) -> None:  # pragma: no cover - overridden by models with state
        raise NotImplementedError(f"{type(self).__name__} has no saved state")

    def score(self, log: EventLog, queries: QuerySet, top_m: int, *, batch_size: int = 256,
              progress: bool = False) -> CandidateTable:
        return rank_candidates(self, log, queries, top_m, batch_size=batch_size, progress=progress)


def filtered_gold_rank(scores: np.ndarray, queries: QuerySet, positions: np.ndarray) -> np.ndarray:
    """Average-tie, time-aware filtered rank of each query's gold answer in ``scores`` [B, C]."""
    target = queries.frame["target"].to_numpy()[positions]
    rows = np.arange(len(positions))
    gold = scores[rows, target].astype(np.float64)
    greater = (scores > gold[:, None]).sum(axis=1).astype(np.float64)
    equal = (scores == gold[:, None]).sum(axis=1).astype(np.float64) - 1.0
    for b, q in enumerate(positions):
        others = queries.true_answers(int(q))
        others = others[others != target[b]]
        if others.size:
            vals = scores[b, others]
            greater[b] -= float((vals > gold[b]).sum())
            equal[b] -= float((vals == gold[b]).sum())
    return 1.0 + greater + equal / 2.0


def top_m_of(scores: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-m candidate ids and scores per row; ties by lower candidate id (a stable sort on -score)."""
    m = min(m, scores.shape[1])
    # argpartition picks a superset boundary; then a stable lexicographic sort fixes the tie rule.
    if m < scores.shape[1]:
        kth = np.partition(scores, scores.shape[1] - m, axis=1)[:, scores.shape[1] - m]
    else:
        kth = scores.min(axis=1)
    ids = np.empty((scores.shape[0], m), dtype=np.int64)
    vals = np.empty((scores.shape[0], m), dtype=np.float32)
    for b in range(scores.shape[0]):
        cand = np.flatnonzero(scores[b] >= kth[b])
        order = np.lexsort((cand, -scores[b, cand]))[:m]
        ids[b] = cand[order]
        vals[b] = scores[b, cand[order]]
    return ids, vals


def rank_candidates(model: BaseModel, log: EventLog, queries: QuerySet, top_m: int, *,
                    batch_size: int = 256, progress: bool = False, method: str | None = None) -> CandidateTable:
    """Stream ``model`` over query batches; keep top-M and the gold's filtered rank."""
    n = len(queries)
    m = min(top_m, queries.num_candidates)
    cands = np.zeros((n, m), dtype=np.int64)
    vals = np.zeros((n, m), dtype=np.float32)
    ranks = np.zeros(n, dtype=np.float64)
    for start in tqdm(range(0, n, batch_size), disable=not progress, desc=f"scoring {model.name}", unit="batch"):
        pos = np.arange(start, min(n, start + batch_size))
        scores = np.asarray(model.score_batch(log, queries, pos), dtype=np.float32)
        if scores.shape != (len(pos), queries.num_candidates):
            raise RuntimeError(f"{model.name}.score_batch returned shape {scores.shape}, "
                               f"expected {(len(pos), queries.num_candidates)}")
        cands[pos], vals[pos] = top_m_of(scores, m)
        ranks[pos] = filtered_gold_rank(scores, queries, pos)
    return CandidateTable(method or f"base:{model.name}", queries, m, cands, vals, ranks)
