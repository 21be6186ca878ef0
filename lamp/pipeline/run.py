"""Run the pipeline: data -> base -> abduce -> retrieve -> rank -> eval, with cached, resumable stages.

>>> from lamp.pipeline import PipelineConfig, run_pipeline
>>> result = run_pipeline(PipelineConfig(dataset="icews14", n_test_queries=20))   # doctest: +SKIP
>>> result.metrics[0]["method"], result.metrics[0]["mrr_filtered"]              # doctest: +SKIP
"""

from __future__ import annotations

import logging
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lamp
from lamp.data.eventlog import EventLog
from lamp.data.load import load_dataset
from lamp.data.queries import make_queries
from lamp.pipeline import steps
from lamp.pipeline.artifacts import ArtifactStore, write_json
from lamp.pipeline.components import Components, build_components
from lamp.pipeline.config import PipelineConfig
from lamp.pipeline.methods import BaseTables, MethodRun, run_methods
from lamp.pipeline.report import write_outputs
from lamp.pipeline.stages import SplitQueries
from lamp.pipeline.timing import StageClock, cost_summary

logger = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What a run produced: metric rows, the run directory, timings, LLM usage, provenance."""

    config: dict[str, Any]
    run_dir: Path
    metrics: list[dict[str, Any]]
    timings: list[dict[str, Any]]
    llm_usage: dict[str, Any]
    methods: list[MethodRun] = field(default_factory=list)
    cost: dict[str, Any] = field(default_factory=dict)  # per-query cost, share outside the LLM stages (cost.json)
    lamp_version: str = lamp.__version__
    git_hash: str | None = None


def _git_hash() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def run_pipeline(cfg: PipelineConfig, components: Components | None = None) -> RunResult:
    """Run every stage of ``cfg.stages``; finished steps are reused from ``cfg.artifacts_dir``."""
    run_dir = Path(cfg.run_dir).expanduser()
    run_dir.mkdir(parents=True, exist_ok=True)
    store = ArtifactStore(cfg.artifacts_dir)
    clock = StageClock(progress=cfg.progress)

    with clock.stage("data"):
        log = load_dataset(cfg.dataset, data_root=cfg.data_dir, format=cfg.dataset_format)
        queries = sample_queries(log, cfg)
    logger.info("%s: %s events; %d valid + %d test queries (task %s, %s direction)", log.name, f"{len(log):,}",
                len(queries.valid), len(queries.test), cfg.task, cfg.directions)

    comps = components or build_components(cfg, log)
    methods: list[MethodRun] = []
    try:
        if any(s in cfg.stages for s in ("base", "abduce", "retrieve", "rank", "eval")):
            base = base_stage(cfg, store, clock, log, queries, comps)
            methods = run_methods(cfg, store, clock, log, base, comps)
    finally:
        if components is None:
            comps.executor.close()  # a local Ray started for this run stops with it
    llm_usage = comps.llm_usage()
    n_queries = len(queries.valid) + len(queries.test)
    metrics = write_outputs(cfg, run_dir, log, methods, clock, llm_usage, n_queries) if "eval" in cfg.stages else []
    result = RunResult(cfg.to_dict(), run_dir, metrics, clock.as_rows(), llm_usage, methods,
                       cost=cost_summary(clock.as_rows(), llm_usage, n_queries), git_hash=_git_hash())
    write_json({"lamp_version": result.lamp_version, "git_hash": result.git_hash, "python": platform.python_version(),
                "config": result.config}, run_dir / "run_info.json")
    return result


def sample_queries(log: EventLog, cfg: PipelineConfig) -> SplitQueries:
    """The run's seeded valid and test query samples."""
    return SplitQueries(
        valid=make_queries(log, cfg.task, "valid", directions=cfg.directions).sample(cfg.n_valid_queries, cfg.seed),
        test=make_queries(log, cfg.task, "test", directions=cfg.directions).sample(cfg.n_test_queries, cfg.seed),
    )


def base_stage(cfg: PipelineConfig, store: ArtifactStore, clock: StageClock, log: EventLog, queries: SplitQueries,
               comps: Components) -> BaseTables:
    """Fit the base model (train events; choices on the full valid split) and score both samples."""
    with clock.stage("base") as st:
        fitted = steps.fit_base(comps.base_model, log, make_queries(log, cfg.task, "train", directions=cfg.directions),
                                make_queries(log, cfg.task, "valid", directions=cfg.directions), store=store)
        comps.base_model = fitted.model
        tables = {s: steps.score_base(fitted, log, getattr(queries, s), cfg.top_m, store=store, progress=cfg.progress,
                                      executor=comps.executor)
                  for s in ("valid", "test")}
        st.skipped = fitted.reused
    return BaseTables(tables, {s: steps.table_key(fitted, getattr(queries, s), cfg.top_m) for s in tables})
