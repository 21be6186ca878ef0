"""LLMClient: cache hits, budget stop, usage accounting, prices, resume after SIGKILL, two processes."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from llm_fakes import FakeBackend, requests_for, run_client

from lamp.errors import ConfigError
from lamp.llm import BUDGET_EXHAUSTED, Budget, LLMCache, LLMClient, PriceTable


def log_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_cache_hits_cost_nothing_and_duplicates_run_once(cache: LLMCache, tmp_path: Path) -> None:
    backend = FakeBackend(tmp_path / "calls.log")
    client = LLMClient(backend, cache, Budget(max_calls=3), None)
    first = client.generate(requests_for(["a", "b", "a"], tag="abduce"), progress=False)
    assert [r.text for r in first] == ["echo:a", "echo:b", "echo:a"]
    assert not any(r.cached for r in first) and len(backend.calls) == 2
    again = client.generate(requests_for(["a", "b", "c"], tag="abduce"), progress=False)
    assert [r.cached for r in again] == [True, True, False]
    u = client.usage
    assert (u.calls, u.cache_hits, u.failures, u.budget_stopped) == (3, 2, 0, False)
    assert u.by_tag["abduce"]["calls"] == 4 and u.by_tag["abduce"]["cache_hits"] == 2
    assert u.prompt_tokens == 3 and u.completion_tokens == 9


def test_budget_stops_cleanly(cache: LLMCache, tmp_path: Path) -> None:
    backend = FakeBackend()
    client = LLMClient(backend, cache, Budget(max_calls=2), None)
    out = client.generate(requests_for(["a", "b", "c", "d"]), progress=False)
    assert [r.text for r in out[:2]] == ["echo:a", "echo:b"]
    assert [r.error for r in out[2:]] == [BUDGET_EXHAUSTED] * 2
    assert client.usage.budget_stopped and client.usage.calls == 2 and client.usage.budget_skipped == 2
    assert cache.stats()["entries"] == 2 and cache.stats()["pending_claims"] == 0
    # finished calls stay free after the stop
    again = client.generate(requests_for(["a", "e"]), progress=False)
    assert again[0].cached and again[1].error == BUDGET_EXHAUSTED and len(backend.calls) == 2


def test_token_and_cost_caps_are_never_exceeded(tmp_path: Path) -> None:
    prices = PriceTable({"fake-1": {"prompt": 1e6, "completion": 1e6}})  # $1 per token
    client = LLMClient(FakeBackend(), None, Budget(max_cost_usd=20.0), prices)
    out = client.generate(requests_for(["a b", "c d", "e f", "g h"], max_tokens=3), progress=False)
    # a call starts only if its worst case (2 words + 4 template tokens + 3 = $9) fits in what is left;
    # each actually costs 2 + 3 = $5: $0+9, $5+9, $10+9 fit in $20, $15+9 does not.
    assert [r.ok for r in out] == [True, True, True, False] and client.usage.budget_stopped
    assert client.usage.estimated_cost_usd == pytest.approx(15.0)
    tok = LLMClient(FakeBackend(), None, Budget(max_tokens=10), None)
    out = tok.generate(requests_for(["a", "b"], max_tokens=3), progress=False)
    assert [r.ok for r in out] == [True, False] and tok.usage.total_tokens <= 10


def test_failures_are_counted_not_cached(cache: LLMCache, tmp_path: Path) -> None:
    backend = FakeBackend(fail_on=["bad"])
    client = LLMClient(backend, cache, None, None)
    out = client.generate(requests_for(["ok", "bad"]), progress=False)
    assert out[0].ok and out[1].error == "boom" and out[1].text == ""
    u = client.usage
    assert (u.calls, u.failures, u.retries) == (2, 1, 2)
    assert cache.stats()["entries"] == 1 and cache.stats()["pending_claims"] == 0


def test_failures_of_a_batch_are_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    client = LLMClient(FakeBackend(fail_on=["bad 1", "bad 2", "bad 3"]), None, None, None)
    with caplog.at_level("DEBUG", logger="lamp.llm.client"):
        client.generate(requests_for(["ok", "bad 1", "bad 2", "bad 3"]), progress=False)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and r.name == "lamp.llm.client"]
    assert warnings == ["3 of 4 LLM requests failed (fake: boom); they carry the error"]
    assert sum(r.levelname == "DEBUG" and "LLM call failed" in r.getMessage() for r in caplog.records) == 3


def test_price_table() -> None:
    table = PriceTable({"gpt-4o-mini": {"prompt": 0.15, "completion": 0.60}, "gpt-4o": {"input": 2.5, "output": 10}})
    assert table.cost("openai", "gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert table.cost("openai", "gpt-4o-mini-2024-07-18", 2_000_000, 0) == pytest.approx(0.30)  # longest prefix
    assert table.cost("openai", "gpt-4o-2024", 0, 100_000) == pytest.approx(1.0)
    assert table.cost("local", "gpt-4o", 10**9, 10**9) == 0.0
    assert table.cost("openai", "unknown", 10, 10) == 0.0
    with pytest.raises(ConfigError):
        PriceTable({"m": {"prompt": "cheap"}})  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="no price"):
        LLMClient(FakeBackend(), None, Budget(max_cost_usd=1.0), table)  # fake-1 has no price


def test_write_usage_atomic(tmp_path: Path) -> None:
    client = LLMClient(FakeBackend(), None, Budget(max_calls=5), None)
    client.generate(requests_for(["a"]), progress=False)
    path = client.write_usage(tmp_path)
    data = json.loads(path.read_text())
    assert path.name == "llm_usage.json" and data["calls"] == 1 and data["budget"]["max_calls"] == 5
    assert {"cache_hits", "prompt_tokens", "completion_tokens", "failures", "retries", "wall_time_s",
            "estimated_cost_usd", "budget_stopped", "backend", "model_id"} <= set(data)
    assert [p.name for p in tmp_path.iterdir()] == ["llm_usage.json"]  # no temp file left


def test_resume_after_sigkill(tmp_path: Path) -> None:
    cache_path, log = tmp_path / "llm.sqlite", tmp_path / "calls.log"
    n = 20
    worker = Path(__file__).parent / "llm_fakes.py"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), str(worker.parent)])}
    proc = subprocess.Popen([sys.executable, str(worker), str(cache_path), str(log), str(n), "0.1"], env=env)
    deadline = time.time() + 60
    while len(log_lines(log)) < 6 and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    paid_before = len(log_lines(log))
    assert 6 <= paid_before < n
    cache = LLMCache(cache_path)
    stored = cache.stats()["entries"]
    assert stored >= paid_before - 1  # at most the call in flight is lost
    backend = FakeBackend(log)
    out = LLMClient(backend, cache, None, None).generate(requests_for([f"p{i}" for i in range(n)]), progress=False)
    assert all(r.ok for r in out) and len(backend.calls) == n - stored
    assert len(log_lines(log)) == paid_before + n - stored


def test_two_processes_share_the_cache_and_pay_once(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    prompts = [f"q{i}" for i in range(12)]
    cache_path, log = str(tmp_path / "llm.sqlite"), str(tmp_path / "calls.log")
    procs = [ctx.Process(target=run_client, args=(cache_path, log, prompts, 0.05, str(tmp_path / f"r{i}.json"),
                                                  barrier)) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    paid = [line.split("\t")[1] for line in log_lines(Path(log))]
    assert sorted(paid) == sorted(prompts)  # every call made exactly once overall
    results = [json.loads((tmp_path / f"r{i}.json").read_text()) for i in range(2)]
    assert all(r["texts"] == [f"echo:{p}" for p in prompts] for r in results)
    assert sum(r["usage"]["calls"] for r in results) == len(prompts)
    assert sum(r["usage"]["cache_hits"] for r in results) == len(prompts)
    assert len({line.split("\t")[0] for line in log_lines(Path(log))}) == 2  # both did work
