"""OpenAI-compatible chat backend (OpenAI, vLLM, Ollama, llama.cpp server) with counted retries."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lamp.errors import ConfigError, LLMError, MissingDependencyError
from lamp.llm.retry import RetryPolicy, parse_retry_after
from lamp.llm.types import LLMRequest, LLMResponse, failed_response, to_plain

logger = logging.getLogger(__name__)

NO_KEY = "sk-no-key"
STRUCTURED_OUTPUT = ("json_schema", "json_object", "none")
_RETRY_STATUS = (408, 409, 429)


class MalformedResponseError(Exception):
    """The server answered 200 with a body that is not a chat completion."""


def _redactor(secret: str) -> Callable[[str], str]:
    # The key lives only in this closure and the openai client, never in an attribute or repr.
    def redact(text: str) -> str:
        return text.replace(secret, "***") if secret and secret != NO_KEY else text

    return redact


class OpenAIBackend:
    """Chat completions through the official ``openai`` client; retries are ours, so they are counted.

    The key is read from the environment variable ``api_key_env`` only (empty/None: a local server
    that needs none). ``structured_output`` picks how ``json_schema`` is sent: "json_schema"
    (OpenAI, vLLM, Ollama, llama.cpp's C++ server), "json_object" (llama-cpp-python's server:
    ``{"type": "json_object", "schema": ...}``) or "none" (not sent). Token counts without a
    tokenizer (no tiktoken) are estimated as ceil(chars / 4). ``model_id`` is the model name.

    A 429 (rate limited: the server ran nothing) is waited out, as its Retry-After says or else with the
    backoff, without spending one of ``max_retries`` while the call is younger than ``rate_limit_wait_s``:
    more calls in flight than the server admits queue up instead of failing. Every retry is counted.
    """

    name = "openai"

    def __init__(self, model: str = "gpt-4o-mini", *, base_url: str | None = None,
                 api_key_env: str | None = "OPENAI_API_KEY", max_concurrency: int = 8, timeout_s: float = 60.0,
                 max_retries: int = 5, backoff_base_s: float = 1.0, backoff_max_s: float = 60.0,
                 structured_output: str = "json_schema", strict_schema: bool = False,
                 context_length: int = 128_000, rate_limit_wait_s: float = 300.0) -> None:
        try:
            import openai
        except ImportError as exc:
            raise MissingDependencyError("openai", purpose="the openai LLM backend") from exc
        if structured_output not in STRUCTURED_OUTPUT:
            raise ConfigError(f"Invalid structured_output: {structured_output!r}. "
                              f"Valid choices are: {', '.join(STRUCTURED_OUTPUT)}")
        if api_key_env:
            key = os.environ.get(api_key_env, "")
            if not key:
                raise ConfigError(f"The environment variable {api_key_env} holding the API key is not set. "
                                  f"Fix: export {api_key_env}=..., or set llm.api_key_env to empty for a "
                                  "local server that needs no key.")
        else:
            key = NO_KEY
        self.model_id = model
        self.base_url = base_url
        self.api_key_env = api_key_env or ""
        self.max_concurrency = max(1, int(max_concurrency))
        self.timeout_s = timeout_s
        self.policy = RetryPolicy(max_retries, backoff_base_s, backoff_max_s)
        if rate_limit_wait_s < 0:
            raise ConfigError(f"llm.rate_limit_wait_s must be >= 0, got {rate_limit_wait_s}")
        self.rate_limit_wait_s = float(rate_limit_wait_s)
        self.structured_output = structured_output
        self.strict_schema = strict_schema
        self._context_length = int(context_length)
        self._redact = _redactor(key)
        self._rng = random.Random()
        self._openai = openai
        self._client = openai.OpenAI(api_key=key, base_url=base_url, max_retries=0, timeout=timeout_s)
        self._encoding: Any = None

    def __repr__(self) -> str:
        return (f"OpenAIBackend(model={self.model_id!r}, base_url={self.base_url!r}, "
                f"api_key_env={self.api_key_env!r})")

    @property
    def context_length(self) -> int:
        return self._context_length

    def count_tokens(self, text: str) -> int:
        """tiktoken's count when tiktoken and its encoding are available, else ceil(len(text) / 4)."""
        if self._encoding is None:
            self._encoding = _load_tiktoken(self.model_id)
        if self._encoding is not False:
            return len(self._encoding.encode(text))
        return math.ceil(len(text) / 4)

    def loglikelihood(self, context: str, continuation: str) -> float:
        raise LLMError("loglikelihood needs prompt logprobs, which the OpenAI chat completions API does not "
                       "return. Fix: use llm=local or llm=transformers for likelihood scoring.")

    def generate(self, requests: Sequence[LLMRequest]) -> list[LLMResponse]:
        if len(requests) <= 1:
            return [self._one(r) for r in requests]
        with ThreadPoolExecutor(min(self.max_concurrency, len(requests)), thread_name_prefix="lamp-openai") as pool:
            return list(pool.map(self._one, requests))

    def _kwargs(self, req: LLMRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"model": self.model_id, "messages": req.message_dicts(),
                                  "max_tokens": req.max_tokens, "temperature": req.temperature,
                                  "seed": req.effective_seed()}
        if req.stop:
            kwargs["stop"] = list(req.stop)
        if req.json_schema is not None and self.structured_output == "json_schema":
            kwargs["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "response", "schema": to_plain(req.json_schema), "strict": self.strict_schema}}
        elif req.json_schema is not None and self.structured_output == "json_object":
            kwargs["response_format"] = {"type": "json_object", "schema": to_plain(req.json_schema)}
        return kwargs

    def _one(self, req: LLMRequest) -> LLMResponse:
        kwargs = self._kwargs(req)
        t0 = time.perf_counter()
        retries, spent, message = 0, 0, ""  # spent: the retries that count against max_retries
        while True:
            try:
                completion = self._client.chat.completions.create(**kwargs)
                text, prompt_tokens, completion_tokens = self._parse(completion, req)
                return LLMResponse(text, prompt_tokens, completion_tokens, cached=False,
                                   latency_s=time.perf_counter() - t0, retries=retries)
            except Exception as exc:
                retryable, retry_after, message = self._classify(exc)
                if not retryable:
                    break
                waiting = (isinstance(exc, self._openai.RateLimitError)
                           and time.perf_counter() - t0 < self.rate_limit_wait_s)
                if not waiting:
                    if spent == self.policy.max_retries:
                        break
                    spent += 1
                # "Retry-After: 0" on a 429 would make a tight loop: back off instead
                wait_for = retry_after if retry_after or not waiting else None
                delay = self.policy.delay(min(retries, 30), wait_for, self._rng)
                logger.debug("LLM call failed (%s); retry %d (%d/%d counted) in %.2fs", message, retries + 1,
                             spent, self.policy.max_retries, delay)
                time.sleep(delay)
                retries += 1
        return failed_response(f"{message} (after {retries} retries)", latency_s=time.perf_counter() - t0,
                               retries=retries)

    def _parse(self, completion: Any, req: LLMRequest) -> tuple[str, int, int]:
        try:
            text = completion.choices[0].message.content
        except (AttributeError, IndexError, TypeError) as exc:
            raise MalformedResponseError(f"no choices[0].message.content in {type(completion).__name__}") from exc
        if not isinstance(text, str):
            raise MalformedResponseError("choices[0].message.content is not a string")
        usage = getattr(completion, "usage", None)
        if usage is not None and usage.prompt_tokens is not None:
            return text, int(usage.prompt_tokens), int(usage.completion_tokens or 0)
        return text, self.count_tokens(req.prompt_text()), self.count_tokens(text)

    def _classify(self, exc: Exception) -> tuple[bool, float | None, str]:
        """(retryable, server's Retry-After in seconds, a message without the key)."""
        oa = self._openai
        kind = type(exc).__name__
        if isinstance(exc, oa.APITimeoutError):
            return True, None, self._redact(f"timeout after {self.timeout_s}s")
        if isinstance(exc, oa.APIConnectionError):
            return True, None, self._redact(f"connection error ({exc.__cause__ or exc})")
        if isinstance(exc, oa.APIStatusError):
            code = exc.status_code
            retryable = code in _RETRY_STATUS or code >= 500
            return retryable, parse_retry_after(exc.response.headers), self._redact(f"HTTP {code}: {exc.message}")
        if isinstance(exc, json.JSONDecodeError | MalformedResponseError | oa.APIResponseValidationError):
            return True, None, self._redact(f"malformed response body ({kind}: {exc})")
        return False, None, self._redact(f"{kind}: {exc}")


def _load_tiktoken(model: str) -> Any:
    """tiktoken's encoding for ``model``, or False (not installed, or its files cannot be fetched)."""
    try:
        import tiktoken
    except ImportError:
        return False
    try:
        try:
            return tiktoken.encoding_for_model(model)
        except KeyError:
            return tiktoken.get_encoding("o200k_base")
    except Exception as exc:  # offline: tiktoken downloads encodings on first use
        logger.debug("tiktoken could not load an encoding (%s); estimating tokens as chars/4", exc)
        return False

