"""PMI re-scoring of retrieved evidence (``retriever.rescore: pmi``): any retriever's events for a
candidate, re-ordered by how much each raises the LLM's log-probability of the candidate effect
(:class:`~lamp.llm.likelihood.PMIScorer`); measured against plain embedding similarity in
``benchmarks/bench_pmi.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lamp.components import cache_key_of, stable_hash
from lamp.data.eventlog import EventLog
from lamp.data.render import render_event, render_row
from lamp.llm.likelihood import PMIScorer
from lamp.llm.types import describe_llm
from lamp.types import AbductionRequest, CauseEvent, Evidence


class PMIRescorer:
    """Wraps a retriever: its evidence for each candidate, re-scored and re-ordered by PMI with the
    candidate effect; the best ``keep`` events are kept (in time order, as Evidence requires)."""

    def __init__(self, retriever: Any, scorer: PMIScorer, *, keep: int = 8) -> None:
        self.inner, self.scorer, self.keep = retriever, scorer, int(keep)
        self.name = f"{getattr(retriever, 'name', 'retriever')}+pmi"

    def cache_key(self) -> str:
        """The wrapped retriever's key, the LLM that re-scores and how many events are kept."""
        return stable_hash("pmi-rescore", cache_key_of(self.inner), describe_llm(self.scorer.backend),
                           self.scorer.template, self.keep)

    def retrieve_many(self, log: EventLog, requests: Sequence[AbductionRequest],
                      causes: Sequence[Sequence[CauseEvent]]) -> list[Evidence]:
        found = self.inner.retrieve_many(log, requests, causes)
        out = []
        for req, ev in zip(requests, found, strict=True):
            if ev.event_indices.size == 0:
                out.append(ev)
                continue
            rows = ev.event_indices
            effect = render_event(log, req.subject, req.relation, req.object, req.time)
            pmi = self.scorer.score(effect, [render_row(log, int(r)) for r in rows])
            best = np.sort(np.argsort(-pmi, kind="stable")[: self.keep])  # keep time order
            out.append(Evidence(ev.query_id, ev.candidate, rows[best], pmi[best].astype(np.float32), ev.query_time))
        return out

    def __getattr__(self, name: str) -> Any:  # stats, configs... of the wrapped retriever
        return getattr(self.inner, name)
