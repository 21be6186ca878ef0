"""Factored scoring for ``relation_object`` queries (s, ?, ?, t): top-k1 relations x top-k2 objects.

The full candidate set has R x E pairs (6 million on ICEWS18), too many to score per query. A model
that implements :class:`RelationObjectScorer` gives a relation score [B, R] and an object score
[B, E] for (s, t); a pair (r, o) scores ``relation[r] + object[o]`` (log-probabilities add). The
candidate set of a query is the top-``k_relations`` relations x the top-``k_objects`` objects (ties
by lower id), and the table keeps the top-M pairs of that set (candidate id ``r * E + o``, as
:func:`lamp.data.queries.make_queries`; ties by lower candidate id).

What the metrics condition on: the top-M metrics (the paper's mean rank in the top-M) are exact. The
gold pair's filtered rank is computed only inside the factored set (average tie rule, other true
pairs at the same time step removed); when the gold pair is NOT in the factored set its rank is NaN,
so MRR / Hits over the full R x E set are not reported for this task.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from lamp.data.eventlog import EventLog
from lamp.data.history import Postings, concat_ranges, strictly_before
from lamp.data.queries import QuerySet
from lamp.errors import ConfigError
from lamp.progress import progress_bar
from lamp.tpp.ranking import top_m_of
from lamp.types import CandidateTable


@runtime_checkable
class RelationObjectScorer(Protocol):
    """A model that scores relations and objects separately for (s, ?, ?, t) queries."""

    name: str

    def relation_object_scores(self, log: EventLog, queries: QuerySet, positions: np.ndarray
                               ) -> tuple[np.ndarray, np.ndarray]:
        """(relation scores [B, R], object scores [B, E]) in log space, from events before each query."""
        ...


def rank_relation_object(model: RelationObjectScorer, log: EventLog, queries: QuerySet, top_m: int, *,
                         k_relations: int = 10, k_objects: int = 50, batch_size: int = 256,
                         progress: bool = False, method: str | None = None) -> CandidateTable:
    """Top-M pairs of the factored candidate set, with the gold's filtered rank inside it (NaN outside)."""
    if queries.task != "relation_object":
        raise ConfigError(f"rank_relation_object needs relation_object queries, got task {queries.task!r}.")
    n_ent, n_rel = log.num_entities, log.num_relations
    k1, k2 = min(k_relations, n_rel), min(k_objects, n_ent)
    if k1 < 1 or k2 < 1:
        raise ConfigError(f"k_relations and k_objects must be >= 1, got {k_relations} and {k_objects}.")
    m = min(top_m, k1 * k2)
    n = len(queries)
    cands = np.zeros((n, m), dtype=np.int64)
    vals = np.zeros((n, m), dtype=np.float32)
    ranks = np.full(n, np.nan)
    target = queries.frame["target"].to_numpy().astype(np.int64)
    for start in progress_bar(range(0, n, batch_size), desc=f"scoring {model.name}", unit="batch", enabled=progress):
        pos = np.arange(start, min(n, start + batch_size))
        rel, obj = model.relation_object_scores(log, queries, pos)
        if rel.shape != (len(pos), n_rel) or obj.shape != (len(pos), n_ent):
            raise RuntimeError(f"{model.name}.relation_object_scores returned {rel.shape} and {obj.shape}, "
                               f"expected {(len(pos), n_rel)} and {(len(pos), n_ent)}.")
        r_ids, _ = top_m_of(rel, k1)
        o_ids, _ = top_m_of(obj, k2)
        rows = np.arange(len(pos))[:, None]
        pair_scores = (np.asarray(rel, np.float64)[rows, r_ids][:, :, None]
                       + np.asarray(obj, np.float64)[rows, o_ids][:, None, :]).reshape(len(pos), -1)
        pair_ids = (r_ids[:, :, None] * n_ent + o_ids[:, None, :]).reshape(len(pos), -1)
        by_id = np.argsort(pair_ids, axis=1, kind="stable")  # ties at equal score: lower candidate id first
        pair_ids, pair_scores = np.take_along_axis(pair_ids, by_id, 1), np.take_along_axis(pair_scores, by_id, 1)
        order = np.argsort(-pair_scores, axis=1, kind="stable")[:, :m]
        cands[pos] = np.take_along_axis(pair_ids, order, 1)
        vals[pos] = np.take_along_axis(pair_scores, order, 1)
        ranks[pos] = _rank_in_set(pair_ids, pair_scores, target[pos], queries, pos)
    return CandidateTable(method or f"base:{model.name}", queries, m, cands, vals, ranks)


def _rank_in_set(ids: np.ndarray, scores: np.ndarray, target: np.ndarray, queries: QuerySet,
                 positions: np.ndarray) -> np.ndarray:
    """Average-tie filtered rank of the gold pair within each row's candidate set; NaN if absent."""
    is_gold = ids == target[:, None]
    found = is_gold.any(axis=1)
    gold = np.where(found, scores[np.arange(len(ids)), is_gold.argmax(axis=1)], np.nan)
    owner, flat = concat_ranges(queries.filter_ptr[positions], queries.filter_ptr[positions + 1])
    base = max(int(queries.num_candidates), int(ids.max(initial=0)) + 1)
    true_keys = np.sort(owner * base + queries.filter_ids[flat])
    cell = np.arange(len(ids))[:, None] * base + ids
    at = np.minimum(np.searchsorted(true_keys, cell), max(len(true_keys) - 1, 0))
    other = (true_keys[at] == cell) & ~is_gold if len(true_keys) else np.zeros(ids.shape, dtype=bool)
    greater = ((scores > gold[:, None]) & ~other).sum(axis=1)
    equal = ((scores == gold[:, None]) & ~other).sum(axis=1) - 1
    return np.where(found, 1.0 + greater + equal / 2.0, np.nan)


class SubjectFrequencyScorer:
    """``log p(r | s)`` and ``log p(o | s)`` from the subject's events before t, add-one smoothed.

    A simple :class:`RelationObjectScorer` (``base:frequency`` on relation_object queries).
    """

    name = "frequency"

    def __init__(self) -> None:
        self._index: tuple[str, np.ndarray, Postings, Postings] | None = None

    def _postings(self, log: EventLog) -> tuple[np.ndarray, Postings, Postings]:
        if self._index is None or self._index[0] != log.fingerprint():
            times = np.unique(log.times)
            tidx = strictly_before(times, log.times).astype(np.int64)
            s = log.subjects.astype(np.int64)
            self._index = (log.fingerprint(), times, Postings.build(s, log.rels.astype(np.int64), tidx, len(times)),
                           Postings.build(s, log.objects.astype(np.int64), tidx, len(times)))
        return self._index[1], self._index[2], self._index[3]

    def relation_object_scores(self, log: EventLog, queries: QuerySet, positions: np.ndarray
                               ) -> tuple[np.ndarray, np.ndarray]:
        times, by_rel, by_obj = self._postings(log)
        subj = queries.frame["subject"].to_numpy()[positions].astype(np.int64)
        cut = strictly_before(times, queries.frame["time"].to_numpy()[positions]).astype(np.int64)
        out = []
        for post, size in ((by_rel, log.num_relations), (by_obj, log.num_entities)):
            start, end = post.ranges(subj, cut)
            owner, flat = concat_ranges(start, end)
            counts = np.bincount(owner * size + post.values[flat], minlength=len(subj) * size).reshape(len(subj), size)
            total = (end - start).astype(np.float64)[:, None]
            out.append(np.log(counts + 1.0) - np.log(total + size))
        return out[0], out[1]
