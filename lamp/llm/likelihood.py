"""LLM likelihood scoring: how much a cause raises the log-probability of the effect (PMI).

``pmi(cause, effect) = log p(effect | "Earlier event: <cause>\\nLater event:") - log p(effect | "Later event:")``

computed from a local model's token log-probabilities (``backend.loglikelihood``: llama.cpp or
transformers; OpenAI's chat API has no prompt log-probabilities and says so). A cause that makes the
effect more predictable than it is on its own scores above 0. Every score needs a forward pass over
~40 tokens (0.1-0.5 s on a CPU core for SmolLM2-135M); scores are memoised per (cause text, effect
text) for the life of the scorer. Used by the ``pmi`` abducer (:mod:`lamp.abduce.likelihood`) and the
PMI re-scoring of retrieved evidence (:mod:`lamp.retrieval.pmi`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from lamp.errors import ConfigError, LLMError

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
