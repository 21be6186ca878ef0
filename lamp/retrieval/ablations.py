"""No-LLM retrieval ablations: random earlier events and the most recent events of the entities.

Both ignore generated causes; they tell how much of lamp's gain comes from what the abducer proposed
rather than from simply showing the ranker some history. (The third ablation, effect similarity, is
dense retrieval with the candidate itself as the query: :class:`lamp.retrieval.dense.EffectSimilarityRetriever`.)
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lamp.components import Configurable, load_settings, make_settings, not_in_key, save_settings
from lamp.data.eventlog import EventLog
from lamp.errors import ConfigError
from lamp.retrieval.base import make_evidence
from lamp.retrieval.index import HistoryIndex
from lamp.types import AbductionRequest, CauseEvent, Evidence


@dataclass(frozen=True)
class AblationSettings:
    """Options of the ``random`` and ``recent`` ablations."""

    max_evidence: int = 32  # events per candidate
    window: float | None = None  # only events within this many time units before the query (None = all)
    seed: int = 0  # random: the draw (seeded per query and candidate)
    progress: bool | None = not_in_key(None)  # None: follow the stage (lamp.progress)

    def __post_init__(self) -> None:
        if int(self.max_evidence) < 1:
            raise ConfigError(f"ablation retriever: max_evidence must be >= 1, got {self.max_evidence}.")


class _Ablation(Configurable):
    name = "ablation"
    Settings = AblationSettings
    per_query = True  # a request's evidence depends on it and the log only (lamp.parallel)

    def __init__(self, settings: AblationSettings | Mapping[str, Any] | None = None, **overrides: Any) -> None:
        s = self.settings = make_settings(AblationSettings, settings, overrides, where=f"retriever {self.name!r}")
        self.max_evidence, self.window, self.seed = int(s.max_evidence), s.window, int(s.seed)
        self.stats: Counter[str] = Counter()

    def save(self, folder: str | os.PathLike[str]) -> None:
        """The retriever's settings as ``component.json`` (it has no learned state)."""
        save_settings(self, folder)

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> _Ablation:
        return cls(load_settings(cls, folder)[0])

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
