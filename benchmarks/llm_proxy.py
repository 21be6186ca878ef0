"""A counting reverse proxy for OpenAI-compatible servers, for benchmarks (not part of lamp).

It spreads chat calls over one or more upstream servers (each request goes to the upstream with the fewest
calls in flight, so N single-slot ``llama_cpp.server`` processes make one N-slot server) and records every
call on the server's side: a hash of the request body, the status and the usage the upstream reported. With
``admit`` set it answers 429 with ``Retry-After`` to any call beyond ``admit`` in flight, as a rate-limited
API does.

Example::

    with CountingProxy(["http://127.0.0.1:8001", "http://127.0.0.1:8002"]) as proxy:
        ...  # point an OpenAI client at proxy.base_url ("http://127.0.0.1:<port>/v1")
        paid = proxy.paid_keys()
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Served:
    """One call as the proxy saw it."""

    key: str  # sha256 of the request body (canonical JSON)
    status: int
    upstream: int  # -1: answered by the proxy itself (429)
    prompt_tokens: int
    completion_tokens: int
    start: float
    end: float


class CountingProxy:
    """Least-busy reverse proxy on 127.0.0.1 that records what each upstream served (see the module doc)."""

    def __init__(self, upstreams: list[str], *, admit: int | None = None, retry_after_s: float = 1.0) -> None:
        self.upstreams = [urlsplit(u) for u in upstreams]
        self.admit = admit
        self.retry_after_s = retry_after_s
        self.log: list[Served] = []
        self._busy = [0] * len(upstreams)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="llm-proxy", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- what was served -------------------------------------------------------------------------------
    def mark(self) -> int:
        """A position in the log: pass it to the readers below to see only what came after."""
        with self._lock:
            return len(self.log)

    def served(self, since: int = 0, until: int | None = None) -> list[Served]:
        with self._lock:
            return self.log[since:until]

    def paid_keys(self, since: int = 0, until: int | None = None) -> Counter[str]:
        """How many times each request body was answered 200 by an upstream (a paid call)."""
        return Counter(s.key for s in self.served(since, until) if s.status == 200)

    def rejected(self, since: int = 0) -> int:
        """429s the proxy answered itself."""
        return sum(s.status == 429 and s.upstream < 0 for s in self.served(since))

    # -- the handler -----------------------------------------------------------------------------------
    def _pick(self) -> int | None:
        with self._lock:
            if self.admit is not None and sum(self._busy) >= self.admit:
                return None
            i = min(range(len(self._busy)), key=self._busy.__getitem__)
            self._busy[i] += 1
            return i

    def _done(self, i: int) -> None:
        with self._lock:
            self._busy[i] -= 1

    def _record(self, served: Served) -> None:
        with self._lock:
            self.log.append(served)

    def _forward(self, i: int, method: str, path: str, body: bytes | None,
                 headers: dict[str, str]) -> tuple[int, str, bytes]:
        up = self.upstreams[i]
        conn = http.client.HTTPConnection(up.hostname or "127.0.0.1", up.port or 80, timeout=600)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.getheader("Content-Type", "application/json"), resp.read()
        finally:
            conn.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _reply(self, status: int, ctype: str, body: bytes, extra: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                status, ctype, body = proxy._forward(0, "GET", self.path, None, {})
                self._reply(status, ctype, body)

            def do_POST(self) -> None:
                t0 = time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    canon = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"))
                except ValueError:
                    canon = body.decode("utf-8", "replace")
                key = hashlib.sha256(canon.encode("utf-8")).hexdigest()
                i = proxy._pick()
                if i is None:
                    err = json.dumps({"error": {"message": "rate limited by the proxy", "type": "rate_limit"}})
                    self._reply(429, "application/json", err.encode(), {"Retry-After": f"{proxy.retry_after_s:g}"})
                    proxy._record(Served(key, 429, -1, 0, 0, t0, time.time()))
                    return
                try:
                    status, ctype, out = proxy._forward(i, "POST", self.path, body,
                                                        {"Content-Type": "application/json"})
                finally:
                    proxy._done(i)
                usage: dict[str, Any] = {}
                if status == 200:
                    with contextlib.suppress(ValueError):
                        usage = json.loads(out).get("usage") or {}
                proxy._record(Served(key, status, i, int(usage.get("prompt_tokens") or 0),
                                     int(usage.get("completion_tokens") or 0), t0, time.time()))
                self._reply(status, ctype, out)

        return Handler
