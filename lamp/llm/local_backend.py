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
from lamp.llm import json_decoding
from lamp.llm.models import file_model_id, packaged_chat_format, packaged_gguf
from lamp.llm.types import LLMRequest, LLMResponse, failed_response, to_plain

logger = logging.getLogger(__name__)

DECODINGS = ("jump_forward", "grammar")
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

    ``decoding="jump_forward"`` (the default) decodes a request's JSON schema with
    :mod:`lamp.llm.json_decoding` when the schema is in its subset: the model is asked only where the
    schema leaves a choice, several times faster than llama.cpp's grammar sampling on a CPU.
    ``decoding="grammar"`` always uses llama.cpp's grammar. The two decode differently, so the
    choice is part of ``model_id`` (and of the cache key).
    """

    name = "local"
    max_concurrency = 1

    def __init__(self, model_path: str | Path | None = None, *, packaged: str | None = None,
                 n_ctx: int = 4096, n_threads: int | None = None, chat_format: str | None = None,
                 n_batch: int = 512, n_gpu_layers: int = 0, loglik_n_ctx: int = 2048,
                 decoding: str = "jump_forward", workers: int | str = 1) -> None:
        if model_path is None and packaged is None:
            raise ConfigError("Give model_path (a .gguf file) or packaged (smollm2 | gemma3-270m); got neither.")
        if decoding not in DECODINGS:
            raise ConfigError(f"Invalid llm.decoding {decoding!r}. Valid choices are: {', '.join(DECODINGS)}")
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
        self.workers = _workers(workers, n_threads, n_gpu_layers)
        cores = os.cpu_count() or 1
        self.n_threads = int(n_threads or (max(1, cores // self.workers) if self.workers > 1 else cores))
        self.max_concurrency = self.workers
        self._init_kwargs = {"model_path": model_path, "packaged": packaged, "n_ctx": n_ctx, "n_threads": self.n_threads,
                             "chat_format": chat_format, "n_batch": n_batch, "n_gpu_layers": n_gpu_layers,
                             "loglik_n_ctx": loglik_n_ctx, "decoding": decoding}
        self._pool: Any = None
        self.chat_format = chat_format
        self.n_batch = int(n_batch)
        self.n_gpu_layers = int(n_gpu_layers)
        self.loglik_n_ctx = int(loglik_n_ctx)
        runtime = f"llama-cpp-python-{self._llama_cpp.__version__}"
        # The chat template changes every answer, so it is part of the identity of the model.
        self.model_id = file_model_id(path, runtime) + (f"+chat={chat_format}" if chat_format else "")
        self.decoding = decoding
        if decoding == "jump_forward":
            self.model_id += f"+json=jf{json_decoding.VERSION}"
        self._token_cache: dict[str, list[int]] = {}
        self._free: tuple[Any, Any] | None = None
        self._formatter: Any = None
        self.last_forward_passes = 0
        self._lock = threading.RLock()
        self._llm: Any = None
        self._scorer: Any = None

    def __repr__(self) -> str:
        return (f"LocalBackend(model_id={self.model_id!r}, n_ctx={self.n_ctx}, n_threads={self.n_threads}, "
                f"workers={self.workers})")

    def _load(self, logits_all: bool = False, n_ctx: int | None = None) -> Any:
        t0 = time.perf_counter()
        llm = self._llama_cpp.Llama(
            model_path=str(self.model_path), n_ctx=n_ctx or self.n_ctx, n_threads=self.n_threads,
            n_threads_batch=self.n_threads, n_batch=self.n_batch, n_gpu_layers=self.n_gpu_layers,
            chat_format=self.chat_format, logits_all=logits_all, verbose=False)
        logger.debug("Loaded %s in %.2fs (n_ctx=%d, logits_all=%s)", self.model_path.name,
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
        """Responses in order. With ``workers > 1`` each request runs in a worker process; call this
        from up to ``workers`` threads at once (LLMClient does) to keep them all busy."""
        if self.workers == 1:
            return [self._one(r) for r in requests]
        pool = self._worker_pool()
        return [f.result() for f in [pool.submit(_worker_call, r) for r in requests]]

    def _worker_pool(self) -> Any:
        with self._lock:
            if self._pool is None:
                import multiprocessing
                from concurrent.futures import ProcessPoolExecutor

                self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_worker_init, initargs=(self._init_kwargs,))
            return self._pool

    def close(self) -> None:
        """Stops the worker processes (if any); the in-process model stays usable."""
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None

    def _one(self, req: LLMRequest) -> LLMResponse:
        if (req.json_schema is not None and self.decoding == "jump_forward"
                and json_decoding.supported(req.json_schema)):
            return self._jump_forward(req)
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

    def chat_prompt(self, req: LLMRequest) -> list[int]:
        """The request's messages through the model's chat template, as tokens (what
        ``create_chat_completion`` evaluates)."""
        lcf = self._llama_cpp.llama_chat_format
        llm = self.llm
        if self._formatter is None:
            if llm.chat_format == "chat_template.default":
                def text(tok: int) -> str:
                    return llm.detokenize([tok], special=True).decode("utf-8", errors="replace") if tok >= 0 else ""

                self._formatter = lcf.Jinja2ChatFormatter(
                    template=llm.metadata["tokenizer.chat_template"], eos_token=text(llm.token_eos()),
                    bos_token=text(llm.token_bos()), stop_token_ids=[llm.token_eos()])
            else:
                fmt = getattr(lcf, "format_" + str(llm.chat_format).replace("-", "_"), None)
                if fmt is None:
                    raise LLMError(f"no prompt formatter for chat_format {llm.chat_format!r}; "
                                   "use llm.decoding=grammar")
                self._formatter = fmt
        result = self._formatter(messages=req.message_dicts())
        return list(llm.tokenize(result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True))

    def _jump_forward(self, req: LLMRequest) -> LLMResponse:
        t0 = time.perf_counter()
        try:
            with self._lock:
                prompt = self.chat_prompt(req)
                model = json_decoding.LlamaTokenModel(self.llm, self._llama_cpp)
                if len(prompt) + 1 > self.n_ctx:
                    raise ValueError(f"Requested tokens ({len(prompt)}) exceed context window of {self.n_ctx}")
                model.start(prompt)
                decoder = json_decoding.JumpForwardDecoder(
                    model, temperature=req.temperature, seed=req.effective_seed(),
                    max_tokens=min(req.max_tokens, self.n_ctx - len(prompt)), token_cache=self._token_cache,
                    free_tokens=lambda: self._free_tokens(model))
                text, generated, _complete = decoder.run(req.json_schema or {})
        except (ValueError, RuntimeError, KeyError) as exc:
            return failed_response(f"{type(exc).__name__}: {exc}", latency_s=time.perf_counter() - t0)
        self.last_forward_passes = decoder.forward_passes
        logger.debug("jump-forward: %d tokens in %d forward passes", generated, decoder.forward_passes)
        return LLMResponse(text, len(prompt), generated, cached=False, latency_s=time.perf_counter() - t0)

    def _free_tokens(self, model: json_decoding.LlamaTokenModel) -> tuple[Any, Any]:
        if self._free is None:
            self._free = json_decoding.free_string_tokens(model.token_texts(), set())
        return self._free

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


def _workers(workers: int | str, n_threads: int | None, n_gpu_layers: int) -> int:
    if workers == "auto":
        if n_gpu_layers:
            return 1
        return max(1, min(8, (os.cpu_count() or 1) // int(n_threads or 1)))
    try:
        n = int(workers)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise ConfigError(f"Invalid llm.workers {workers!r}: expected a positive integer or 'auto'.")
    return n


_WORKER: LocalBackend | None = None


def _worker_init(kwargs: dict[str, Any]) -> None:
    """In a worker process: load the model once, and exit when the parent process dies (a killed run
    must not leave workers holding a model and a core)."""
    global _WORKER
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="lamp-parent-watch", daemon=True).start()
    _WORKER = LocalBackend(**kwargs)
    _ = _WORKER.llm


def _worker_call(req: LLMRequest) -> LLMResponse:
    assert _WORKER is not None, "worker process was not initialised"
    return _WORKER._one(req)
