"""The ``pmi`` abducer: causes ordered by how much they raise the LLM's log-probability of the effect.

A proposer abducer (``rules`` by default: real earlier events) proposes, PMI
(:class:`~lamp.llm.likelihood.PMIScorer`) orders its causes and keeps the best ``max_causes``
(``CauseEvent.score`` = the PMI). Small models answer "1, 2, 3" when asked to *pick* causes; scoring
each candidate cause by likelihood asks them nothing they can dodge. The same scorer re-orders
retrieved evidence in :mod:`lamp.retrieval.pmi`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from lamp.data.eventlog import EventLog
from lamp.data.render import SEP, render_event, render_row
from lamp.errors import ConfigError
from lamp.llm.likelihood import PMIScorer
from lamp.types import Abducer, AbductionRequest, AbductionResult, CauseEvent

logger = logging.getLogger(__name__)

__all__ = ["PMIAbducer", "PMIScorer", "cause_text", "effect_text"]


def effect_text(log: EventLog, req: AbductionRequest) -> str:
    return render_event(log, req.subject, req.relation, req.object, req.time)


def cause_text(log: EventLog, cause: CauseEvent) -> str:
    """A cause as the same one-line text as the log's events (its real row when it has one)."""
    if cause.event_index is not None:
        return render_row(log, cause.event_index)
    date = log.time_spec.format(cause.time) if cause.time is not None else ""
    return SEP.join(p for p in (date, cause.subject, cause.relation, cause.object) if p)


class PMIAbducer:
    """Abducer ``pmi``: ``proposer`` proposes causes, PMI orders them, the best ``max_causes`` are kept."""

    name = "pmi"

    def __init__(self, proposer: Abducer, scorer: PMIScorer, *, max_causes: int = 5, candidates: int = 20) -> None:
        if max_causes < 1 or candidates < max_causes:
            raise ConfigError(f"pmi abducer: need 1 <= max_causes <= candidates, got {max_causes} and {candidates}.")
        self.proposer, self.scorer = proposer, scorer
        self.max_causes, self.candidates = int(max_causes), int(candidates)

    def config(self) -> dict[str, Any]:
        fn = getattr(self.proposer, "config", None)
        return {"proposer": fn() if callable(fn) else getattr(self.proposer, "name", "?"),
                "max_causes": self.max_causes, "candidates": self.candidates, "template": self.scorer.template,
                "model": getattr(self.scorer.backend, "model_id", "?")}

    def abduce(self, log: EventLog, requests: Sequence[AbductionRequest]) -> list[AbductionResult]:
        proposed = self.proposer.abduce(log, requests)
        out = []
        for req, res in zip(requests, proposed, strict=True):
            pool = list(res.causes[: self.candidates])
            if not pool:
                out.append(res)
                continue
            pmi = self.scorer.score(effect_text(log, req), [cause_text(log, c) for c in pool])
            order = np.argsort(-pmi, kind="stable")[: self.max_causes]
            causes = tuple(replace(pool[i], score=float(pmi[i]), source=f"{pool[i].source or 'proposer'}+pmi",
                                   explanation=(pool[i].explanation + f"; PMI {pmi[i]:+.2f}").lstrip("; "))
                           for i in order)
            out.append(replace(res, causes=causes))
        logger.info("abduce[pmi]: %d requests, %d log-likelihood evaluations in %.1f s", len(requests),
                    self.scorer.calls, self.scorer.seconds)
        return out
