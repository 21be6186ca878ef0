"""LLM likelihood scoring: how much a cause raises the log-probability of the effect (PMI).

``pmi(cause, effect) = log p(effect | "Earlier event: <cause>\\nLater event:") - log p(effect | "Later event:")``

computed from a local model's token log-probabilities (``backend.loglikelihood``: llama.cpp or
transformers; OpenAI's chat API has no prompt log-probabilities and says so). A cause that makes the
effect more predictable than it is on its own scores above 0. Small models answer "1, 2, 3" when
asked to *pick* causes; scoring each candidate cause by likelihood asks them nothing they can dodge.

Two uses, both configured like any other component:

- the ``pmi`` abducer: a proposer abducer (``rules`` by default: real earlier events) proposes,
  PMI orders its causes and keeps the best ``max_causes`` (``CauseEvent.score`` = the PMI);
- :class:`PMIRescorer`: a retrieval re-scorer that re-orders any retriever's evidence by PMI
  (``retriever.rescore: pmi`` in the pipeline), measured against plain embedding similarity in
  ``benchmarks/bench_pmi.py``.

Every score needs a forward pass over ~40 tokens (0.1-0.5 s on a CPU core for SmolLM2-135M); scores
are memoised per (cause text, effect text) for the life of the scorer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from lamp.components import Configurable, cache_key_of, make_settings, stable_hash
from lamp.data.eventlog import EventLog
from lamp.data.render import SEP, render_event, render_row
from lamp.errors import ConfigError, LLMError
from lamp.llm.types import describe_llm
from lamp.types import AbductionRequest, AbductionResult, CauseEvent, Evidence

logger = logging.getLogger(__name__)

CAUSE_TEMPLATE = "Earlier event: {cause}\nLater event:"
PRIOR_CONTEXT = "Later event:"


class PMIScorer:
    """PMI of effect texts given cause texts, from ``backend.loglikelihood(context, continuation)``."""

    def __init__(self, backend: Any, *, template: str = CAUSE_TEMPLATE, prior_context: str = PRIOR_CONTEXT) -> None:
        if not callable(getattr(backend, "loglikelihood", None)):
            raise ConfigError(f"PMI scoring needs a backend with loglikelihood() (llm=local or transformers); "
                              f"{type(backend).__name__} has none.")
        if "{cause}" not in template:
            raise ConfigError(f"the PMI template must contain {{cause}}; got {template!r}.")
        self.backend, self.template, self.prior_context = backend, template, prior_context
        self._memo: dict[tuple[str, str], float] = {}
        self.calls = 0
        self.seconds = 0.0

    def _loglik(self, context: str, effect: str) -> float:
        key = (context, effect)
        if key not in self._memo:
            t0 = time.perf_counter()
            try:
                self._memo[key] = float(self.backend.loglikelihood(context, " " + effect))
            except NotImplementedError as exc:
                raise LLMError(f"backend {getattr(self.backend, 'name', '?')!r} cannot score likelihoods: {exc}") from exc
            self.calls += 1
            self.seconds += time.perf_counter() - t0
        return self._memo[key]

    def score(self, effect: str, causes: Sequence[str]) -> np.ndarray:
        """PMI of ``effect`` given each cause text (float64, aligned with ``causes``)."""
        prior = self._loglik(self.prior_context, effect)
        return np.array([self._loglik(self.template.format(cause=c), effect) - prior for c in causes],
                        dtype=np.float64)

    def stats(self) -> dict[str, float]:
        return {"loglik_calls": float(self.calls), "loglik_seconds": round(self.seconds, 3)}


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
        logger.info("abduce[pmi]: %d requests, %d log-likelihood evaluations in %.1f s", len(requests),
                    self.scorer.calls, self.scorer.seconds)
        return out


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
            pmi = self.scorer.score(effect_text(log, req), [render_row(log, int(r)) for r in rows])
            best = np.sort(np.argsort(-pmi, kind="stable")[: self.keep])  # keep time order
            out.append(Evidence(ev.query_id, ev.candidate, rows[best], pmi[best].astype(np.float32), ev.query_time))
        return out

    def __getattr__(self, name: str) -> Any:  # stats, configs... of the wrapped retriever
        return getattr(self.inner, name)
