"""Ranker examples: one query's top-M candidates, each with the real past events found for it.

>>> examples = build_examples(log, table, evidences)          # doctest: +SKIP
>>> train, stop = split_by_time(examples)                      # first 2/3 by time, last 1/3
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from lamp.data.eventlog import EventLog
from lamp.data.queries import candidate_triple
from lamp.errors import ConfigError, LeakageError
from lamp.types import CandidateTable, Evidence

EVENT_COLUMNS = ("time", "subject", "relation", "object")


@dataclass(frozen=True, eq=False)
class RankExample:
    """The ranker's view of one query: M candidate events, their evidence, the base scores and the gold.

    ``candidates`` [M, 3] int64 (subject, relation, object) in the data's orientation (object -1 when a
    dataset has none); ``evidence_rows`` one int64 array of log rows per candidate, ascending time;
    ``evidence_events`` the same events as [L, 4] float64 (time, subject, relation, object), so the
    ranker needs no log; ``gold`` the gold answer's position in the top-M, -1 when it is not there;
    optional ``features`` [M, F] float32 (:mod:`lamp.rank.features`) and ``relevant`` [M] bool (the gold
    and the other true answers at the query's time step, for the listwise loss). Construction fails with :class:`LeakageError` if any evidence event is at or
    after the query time.
    """

    query_id: int
    query_time: float
    history_end: int
    candidates: np.ndarray
    base_scores: np.ndarray
    gold: int
    evidence_rows: tuple[np.ndarray, ...]
    evidence_events: tuple[np.ndarray, ...]
    features: np.ndarray | None = None
    relevant: np.ndarray | None = None

    def __post_init__(self) -> None:
        m = len(self.candidates)
        if (self.features is not None and (self.features.ndim != 2 or len(self.features) != m)) or \
                (self.relevant is not None and self.relevant.shape != (m,)):
            raise ConfigError(f"RankExample {self.query_id}: features must be [M, F] and relevant [M] with M={m}, got "
                              f"{getattr(self.features, 'shape', None)} and {getattr(self.relevant, 'shape', None)}.")
        if self.candidates.shape != (m, 3) or self.base_scores.shape != (m,):
            raise ConfigError(f"RankExample {self.query_id}: candidates must be [M, 3] and base_scores [M], got "
                              f"{self.candidates.shape} and {self.base_scores.shape}.")
        if len(self.evidence_rows) != m or len(self.evidence_events) != m:
            raise ConfigError(f"RankExample {self.query_id}: expected evidence for each of the {m} candidates, got "
                              f"{len(self.evidence_rows)} row lists and {len(self.evidence_events)} event lists.")
        if not -1 <= self.gold < m:
            raise ConfigError(f"RankExample {self.query_id}: gold position {self.gold} is outside -1..{m - 1}.")
        for j, (rows, events) in enumerate(zip(self.evidence_rows, self.evidence_events, strict=True)):
            late_row = rows.size and int(rows.max()) >= self.history_end
            late_time = events.size and float(events[:, 0].max()) >= self.query_time
            if late_row or late_time:
                raise LeakageError(
                    f"RankExample for query {self.query_id}: the evidence of candidate {j} holds an event at or "
                    f"after the query time {self.query_time:g} (rows must be < history_end={self.history_end}). "
                    "Only earlier events may be used; fix the retriever or the evidence table.")

    @property
    def num_candidates(self) -> int:
        return len(self.candidates)


def events_of(log: EventLog, rows: np.ndarray) -> np.ndarray:
    """[len(rows), 4] float64: time, subject, relation, object of log rows."""
    rows = np.asarray(rows, dtype=np.int64)
    return np.stack([log.times[rows], log.subjects[rows], log.rels[rows], log.objects[rows]], axis=1).astype(
        np.float64).reshape(len(rows), 4)


def build_examples(log: EventLog, table: CandidateTable, evidences: Sequence[Evidence], *,
                   features: np.ndarray | None = None, relevant: np.ndarray | None = None) -> list[RankExample]:
    """One :class:`RankExample` per query of ``table``; a (query, candidate) without evidence gets none.

    ``features`` [Q, M, F] and ``relevant`` [Q, M], when given, are attached row by row.

    Raises :class:`LeakageError` when an evidence event is at or after its query's time.
    """
    q = table.queries
    if q.task == "time":
        raise ConfigError("the energy ranker reorders candidate events; task 'time' has none. Use ranker=none.")
    by_key = {(int(e.query_id), int(e.candidate)): e for e in evidences}
    f = q.frame
    gold = table.gold_position()
    qid, subj, rel, obj = (f[c].to_numpy() for c in ("query_id", "subject", "relation", "object"))
    times, ends = f["time"].to_numpy(np.float64), f["history_end"].to_numpy(np.int64)
    empty = np.zeros(0, dtype=np.int64)
    out = []
    for i in range(len(q)):
        cands = np.array([candidate_triple(q.task, int(subj[i]), int(rel[i]), int(obj[i]), int(c), q.num_relations,
                                           log.num_entities) for c in table.candidates[i]], dtype=np.int64)
        rows = []
        for c in table.candidates[i]:
            ev = by_key.get((int(qid[i]), int(c)))
            rows.append(empty if ev is None else np.asarray(ev.event_indices, dtype=np.int64))
        for r in rows:
            if r.size and int(r.max()) >= ends[i]:
                raise LeakageError(f"evidence for query {int(qid[i])} holds row {int(r.max())}, at or after its "
                                   f"history_end {int(ends[i])}. Fix the retriever: only earlier events may be used.")
        out.append(RankExample(int(qid[i]), float(times[i]), int(ends[i]), cands.reshape(-1, 3),
                               np.asarray(table.scores[i], dtype=np.float32), int(gold[i]), tuple(rows),
                               tuple(events_of(log, r) for r in rows),
                               None if features is None else np.asarray(features[i], dtype=np.float32),
                               None if relevant is None else np.asarray(relevant[i], dtype=bool)))
    return out


def split_by_time(examples: Sequence[RankExample], fraction: float = 2 / 3) -> tuple[list[RankExample],
                                                                                    list[RankExample]]:
    """(earlier ``fraction``, the rest) by query time; queries at the cut's time all go to the later part."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"fraction must be in (0, 1), got {fraction}.")
    ordered = sorted(examples, key=lambda e: (e.query_time, e.query_id))
    if not ordered:
        return [], []
    cut_time = ordered[min(len(ordered) - 1, int(len(ordered) * fraction))].query_time
    return [e for e in ordered if e.query_time < cut_time], [e for e in ordered if e.query_time >= cut_time]


def shuffle_evidence(examples: Sequence[RankExample], seed: int = 0) -> list[RankExample]:
    """Control: each query gets the evidence of another query (candidates, scores and gold unchanged).

    A donor is drawn among the other queries whose allowed history ends no later than this one's, so
    the swapped evidence is still strictly in the past; a query without such a donor gets no evidence.
    If a ranker scores as well on these examples, it is not using the evidence.
    """
    rng = np.random.default_rng(seed)
    order = sorted(range(len(examples)), key=lambda i: (examples[i].history_end, examples[i].query_id))
    ends = np.array([examples[i].history_end for i in order], dtype=np.int64)
    out: list[RankExample] = list(examples)
    for pos, i in enumerate(order):
        ex = examples[i]
        eligible = int(np.searchsorted(ends, ex.history_end, side="right"))  # donors: order[:eligible], self too
        m = ex.num_candidates
        if eligible >= 2:
            k = int(rng.integers(eligible - 1))
            donor = examples[order[k + 1 if k >= pos else k]]
            rows = tuple(donor.evidence_rows[j % donor.num_candidates] for j in range(m))
            events = tuple(donor.evidence_events[j % donor.num_candidates] for j in range(m))
        else:
            rows = tuple(np.zeros(0, dtype=np.int64) for _ in range(m))
            events = tuple(np.zeros((0, 4)) for _ in range(m))
        out[i] = replace(ex, evidence_rows=rows, evidence_events=events)
    return out


def clamp_entities(example: RankExample, known: int | None) -> RankExample:
    """Entity ids the ranker never saw (``>= known``) -> its spare "unknown / no object" row (index ``known``);
    ``known=None`` leaves the example as it is."""
    if known is None:
        return example
    cands = example.candidates.copy()
    cands[:, [0, 2]] = np.where(cands[:, [0, 2]] >= known, known, cands[:, [0, 2]])
    events = []
    for ev in example.evidence_events:
        ev = ev.copy()
        for col in (1, 3):
            ev[:, col] = np.where(ev[:, col] >= known, known, ev[:, col])
        events.append(ev)
    return replace(example, candidates=cands, evidence_events=tuple(events))
