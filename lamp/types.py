"""Frozen dataclasses passed between stages (abduction, retrieval, ranking).

Queries live in :class:`lamp.data.queries.QuerySet` (a typed table); a base model's output is a
:class:`CandidateTable`; the other records describe one (query, candidate) pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from lamp.data.eventlog import EventLog
    from lamp.data.queries import QuerySet

TIE_RULE = "average"  # gold ranks among tied candidates: the average ("realistic") rank


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


@dataclass(frozen=True)
class AbductionRequest:
    """One candidate effect event to explain, in the data's own orientation.

    Only events ``[0, history_end)`` of the log (strictly before ``time``) may be used.
    """

    query_id: int
    candidate: int  # candidate id in the task's candidate space
    position: int  # 0-based position of the candidate in the base model's top-M
    subject: int
    relation: int
    object: int  # -1 for sequence data
    time: float
    history_end: int


@dataclass(frozen=True)
class CauseEvent:
    """A cause proposed by an abducer: text fields always, ids and a log row when it is a real event."""

    subject: str
    relation: str
    object: str
    time: float | None = None  # dataset time units; None when the abducer gave no usable date
    text: str = ""
    score: float = 1.0
    source: str = ""  # "llm", "rules", ...
    explanation: str = ""  # e.g. the rule that produced it, with its confidence
    event_index: int | None = None  # row of the real event in the log, when known (rules)
    subject_id: int = -1
    relation_id: int = -1
    object_id: int = -1


@dataclass(frozen=True)
class AbductionResult:
    """The causes abduced for one request; failures are counted, never silently dropped."""

    query_id: int
    candidate: int
    causes: tuple[CauseEvent, ...]
    raw_text: str = ""
    parse_failures: int = 0
    dropped_future: int = 0  # causes dated at or after the effect, dropped
    error: str | None = None  # set when the abducer failed for this request (e.g. LLM error after retries)


class Abducer(Protocol):
    """Given (query, candidate) effect events, return cause events with scores."""

    name: str

    def abduce(self, log: EventLog, requests: Sequence[AbductionRequest]) -> list[AbductionResult]: ...


@dataclass(frozen=True)
class Evidence:
    """Real past events retrieved for one (query, candidate): sorted by time, all before the query time."""

    query_id: int
    candidate: int
    event_indices: np.ndarray  # int64 rows of the log, ascending time
    scores: np.ndarray  # float32 retrieval scores aligned with event_indices
    query_time: float = 0.0


class Retriever(Protocol):
    """Generated causes -> real events strictly before the query time."""

    name: str

    def retrieve(
        self, log: EventLog, request: AbductionRequest, causes: Sequence[CauseEvent]
    ) -> Evidence: ...

    def retrieve_many(
        self, log: EventLog, requests: Sequence[AbductionRequest], causes_list: Sequence[Sequence[CauseEvent]]
    ) -> list[Evidence]: ...


@dataclass(frozen=True)
class StageTiming:
    stage: str
    wall_time_s: float
    peak_memory_mb: float
    skipped: bool = False  # True when the stage's artifacts were reused from the cache
    extra: dict[str, float] = field(default_factory=dict)
