"""Fixtures for lamp.llm tests: the fake OpenAI server, a temporary cache, the real SmolLM2 model."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # llm_fakes, also for spawned worker processes

from llm_fakes import FakeOpenAIServer  # noqa: E402

from lamp.llm import LLMCache  # noqa: E402


@pytest.fixture
def fake_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[LLMCache]:
    store = LLMCache(tmp_path / "llm.sqlite")
    yield store
    store.close()


def require_llama_cpp() -> None:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        pytest.skip("llama-cpp-python is not installed (pip install 'lamp[local]'); CI installs it")


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    require_llama_cpp()
    from lamp.errors import MissingDependencyError
    from lamp.llm import packaged_gguf

    try:
        return packaged_gguf("smollm2")
    except MissingDependencyError as exc:
        pytest.skip(str(exc))
