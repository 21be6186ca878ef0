"""LLM backends, the durable response cache, the budget and usage accounting.

Example::

    from lamp.llm import LLMRequest, build_client
    client = build_client("local", packaged="smollm2", budget={"max_calls": 10})
    [resp] = client.generate([LLMRequest(messages=(("user", "Name a city."),), max_tokens=16)])

A backend is chosen by ``kind`` (one YAML per kind in ``conf/llm/``); heavy libraries are imported
only when their backend is built.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from lamp.components import Resolver
from lamp.errors import ConfigError
from lamp.llm.budget import Budget, PriceTable, Usage
from lamp.llm.cache import LLMCache, default_cache_path, request_key
from lamp.llm.client import BUDGET_EXHAUSTED, LLMClient
from lamp.llm.models import packaged_gguf
from lamp.llm.types import LLMBackend, LLMRequest, LLMResponse

__all__ = [
    "BACKENDS", "BUDGET_EXHAUSTED", "KINDS", "Budget", "LLMBackend", "LLMCache", "LLMClient", "LLMRequest", "LLMResponse",
    "PriceTable", "Usage", "build_backend", "build_client", "default_cache_path", "packaged_gguf", "request_key",
]

# kind -> backend class (one YAML per kind in conf/llm/; openai_compatible.yaml is kind openai with a base_url)
BACKENDS: Resolver[LLMBackend] = Resolver("llm kind", {
    "openai": "lamp.llm.openai_backend:OpenAIBackend",
    "local": "lamp.llm.local_backend:LocalBackend",
    "transformers": "lamp.llm.transformers_backend:TransformersBackend",
}, conf_group="llm")
KINDS = tuple(BACKENDS.choices)
# Keys of a conf/llm/*.yaml that configure the client or the requests, not the backend.
CLIENT_KEYS = frozenset({"budget", "cache", "prices", "max_tokens", "temperature"})


def _backend_class(kind: str) -> type:
    if kind == "none":
        raise ConfigError("llm kind 'none' means the run uses no LLM, so there is no backend to build. "
                          "Fix: check for kind == 'none' before calling build_backend.")
    return BACKENDS.lookup(kind)


def build_backend(kind: str, **kwargs: Any) -> LLMBackend:
    """Build the backend named by ``kind`` from its keyword options (a conf/llm YAML as a dict).

    Keys in ``CLIENT_KEYS`` (budget, cache, prices, max_tokens, temperature) are ignored here so a
    whole config group can be passed; any other unknown key is an error that lists the valid ones.
    """
    cls = _backend_class(kind)
    params = inspect.signature(cls).parameters
    valid = list(params)
    options = {k: v for k, v in kwargs.items() if k not in CLIENT_KEYS}
    bad = sorted(set(options) - set(valid))
    if bad:
        raise ConfigError(f"Invalid option(s) {bad} for llm kind={kind!r}. Valid choices are: {', '.join(valid)}")
    backend: LLMBackend = cls(**options)
    return backend


def build_client(kind: str, *, budget: Budget | Mapping[str, Any] | None = None,
                 cache: LLMCache | Mapping[str, Any] | str | None = None,
                 prices: PriceTable | Mapping[str, Mapping[str, float]] | None = None,
                 **kwargs: Any) -> LLMClient:
    """The backend plus cache, budget and prices, from one conf/llm group as a plain dict.

    ``cache``: an LLMCache, a path, ``{"path": ..., "enabled": bool}``, or None for the default path.
    """
    backend = build_backend(kind, **kwargs)
    if not isinstance(budget, Budget):
        budget = Budget(**{k: v for k, v in (budget or {}).items()})
    if not isinstance(prices, PriceTable):
        prices = PriceTable(prices)
    store: LLMCache | None
    if isinstance(cache, LLMCache):
        store = cache
    elif isinstance(cache, Mapping):
        store = LLMCache(cache.get("path")) if cache.get("enabled", True) else None
    else:
        store = LLMCache(cache)
    return LLMClient(backend, store, budget, prices)
