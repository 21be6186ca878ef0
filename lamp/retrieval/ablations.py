"""No-LLM retrieval ablations: random earlier events and the most recent events of the entities.

Both ignore generated causes; they tell how much of lamp's gain comes from what the abducer proposed
rather than from simply showing the ranker some history. (The third ablation, effect similarity, is
dense retrieval with the candidate itself as the query: :class:`lamp.retrieval.dense.EffectSimilarityRetriever`.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from lamp.data.eventlog import EventLog
from lamp.errors import ConfigError
from lamp.retrieval.base import make_evidence
from lamp.retrieval.index import HistoryIndex
from lamp.types import AbductionRequest, CauseEvent, Evidence


class _Ablation:
    name = "ablation"

    def __init__(self, *, max_evidence: int = 32, window: float | None = None, seed: int = 0,
                 progress: bool | None = None) -> None:
        if int(max_evidence) < 1:
            raise ConfigError(f"retriever {self.name!r}: max_evidence must be >= 1, got {max_evidence}.")
        self.max_evidence, self.window, self.seed = int(max_evidence), window, int(seed)
        self.stats: Counter[str] = Counter()

    def retrieve(self, log: EventLog, request: AbductionRequest, causes: Sequence[CauseEvent]) -> Evidence:
        return self.retrieve_many(log, [request], [causes])[0]

    def retrieve_many(self, log: EventLog, requests: Sequence[AbductionRequest],
                      causes_list: Sequence[Sequence[CauseEvent]]) -> list[Evidence]:
        """Evidence per request, in request order; ``causes_list`` is ignored."""
        index = HistoryIndex.for_log(log)
        out = []
        for req in requests:
            end = min(int(req.history_end), index.history_end(req.time))
            start = index.window_start(req.time, self.window)
            rows = self._rows(index, req, start, end)
            out.append(make_evidence(req, rows, np.ones(len(rows), dtype=np.float32)))
        self.stats["requests"] += len(requests)
        self.stats["empty_evidence"] += sum(1 for e in out if e.event_indices.size == 0)
        return out

    def _rows(self, index: HistoryIndex, req: AbductionRequest, start: int, end: int) -> np.ndarray:
        raise NotImplementedError


class RandomRetriever(_Ablation):
    """``max_evidence`` uniformly random events of the allowed history (seeded per query and candidate,
    so a request gets the same events whatever batch it comes in)."""

    name = "random"

    def _rows(self, index: HistoryIndex, req: AbductionRequest, start: int, end: int) -> np.ndarray:
        n = end - start
        if n <= 0:
            return np.zeros(0, dtype=np.int64)
        rng = np.random.default_rng([self.seed, int(req.query_id) & 0x7FFFFFFF, int(req.candidate) & 0x7FFFFFFF])
        picked = rng.choice(n, size=min(n, self.max_evidence), replace=False)
        return np.sort(picked).astype(np.int64) + start


class RecentRetriever(_Ablation):
    """The ``max_evidence`` most recent earlier events involving the candidate event's entities (the
    query's known entity and the candidate's)."""

    name = "recent"

    def _rows(self, index: HistoryIndex, req: AbductionRequest, start: int, end: int) -> np.ndarray:
        ents = [e for e in (req.subject, req.object) if e >= 0]
        return index.entity_rows(ents, end, start=start, limit=self.max_evidence)
