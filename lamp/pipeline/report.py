"""Run outputs: metrics.json, predictions.parquet, evidence.parquet, llm_usage.json, timings.json, cost.json,
report.md."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from lamp.data.eventlog import EventLog
from lamp.data.render import render_event, render_row
from lamp.eval.metrics import metrics_rows, predictions_frame
from lamp.pipeline.artifacts import write_json, write_parquet
from lamp.pipeline.config import PipelineConfig
from lamp.pipeline.methods import MethodRun
from lamp.pipeline.timing import StageClock, cost_line, cost_summary

logger = logging.getLogger(__name__)

TABLE_COLUMNS = ["method", "direction", "n_queries", "n_gold_in_top_m", "mean_rank_top_m", "mrr_filtered",
                 "mrr_filtered_ci_low", "mrr_filtered_ci_high", "hits_at_1", "hits_at_3", "hits_at_10"]


def write_outputs(cfg: PipelineConfig, run_dir: Path, log: EventLog, methods: list[MethodRun], clock: StageClock,
                  llm_usage: dict[str, Any], n_queries: int = 0) -> list[dict[str, Any]]:
    """Write every output file of a run and return the metric rows (``n_queries``: valid + test queries,
    the denominator of the per-query costs in ``cost.json``)."""
    with clock.stage("eval"):
        rows: list[dict[str, Any]] = []
        preds: list[pd.DataFrame] = []
        evidence: list[pd.DataFrame] = []
        for m in methods:
            extra = {"abducer": m.abducer, "llm": m.llm, "retriever": m.retriever, "base_model": cfg.base_model.name,
                     **m.extra_metrics}
            rows += metrics_rows(m.table, dataset=log.name, task=cfg.task, split="test", method=m.method, extra=extra)
            preds.append(predictions_frame(m.table))
            if m.evidence is not None and len(m.evidence):
                evidence.append(m.evidence)
        write_json(rows, run_dir / "metrics.json")
        if preds:
            write_parquet(pd.concat(preds, ignore_index=True), run_dir / "predictions.parquet")
        ev = pd.concat(evidence, ignore_index=True) if evidence else pd.DataFrame(
            columns=["method", "split", "query_id", "candidate", "event_index", "event_time", "query_time", "retrieval_score"])
        write_parquet(ev, run_dir / "evidence.parquet")
        write_json(llm_usage, run_dir / "llm_usage.json")
    write_json(clock.as_rows(), run_dir / "timings.json")
    cost = cost_summary(clock.as_rows(), llm_usage, n_queries)
    write_json(cost, run_dir / "cost.json")
    (run_dir / "report.md").write_text(render_report(cfg, run_dir, log, methods, rows, clock, llm_usage, cost),
                                       encoding="utf-8")
    return rows


def results_table(rows: list[dict[str, Any]], direction: str | None = None) -> str:
    """The metric rows as a markdown table (one direction, default: the first present)."""
    frame = pd.DataFrame(rows)
    if frame.empty:
        return "(no results)"
    direction = direction or str(frame["direction"].iloc[0])
    frame = frame[frame["direction"] == direction]
    cols = [c for c in TABLE_COLUMNS if c in frame.columns]
    return frame[cols].to_markdown(index=False, floatfmt=".4f")


def render_report(cfg: PipelineConfig, run_dir: Path, log: EventLog, methods: list[MethodRun],
                  rows: list[dict[str, Any]], clock: StageClock, llm_usage: dict[str, Any],
                  cost: dict[str, Any] | None = None) -> str:
    n_test = len(methods[0].table.queries) if methods else 0
    llm_name = next((m.llm for m in methods if m.llm), None)
    lines = [
        f"# lamp run: {log.name}, task `{cfg.task}` ({cfg.directions} direction), M={cfg.top_m}",
        "",
        f"Split: **test**, a seeded sample of {n_test} queries (seed {cfg.seed}; size fixed in the config "
        f"before the run). Base model: `{cfg.base_model.name}`; LLM: `{llm_name or 'none'}`; "
        f"retriever: `{cfg.retriever.name}`; ranker: `{cfg.ranker.name if cfg.ranker else 'none'}`"
        + _ranker_queries(methods) + ".",
        "",
        "Metrics: `mean_rank_top_m` is the paper's metric, the mean position of the gold event among the base "
        "model's top-M over the `n_gold_in_top_m` queries whose gold is there (lower is better); "
        "`mrr_filtered` and `hits_at_k` are time-aware filtered over the full candidate set (the ranker reorders "
        "the top-M, the rest keep the base order), ties at the average rank, with 95% bootstrap confidence "
        "intervals grouped by timestamp. ICEWS events predate the LLMs' training data: rows that use an LLM carry "
        "possible pre-training leakage.",
        "",
        "## Results",
        "",
        results_table(rows),
        "",
        "## Cost and time",
        "",
        pd.DataFrame(clock.as_rows()).to_markdown(index=False, floatfmt=".2f"),
        "",
        "LLM usage: " + ", ".join(f"{k}={v}" for k, v in llm_usage.items() if not isinstance(v, dict)),
        "",
    ]
    if cost:
        lines += ["Cost (`cost.json`; the stages' own wall time, without process start-up and this report): "
                  + cost_line(cost) + ".", ""]
    if llm_usage.get("reused_from_artifacts"):
        lines += ["Reused abduction artifacts (their LLM calls were paid by an earlier run, not by this one): "
                  + ", ".join(f"{k}={v:g}" for k, v in llm_usage["reused_from_artifacts"].items()), ""]
    lines += _plots(run_dir, rows)
    lines += _explanations(cfg, log, methods)
    return "\n".join(lines) + "\n"


def _ranker_queries(methods: list[MethodRun]) -> str:
    """How many valid queries the ranker learned from: those with the gold in the base top-M (the others
    cannot train a softmax over the top-M and are skipped); the same for every method (one base top-M)."""
    info = next((m.extra_metrics for m in methods if "ranker_valid_examples" in m.extra_metrics), None)
    if info is None:
        return ""
    if "ranker_train_used" not in info:
        return f" not trained ({info.get('ranker_fallback', 'no usable valid query')})"
    return (f" trained on {info['ranker_train_used']} valid queries and early-stopped on {info['ranker_stop_used']} "
            f"(those with the gold in the base top-M, of {info['ranker_valid_examples']} sampled: the first 2/3 by "
            f"time train, the last 1/3 early-stop; {info['ranker_skipped_train']} + {info['ranker_skipped_valid']} "
            "skipped)")


def _plots(run_dir: Path, rows: list[dict[str, Any]]) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        return []
    frame = pd.DataFrame(rows)
    if frame.empty:
        return []
    frame = frame[frame["direction"] == frame["direction"].iloc[0]]
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(frame)))
    y = range(len(frame))
    ax.errorbar(frame["mrr_filtered"], list(y),
                xerr=[frame["mrr_filtered"] - frame["mrr_filtered_ci_low"], frame["mrr_filtered_ci_high"] - frame["mrr_filtered"]],
                fmt="o", capsize=3)
    ax.set_yticks(list(y), frame["method"].tolist())
    ax.set_xlabel("time-aware filtered MRR (95% CI), test")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(run_dir / "mrr.png", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(frame)))
    ax.barh(frame["method"].tolist(), frame["mean_rank_top_m"])
    ax.set_xlabel("mean rank of the gold in the top-M (lower is better)")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(run_dir / "mean_rank.png", dpi=110)
    plt.close(fig)
    return ["## Plots", "", "![MRR](mrr.png)", "", "![mean rank in top-M](mean_rank.png)", ""]


def _explanations(cfg: PipelineConfig, log: EventLog, methods: list[MethodRun]) -> list[str]:
    lamp_runs = [m for m in methods if m.method.startswith("lamp[") and "no_ranker" not in m.method and m.causes]
    if not lamp_runs or cfg.n_explanations <= 0:
        return []
    lines = ["## Explanations (first queries of the sample)", ""]
    for m in lamp_runs:
        q = m.table.queries
        for i in range(min(cfg.n_explanations, len(q))):
            row = q.frame.iloc[i]
            target = q.candidate_event(i, int(row["target"]))
            lines.append(f"**{m.method}**, query {int(row['query_id'])}: gold "
                         f"`{render_event(log, *target, float(row['time']))}`")
            for pos, cand in enumerate(m.table.candidates[i][:3]):
                s, r, o = q.candidate_event(i, int(cand))
                lines.append(f"- #{pos + 1} `{render_event(log, s, r, o, float(row['time']))}`")
                for cause in m.causes.get((int(row["query_id"]), int(cand)), [])[:3]:
                    how = f" — {cause.explanation}" if cause.explanation else ""
                    lines.append(f"  - cause: {cause.subject} | {cause.relation} | {cause.object}{how}")
                for idx in m.evidence_rows.get((int(row["query_id"]), int(cand)), [])[-3:]:
                    lines.append(f"  - evidence: `{render_row(log, int(idx))}`")
            lines.append("")
    return lines
