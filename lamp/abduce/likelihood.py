"""The ``pmi`` abducer: causes ordered by how much they raise the LLM's log-probability of the effect.

A proposer abducer (``rules`` by default: real earlier events) proposes, PMI
(:class:`~lamp.llm.likelihood.PMIScorer`) orders its causes and keeps the best ``max_causes``
(``CauseEvent.score`` = the PMI). Small models answer "1, 2, 3" when asked to *pick* causes; scoring
each candidate cause by likelihood asks them nothing they can dodge. The same scorer re-orders
retrieved evidence in :mod:`lamp.retrieval.pmi`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from lamp.components import Configurable, cache_key_of, make_settings
from lamp.data.eventlog import EventLog
from lamp.data.render import SEP, render_event, render_row
from lamp.errors import ConfigError
from lamp.llm.likelihood import CAUSE_TEMPLATE, PMIScorer
from lamp.llm.types import describe_llm
from lamp.types import AbductionRequest, AbductionResult, CauseEvent

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


@dataclass(frozen=True)
class PMIAbducerSettings:
    """Options of ``pmi``: the proposer (an abducer name with its options; real earlier events by default) and
    how many of its causes are scored and kept. Cost: one ~40-token forward pass per (cause, candidate)."""

    proposer: dict[str, Any] = field(default_factory=lambda: {"name": "rules", "max_causes": 20})
    candidates: int = 12  # proposer causes scored per candidate
    max_causes: int = 5  # kept, best PMI first
    template: str = CAUSE_TEMPLATE

    def __post_init__(self) -> None:
        if self.max_causes < 1 or self.candidates < self.max_causes:
            raise ConfigError(f"pmi abducer: need 1 <= max_causes <= candidates, got {self.max_causes} and "
                              f"{self.candidates}.")


class PMIAbducer(Configurable):
    """Abducer ``pmi``: ``proposer`` proposes causes, PMI orders them, the best ``max_causes`` are kept."""

    name = "pmi"
    Settings = PMIAbducerSettings
    uses_llm = True

    def __init__(self, proposer: Any = None, scorer: PMIScorer | None = None,
                 settings: PMIAbducerSettings | Mapping[str, Any] | None = None, *, client: Any = None,
                 **overrides: Any) -> None:
        if isinstance(proposer, Mapping):  # the proposer's name and options, not a ready abducer
            overrides["proposer"], proposer = dict(proposer), None
        client = client if client is not None else overrides.pop("backend", None)
        s = self.settings = make_settings(PMIAbducerSettings, settings, overrides, where="abducer 'pmi'")
        if scorer is None:
            if client is None:
                raise ConfigError("abducer 'pmi' needs an LLM with log-probabilities. Fix: llm=local (or transformers).")
            scorer = PMIScorer(getattr(client, "backend", client), template=s.template)
        if proposer is None:
            from lamp.abduce.base import ABDUCERS

            proposer = ABDUCERS.make(dict(s.proposer))
        self.proposer, self.scorer = proposer, scorer
        self.max_causes, self.candidates = int(s.max_causes), int(s.candidates)

    def content_key(self) -> Any:
        return {"proposer": cache_key_of(self.proposer), "llm": describe_llm(self.scorer.backend),
                "template": self.scorer.template, "prior_context": self.scorer.prior_context}

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
        logger.debug("abduce[pmi]: %d requests, %d log-likelihood evaluations in %.1f s", len(requests),
                    self.scorer.calls, self.scorer.seconds)
        return out
