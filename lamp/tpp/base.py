"""The base-model contract and the streaming scorer that every base model shares.

A base model scores every candidate of a query (log-intensity or log-density of the candidate event
at the query time, from events strictly before it). :func:`rank_candidates` streams over query
batches and keeps, per query, the top-M candidates and the gold answer's time-aware filtered rank
over the full candidate set; no dense [queries x candidates] matrix is ever held.

Tie rules (documented, deterministic):
- top-M order: higher score first; equal scores by lower candidate id first (a listing rule only:
  the metrics give tied candidates their average position, see :meth:`CandidateTable.tied`).
- gold rank: the average ("realistic") rank among tied candidates:
  ``rank = 1 + #{c : score_c > score_gold} + #{c != gold : score_c == score_gold} / 2``,
  after removing the other true answers at the same time step (time-aware filter).
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from lamp.data.eventlog import EventLog
from lamp.data.queries import QuerySet
from lamp.errors import ConfigError

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
    tie_groups: np.ndarray | None = None  # [Q, M] int, non-decreasing: equal = tied in this order; None: equal scores

    def gold_position(self) -> np.ndarray:
        """0-based position of the gold answer in the top-M, -1 where it is not there."""
        target = self.queries.frame["target"].to_numpy()[:, None]
        hit = self.candidates == target
        return np.where(hit.any(axis=1), hit.argmax(axis=1), -1)

    def tied(self) -> np.ndarray:
        """[Q, M] tie group of each listed candidate (0 = the first): candidates the order cannot tell apart
        share a group, so metrics can give them their average position instead of favouring the lower id
        (the listing breaks ties by candidate id). Base tables: equal scores; reordered tables: ``tie_groups``."""
        return self.tie_groups if self.tie_groups is not None else tie_groups_of(self.scores)


def tie_groups_of(keys: np.ndarray) -> np.ndarray:
    """[Q, M] tie groups of rows listed in order (``keys`` [Q, M] or [Q, M, K]): a new group starts
    wherever an entry's keys differ from the previous entry's; 0 = the first group."""
    k = keys.reshape(keys.shape[0], keys.shape[1], -1)
    steps = (k[:, 1:] != k[:, :-1]).any(axis=2).astype(np.int64)
    return np.concatenate([np.zeros((len(k), min(1, k.shape[1])), dtype=np.int64), np.cumsum(steps, axis=1)], axis=1)


class BaseModel(ABC):
    """Scores candidate events. Subclasses implement :meth:`score_batch` and, if trained, :meth:`fit`."""

    name: str = "base"
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
            from lamp.tpp.factored import rank_relation_object

            if not hasattr(self, "relation_object_scores"):
                raise ConfigError(f"base model {self.name!r} cannot score relation_object queries: it has no "
                                  "relation_object_scores method (see lamp.tpp.factored.RelationObjectScorer).")
            return rank_relation_object(self, log, queries, top_m, batch_size=batch_size,  # type: ignore[arg-type]
                                        progress=progress)
        return rank_candidates(self, log, queries, top_m, batch_size=batch_size, progress=progress, n_jobs=n_jobs)


def filtered_gold_rank(scores: np.ndarray, queries: QuerySet, positions: np.ndarray) -> np.ndarray:
    """Average-tie, time-aware filtered rank of each query's gold answer in ``scores`` [B, C].

    ``rank = 1 + #{c : score_c > score_gold} + #{c != gold : score_c == score_gold} / 2`` over the
    candidates that are not other true answers at the query's time step.
    """
    positions = np.asarray(positions, dtype=np.int64)
    target = queries.frame["target"].to_numpy()[positions]
    rows = np.arange(len(positions))
    gold = scores[rows, target]
    greater = (scores > gold[:, None]).sum(axis=1, dtype=np.int64).astype(np.float64)
    equal = (scores == gold[:, None]).sum(axis=1, dtype=np.int64).astype(np.float64) - 1.0
    # the other true answers of each query, gathered as one flat array (no per-query Python loop)
    starts, ends = queries.filter_ptr[positions], queries.filter_ptr[positions + 1]
    lengths = ends - starts
    if lengths.sum():
        owner = np.repeat(rows, lengths)
        flat = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
        ids = queries.filter_ids[flat]
        keep = ids != target[owner]
        owner, ids = owner[keep], ids[keep]
        vals = scores[owner, ids]
        greater -= np.bincount(owner, weights=vals > gold[owner], minlength=len(rows))
        equal -= np.bincount(owner, weights=vals == gold[owner], minlength=len(rows))
    return 1.0 + greater + equal / 2.0


def top_m_of(scores: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-m candidate ids and scores per row; ties by lower candidate id (as a stable sort on -score).

    Fast path for wide rows: the m-th largest of per-block maxima is a lower bound ``low`` on each
    row's m-th largest score, so only candidates above ``low`` (plus the lowest-id candidates equal to
    it, when fewer than m are above) need sorting. The result equals the stable full sort.
    Raises ValueError on NaN scores.
    """
    n_rows, n_cols = scores.shape
    m = min(m, n_cols)
    if m <= 0 or n_rows == 0:
        return np.zeros((n_rows, max(m, 0)), dtype=np.int64), np.zeros((n_rows, max(m, 0)), dtype=np.float32)
    if n_cols <= 8 * m:
        if np.isnan(scores).any():
            raise ValueError("scores contain NaN")
        ids = np.argsort(-scores, axis=1, kind="stable")[:, :m].astype(np.int64)
        return ids, np.take_along_axis(scores, ids, axis=1).astype(np.float32)
    block = max(1, n_cols // (4 * m))
    block_max = np.maximum.reduceat(scores, np.arange(0, n_cols, block), axis=1)
    if np.isnan(block_max).any():  # maximum propagates NaN: the check is free here
        raise ValueError("scores contain NaN")
    n_blocks = block_max.shape[1]
    low = np.partition(block_max, n_blocks - m, axis=1)[:, n_blocks - m]
    flat = np.flatnonzero(scores > low[:, None])  # 1-D nonzero is much faster than 2-D
    r_above, c_above = flat // n_cols, flat % n_cols
    n_above = np.bincount(r_above, minlength=n_rows)
    parts_r, parts_c = [r_above], [c_above]
    fill_rows = np.flatnonzero(n_above < m)
    if fill_rows.size:
        # fewer than m above ``low``: the m-th largest is ``low`` itself; take the lowest-id ties,
        # looking at a growing prefix of the row (the ties are usually near its start).
        need = m - n_above[fill_rows]
        width = min(n_cols, int(need.max() + n_above[fill_rows].max()) + 64)
        while True:
            eq = scores[fill_rows, :width] == low[fill_rows, None]
            counts = np.cumsum(eq, axis=1)
            if width == n_cols or bool((counts[:, -1] >= need).all()):
                break
            width = min(n_cols, 4 * width)
        fr, fc = np.nonzero(eq & (counts <= need[:, None]))
        parts_r.append(fill_rows[fr])
        parts_c.append(fc)
    rr, cc = np.concatenate(parts_r), np.concatenate(parts_c)
    # order by (row, -score, id): entries arrive sorted by (row, id), so two stable sorts suffice
    order = np.lexsort((cc, rr))
    rr, cc = rr[order], cc[order]
    vals = scores[rr, cc]
    order = np.argsort(-vals, kind="stable")
    order = order[np.argsort(rr[order], kind="stable")]
    rr, cc, vals = rr[order], cc[order], vals[order]
    first = np.searchsorted(rr, np.arange(n_rows))
    pick = first[:, None] + np.arange(m)[None, :]
    return cc[pick].astype(np.int64), vals[pick].astype(np.float32)


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
    bar = tqdm(total=len(starts), disable=not progress, desc=f"scoring {model.name}", unit="batch")
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
