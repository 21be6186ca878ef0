"""What every text-matching retriever shares: the allowed pool, cause handling and evidence assembly.

For one request (a candidate effect of a query) and its generated causes:

1. Causes that already name a real event (``event_index``, e.g. from the rules abducer) are taken as
   they are, if that row is before the request's ``history_end``; otherwise they are dropped and
   counted in ``stats["dropped_future"]``.
2. The other causes are rendered as text (:func:`cause_text`, through the one event-to-text function)
   and matched against a pool: the events strictly before the query time (optionally within a time
   window) that involve the candidate's entities or any entity the causes name, found through the
   per-entity postings, each entity contributing its most recent ``max_pool`` events (so a busy
   candidate entity cannot crowd out the events of the entities a cause names). When no such event
   exists the pool is the most recent ``max_pool`` events (counted in ``stats["fallback_pool"]``).
3. Matching scores each *distinct* triple of the pool once; each cause keeps its ``top_k`` best
   triples (ties: the more recent first). A chosen triple stands for its occurrence closest to the
   cause's date when the cause has one, otherwise for its most recent occurrence.
4. The events of all causes are merged (a row keeps its best score), sorted by time and cut to the
   last ``max_evidence``: the :class:`~lamp.types.Evidence` of the request.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from lamp.components import Configurable, load_settings, make_settings, not_in_key, save_settings
from lamp.data.eventlog import EventLog
from lamp.data.render import SEP, render_event
from lamp.errors import ConfigError, LeakageError
from lamp.progress import progress_bar
from lamp.retrieval.index import HistoryIndex
from lamp.types import AbductionRequest, CauseEvent, Evidence

logger = logging.getLogger(__name__)


def cause_text(index: HistoryIndex, cause: CauseEvent) -> str:
    """A generated cause as dateless text, in the same form as the log's events.

    When its subject, relation and object resolve to vocabulary ids the text comes from
    :func:`render_event`; otherwise the given names are joined with the same separator.
    """
    log = index.log
    s = cause.subject_id if cause.subject_id >= 0 else index.entity_id(cause.subject)
    r = cause.relation_id if cause.relation_id >= 0 else index.relation_id(cause.relation)
    o = cause.object_id if cause.object_id >= 0 else index.entity_id(cause.object)
    extra = cause.text if (log.texts is not None and cause.text) else None
    if s >= 0 and r >= 0 and (o >= 0 or not cause.object):
        return render_event(log, s, r, o, None, text=extra, with_time=False)
    return SEP.join(p for p in (cause.subject, cause.relation, cause.object, extra) if p)


def cause_entities(index: HistoryIndex, cause: CauseEvent) -> list[int]:
    """Entity ids a cause names (given ids first, then vocabulary look-up); unknown names are skipped."""
    out = []
    for given, name in ((cause.subject_id, cause.subject), (cause.object_id, cause.object)):
        e = given if given >= 0 else index.entity_id(name)
        if e >= 0:
            out.append(e)
    return out


@dataclass
class Job:
    """One request's matching work: query texts, the allowed pool and the pre-matched rows."""

    request: AbductionRequest
    texts: list[str]
    times: list[float | None]
    pool: np.ndarray  # rows, ascending, all < request.history_end
    triples: np.ndarray  # distinct triple ids of the pool, ascending
    inverse: np.ndarray  # pool position -> position in ``triples``
    fixed: dict[int, float]  # rows given by the causes themselves -> score
    scratch: dict[str, Any] = field(default_factory=dict)  # per-retriever batch state (e.g. query vectors)


@dataclass(frozen=True)
class PoolSettings:
    """Options every matching retriever shares."""

    top_k: int = 5  # events kept per cause
    max_evidence: int = 32  # events kept per candidate
    max_pool: int = 500  # most recent events searched per involved entity
    window: float | None = None  # only events within this many time units before the query (None = all)
    min_score: float | None = None  # drop matches scoring below this
    progress: bool | None = not_in_key(None)  # None: follow the stage (lamp.progress)
    chunk_size: int = not_in_key(2048)  # requests whose pools are held at once (memory)

    def __post_init__(self) -> None:
        for key in ("top_k", "max_evidence", "max_pool", "chunk_size"):
            if int(getattr(self, key)) < 1:
                raise ConfigError(f"retriever option {key} must be >= 1, got {getattr(self, key)}. "
                                  "Fix: set a positive value.")
        if self.window is not None and self.window <= 0:
            raise ConfigError(f"retriever option window must be positive (dataset time units) or null, "
                              f"got {self.window}.")


class PoolRetriever(Configurable):
    """Base class of the matching retrievers; subclasses implement :meth:`_score`."""

    name = "pool"
    Settings: ClassVar[type] = PoolSettings
    per_query = True  # a request's evidence depends on it, its causes and the log only (lamp.parallel)

    def __init__(self, settings: Any = None, **overrides: Any) -> None:
        s = self.settings = make_settings(type(self).Settings, settings, overrides, where=f"retriever {self.name!r}")
        self.top_k, self.max_evidence, self.max_pool = int(s.top_k), int(s.max_evidence), int(s.max_pool)
        self.window, self.min_score, self.progress, self.chunk_size = s.window, s.min_score, s.progress, int(s.chunk_size)
        self.stats: Counter[str] = Counter()

    def save(self, folder: str | os.PathLike[str]) -> None:
        """The retriever's settings as ``component.json`` (it has no learned state)."""
        save_settings(self, folder)

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> PoolRetriever:
        return cls(load_settings(cls, folder)[0])

    # -- public API -----------------------------------------------------------------------------
    def retrieve(self, log: EventLog, request: AbductionRequest, causes: Sequence[CauseEvent]) -> Evidence:
        """Evidence for one (query, candidate); see :meth:`retrieve_many`."""
        return self.retrieve_many(log, [request], [causes])[0]

    def retrieve_many(self, log: EventLog, requests: Sequence[AbductionRequest],
                      causes_list: Sequence[Sequence[CauseEvent]]) -> list[Evidence]:
        """Evidence for many requests at once (texts are encoded in one batch), in request order."""
        if len(requests) != len(causes_list):
            raise ConfigError(f"retrieve_many got {len(requests)} requests but {len(causes_list)} cause lists; "
                              "pass one (possibly empty) list of causes per request.")
        index = HistoryIndex.for_log(log)
        out: list[Evidence] = []
        bar = progress_bar(total=len(requests), desc=f"retrieval ({self.name})", unit="request", enabled=self.progress)
        for lo in range(0, len(requests), self.chunk_size):  # bounded memory: pools live one chunk at a time
            jobs = [self._job(index, req, causes) for req, causes in
                    zip(requests[lo : lo + self.chunk_size], causes_list[lo : lo + self.chunk_size], strict=True)]
            self._prepare(index, jobs)
            for job in jobs:
                out.append(self._evidence(index, job))
                bar.update(1)
        bar.close()
        self.stats["requests"] += len(out)
        self.stats["empty_evidence"] += sum(1 for e in out if e.event_indices.size == 0)
        return out

    # -- hooks ----------------------------------------------------------------------------------
    def _query_texts(self, index: HistoryIndex, request: AbductionRequest,
                     causes: Sequence[CauseEvent]) -> tuple[list[str], list[float | None]]:
        """The texts to match and their dates (default: one per generated cause)."""
        return [cause_text(index, c) for c in causes], [c.time for c in causes]

    def _pool_entities(self, index: HistoryIndex, request: AbductionRequest,
                       causes: Sequence[CauseEvent]) -> set[int]:
        ents = {request.subject, request.object}
        for c in causes:
            ents.update(cause_entities(index, c))
        return {e for e in ents if e >= 0}

    def _prepare(self, index: HistoryIndex, jobs: Sequence[Job]) -> None:
        """Batch work before scoring (e.g. encode every needed text once)."""

    def _score(self, index: HistoryIndex, job: Job) -> np.ndarray:
        """Similarity ``[len(job.texts), len(job.triples)]``, higher is more similar."""
        raise NotImplementedError

    # -- machinery ------------------------------------------------------------------------------
    def _job(self, index: HistoryIndex, request: AbductionRequest, causes: Sequence[CauseEvent]) -> Job:
        end = int(request.history_end)
        allowed = index.history_end(request.time)
        if end > allowed:
            raise LeakageError(
                f"request (query {request.query_id}, candidate {request.candidate}) allows rows [0, {end}) but only "
                f"{allowed} events are strictly before its time {request.time:g}. Fix: set history_end with "
                "EventLog.history_end(time).")
        fixed: dict[int, float] = {}
        text_causes = []
        for c in causes:
            if c.event_index is None:
                text_causes.append(c)
            elif 0 <= c.event_index < end:
                fixed[int(c.event_index)] = max(fixed.get(int(c.event_index), -np.inf), float(c.score))
                self.stats["causes_indexed"] += 1
            else:
                self.stats["dropped_future"] += 1
        texts, times = self._query_texts(index, request, text_causes)
        self.stats["causes_matched"] += len(texts)
        pool = np.zeros(0, dtype=np.int64)
        if texts and end > 0:
            start = index.window_start(request.time, self.window)
            pool = index.entity_rows(self._pool_entities(index, request, text_causes), end, start=start,
                                     per_entity=self.max_pool)
            if pool.size == 0:
                self.stats["fallback_pool"] += 1
                pool = index.recent_rows(end, start=start, limit=self.max_pool)
        triples, inverse = np.unique(index.triple_of_row[pool], return_inverse=True)
        return Job(request, texts, times, pool, triples, inverse.reshape(-1), fixed)

    def _evidence(self, index: HistoryIndex, job: Job) -> Evidence:
        found = dict(job.fixed)
        if job.texts and job.pool.size:
            scores = np.asarray(self._score(index, job), dtype=np.float32)
            last_row = np.zeros(len(job.triples), dtype=np.int64)
            np.maximum.at(last_row, job.inverse, job.pool)
            k = min(self.top_k, len(job.triples))
            for q in range(len(job.texts)):
                best = np.lexsort((-last_row, -scores[q]))[:k]  # most similar first; ties: more recent
                for u in best.tolist():
                    score = float(scores[q, u])
                    if self.min_score is not None and score < self.min_score:
                        break
                    row = self._occurrence(index, job, u, int(last_row[u]), job.times[q])
                    if score > found.get(row, -np.inf):
                        found[row] = score
        rows = np.array(sorted(found), dtype=np.int64)[-self.max_evidence :]
        vals = np.array([found[r] for r in rows.tolist()], dtype=np.float32)
        return make_evidence(job.request, rows, vals)

    def _occurrence(self, index: HistoryIndex, job: Job, u: int, last: int, when: float | None) -> int:
        """The pool row standing for triple position ``u``: closest to ``when``, else the most recent."""
        if when is None or not np.isfinite(when):
            return last
        rows = job.pool[job.inverse == u]
        gap = np.abs(index.times[rows] - when)
        return int(rows[len(rows) - 1 - int(np.argmin(gap[::-1]))])  # ties: the later row


def make_evidence(request: AbductionRequest, rows: np.ndarray, scores: np.ndarray) -> Evidence:
    """Evidence of a request, checked: every row strictly before the request's ``history_end``."""
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size and (int(rows.max()) >= request.history_end or int(rows.min()) < 0):
        raise LeakageError(
            f"evidence for query {request.query_id}, candidate {request.candidate} holds row {int(rows.max())}, "
            f"at or after history_end={request.history_end}; only earlier events may be used. This is a bug in "
            "the retriever.")
    return Evidence(request.query_id, request.candidate, rows, np.asarray(scores, dtype=np.float32), request.time)


def evidence_frame(evidences: Sequence[Evidence], log: EventLog) -> pd.DataFrame:
    """One row per evidence event: query_id, candidate, position (0 = earliest), event_index, event_time,
    query_time, retrieval_score (what the pipeline writes as ``evidence.parquet``)."""
    lengths = np.array([e.event_indices.size for e in evidences], dtype=np.int64)
    rows = np.concatenate([e.event_indices for e in evidences]) if len(evidences) else np.zeros(0, np.int64)
    rows = rows.astype(np.int64)
    return pd.DataFrame({
        "query_id": np.repeat([e.query_id for e in evidences], lengths).astype(np.int64),
        "candidate": np.repeat([e.candidate for e in evidences], lengths).astype(np.int64),
        "position": np.concatenate([np.arange(n) for n in lengths]).astype(np.int64) if len(evidences) else
        np.zeros(0, np.int64),
        "event_index": rows,
        "event_time": log.times[rows].astype(np.float64),
        "query_time": np.repeat([e.query_time for e in evidences], lengths).astype(np.float64),
        "retrieval_score": (np.concatenate([e.scores for e in evidences]) if len(evidences)
                            else np.zeros(0)).astype(np.float32),
    })
