"""The openai backend against a real HTTP server on 127.0.0.1 that fails on a script."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from llm_fakes import FakeOpenAIServer, requests_for

from lamp.errors import ConfigError, LLMError
from lamp.llm import LLMCache, LLMClient, build_backend
from lamp.llm.openai_backend import OpenAIBackend
from lamp.llm.retry import RetryPolicy, parse_retry_after

pytestmark = pytest.mark.network
SECRET = "sk-test-SECRET-123"


def backend(server: FakeOpenAIServer, **kw: object) -> OpenAIBackend:
    opts: dict[str, object] = {"model": "fake-model", "base_url": server.base_url, "api_key_env": "",
                               "backoff_base_s": 0.001, "backoff_max_s": 0.01, "timeout_s": 5.0}
    opts.update(kw)
    b = build_backend("openai", **opts)
    assert isinstance(b, OpenAIBackend)
    return b


def test_retries_every_fault_kind_then_succeeds(fake_server: FakeOpenAIServer) -> None:
    fake_server.script(["429", "500", "malformed", "truncated", "drop"], prompt="a")
    client = LLMClient(backend(fake_server, max_retries=5), None, None, None)
    (resp,) = client.generate(requests_for(["a"]), progress=False)
    assert resp.text == "echo:a" and resp.retries == 5 and (resp.prompt_tokens, resp.completion_tokens) == (7, 3)
    assert fake_server.count("a") == 6
    assert (client.usage.calls, client.usage.retries, client.usage.failures) == (1, 5, 0)


def test_rate_limits_are_waited_out_without_spending_retries(fake_server: FakeOpenAIServer) -> None:
    """More calls in flight than the server admits: its 429s say "wait", so the calls queue instead of failing
    after max_retries (a 500 still spends a retry)."""
    for p in ("a", "b", "c", "d"):
        fake_server.script(["429"] * 6 + (["500"] if p == "a" else []), prompt=p)
    client = LLMClient(backend(fake_server, max_retries=1, max_concurrency=4), None, None, None)
    out = client.generate(requests_for(["a", "b", "c", "d"]), progress=False)
    assert all(r.ok for r in out), [r.error for r in out]
    assert [r.retries for r in out] == [7, 6, 6, 6] and fake_server.count("a") == 8
    assert (client.usage.retries, client.usage.failures) == (25, 0)


def test_a_server_that_keeps_refusing_still_fails_the_call(fake_server: FakeOpenAIServer) -> None:
    fake_server.script(["429"] * 10_000, prompt="a")
    t0 = time.perf_counter()
    (resp,) = backend(fake_server, max_retries=2, rate_limit_wait_s=0.3).generate(requests_for(["a"]))
    assert not resp.ok and "HTTP 429" in (resp.error or "") and resp.retries >= 3
    assert 0.3 <= time.perf_counter() - t0 < 3.0
    with pytest.raises(ConfigError, match="rate_limit_wait_s"):
        backend(fake_server, rate_limit_wait_s=-1)


def test_timeout_is_retried(fake_server: FakeOpenAIServer) -> None:
    fake_server.script(["slow:1.5"], prompt="a")
    t0 = time.perf_counter()
    (resp,) = backend(fake_server, timeout_s=0.3, max_retries=2).generate(requests_for(["a"]))
    assert resp.ok and resp.retries == 1 and 0.3 <= time.perf_counter() - t0 < 1.5


def test_failure_after_all_retries_is_counted_and_rerun_resumes(fake_server: FakeOpenAIServer,
                                                                cache: LLMCache) -> None:
    fake_server.script(["500"] * 3, prompt="bad")
    prompts = ["x", "bad", "y", "z"]
    client = LLMClient(backend(fake_server, max_retries=2, max_concurrency=4), cache, None, None)
    out = client.generate(requests_for(prompts), progress=False)
    assert [r.ok for r in out] == [True, False, True, True]
    assert out[1].text == "" and "HTTP 500" in (out[1].error or "") and out[1].retries == 2
    u = client.usage
    assert (u.calls, u.failures, u.retries) == (4, 1, 2)
    assert fake_server.count("bad") == 3
    # rerun: only the failed call is made again (the server now answers it)
    rerun = LLMClient(backend(fake_server), cache, None, None)
    out2 = rerun.generate(requests_for(prompts), progress=False)
    assert all(r.ok for r in out2) and [r.cached for r in out2] == [True, False, True, True]
    assert rerun.usage.calls == 1 and rerun.usage.cache_hits == 3
    assert len(fake_server.requests) == 3 + 3 + 1


def test_client_errors_are_not_retried(fake_server: FakeOpenAIServer) -> None:
    fake_server.script(["400"], prompt="a")
    (resp,) = backend(fake_server, max_retries=3).generate(requests_for(["a"]))
    assert resp.error is not None and "HTTP 400" in resp.error and resp.retries == 0


def test_concurrency_is_bounded(fake_server: FakeOpenAIServer) -> None:
    prompts = [f"p{i}" for i in range(6)]
    for p in prompts:
        fake_server.script(["slow:0.2"], prompt=p)
    client = LLMClient(backend(fake_server, max_concurrency=2), None, None, None)
    out = client.generate(requests_for(prompts), progress=False)
    assert all(r.ok for r in out) and fake_server.max_active == 2


def test_request_carries_schema_seed_and_stop(fake_server: FakeOpenAIServer) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    backend(fake_server).generate(requests_for(["a"], json_schema=schema, stop=("\n",), sample_index=1))
    backend(fake_server, structured_output="json_object").generate(requests_for(["b"], json_schema=schema))
    first, second = fake_server.requests
    assert first["response_format"]["type"] == "json_schema"
    assert first["response_format"]["json_schema"]["schema"] == schema and first["stop"] == ["\n"]
    assert first["seed"] != 0  # sample 1 gets its own seed
    assert second["response_format"] == {"type": "json_object", "schema": schema}


def test_missing_key_env_and_loglikelihood(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAMP_TEST_NO_SUCH_KEY", raising=False)
    with pytest.raises(ConfigError, match="LAMP_TEST_NO_SUCH_KEY"):
        build_backend("openai", api_key_env="LAMP_TEST_NO_SUCH_KEY")
    b = build_backend("openai", api_key_env="", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(LLMError, match="logprobs"):
        b.loglikelihood("a", "b")
    assert b.count_tokens("abcdefgh") == 2  # documented chars/4 estimate


def test_retry_policy_and_retry_after() -> None:
    policy = RetryPolicy(max_retries=3, base_s=1.0, max_s=5.0)
    assert all(0.5 <= policy.delay(0) <= 1.0 for _ in range(20))
    assert all(2.5 <= policy.delay(10) <= 5.0 for _ in range(20))
    assert policy.delay(0, retry_after_s=3.0) == 3.0 and policy.delay(0, retry_after_s=99) == 5.0
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert 0 <= (parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) or 0) < 1
    assert parse_retry_after({}) is None


def test_api_key_never_written(fake_server: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    fake_server.script(["401echo"], prompt="b")
    fake_server.script(["500", "500", "500"], prompt="c")
    b = backend(fake_server, api_key_env="OPENAI_API_KEY", max_retries=2)
    cache = LLMCache(tmp_path / "cache" / "llm.sqlite")
    client = LLMClient(b, cache, None, None)
    out = client.generate(requests_for(["a", "b", "c"]), progress=False)
    assert [r.ok for r in out] == [True, False, False]
    assert f"Bearer {SECRET}" in fake_server.auth_seen  # the key was used...
    assert "***" in (out[1].error or "")  # ...and redacted where a server echoed it
    client.write_usage(tmp_path)
    cache.close()
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "llm.sqlite" for p in written) and any(p.name == "llm_usage.json" for p in written)
    for p in written:
        assert SECRET.encode() not in p.read_bytes(), p
    texts = [caplog.text, repr(b), repr(client), *(r.error or "" for r in out)]
    assert all(SECRET not in t for t in texts)
    assert "SECRET" not in str(vars(b))
