"""The LLM contract every stage codes against: one request, one response, one backend protocol."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class LLMRequest:
    """One chat call. Everything but ``tag`` is part of the cache key.

    Example::

        LLMRequest(messages=(("system", "Answer briefly."), ("user", "Why?")), max_tokens=64, tag="abduce")
    """

    messages: tuple[tuple[str, str], ...]
    max_tokens: int = 256
    temperature: float = 0.0
    seed: int = 0
    sample_index: int = 0
    json_schema: Mapping[str, Any] | None = None
    stop: tuple[str, ...] = ()
    tag: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        # Accept lists from callers (JSON, YAML) but store tuples so the request stays immutable.
        msgs = tuple((str(r), str(c)) for r, c in self.messages)
        object.__setattr__(self, "messages", msgs)
        object.__setattr__(self, "stop", tuple(self.stop))
        if not msgs:
            raise ValueError("LLMRequest.messages is empty; give at least one (role, content) pair")
        bad = sorted({r for r, _ in msgs if r not in ROLES})
        if bad:
            raise ValueError(f"Invalid message roles {bad}. Valid choices are: {', '.join(ROLES)}")
        if self.max_tokens < 1:
            raise ValueError(f"LLMRequest.max_tokens must be >= 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ValueError(f"LLMRequest.temperature must be >= 0, got {self.temperature}")

    def message_dicts(self) -> list[dict[str, str]]:
        """The messages in the OpenAI / llama.cpp wire format."""
        return [{"role": r, "content": c} for r, c in self.messages]

    def prompt_text(self) -> str:
        """All message contents joined: what token estimates are computed on."""
        return "\n".join(c for _, c in self.messages)

    def effective_seed(self) -> int:
        """The sampling seed sent to the backend: ``seed`` itself for sample 0, else a derived one.

        Derived by hashing, so (seed=0, sample 1) and (seed=1, sample 0) do not coincide.
        """
        if self.sample_index == 0:
            return self.seed
        digest = hashlib.sha256(f"{self.seed}:{self.sample_index}".encode()).digest()
        return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


@dataclass(frozen=True)
class LLMResponse:
    """The outcome of one call. ``error`` is set (and ``text`` is empty) when it failed after all retries."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    cached: bool
    latency_s: float
    error: str | None = None
    retries: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


def failed_response(error: str, *, latency_s: float = 0.0, retries: int = 0) -> LLMResponse:
    """A response for a call that produced nothing."""
    return LLMResponse("", 0, 0, cached=False, latency_s=latency_s, error=error, retries=retries)


def to_plain(value: Any) -> Any:
    """Mappings -> dicts, sequences -> lists, recursively: equal schemas serialise equally."""
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    return value


@runtime_checkable
class LLMBackend(Protocol):
    """What a backend provides. Backends never change prompts or parse answers.

    ``name`` is "openai" | "local" | "transformers"; ``model_id`` identifies the weights exactly
    (for a local file: "<filename>@sha256:<first 16 hex>" plus the runtime version).
    """

    name: str
    model_id: str

    def generate(self, requests: Sequence[LLMRequest]) -> list[LLMResponse]: ...

    def count_tokens(self, text: str) -> int: ...

    @property
    def context_length(self) -> int: ...

    def loglikelihood(self, context: str, continuation: str) -> float: ...


def describe_llm(client: Any) -> dict[str, Any]:
    """What identifies the model behind a client or backend in a cache key: backend kind, model id (which
    names the weights' hash and the decoding mode for local models) and the server it is called at."""
    backend = getattr(client, "backend", client)
    return {"backend": getattr(backend, "name", type(backend).__name__),
            "model_id": getattr(backend, "model_id", None), "base_url": getattr(backend, "base_url", None)}
