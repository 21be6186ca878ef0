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
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from lamp.data.eventlog import EventLog
from lamp.data.render import SEP, render_event, render_row
from lamp.errors import ConfigError, LLMError
from lamp.types import Abducer, AbductionRequest, AbductionResult, CauseEvent, Evidence

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
        logger.debug("abduce[pmi]: %d requests, %d log-likelihood evaluations in %.1f s", len(requests),
                    self.scorer.calls, self.scorer.seconds)
        return out


class PMIRescorer:
    """Wraps a retriever: its evidence for each candidate, re-scored and re-ordered by PMI with the
    candidate effect; the best ``keep`` events are kept (in time order, as Evidence requires)."""

    def __init__(self, retriever: Any, scorer: PMIScorer, *, keep: int = 8) -> None:
        self.inner, self.scorer, self.keep = retriever, scorer, int(keep)
        self.name = f"{getattr(retriever, 'name', 'retriever')}+pmi"

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
