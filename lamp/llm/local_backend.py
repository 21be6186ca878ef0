"""In-process llama.cpp backend (llama-cpp-python): a GGUF file, or a model shipped as a pip package."""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lamp.errors import ConfigError, LLMError, MissingDependencyError
from lamp.llm.models import file_model_id, packaged_chat_format, packaged_gguf
from lamp.llm.types import LLMRequest, LLMResponse, failed_response, to_plain

logger = logging.getLogger(__name__)

_INSTALL_NOTE = ("llama-cpp-python compiles llama.cpp on install; for a GPU build set CMAKE_ARGS first, "
                 "e.g. CMAKE_ARGS='-DGGML_CUDA=on' pip install 'lamp[local]'")


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        err = MissingDependencyError("llama-cpp-python", extra="local", purpose="the local LLM backend")
        err.args = (f"{err}. Note: {_INSTALL_NOTE}",)
        raise err from exc
    return llama_cpp


class LocalBackend:
    """A GGUF model run by llama.cpp in this process; calls run one after another on one instance,
    so llama.cpp reuses the KV cache of the prompt prefix shared with the previous call.

    Example::

        backend = LocalBackend(packaged="smollm2", n_ctx=2048)
        backend.generate([LLMRequest(messages=(("user", "Hi"),), max_tokens=16)])

    ``model_path`` wins over ``packaged`` when both are given (so ``llm.model_path=...`` overrides the
    default). ``loglikelihood`` uses a second instance (created on first use, weights shared by mmap) with
    ``logits_all=True``: it keeps n_ctx x n_vocab float32 logits, about
    ``loglik_n_ctx * n_vocab * 4`` bytes (~400 MB for SmolLM2 at 2048).
    """

    name = "local"
    max_concurrency = 1

    def __init__(self, model_path: str | Path | None = None, *, packaged: str | None = None,
                 n_ctx: int = 4096, n_threads: int | None = None, chat_format: str | None = None,
                 n_batch: int = 512, n_gpu_layers: int = 0, loglik_n_ctx: int = 2048) -> None:
        if model_path is None and packaged is None:
            raise ConfigError("Give model_path (a .gguf file) or packaged (smollm2 | gemma3-270m); got neither.")
        self._llama_cpp = _import_llama_cpp()
        if model_path is not None:
            path = Path(model_path).expanduser()
            if not path.is_file():
                raise ConfigError(f"GGUF model file not found: {path}. Fix: set llm.model_path to a .gguf file "
                                  "or use llm.packaged=smollm2.")
        else:
            path = packaged_gguf(str(packaged))
            chat_format = chat_format or packaged_chat_format(str(packaged))
        self.model_path = path
        self.n_ctx = int(n_ctx)
        self.n_threads = int(n_threads or os.cpu_count() or 1)
        self.chat_format = chat_format
        self.n_batch = int(n_batch)
        self.n_gpu_layers = int(n_gpu_layers)
        self.loglik_n_ctx = int(loglik_n_ctx)
        runtime = f"llama-cpp-python-{self._llama_cpp.__version__}"
        # The chat template changes every answer, so it is part of the identity of the model.
        self.model_id = file_model_id(path, runtime) + (f"+chat={chat_format}" if chat_format else "")
        self._lock = threading.RLock()
        self._llm: Any = None
        self._scorer: Any = None

    def __repr__(self) -> str:
        return f"LocalBackend(model_id={self.model_id!r}, n_ctx={self.n_ctx}, n_threads={self.n_threads})"

    def _load(self, logits_all: bool = False, n_ctx: int | None = None) -> Any:
        t0 = time.perf_counter()
        llm = self._llama_cpp.Llama(
            model_path=str(self.model_path), n_ctx=n_ctx or self.n_ctx, n_threads=self.n_threads,
            n_threads_batch=self.n_threads, n_batch=self.n_batch, n_gpu_layers=self.n_gpu_layers,
            chat_format=self.chat_format, logits_all=logits_all, verbose=False)
        logger.info("Loaded %s in %.2fs (n_ctx=%d, logits_all=%s)", self.model_path.name,
                    time.perf_counter() - t0, n_ctx or self.n_ctx, logits_all)
        return llm

    @property
    def llm(self) -> Any:
        """The llama_cpp.Llama instance used for generation (loaded on first use)."""
        with self._lock:
            if self._llm is None:
                self._llm = self._load()
            return self._llm

    @property
    def context_length(self) -> int:
        return self.n_ctx

    def count_tokens(self, text: str) -> int:
        """Exact: the model's own tokenizer, without BOS or chat template tokens."""
        with self._lock:
            return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def generate(self, requests: Sequence[LLMRequest]) -> list[LLMResponse]:
        return [self._one(r) for r in requests]

    def _one(self, req: LLMRequest) -> LLMResponse:
        kwargs: dict[str, Any] = {"messages": req.message_dicts(), "max_tokens": req.max_tokens,
                                  "temperature": req.temperature, "seed": req.effective_seed(),
                                  "stop": list(req.stop) or None}
        if req.json_schema is not None:
            # llama-cpp-python turns the schema into a GBNF grammar that constrains decoding.
            kwargs["response_format"] = {"type": "json_object", "schema": to_plain(req.json_schema)}
        t0 = time.perf_counter()
        try:
            with self._lock:
                out = self.llm.create_chat_completion(**kwargs)
            text = out["choices"][0]["message"]["content"] or ""
            usage = out.get("usage") or {}
        except (ValueError, RuntimeError, KeyError, IndexError) as exc:  # e.g. prompt longer than n_ctx
            return failed_response(f"{type(exc).__name__}: {exc}", latency_s=time.perf_counter() - t0)
        return LLMResponse(text, int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)),
                           cached=False, latency_s=time.perf_counter() - t0)

    def loglikelihood(self, context: str, continuation: str) -> float:
        """Sum of log p(continuation tokens | context), raw text (no chat template).

        Context and continuation are tokenized separately (as lm-eval-harness does), so a
        continuation usually starts with a space: ``loglikelihood("The capital of France is", " Paris")``.
        """
        import numpy as np

        with self._lock:
            if self._scorer is None:
                self._scorer = self._load(logits_all=True, n_ctx=self.loglik_n_ctx)
            sc = self._scorer
            ctx = sc.tokenize(context.encode("utf-8"), add_bos=True, special=False)
            cont = sc.tokenize(continuation.encode("utf-8"), add_bos=False, special=False)
            if not ctx or not cont:
                raise LLMError(f"loglikelihood needs a non-empty context and continuation "
                               f"(got {len(ctx)} and {len(cont)} tokens)")
            if len(ctx) + len(cont) > self.loglik_n_ctx:
                raise LLMError(f"context + continuation is {len(ctx) + len(cont)} tokens, more than "
                               f"loglik_n_ctx={self.loglik_n_ctx}. Fix: raise llm.loglik_n_ctx.")
            sc.reset()
            sc.eval(ctx + cont)
            logits = np.asarray(sc.scores[len(ctx) - 1: len(ctx) + len(cont) - 1], dtype=np.float64)
        peak = logits.max(axis=1, keepdims=True)
        logz = peak[:, 0] + np.log(np.exp(logits - peak).sum(axis=1))
        total = float(sum(logits[j, t] - logz[j] for j, t in enumerate(cont)))
        if not math.isfinite(total):
            raise LLMError(f"loglikelihood is not finite ({total}) for a {len(cont)}-token continuation")
        return total
