"""Durable LLM response cache: SQLite in WAL mode, shared safely by several processes.

Each finished call is written at once, so a killed run loses at most the calls in flight. A call
is *claimed* (a row with owner, pid, host and time) before it is paid for; another process that
wants the same call waits for the result instead of paying again. Claims of dead processes, or
older than ``claim_timeout_s``, are taken over. Failed calls are never stored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from lamp.llm.types import LLMRequest, LLMResponse, to_plain

logger = logging.getLogger(__name__)

KEY_VERSION = 1
ClaimState = Literal["claimed", "busy", "done"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY, backend TEXT NOT NULL, model_id TEXT NOT NULL, text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, latency_s REAL NOT NULL,
    created_at REAL NOT NULL, tag TEXT NOT NULL, request TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS responses_model ON responses(model_id);
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY, owner TEXT NOT NULL, pid INTEGER NOT NULL, host TEXT NOT NULL,
    claimed_at REAL NOT NULL);
"""


def default_cache_path() -> Path:
    """``$LAMP_CACHE_DIR/llm.sqlite``, else ``~/.cache/lamp/llm.sqlite``."""
    base = os.environ.get("LAMP_CACHE_DIR") or str(Path.home() / ".cache" / "lamp")
    return Path(base).expanduser() / "llm.sqlite"


def canonical_request(backend: str, model_id: str, request: LLMRequest) -> str:
    """Canonical JSON of everything that determines a call's answer (never the tag, never a key)."""
    material = {
        "v": KEY_VERSION,
        "backend": backend,
        "model_id": model_id,
        "messages": [[r, c] for r, c in request.messages],
        "max_tokens": int(request.max_tokens),
        "temperature": float(request.temperature),
        "seed": int(request.seed),
        "sample_index": int(request.sample_index),
        "json_schema": to_plain(request.json_schema),
        "stop": list(request.stop),
    }
    return json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def request_key(backend: str, model_id: str, request: LLMRequest) -> str:
    """sha256 hex of :func:`canonical_request`."""
    return hashlib.sha256(canonical_request(backend, model_id, request).encode("utf-8")).hexdigest()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child not yet reaped by its parent is a zombie: dead for our purpose
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class LLMCache:
    """Responses keyed by :func:`request_key`, in one SQLite file.

    Example::

        cache = LLMCache("/tmp/llm.sqlite")
        cache.stats()  # {'entries': 0, 'size_bytes': ..., 'per_model': {}, 'pending_claims': 0}
    """

    def __init__(self, path: str | Path | None = None, *, claim_timeout_s: float = 900.0) -> None:
        self.path = Path(path).expanduser() if path else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.claim_timeout_s = claim_timeout_s
        self.host = socket.gethostname()
        self.owner = f"{self.host}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None, check_same_thread=False)
        self._init_db()

    def _init_db(self, attempts: int = 50) -> None:
        # Switching a new file to WAL ignores the busy timeout: when several processes open the
        # same fresh cache at once, some see "database is locked" and must try again.
        for attempt in range(attempts):
            try:
                mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                # NORMAL in WAL mode survives a killed process (not a power cut) and keeps writes cheap.
                self._conn.execute("PRAGMA synchronous=NORMAL")
                with self._tx():
                    for stmt in filter(str.strip, _SCHEMA.split(";")):
                        self._conn.execute(stmt)
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == attempts - 1:
                    raise
                time.sleep(0.02 * (1 + attempt % 10))
        if str(mode).lower() != "wal":
            logger.warning("SQLite at %s refused WAL mode (got %s); concurrent use will be slower", self.path, mode)

    def __repr__(self) -> str:
        return f"LLMCache(path={str(self.path)!r})"

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def journal_mode(self) -> str:
        with self._lock:
            return str(self._conn.execute("PRAGMA journal_mode").fetchone()[0])

    def get(self, key: str) -> LLMResponse | None:
        """The stored response (``cached=True``), or None."""
        with self._lock:
            row = self._conn.execute(
                "SELECT text, prompt_tokens, completion_tokens, latency_s FROM responses WHERE key=?", (key,)
            ).fetchone()
        if row is None:
            return None
        return LLMResponse(row[0], int(row[1]), int(row[2]), cached=True, latency_s=float(row[3]))

    def claim(self, key: str) -> ClaimState:
        """Try to become the one process that pays for ``key``.

        "done": a result is stored; "claimed": we hold the claim (call, then :meth:`put` or
        :meth:`release`); "busy": a live process holds it, poll again later.
        """
        now = time.time()
        with self._tx() as db:
            if db.execute("SELECT 1 FROM responses WHERE key=?", (key,)).fetchone():
                return "done"
            row = db.execute("SELECT owner, pid, host, claimed_at FROM claims WHERE key=?", (key,)).fetchone()
            if row is not None and row[0] != self.owner and not self._stale(row, now):
                return "busy"
            if row is not None and row[0] != self.owner:
                logger.info("Taking over a stale claim on an LLM call (owner %s)", row[0])
            db.execute("INSERT OR REPLACE INTO claims (key, owner, pid, host, claimed_at) VALUES (?,?,?,?,?)",
                       (key, self.owner, os.getpid(), self.host, now))
            return "claimed"

    def _stale(self, row: tuple[Any, ...], now: float) -> bool:
        _, pid, host, claimed_at = row
        if now - float(claimed_at) > self.claim_timeout_s:
            return True
        return host == self.host and int(pid) != os.getpid() and not _pid_alive(int(pid))

    def put(self, key: str, backend: str, model_id: str, request: LLMRequest, response: LLMResponse) -> None:
        """Store a successful response and drop its claim, in one transaction."""
        if response.error is not None:
            raise ValueError("Failed calls are not cached; call release() instead")
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?,?,?,?,?,?,?,?,?,?)",
                (key, backend, model_id, response.text, response.prompt_tokens, response.completion_tokens,
                 response.latency_s, time.time(), request.tag, canonical_request(backend, model_id, request)),
            )
            db.execute("DELETE FROM claims WHERE key=?", (key,))

    def release(self, key: str) -> None:
        """Drop our claim on ``key`` (the call failed or was not made)."""
        with self._tx() as db:
            db.execute("DELETE FROM claims WHERE key=? AND owner=?", (key, self.owner))

    def stats(self) -> dict[str, Any]:
        """Entries, bytes on disk (database + WAL), entries per model_id, open claims."""
        with self._lock:
            entries = self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
            per_model = dict(self._conn.execute(
                "SELECT model_id, COUNT(*) FROM responses GROUP BY model_id ORDER BY model_id").fetchall())
            claims = self._conn.execute("SELECT COUNT(*) FROM claims").fetchone()[0]
        size = sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())
        return {"entries": int(entries), "size_bytes": int(size), "per_model": per_model,
                "pending_claims": int(claims)}

    def clear(self, model_id: str | None = None) -> int:
        """Delete all entries (or one model's); returns how many were deleted."""
        with self._tx() as db:
            if model_id is None:
                n = db.execute("DELETE FROM responses").rowcount
                db.execute("DELETE FROM claims")
            else:
                n = db.execute("DELETE FROM responses WHERE model_id=?", (model_id,)).rowcount
        return int(n)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
