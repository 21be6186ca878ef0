"""Test doubles: a fake backend that logs every real call, and a real HTTP server that speaks the
OpenAI chat completions route and misbehaves on a script (429, 500, malformed, truncated, slow, drop)."""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from lamp.llm.types import LLMRequest, LLMResponse

# Real-model tests stay on one thread: llama.cpp's spinning workers collapse on a busy 2-core box.
REAL_THREADS = int(os.environ.get("LAMP_TEST_LLM_THREADS", "1"))


class FakeBackend:
    """Answers "echo:<last message>"; appends one line per real call to ``log_path`` (if given).

    The prompt tokens it reports are ``prompt_scale * count_tokens(prompt) + prompt_overhead``: a server whose
    tokenizer is coarser than the client's count, or whose chat template adds a system prompt.
    ``active_at_start``: how many calls were in it (this one included) as each call began."""

    name = "fake"

    def __init__(self, log_path: str | Path | None = None, delay_s: float = 0.0, model_id: str = "fake-1",
                 fail_on: Sequence[str] = (), max_concurrency: int = 1, prompt_scale: int = 1,
                 prompt_overhead: int = 0) -> None:
        self.model_id = model_id
        self.log_path = Path(log_path) if log_path else None
        self.delay_s = delay_s
        self.fail_on = set(fail_on)
        self.max_concurrency = max_concurrency
        self.prompt_scale = prompt_scale
        self.prompt_overhead = prompt_overhead
        self.calls: list[LLMRequest] = []
        self.active = 0
        self.active_at_start: list[int] = []
        self._lock = threading.Lock()

    def generate(self, requests: Sequence[LLMRequest]) -> list[LLMResponse]:
        out = []
        for req in requests:
            content = req.messages[-1][1]
            if self.log_path is not None:
                with self._lock, self.log_path.open("a") as f:
                    f.write(f"{os.getpid()}\t{content}\n")
            with self._lock:
                self.calls.append(req)
                self.active += 1
                self.active_at_start.append(self.active)
            time.sleep(self.delay_s)
            with self._lock:
                self.active -= 1
            if content in self.fail_on:
                out.append(LLMResponse("", 0, 0, cached=False, latency_s=self.delay_s, error="boom", retries=2))
            else:
                prompt_tokens = self.prompt_scale * self.count_tokens(req.prompt_text()) + self.prompt_overhead
                out.append(LLMResponse(f"echo:{content}", prompt_tokens, 3, cached=False, latency_s=self.delay_s))
        return out

    def count_tokens(self, text: str) -> int:
        return max(1, len(text.split()))

    @property
    def max_active(self) -> int:
        return max(self.active_at_start, default=0)

    @property
    def context_length(self) -> int:
        return 4096

    def loglikelihood(self, context: str, continuation: str) -> float:
        return -1.0


def completion_body(content: str, model: str = "fake-model") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": f"echo:{content}"}}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }


class FakeOpenAIServer:
    """``POST /v1/chat/completions`` on 127.0.0.1 (random port); actions per request from a script.

    Actions: "ok", "429" (Retry-After: 0), "500", "400", "401echo" (echoes the Authorization header),
    "malformed" (200, body not JSON), "truncated" (Content-Length larger than the body, then close),
    "drop" (close without answering), "slow:<s>".
    ``script(actions, prompt=...)`` queues actions for requests whose last message is ``prompt``;
    without ``prompt`` for any request. Requests with an empty queue get "ok".
    """

    def __init__(self) -> None:
        self.queues: dict[str | None, deque[str]] = {None: deque()}
        self.requests: list[dict[str, Any]] = []
        self.auth_seen: set[str] = set()  # Authorization headers received (kept in memory only)
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                self._send(200, json.dumps({"object": "list", "data": [{"id": "fake-model"}]}).encode())

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                content = body["messages"][-1]["content"]
                with server.lock:
                    server.requests.append(body)
                    server.auth_seen.add(self.headers.get("Authorization", ""))
                    queue = server.queues.get(content) or server.queues[None]
                    action = queue.popleft() if queue else "ok"
                    server.active += 1
                    server.max_active = max(server.max_active, server.active)
                try:
                    self._act(action, content, body)
                finally:
                    with server.lock:
                        server.active -= 1

            def _act(self, action: str, content: str, body: dict[str, Any]) -> None:
                if action.startswith("slow:"):
                    time.sleep(float(action.split(":", 1)[1]))
                    action = "ok"
                if action == "ok":
                    self._send(200, json.dumps(completion_body(content, body.get("model", "m"))).encode())
                elif action == "429":
                    self._send(429, b'{"error": {"message": "rate limited"}}', {"Retry-After": "0"})
                elif action == "500":
                    self._send(500, b'{"error": {"message": "internal"}}')
                elif action == "400":
                    self._send(400, b'{"error": {"message": "bad request"}}')
                elif action == "401echo":  # a careless server that echoes the key it was sent
                    msg = {"error": {"message": f"invalid key {self.headers.get('Authorization', '')}"}}
                    self._send(401, json.dumps(msg).encode())
                elif action == "malformed":
                    self._send(200, b'{"id": "x", "choices": [ {"message": ')
                elif action == "truncated":
                    data = json.dumps(completion_body(content)).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data) + 100))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                elif action == "drop":
                    self.close_connection = True
                else:
                    raise ValueError(f"unknown action {action}")

            def _send(self, code: int, data: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def script(self, actions: Sequence[str], prompt: str | None = None) -> None:
        with self.lock:
            self.queues.setdefault(prompt, deque()).extend(actions)

    def count(self, prompt: str) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r["messages"][-1]["content"] == prompt)

    def __enter__(self) -> FakeOpenAIServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def requests_for(prompts: Sequence[str], **kwargs: Any) -> list[LLMRequest]:
    return [LLMRequest(messages=(("user", p),), **kwargs) for p in prompts]


def run_client(cache_path: str, log_path: str, prompts: Sequence[str], delay_s: float = 0.0,
               result_path: str | None = None, start: Any = None) -> None:
    """One process's run over ``prompts`` through a FakeBackend and the shared cache (also a CLI)."""
    from lamp.llm import LLMCache, LLMClient

    if start is not None:
        start.wait()  # a multiprocessing barrier: both processes begin together
    client = LLMClient(FakeBackend(log_path, delay_s=delay_s), LLMCache(cache_path), None, None,
                       poll_interval_s=0.02)
    responses = client.generate(requests_for(prompts), progress=False)
    if result_path:
        Path(result_path).write_text(json.dumps({"texts": [r.text for r in responses],
                                                 "usage": client.usage.to_dict()}))


if __name__ == "__main__":
    import sys

    cache_arg, log_arg, n_arg, delay_arg = sys.argv[1:5]
    run_client(cache_arg, log_arg, [f"p{i}" for i in range(int(n_arg))], float(delay_arg))
