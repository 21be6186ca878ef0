"""The real local model: llama.cpp in-process, and llama-cpp-python's OpenAI-compatible server.

Skipped where llama-cpp-python is not installed (CI installs it). Tiny max_tokens, n_ctx 2048.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from llm_fakes import REAL_THREADS

from lamp.llm import Budget, LLMCache, LLMClient, LLMRequest, LLMResponse, build_backend, request_key
from lamp.llm.json_decoding import SEPARATORS
from lamp.llm.local_backend import LocalBackend
from lamp.serve.server import child_server, free_port

pytestmark = [pytest.mark.real_llm, pytest.mark.slow]
SCHEMA = {"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris", "London", "Rome"]},
                                           "country": {"type": "string", "enum": ["France", "UK", "Italy"]}},
          "required": ["city", "country"]}


def chat(text: str, **kw: object) -> LLMRequest:
    return LLMRequest(messages=(("system", "You are a helpful assistant."), ("user", text)), **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def local(smollm2_path: Path) -> LocalBackend:
    b = build_backend("local", packaged="smollm2", n_ctx=2048, n_threads=REAL_THREADS, loglik_n_ctx=512)
    assert isinstance(b, LocalBackend)
    return b


def test_local_chat(local: LocalBackend, tmp_path: Path) -> None:
    assert local.model_id.startswith("SmolLM2-135M-Instruct.Q4_1.gguf@sha256:")
    assert "llama-cpp-python-" in local.model_id and local.context_length == 2048
    client = LLMClient(local, LLMCache(tmp_path / "c.sqlite"), None, None)
    (resp,) = client.generate([chat("Name one colour.", max_tokens=8)], progress=False)
    assert resp.ok and resp.text.strip() and resp.prompt_tokens > 5 and 0 < resp.completion_tokens <= 8
    (again,) = client.generate([chat("Name one colour.", max_tokens=8)], progress=False)
    assert again.cached and again.text == resp.text
    assert local.count_tokens("Hello world") == 2


def test_local_json_schema(local: LocalBackend) -> None:
    (resp,) = local.generate([chat("Which city is the capital of France? Answer in JSON.", max_tokens=40,
                                   json_schema=SCHEMA)])
    data = json.loads(resp.text)
    assert data["city"] in ("Paris", "London", "Rome") and data["country"] in ("France", "UK", "Italy")


CAUSES = {"type": "object", "additionalProperties": False, "required": ["causes"], "properties": {"causes": {
    "type": "array", "minItems": 1, "maxItems": 3, "items": {
        "type": "object", "additionalProperties": False, "required": ["subject", "relation", "date", "note"],
        "properties": {"subject": {"type": "string", "enum": ["Barack Obama", "Vladimir Putin", "Angela Merkel"]},
                       "relation": {"type": "string", "enum": ["Threaten", "Impose sanctions", "Consult"]},
                       "date": {"type": "string", "enum": ["2014-03-01", "2014-03-10"]},
                       "note": {"type": "string"}}}}}}


def test_local_jump_forward_json(local: LocalBackend) -> None:
    assert local.decoding == "jump_forward" and "+json=jf" in local.model_id
    req = chat("Obama imposed sanctions on Russia on 2014-03-17. Which earlier events caused it? Answer in JSON.",
               max_tokens=200, json_schema=CAUSES)
    (resp,) = local.generate([req])
    assert resp.ok, resp.error
    data = json.loads(resp.text)
    assert json.dumps(data, ensure_ascii=False, separators=SEPARATORS) == resp.text and 1 <= len(data["causes"]) <= 3
    for cause in data["causes"]:
        assert cause["subject"] in CAUSES["properties"]["causes"]["items"]["properties"]["subject"]["enum"]
        assert cause["date"] in ("2014-03-01", "2014-03-10") and '"' not in cause["note"]
    assert local.last_forward_passes < resp.completion_tokens  # forced tokens are not decoded one by one
    assert resp.prompt_tokens == len(local.chat_prompt(req))
    (again,) = local.generate([req])  # the prompt's KV cache is reused; greedy decoding is repeatable
    assert again.text == resp.text


def test_local_jump_forward_prompt_matches_llama_cpp_chat_template(local: LocalBackend) -> None:
    # The jump-forward path formats the chat exactly as create_chat_completion does (same prompt tokens).
    req = chat("Say yes.", max_tokens=2)
    out = local.llm.create_chat_completion(messages=req.message_dicts(), max_tokens=1, temperature=0.0)
    assert out["usage"]["prompt_tokens"] == len(local.chat_prompt(req))


def test_local_grammar_decoding_is_still_available(smollm2_path: Path) -> None:
    b = LocalBackend(packaged="smollm2", n_ctx=1024, n_threads=REAL_THREADS, decoding="grammar")
    assert "+json=" not in b.model_id
    item = CAUSES["properties"]["causes"]["items"]
    no_note = {**item, "required": ["subject", "relation", "date"],
               "properties": {k: v for k, v in item["properties"].items() if k != "note"}}
    schema = {**CAUSES, "properties": {"causes": {**CAUSES["properties"]["causes"], "items": no_note}}}
    (resp,) = b.generate([chat("Who imposed sanctions? Answer in JSON.", max_tokens=400, json_schema=schema)])
    assert resp.ok and json.loads(resp.text)["causes"]


def test_local_worker_processes_answer_like_the_in_process_model(local: LocalBackend, tmp_path: Path) -> None:
    pool = LocalBackend(packaged="smollm2", n_ctx=2048, n_threads=1, workers=2)
    assert pool.max_concurrency == 2 and pool.model_id == local.model_id
    reqs = [chat(f"Obama met {who} on 2014-03-0{i}. What caused it? Answer in JSON.", max_tokens=120,
                 json_schema=CAUSES) for i, who in enumerate(["Putin", "Merkel", "Cameron", "Abe"], 1)]
    try:
        client = LLMClient(pool, LLMCache(tmp_path / "c.sqlite"), None, None)
        got = client.generate(reqs, progress=False)  # two calls in flight, one per worker process
        assert client.max_concurrency == 2 and client.usage.calls == 4
    finally:
        pool.close()
    want = local.generate(reqs)
    assert [r.text for r in got] == [r.text for r in want] and all(r.ok for r in got)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in state  # a zombie has exited


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_worker_processes_exit_when_the_run_is_killed(smollm2_path: Path, tmp_path: Path) -> None:
    script = tmp_path / "run.py"
    script.write_text(
        "import sys, time\n"
        "from lamp.llm.local_backend import LocalBackend\n"
        "from lamp.llm.types import LLMRequest\n"
        "if __name__ == '__main__':  # spawned workers import this file\n"
        "    b = LocalBackend(packaged='smollm2', n_ctx=512, n_threads=1, workers=2)\n"
        "    b.generate([LLMRequest(messages=(('user', 'Hi'),), max_tokens=2)] * 2)\n"
        "    print(' '.join(str(p) for p in b._pool._processes), flush=True)\n"
        "    time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(p) for p in pids)
    finally:
        proc.kill()  # SIGKILL: no cleanup code runs in the parent
        proc.wait()
    deadline = time.time() + 15
    while time.time() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.2)
    assert not any(_alive(p) for p in pids), "worker processes outlived the killed run"


def test_local_loglikelihood(local: LocalBackend) -> None:
    good = local.loglikelihood("The capital of France is", " Paris")
    bad = local.loglikelihood("The capital of France is", " xqz blorptangle")
    assert math.isfinite(good) and good < 0 and good > bad


@pytest.fixture(scope="session")
def llama_server(smollm2_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        import llama_cpp.server.app  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"llama_cpp.server needs its extras (pip install 'lamp[local-server]'): {exc}")
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    base = f"http://127.0.0.1:{port}/v1"

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"{base}/models", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    with child_server([sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_path), "--host", "127.0.0.1",
                       "--port", str(port), "--n_ctx", "2048", "--n_threads", str(REAL_THREADS), "--verbose", "False"],
                      ready, what="llama_cpp.server", timeout=90, log_path=log):
        yield base


def test_openai_backend_against_llama_server(llama_server: str, tmp_path: Path) -> None:
    b = build_backend("openai", model="smollm2", base_url=llama_server, api_key_env="",
                      structured_output="json_object", max_retries=1, timeout_s=60)
    client = LLMClient(b, LLMCache(tmp_path / "c.sqlite"), None, None)
    reqs = [chat("Name one colour.", max_tokens=8),
            chat("Which city is the capital of France? Answer in JSON.", max_tokens=40, json_schema=SCHEMA)]
    free, constrained = client.generate(reqs, progress=False)
    assert free.ok and free.text.strip() and free.completion_tokens > 0, free.error
    assert constrained.ok, constrained.error
    assert set(json.loads(constrained.text)) == {"city", "country"}
    rerun = client.generate(reqs, progress=False)
    assert all(r.cached for r in rerun) and client.usage.calls == 2 and client.usage.cache_hits == 2


class _SentKeys:
    """Wraps a backend and records the cache key of every call the server answered (a paid call)."""

    def __init__(self, backend: Any) -> None:
        self.backend, self.keys, self._lock = backend, [], threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)

    def generate(self, requests: Sequence[LLMRequest]) -> list[LLMResponse]:
        out = self.backend.generate(requests)
        with self._lock:
            self.keys += [request_key(self.backend.name, self.backend.model_id, r) for r, o in zip(requests, out, strict=True)
                          if o.ok]
        return out


def test_budget_and_shared_cache_hold_under_concurrency_against_llama_server(llama_server: str,
                                                                             tmp_path: Path) -> None:
    """max_concurrency=4 against the real server: a token cap is never overshot, and two clients sharing one
    cache file (as two runs would) never pay for the same call twice."""
    reqs = [chat(f"Name a colour that starts with the letter {c}.", max_tokens=6) for c in "ABCDEFGHIJKL"]

    def client(budget: Budget | None = None) -> tuple[LLMClient, _SentKeys]:
        sent = _SentKeys(build_backend("openai", model="smollm2", base_url=llama_server, api_key_env="",
                                       max_concurrency=4, max_retries=1, timeout_s=60))
        return LLMClient(sent, LLMCache(tmp_path / "c.sqlite"), budget, None, poll_interval_s=0.02), sent

    capped, first = client(Budget(max_tokens=200))
    out = capped.generate(reqs, progress=False)
    u = capped.usage
    assert capped.max_concurrency == 4 and u.budget_stopped and 0 < u.calls < len(reqs)
    assert u.total_tokens <= 200, f"budget overshot: {u.total_tokens} tokens"
    assert u.total_tokens == sum(r.prompt_tokens + r.completion_tokens for r in out if r.ok)
    assert sum(r.ok for r in out) == u.calls == len(first.keys)

    (a, sent_a), (b, sent_b) = client(), client()  # two clients, one cache file, the same requests at once
    with ThreadPoolExecutor(2) as pool:
        outs = list(pool.map(lambda c: c.generate(reqs, progress=False), [a, b]))
    assert all(r.ok for o in outs for r in o) and [r.text for r in outs[0]] == [r.text for r in outs[1]]
    paid = first.keys + sent_a.keys + sent_b.keys
    assert len(paid) == len(set(paid)) == len(reqs), "a call was paid twice"
    assert a.usage.calls + b.usage.calls == len(reqs) - u.calls
