"""A small client of ``lamp serve`` (standard library only; one kept-alive connection per client).

>>> client = Client("http://127.0.0.1:8000")                                          # doctest: +SKIP
>>> client.observe([{"subject": "A", "relation": "Make statement", "object": "B", "time": "2015-01-01"}])  # doctest: +SKIP
>>> client.predict("Barack Obama", "Make statement", "2015-01-02")["candidates"][0]["entity"]  # doctest: +SKIP

A client is not shared between threads: give each thread its own (the load test does).
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from lamp.errors import LampError


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any  # the decoded JSON (None when the body is not JSON)
    text: str


class ServerError(LampError):
    """The server answered with an error status; ``reply`` holds its answer (``problems`` name the fields)."""

    def __init__(self, path: str, reply: Reply) -> None:
        detail = reply.body.get("error") if isinstance(reply.body, dict) else reply.text[:300]
        super().__init__(f"POST/GET {path} answered {reply.status}: {detail}")
        self.reply = reply


class Client:
    """``lamp serve`` at ``base_url`` (``http://host:port``)."""

    def __init__(self, base_url: str, *, timeout: float = 60.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise LampError(f"expected a base URL like http://127.0.0.1:8000, got {base_url!r}.")
        self.host, self.port, self.timeout = parts.hostname, parts.port or 80, timeout
        self._conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                content_type: str = "application/json") -> Reply:
        """One request; ``body`` is sent as JSON, ``raw`` as given. Retries once on a dropped keep-alive connection."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        headers = {"Content-Type": content_type} if data is not None else {}
        for attempt in (0, 1):
            conn = self._connection()
            try:
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                text = resp.read().decode("utf-8", errors="replace")
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt:
                    raise
        try:
            decoded = json.loads(text) if text else None
        except ValueError:
            decoded = None
        return Reply(resp.status, decoded, text)

    def predict(self, subject: str, relation: str, time: str | float, *, top_m: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"subject": subject, "relation": relation, "time": time}
        if top_m is not None:
            body["top_m"] = top_m
        return self._ok("POST", "/predict", body)

    def observe(self, events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return self._ok("POST", "/observe", {"events": [dict(e) for e in events]})

    def health(self) -> dict[str, Any]:
        return self._ok("GET", "/health", None)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _ok(self, method: str, path: str, body: Any) -> dict[str, Any]:
        reply = self.request(method, path, body)
        if reply.status != 200 or not isinstance(reply.body, dict):
            raise ServerError(path, reply)
        return reply.body

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._conn
