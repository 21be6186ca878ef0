"""``lamp.run``: the one-call Python API, usable without Hydra."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from lamp.abduce.base import uses_llm
from lamp.pipeline.components import build_components
from lamp.pipeline.config import (
    ABLATIONS,
    STAGES,
    Component,
    PipelineConfig,
    default_artifacts_dir,
    default_llm,
)
from lamp.pipeline.config import as_component as _component
from lamp.pipeline.run import RunResult, run_pipeline
from lamp.tpp.base import BaseModel


def run(
    *,
    dataset: str = "icews14",
    data_dir: str | None = None,
    task: str = "object",
    directions: str = "object",
    top_m: int = 5,
    n_test_queries: int | None = 200,
    n_valid_queries: int | None = 100,
    seed: int = 0,
    base_model: str | Component | BaseModel = "recurrency",
    abducers: Sequence[str | Component | dict[str, Any]] = ("llm", "rules"),
    llm: dict[str, Any] | None | Any = None,
    retriever: str | Component | dict[str, Any] = "hybrid",
    ablations: Sequence[str] = ABLATIONS,
    ranker: str | Component | dict[str, Any] | None = "energy",
    train_evidence: str = "own",
    stages: Sequence[str] = STAGES,
    run_dir: str = "runs/api",
    artifacts_dir: str | None = None,
    progress: bool = False,
    executor: str | dict[str, Any] = "local",
) -> RunResult:
    """Run lamp end to end and return its metrics and outputs.

    Components are given by name (``base_model="recurrency"``), by name with options
    (``retriever={"name": "dense", "top_k": 3}``) or as ready instances (a fitted ``BaseModel``, an
    LLM client or backend config dict for ``llm``: ``{"kind": "openai", "model": "gpt-4o-mini"}``).
    ``executor="ray"`` (or ``{"kind": "ray", "address": "127.0.0.1:6379"}``) runs the per-query stages as Ray
    tasks with the same results (:mod:`lamp.parallel`).

    >>> import lamp
    >>> result = lamp.run(dataset="icews14", abducers=["rules"], n_test_queries=50)   # doctest: +SKIP
    >>> [(r["method"], round(r["mrr_filtered"], 3)) for r in result.metrics if r["direction"] == "object"]  # doctest: +SKIP
    """
    llm_cfg = llm if (llm is None or isinstance(llm, dict)) else None
    if llm is None and any(uses_llm(_component(a).name) for a in abducers):
        llm_cfg = default_llm()
    cfg = PipelineConfig(
        dataset=dataset, data_dir=data_dir, task=task, directions=directions, top_m=top_m,
        n_test_queries=n_test_queries, n_valid_queries=n_valid_queries, seed=seed,
        base_model=Component(base_model.name, dataclasses.asdict(base_model.settings))
        if isinstance(base_model, BaseModel) and hasattr(base_model, "settings") else
        Component(base_model.name) if isinstance(base_model, BaseModel) else _component(base_model),
        abducers=tuple(_component(a) for a in abducers), llm=llm_cfg, retriever=_component(retriever),
        ablations=tuple(ablations), ranker=None if ranker is None else _component(ranker), stages=tuple(stages),
        train_evidence=train_evidence,
        run_dir=run_dir, artifacts_dir=artifacts_dir or default_artifacts_dir(), progress=progress,
        executor=executor,
    )
    from lamp.data.load import load_dataset

    log = load_dataset(dataset, data_root=data_dir)
    comps = build_components(cfg, log, base_model=base_model if isinstance(base_model, BaseModel) else None,
                             llm_client=None if (llm is None or isinstance(llm, dict)) else llm)
    try:
        return run_pipeline(cfg, comps)
    finally:
        comps.executor.close()
