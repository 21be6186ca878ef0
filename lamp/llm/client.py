"""LLMClient: a backend plus the durable cache, the budget and usage accounting.

Example::

    client = LLMClient(build_backend("local"), LLMCache(), Budget(max_calls=300), None)
    [resp] = client.generate([LLMRequest(messages=(("user", "Hi"),), max_tokens=16)])
    client.write_usage("runs/latest")
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from lamp.errors import ConfigError, MissingDependencyError
from lamp.llm.budget import Budget, PriceTable, Usage
from lamp.llm.cache import LLMCache, request_key
from lamp.llm.types import LLMBackend, LLMRequest, LLMResponse, failed_response
from lamp.progress import progress_bar

logger = logging.getLogger(__name__)

BUDGET_EXHAUSTED = "budget exhausted"
# Chat templates add a few tokens per message that count_tokens on the contents does not see.
_TEMPLATE_TOKENS_PER_MESSAGE = 4


class LLMClient:
    """Runs requests through ``backend``: cached calls are free, each finished call is stored at once.

    A call starts only if its worst case (its prompt tokens as the server will count them + ``max_tokens``,
    priced) fits in what the budget has left beside the worst cases of the calls in flight; once one does not
    fit the client stops, the rest get ``error="budget exhausted"`` and ``usage.budget_stopped`` is set.
    Identical requests within a batch are called once.

    The client counts a prompt's tokens itself, and a server may count more (its chat template adds a system
    prompt, its tokenizer splits finer). Each answer (and cache hit) shows by how much: the client keeps the
    largest factor ``a`` and the largest excess ``b`` seen and reserves ``max(a * n, n + b)`` for a prompt it
    counts as ``n``, which bounds any server that counts ``a * n + b`` with ``a >= 1, b >= 0``. Under a token
    or cost cap, the first call therefore runs alone: the others start, ``max_concurrency`` at a time, once
    an answer has shown how the server counts. (A server whose counts vary beyond that can still overshoot a
    cap by its error on the calls in flight.)
    """

    def __init__(self, backend: LLMBackend, cache: LLMCache | None = None, budget: Budget | None = None,
                 prices: PriceTable | None = None, *, max_concurrency: int | None = None,
                 poll_interval_s: float = 0.1) -> None:
        self.backend = backend
        self.cache = cache
        self.budget = budget or Budget()
        self.prices = prices or PriceTable()
        self.usage = Usage()
        backend_concurrency: int = getattr(backend, "max_concurrency", 1)
        self.max_concurrency = max(1, int(max_concurrency or backend_concurrency))
        self.poll_interval_s = poll_interval_s
        self._reserved: dict[str, tuple[int, float]] = {}  # key -> worst-case (tokens, cost) in flight
        # how the server's token counts exceed ours (see the class docstring); None until an answer shows it
        self._prompt_factor: float | None = None
        self._prompt_excess = 0
        self._completion_excess = 0
        if self.budget.max_cost_usd is not None and self.prices.lookup(backend.name, backend.model_id) is None:
            raise ConfigError(f"budget.max_cost_usd is set but model {backend.model_id!r} has no price. "
                              "Fix: add it under llm.prices ({prompt: ..., completion: ...} USD per 1M tokens).")

    def __repr__(self) -> str:
        return f"LLMClient(backend={self.backend!r}, cache={self.cache!r}, budget={self.budget!r})"

    def generate(self, requests: Sequence[LLMRequest], progress: bool | None = None) -> list[LLMResponse]:
        """One response per request, in order. Never raises for a failed call: see ``response.error``.

        ``progress``: a bar with the calls made, the cache hits and the generated tokens per second
        (None: as the enclosing stage says, see :mod:`lamp.progress`)."""
        t0 = time.perf_counter()
        name, model_id = self.backend.name, self.backend.model_id
        groups: dict[str, list[int]] = {}
        for i, req in enumerate(requests):
            groups.setdefault(request_key(name, model_id, req), []).append(i)
        out: list[LLMResponse | None] = [None] * len(requests)
        bar = progress_bar(total=len(requests), desc=f"LLM ({name})", unit="call", enabled=progress)
        bar.tally(calls=0, cached=0, tokens=0)

        def resolve(key: str, resp: LLMResponse, *, hit: bool = False) -> None:
            for i in groups[key]:
                out[i] = resp
                self.usage.add_tag(requests[i].tag, "cache_hits" if hit else "calls")
            if hit:
                self._calibrate(requests[groups[key][0]], resp)
                self.usage.cache_hits += len(groups[key])
                bar.tally(cached=len(groups[key]))
            bar.update(len(groups[key]))

        todo: deque[str] = deque()
        for key in groups:
            cached = self.cache.get(key) if self.cache is not None else None
            if cached is not None:
                resolve(key, cached, hit=True)
            else:
                todo.append(key)
        waiting: list[str] = []
        in_flight: dict[Future[LLMResponse], str] = {}
        try:
            with ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="lamp-llm") as pool:
                while todo or in_flight or waiting:
                    while todo and len(in_flight) < self._concurrency():
                        key = todo.popleft()
                        req = requests[groups[key][0]]
                        state = self.cache.claim(key) if self.cache is not None else "claimed"
                        if state == "done":
                            resolve(key, self.cache.get(key), hit=True)  # type: ignore[union-attr,arg-type]
                        elif state == "busy":
                            waiting.append(key)  # another process is paying for it
                        elif not self._admit(key, req):
                            if self.cache is not None:
                                self.cache.release(key)
                            self.usage.budget_skipped += len(groups[key])
                            resolve(key, failed_response(BUDGET_EXHAUSTED))
                        else:
                            in_flight[pool.submit(self._call, req)] = key
                    if in_flight:
                        done, _ = wait(in_flight, timeout=self.poll_interval_s if waiting else None,
                                       return_when=FIRST_COMPLETED)
                        for fut in done:
                            key = in_flight.pop(fut)
                            resp = self._finish(key, requests[groups[key][0]], fut.result())
                            bar.tally(calls=1, tokens=resp.completion_tokens)
                            resolve(key, resp)
                    elif waiting:
                        time.sleep(self.poll_interval_s)
                    todo.extend(waiting)
                    waiting.clear()
        finally:
            for key in in_flight.values():
                self._reserved.pop(key, None)
                if self.cache is not None:
                    self.cache.release(key)
            bar.close()
            self.usage.wall_time_s += time.perf_counter() - t0
        responses = [r if r is not None else failed_response("not run") for r in out]
        failed = [r for r in responses if r.error is not None and r.error != BUDGET_EXHAUSTED]
        if failed:  # one line per batch; each failure is a DEBUG line (lamp run -v)
            logger.warning("%d of %d LLM requests failed (%s: %s); they carry the error", len(failed),
                           len(responses), self.backend.name, failed[0].error)
        return responses

    def _concurrency(self) -> int:
        """Calls allowed in flight: one under a token or cost cap until an answer has calibrated the estimate."""
        tracks = self.budget.max_tokens is not None or self.budget.max_cost_usd is not None
        return 1 if tracks and self._prompt_factor is None else self.max_concurrency

    def _count_prompt(self, req: LLMRequest) -> int:
        """The prompt's tokens as this client counts them."""
        return self.backend.count_tokens(req.prompt_text()) + _TEMPLATE_TOKENS_PER_MESSAGE * len(req.messages)

    def _calibrate(self, req: LLMRequest, resp: LLMResponse) -> None:
        """Learn from an answer how far the server's token counts exceed ours."""
        if resp.error is not None or resp.prompt_tokens <= 0:
            return
        counted = max(1, self._count_prompt(req))
        self._prompt_factor = max(self._prompt_factor or 1.0, resp.prompt_tokens / counted)
        self._prompt_excess = max(self._prompt_excess, resp.prompt_tokens - counted)
        self._completion_excess = max(self._completion_excess, resp.completion_tokens - req.max_tokens)

    def _estimate(self, req: LLMRequest) -> tuple[int, float]:
        """The call's worst case: (tokens, cost) as the server may count them."""
        counted = self._count_prompt(req)
        prompt = max(math.ceil(counted * (self._prompt_factor or 1.0)), counted + self._prompt_excess)
        completion = req.max_tokens + self._completion_excess
        cost = self.prices.cost(self.backend.name, self.backend.model_id, prompt, completion)
        return prompt + completion, cost

    def _admit(self, key: str, req: LLMRequest) -> bool:
        """Reserve the call's worst case against the budget, or stop the client."""
        if self.usage.budget_stopped:
            return False
        b, u = self.budget, self.usage
        tracks = b.max_tokens is not None or b.max_cost_usd is not None
        tokens, cost = self._estimate(req) if tracks else (0, 0.0)
        calls_r = len(self._reserved)
        tokens_r = sum(t for t, _ in self._reserved.values())
        cost_r = sum(c for _, c in self._reserved.values())
        over = (
            (b.max_calls is not None and u.calls + calls_r + 1 > b.max_calls)
            or (b.max_tokens is not None and u.total_tokens + tokens_r + tokens > b.max_tokens)
            or (b.max_cost_usd is not None and u.estimated_cost_usd + cost_r + cost > b.max_cost_usd)
        )
        if over:
            u.budget_stopped = True
            logger.warning("LLM budget exhausted (%s; used calls=%d tokens=%d cost=$%.4f): no further calls",
                           b, u.calls, u.total_tokens, u.estimated_cost_usd)
            return False
        self._reserved[key] = (tokens, cost)
        return True

    def _call(self, req: LLMRequest) -> LLMResponse:
        try:
            return self.backend.generate([req])[0]
        except (ConfigError, MissingDependencyError):
            raise
        except Exception as exc:  # a backend bug must not lose the rest of the batch
            logger.debug("LLM backend %s raised %s: %s", self.backend.name, type(exc).__name__, exc)
            return failed_response(f"{type(exc).__name__}: {exc}")

    def _finish(self, key: str, req: LLMRequest, resp: LLMResponse) -> LLMResponse:
        u = self.usage
        self._reserved.pop(key, None)
        self._calibrate(req, resp)
        u.calls += 1
        u.retries += resp.retries
        u.prompt_tokens += resp.prompt_tokens
        u.completion_tokens += resp.completion_tokens
        u.estimated_cost_usd += self.prices.cost(self.backend.name, self.backend.model_id,
                                                 resp.prompt_tokens, resp.completion_tokens)
        u.add_tag(req.tag, "tokens", resp.prompt_tokens + resp.completion_tokens)
        if resp.error is not None:
            u.failures += 1
            u.add_tag(req.tag, "failures")
            logger.debug("LLM call failed (tag=%r): %s", req.tag, resp.error)
            if self.cache is not None:
                self.cache.release(key)
        elif self.cache is not None:
            self.cache.put(key, self.backend.name, self.backend.model_id, req, resp)
        return resp

    def usage_dict(self) -> dict[str, Any]:
        """Usage totals plus what they were measured on (backend, model, caps)."""
        out = self.usage.to_dict()
        out.update(backend=self.backend.name, model_id=self.backend.model_id,
                   budget={"max_calls": self.budget.max_calls, "max_tokens": self.budget.max_tokens,
                           "max_cost_usd": self.budget.max_cost_usd})
        return out

    def write_usage(self, path: str | Path) -> Path:
        """Write :meth:`usage_dict` as JSON atomically; a directory gets ``llm_usage.json`` inside it."""
        target = Path(path)
        if target.is_dir():
            target = target / "llm_usage.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".llm_usage.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.usage_dict(), f, indent=2, sort_keys=True)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target
