"""Features of each (query, top-M candidate) for the learned rankers, strictly from events before the query.

Four groups, each a [Q, M, F] float32 block with named columns (:class:`Features`):

- ``base``: the base model's score, its position in the top-M, the gap to the query's best score,
  the score standardised within the query and its softmax share over the top-M.
- ``ensemble`` (optional, a named ensemble): other base models' scores of the same candidates and
  the candidate's rank among all candidates under each of them (:func:`candidate_scores`).
- ``history``: how often and how recently, before the query time, the candidate followed the query
  subject with the query relation (``s r c``), with any relation (``s * c``), answered the query the
  other way round (``c r s``), answered relation ``r`` for anyone (``* r c``) and took part in any
  event (``c``); and the subject's own activity (``s``, ``s r``). Counts are ``log1p``; ages are
  ``log1p`` of time steps since the latest such event, ``-1`` when there is none.
- ``evidence``: what the abducer + retriever found for the candidate: number of events, sum and
  best retrieval score (the rules abducer's scores are rule confidence x time decay), age of the
  latest and mean age of the events, how many involve the candidate's answer entity or the query
  subject, and how many distinct relations they have.

Every count and age is taken over log rows ``[0, history_end)`` of the query (its events strictly
before the query time) through sorted composite keys and ``searchsorted``: rows at or after the query
time cannot change a feature (tests rewrite them to show it).

>>> feats = build_features(log, table, evidences)              # doctest: +SKIP
>>> feats.values.shape, feats.names[:3]                        # doctest: +SKIP
((17028, 20, 37), ('base_score', 'base_position', 'base_gap_top'))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from lamp.data.eventlog import EventLog
from lamp.data.queries import QuerySet
from lamp.errors import ConfigError, LeakageError
from lamp.types import CandidateTable, Evidence


class ScoresCandidates(Protocol):
    """A base model, as far as the ensemble features need one (:class:`lamp.tpp.base.BaseModel`)."""

    name: str

    def score_batch(self, log: EventLog, queries: QuerySet, positions: np.ndarray) -> np.ndarray: ...


NO_AGE = -1.0  # the age feature of a pattern never seen before the query
RECENT_STEPS = 7.0  # the "recent" counts look this many time steps back


@dataclass(frozen=True)
class Features:
    """Named feature columns: ``values`` [Q, M, F] float32, aligned with a table's top-M candidates."""

    names: tuple[str, ...]
    values: np.ndarray

    def __post_init__(self) -> None:
        if self.values.ndim != 3 or self.values.shape[2] != len(self.names):
            raise ConfigError(f"feature values must be [Q, M, {len(self.names)}] for names {self.names[:4]}..., "
                              f"got {self.values.shape}.")

    def select(self, names: Sequence[str]) -> Features:
        """The columns ``names``, in that order."""
        missing = [n for n in names if n not in self.names]
        if missing:
            raise ConfigError(f"unknown feature columns {missing}; available: {', '.join(self.names)}.")
        idx = [self.names.index(n) for n in names]
        return Features(tuple(names), self.values[:, :, idx])

    def drop_prefix(self, prefix: str) -> Features:
        """All columns whose name does not start with ``prefix``."""
        return self.select([n for n in self.names if not n.startswith(prefix)])


def concat(parts: Sequence[Features]) -> Features:
    """Columns of several blocks side by side (same queries and candidates)."""
    names = tuple(n for p in parts for n in p.names)
    if len(set(names)) != len(names):
        raise ConfigError(f"duplicate feature names in {names}.")
    return Features(names, np.concatenate([p.values for p in parts], axis=2).astype(np.float32))


# -- base scores ------------------------------------------------------------------------------------
def base_features(table: CandidateTable) -> Features:
    """Score, position, gap to the best, within-query z-score and softmax share of the base model."""
    s = table.scores.astype(np.float64)
    q, m = s.shape
    gap = s - s.max(axis=1, keepdims=True) if m else s
    std = s.std(axis=1, keepdims=True)
    z = np.where(std > 0, (s - s.mean(axis=1, keepdims=True)) / np.where(std > 0, std, 1.0), 0.0)
    share = np.exp(gap) / np.exp(gap).sum(axis=1, keepdims=True) if m else s
    pos = np.broadcast_to(np.arange(m, dtype=np.float64), (q, m))
    names = ("base_score", "base_position", "base_gap_top", "base_z", "base_share")
    return Features(names, np.stack([s, pos, gap, z, share], axis=2).astype(np.float32))


def candidate_scores(model: ScoresCandidates, log: EventLog, queries: QuerySet, candidates: np.ndarray, *,
                     batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Another base model's view of given candidates: (scores [Q, M], rank among all candidates [Q, M]).

    The rank is 1-based over the full candidate set (average ties, unfiltered), from the model's dense
    ``score_batch`` rows (which use only each query's earlier events).
    """
    n, m = candidates.shape
    if n != len(queries):
        raise ConfigError(f"candidates has {n} rows but the query set {len(queries)}; pass the table's own queries.")
    scores = np.zeros((n, m), dtype=np.float64)
    ranks = np.zeros((n, m), dtype=np.float64)
    for lo in range(0, n, batch_size):
        pos = np.arange(lo, min(n, lo + batch_size))
        dense = np.asarray(model.score_batch(log, queries, pos), dtype=np.float64)
        picked = np.take_along_axis(dense, candidates[pos], axis=1)
        scores[pos] = picked
        for k in range(m):  # per candidate column: [B, C] comparisons, no sort
            col = picked[:, k : k + 1]
            ranks[pos, k] = 1.0 + (dense > col).sum(axis=1) + ((dense == col).sum(axis=1) - 1) / 2.0
    return scores, ranks


def ensemble_features(extra: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> Features:
    """``ens_<name>_score`` and ``ens_<name>_logrank`` for each other base model (see :func:`candidate_scores`)."""
    names, cols = [], []
    for name in sorted(extra):
        scores, ranks = extra[name]
        s = np.asarray(scores, dtype=np.float64)
        names += [f"ens_{name}_score", f"ens_{name}_gap_top", f"ens_{name}_logrank"]
        cols += [s, s - s.max(axis=1, keepdims=True), np.log(np.asarray(ranks, dtype=np.float64))]
    if not cols:
        raise ConfigError("ensemble_features needs at least one other base model's scores.")
    return Features(tuple(names), np.stack(cols, axis=2).astype(np.float32))


# -- history counts -----------------------------------------------------------------------------------
class _KeyTimes:
    """Events under an integer key, sorted by (key, time index): counts and latest times before a cutoff."""

    def __init__(self, keys: np.ndarray, tidx: np.ndarray, n_times: int) -> None:
        self.scale = np.int64(n_times + 1)
        comp = keys.astype(np.int64) * self.scale + tidx.astype(np.int64)
        order = np.argsort(comp, kind="stable")
        self.comp = comp[order]
        self.tidx = tidx.astype(np.int64)[order]

    def query(self, keys: np.ndarray, tq: np.ndarray, recent_from: np.ndarray) -> tuple[np.ndarray, ...]:
        """Per key: (count before time index ``tq``, count in ``[recent_from, tq)``, latest time index or -1)."""
        base = keys.astype(np.int64) * self.scale
        lo = np.searchsorted(self.comp, base, side="left")
        hi = np.searchsorted(self.comp, base + tq, side="left")  # strictly before the query's time step
        mid = np.searchsorted(self.comp, base + np.minimum(recent_from, tq), side="left")
        last = np.where(hi > lo, self.tidx[np.maximum(hi - 1, 0)], -1)
        return hi - lo, hi - mid, last


@dataclass
class HistoryIndex:
    """Sorted keys over the whole log in query space (both directions); built once per log."""

    times: np.ndarray  # distinct event times, ascending
    step: float
    src_rel_dst: _KeyTimes
    src_dst: _KeyTimes
    rel_dst: _KeyTimes
    ent: _KeyTimes
    src_rel: _KeyTimes
    num_entities: int
    num_relations: int  # 2R: query-space relations
    fingerprint: str

    @classmethod
    def build(cls, log: EventLog) -> HistoryIndex:
        s, r, o = (a.astype(np.int64) for a in (log.subjects, log.rels, log.objects))
        if not log.has_objects:
            raise ConfigError(f"history features need events with objects; {log.name!r} has none.")
        times = np.unique(log.times)
        tidx = np.searchsorted(times, log.times)
        E, R2 = log.num_entities, 2 * log.num_relations
        src = np.concatenate([s, o])
        rel = np.concatenate([r, r + log.num_relations])
        dst = np.concatenate([o, s])
        t2 = np.concatenate([tidx, tidx])
        n = len(times)
        return cls(times, float(log.time_spec.granularity), _KeyTimes((src * R2 + rel) * E + dst, t2, n),
                   _KeyTimes(src * E + dst, t2, n), _KeyTimes(rel * E + dst, t2, n), _KeyTimes(src, t2, n),
                   _KeyTimes(src * R2 + rel, t2, n), E, R2, log.fingerprint())

    def time_index(self, t: np.ndarray) -> np.ndarray:
        """Index of the first distinct time >= t: events with a smaller index are strictly before t."""
        return np.searchsorted(self.times, t, side="left")


_INDEXES: dict[tuple[str, int], HistoryIndex] = {}


def history_index(log: EventLog) -> HistoryIndex:
    """The :class:`HistoryIndex` of ``log`` (cached per log fingerprint in this process)."""
    key = (log.fingerprint(), len(log))
    if key not in _INDEXES:
        if len(_INDEXES) >= 4:
            _INDEXES.pop(next(iter(_INDEXES)))
        _INDEXES[key] = HistoryIndex.build(log)
    return _INDEXES[key]


def _pattern(idx: HistoryIndex, kt: _KeyTimes, keys: np.ndarray, tq: np.ndarray, rf: np.ndarray,
             tq_time: np.ndarray) -> list[np.ndarray]:
    count, recent, last = kt.query(keys, tq, rf)
    age = np.where(last >= 0, np.log1p((tq_time - idx.times[np.maximum(last, 0)]) / idx.step), NO_AGE)
    return [np.log1p(count), np.log1p(recent), age]


def history_features(log: EventLog, table: CandidateTable) -> Features:
    """Counts, recent counts and ages of the candidate's patterns before each query (module docstring).

    Object task only (both directions): the candidate is the answer entity of ``(s, r, ?)``.
    """
    q = table.queries
    if q.task != "object":
        raise ConfigError(f"history features are defined for the object task, not {q.task!r}.")
    idx = history_index(log)
    f = q.frame
    n, m = table.candidates.shape
    s = np.repeat(f["subject"].to_numpy(np.int64), m)
    r = np.repeat(f["relation"].to_numpy(np.int64), m)
    t = np.repeat(f["time"].to_numpy(np.float64), m)
    c = table.candidates.reshape(-1).astype(np.int64)
    E, R2 = idx.num_entities, idx.num_relations
    tq = idx.time_index(t)
    rf = idx.time_index(t - RECENT_STEPS * idx.step)
    cols, names = [], []
    for label, kt, keys in (("src", idx.src_rel_dst, (s * R2 + r) * E + c),
                            ("pair", idx.src_dst, s * E + c),
                            ("reverse", idx.src_rel_dst, (c * R2 + r) * E + s),
                            ("rel_cand", idx.rel_dst, r * E + c),
                            ("cand", idx.ent, c),
                            ("subj", idx.ent, s),
                            ("subj_rel", idx.src_rel, s * R2 + r)):
        cols += _pattern(idx, kt, keys, tq, rf, t)
        names += [f"hist_{label}_count", f"hist_{label}_recent", f"hist_{label}_age"]
    values = np.stack(cols, axis=1).reshape(n, m, len(names)).astype(np.float32)
    return Features(tuple(names), values)


# -- evidence -----------------------------------------------------------------------------------------
def evidence_features(log: EventLog, table: CandidateTable, evidences: Sequence[Evidence]) -> Features:
    """Summary of each candidate's evidence events (module docstring); none found gives zeros and age -1.

    Raises :class:`LeakageError` when an evidence row is at or after its query's ``history_end``.
    """
    q = table.queries
    f = q.frame
    n, m = table.candidates.shape
    pos_of = {(int(qid), int(cand)): i * m + j for i, qid in enumerate(f["query_id"].to_numpy())
              for j, cand in enumerate(table.candidates[i])}
    ends = f["history_end"].to_numpy(np.int64)
    times = f["time"].to_numpy(np.float64)
    subj = f["subject"].to_numpy(np.int64)
    owners, rows, scores = [], [], []
    for ev in evidences:
        cell = pos_of.get((int(ev.query_id), int(ev.candidate)))
        if cell is None or not len(ev.event_indices):
            continue
        owners.append(np.full(len(ev.event_indices), cell, dtype=np.int64))
        rows.append(np.asarray(ev.event_indices, dtype=np.int64))
        scores.append(np.asarray(ev.scores, dtype=np.float64))
    cells = n * m
    out = np.zeros((cells, 8), dtype=np.float64)
    out[:, 3] = out[:, 4] = NO_AGE
    if owners:
        own, row, sc = np.concatenate(owners), np.concatenate(rows), np.concatenate(scores)
        qi = own // m
        late = row >= ends[qi]
        if late.any():
            k = int(np.flatnonzero(late)[0])
            raise LeakageError(f"evidence of query {int(f['query_id'].iloc[qi[k]])} holds log row {int(row[k])}, "
                               f"at or after its history_end {int(ends[qi[k]])}. Only earlier events may be used; "
                               "fix the retriever.")
        cand = table.candidates.reshape(-1)[own]
        R = log.num_relations
        # the candidate's answer entity and the query subject, in the data's orientation
        es, eo = log.subjects[row].astype(np.int64), log.objects[row].astype(np.int64)
        has_cand = (es == cand) | (eo == cand)
        has_subj = (es == subj[qi]) | (eo == subj[qi])
        steps = np.log1p((times[qi] - log.times[row]) / float(log.time_spec.granularity))
        cnt = np.bincount(own, minlength=cells).astype(np.float64)
        out[:, 0] = np.log1p(cnt)
        out[:, 1] = np.bincount(own, weights=sc, minlength=cells)
        best = np.full(cells, -np.inf)
        np.maximum.at(best, own, sc)
        out[:, 2] = np.where(cnt > 0, best, 0.0)
        young = np.full(cells, np.inf)
        np.minimum.at(young, own, steps)
        out[:, 3] = np.where(cnt > 0, young, NO_AGE)
        out[:, 4] = np.where(cnt > 0, np.bincount(own, weights=steps, minlength=cells) / np.maximum(cnt, 1), NO_AGE)
        out[:, 5] = np.bincount(own, weights=has_cand, minlength=cells)
        out[:, 6] = np.bincount(own, weights=has_subj, minlength=cells)
        rel_key = np.unique(own * (2 * R + 1) + log.rels[row].astype(np.int64))
        out[:, 7] = np.bincount(rel_key // (2 * R + 1), minlength=cells)
    names = ("ev_count", "ev_score_sum", "ev_score_max", "ev_age_latest", "ev_age_mean", "ev_with_candidate",
             "ev_with_subject", "ev_relations")
    return Features(names, out.reshape(n, m, len(names)).astype(np.float32))


def build_features(log: EventLog, table: CandidateTable, evidences: Sequence[Evidence] | None = None, *,
                   ensemble: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None) -> Features:
    """``base`` + ``history`` (+ ``evidence`` when given) (+ ``ensemble`` when given) features of ``table``."""
    parts = [base_features(table), history_features(log, table)]
    if evidences is not None:
        parts.append(evidence_features(log, table, evidences))
    if ensemble:
        parts.append(ensemble_features(ensemble))
    return concat(parts)
