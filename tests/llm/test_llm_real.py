"""The real local model: llama.cpp in-process, and llama-cpp-python's OpenAI-compatible server.

Skipped where llama-cpp-python is not installed (CI installs it). Tiny max_tokens, n_ctx 2048.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from llm_fakes import REAL_THREADS

from lamp.llm import LLMCache, LLMClient, LLMRequest, build_backend
from lamp.llm.local_backend import LocalBackend

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


def test_local_loglikelihood(local: LocalBackend) -> None:
    good = local.loglikelihood("The capital of France is", " Paris")
    bad = local.loglikelihood("The capital of France is", " xqz blorptangle")
    assert math.isfinite(good) and good < 0 and good > bad


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def llama_server(smollm2_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        import llama_cpp.server.app  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"llama_cpp.server needs its extras (pip install 'lamp[local-server]'): {exc}")
    port = _free_port()
    log = (tmp_path_factory.mktemp("llama-server") / "server.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_path),
                             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
                             "--n_threads", str(REAL_THREADS), "--verbose", "False"],
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 90
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}; see {log.name}")
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                pytest.fail(f"llama_cpp.server did not answer /v1/models in 90 s; see {log.name}")
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, 9)
            proc.wait()
        log.close()


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
