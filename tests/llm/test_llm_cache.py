"""LLMCache: key canonicalisation, hits and misses, WAL, claims, stats and clear."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import MappingProxyType

import pytest
from llm_fakes import requests_for

from lamp.llm import LLMCache, LLMRequest, LLMResponse, default_cache_path, request_key
from lamp.llm.cache import canonical_request


def req(**kw: object) -> LLMRequest:
    return LLMRequest(messages=(("system", "s"), ("user", "u")), **kw)  # type: ignore[arg-type]


def test_key_is_canonical() -> None:
    a = req(json_schema={"b": 1, "a": {"y": [1, 2], "x": None}}, temperature=0)
    b = req(json_schema=MappingProxyType({"a": {"x": None, "y": (1, 2)}, "b": 1}), temperature=0.0)
    assert request_key("openai", "m", a) == request_key("openai", "m", b)
    # lists from YAML become the same tuples
    c = LLMRequest(messages=[["system", "s"], ["user", "u"]], json_schema=a.json_schema)  # type: ignore[arg-type]
    assert request_key("openai", "m", a) == request_key("openai", "m", c)


def test_key_ignores_tag_but_not_call_fields() -> None:
    base = request_key("local", "m", req())
    assert request_key("local", "m", req(tag="abduce")) == base
    for changed in (req(max_tokens=9), req(temperature=0.5), req(seed=1), req(sample_index=1),
                    req(json_schema={"type": "object"}), req(stop=("\n",))):
        assert request_key("local", "m", changed) != base
    assert request_key("openai", "m", req()) != base
    assert request_key("local", "m2", req()) != base


def test_api_key_never_in_key_material(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-SECRET-123")
    text = canonical_request("openai", "gpt-4o-mini", req(tag="x"))
    assert "SECRET" not in text and "sk-" not in text
    assert set(__import__("json").loads(text)) == {"v", "backend", "model_id", "messages", "max_tokens",
                                                   "temperature", "seed", "sample_index", "json_schema", "stop"}


def test_default_path_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LAMP_CACHE_DIR", str(tmp_path))
    assert default_cache_path() == tmp_path / "llm.sqlite"


def test_hit_miss_wal_stats_clear(cache: LLMCache) -> None:
    assert cache.journal_mode() == "wal"
    r1, r2 = requests_for(["a", "b"])
    k1, k2 = request_key("fake", "m1", r1), request_key("fake", "m2", r2)
    assert cache.get(k1) is None
    assert cache.claim(k1) == "claimed"
    cache.put(k1, "fake", "m1", r1, LLMResponse("A", 3, 1, cached=False, latency_s=0.5))
    hit = cache.get(k1)
    assert hit == LLMResponse("A", 3, 1, cached=True, latency_s=0.5)
    assert cache.claim(k1) == "done"
    cache.put(k2, "fake", "m2", r2, LLMResponse("B", 1, 1, cached=False, latency_s=0.1))
    stats = cache.stats()
    assert stats["entries"] == 2 and stats["per_model"] == {"m1": 1, "m2": 1} and stats["size_bytes"] > 0
    assert stats["pending_claims"] == 0
    assert cache.clear("m1") == 1 and cache.get(k1) is None and cache.get(k2) is not None
    assert cache.clear() == 1 and cache.stats()["entries"] == 0


def test_failed_calls_are_not_stored(cache: LLMCache) -> None:
    (r,) = requests_for(["a"])
    with pytest.raises(ValueError):
        cache.put("k", "fake", "m", r, LLMResponse("", 0, 0, cached=False, latency_s=0, error="boom"))


def test_claims_busy_release_and_stale(tmp_path: Path) -> None:
    a, b = LLMCache(tmp_path / "c.sqlite"), LLMCache(tmp_path / "c.sqlite")
    assert a.claim("k") == "claimed"
    assert b.claim("k") == "busy"  # a live owner (this very process, another client)
    a.release("k")
    assert b.claim("k") == "claimed"
    # a claim by a dead process is taken over
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with sqlite3.connect(tmp_path / "c.sqlite") as db:
        db.execute("UPDATE claims SET pid=?, owner='ghost' WHERE key='k'", (dead.pid,))
    assert a.claim("k") == "claimed"
    # a claim older than the timeout is taken over even if its owner lives
    c = LLMCache(tmp_path / "c.sqlite", claim_timeout_s=0.05)
    assert c.claim("k") == "busy"
    time.sleep(0.1)
    assert c.claim("k") == "claimed"

