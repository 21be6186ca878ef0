"""Typed pipeline configuration (what the Hydra app and the Python API both build)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lamp.abduce.prompts import PROMPT_FAMILIES, conf_dir, default_prompt
from lamp.errors import ConfigError
from lamp.parallel import ExecutorSettings

__all__ = ["ABLATIONS", "PROMPT_FAMILIES", "STAGES", "Component", "PipelineConfig", "as_component", "conf_dir",
           "default_artifacts_dir", "default_llm",
           "default_prompt"]

STAGES = ("data", "base", "abduce", "retrieve", "rank", "eval")


def default_artifacts_dir() -> str:
    """Where finished steps are stored: ``$LAMP_CACHE_DIR/artifacts`` (default ``~/.cache/lamp/artifacts``)."""
    return str(Path(os.environ.get("LAMP_CACHE_DIR") or Path.home() / ".cache" / "lamp") / "artifacts")


def default_llm() -> dict[str, Any]:
    """The LLM a run uses when an LLM abducer is asked for and none is given: the embedded SmolLM2-135M,
    in-process, within the main job's budget of 300 calls (conf/llm/local.yaml is the same for the CLI)."""
    return {"kind": "local", "packaged": "smollm2", "budget": {"max_calls": 300}}

ABLATIONS = ("random", "recent", "effect_similarity")
@dataclass(frozen=True)
class Component:
    """A named component with its keyword arguments (e.g. a base model, a retriever)."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)


def as_component(value: str | Component | dict[str, Any] | Any) -> Component:
    """A Component from a name, ``{"name": ..., **params}``, or a Component."""
    if isinstance(value, Component):
        return value
    if isinstance(value, str):
        return Component(value)
    data = dict(value)
    return Component(str(data.pop("name")), data)


@dataclass(frozen=True)
class PipelineConfig:
    """Everything a run needs. Defaults are the README's main job (ICEWS14, M=5, 200 test queries)."""

    dataset: str = "icews14"
    data_dir: str | None = None
    dataset_format: str | None = None
    task: str = "object"
    directions: str = "object"
    top_m: int = 5
    n_test_queries: int | None = 200
    n_valid_queries: int | None = 100
    seed: int = 0
    base_model: Component = field(default_factory=lambda: Component("recurrency"))
    abducers: tuple[Component, ...] = (Component("llm"), Component("rules"))
    # a conf/llm group as a plain dict (kind, backend options, budget, cache, prices); None = no LLM
    llm: dict[str, Any] | None = field(default_factory=default_llm)
    retriever: Component = field(default_factory=lambda: Component("hybrid"))
    ablations: tuple[str, ...] = ABLATIONS
    ranker: Component | None = field(default_factory=lambda: Component("energy"))
    # The valid queries' evidence that trains the ranker of an LLM abducer: "own" (ask the LLM about them too)
    # or a cheap abducer's (e.g. "rules"), so the ranker learns from every valid query and the LLM budget goes
    # to the test queries; the report says which.
    train_evidence: str = "own"
    stages: tuple[str, ...] = STAGES
    artifacts_dir: str = field(default_factory=default_artifacts_dir)
    run_dir: str = "runs/latest"
    progress: bool = True
    n_explanations: int = 3
    # where the per-query stages run: "local" or "ray", or a conf/executor group as a dict (lamp.parallel)
    executor: str | dict[str, Any] = "local"

    def __post_init__(self) -> None:
        bad = [s for s in self.stages if s not in STAGES]
        if bad:
            raise ConfigError(f"Invalid stages {bad}. Valid choices are: {', '.join(STAGES)}")
        bad = [a for a in self.ablations if a not in ABLATIONS]
        if bad:
            raise ConfigError(f"Invalid ablations {bad}. Valid choices are: {', '.join(ABLATIONS)}")
        if self.top_m < 1:
            raise ConfigError(f"candidates.top_m must be >= 1, got {self.top_m}")
        ExecutorSettings.of(self.executor)  # a clear error now, not after the base model is fitted

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
