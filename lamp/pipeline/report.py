"""Run outputs: metrics.json, predictions.parquet, evidence.parquet, llm_usage.json, timings.json, cost.json,
report.md and report.html (the same report, self-contained: tables and plots inline).

The report leads with what a reader needs first: the method that did best on valid against the base
model, on test, with its paired-bootstrap interval (:mod:`lamp.eval.summary`); then the results, the
plots, the explanations (:mod:`lamp.pipeline.explain`), cost and time, and how to read the metrics.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lamp.data.eventlog import EventLog
from lamp.eval.html import report_html
from lamp.eval.metrics import metrics_rows, predictions_frame
from lamp.eval.summary import headline, one_direction, select_on_valid, valid_scores
from lamp.pipeline.artifacts import write_json, write_parquet
from lamp.pipeline.config import PipelineConfig
from lamp.pipeline.explain import explanations
from lamp.pipeline.methods import MethodRun
from lamp.pipeline.timing import StageClock, cost_line, cost_summary, human_duration

logger = logging.getLogger(__name__)


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
    text = render_report(cfg, run_dir, log, methods, rows, clock, llm_usage, cost)
    (run_dir / "report.md").write_text(text, encoding="utf-8")
    (run_dir / "report.html").write_text(report_html(text, image_dir=run_dir, title=f"lamp run: {log.name}"),
                                         encoding="utf-8")
    return rows


def run_headline(rows: Sequence[Mapping[str, Any]], methods: Sequence[MethodRun]) -> str:
    """One sentence: the method chosen on valid against the base model, with its paired test interval."""
    if not rows:
        return "No results: the eval stage did not run."
    return headline(select_on_valid(valid_scores(rows)), rows, {m.method: m.table for m in methods})


def _f(value: Any, digits: int) -> str:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return "–"
    return "–" if math.isnan(x) else f"{x:.{digits}f}"


def results_caption(rows: Sequence[Mapping[str, Any]]) -> str:
    """What the columns of :func:`results_table` mean, in one line."""
    picked = one_direction(rows)
    n, m = (picked[0]["n_queries"], picked[0]["top_m"]) if picked else (0, "M")
    return (f"Test, {n} queries. rank: mean rank of the gold in the top-{m} where it is there (lower is better); "
            "MRR, H@k: time-aware filtered over all candidates, ties averaged; 95% CI over timestamps.")


def results_table(rows: Sequence[Mapping[str, Any]], direction: str | None = None) -> str:
    """The metric rows of one direction (default: all queries) as a markdown table, rounded for people."""
    picked = [r for r in rows if r.get("direction") == direction] if direction else one_direction(rows)
    if not picked:
        return "(no results)"
    table = [{
        "method": r["method"],
        "in top-M": f"{r['n_gold_in_top_m']}/{r['n_queries']}",
        "rank ↓": _f(r.get("mean_rank_top_m"), 2),
        "MRR (95% CI)": f"{_f(r.get('mrr_filtered'), 3)} ({_f(r.get('mrr_filtered_ci_low'), 3)}–"
                        f"{_f(r.get('mrr_filtered_ci_high'), 3)})",
        "H@1": _f(r.get("hits_at_1"), 3), "H@3": _f(r.get("hits_at_3"), 3), "H@10": _f(r.get("hits_at_10"), 3),
    } for r in picked]
    return pd.DataFrame(table).to_markdown(index=False, disable_numparse=True, colalign=["left"] + ["right"] * 6)


def _valid_table(rows: Sequence[Mapping[str, Any]]) -> str:
    table = [{"method": s.method, "valid mean rank in top-M ↓": _f(s.value, 2), "how": s.note}
             for s in valid_scores(rows)]
    return pd.DataFrame(table).to_markdown(index=False, disable_numparse=True)


def _timings_table(clock: StageClock) -> str:
    table = [{"stage": r["stage"], "wall time": human_duration(r["wall_time_s"]),
              "peak memory": f"{r['peak_memory_mb']:,.0f} MB",
              "note": "; ".join(n for n in ("reused from an earlier run" if r["skipped"] else "",
                                            "calls the LLM" if r.get("llm") else "") if n)}
             for r in clock.as_rows()]
    return pd.DataFrame(table).to_markdown(index=False, disable_numparse=True)


def usage_line(llm_usage: Mapping[str, Any]) -> str:
    """The LLM usage of a run in words (empty without an LLM)."""
    if not llm_usage:
        return ""
    model = str(llm_usage.get("model") or "?").split("@")[0]  # without the weights' hash and runtime version
    text = (f"LLM {model}: {llm_usage.get('calls', 0):,} calls, "
            f"{llm_usage.get('cache_hits', 0):,} cache hits, {llm_usage.get('prompt_tokens', 0):,} prompt + "
            f"{llm_usage.get('completion_tokens', 0):,} completion tokens, {llm_usage.get('failures', 0):,} failed, "
            f"estimated cost ${float(llm_usage.get('estimated_cost_usd', 0.0)):.2f}")
    if llm_usage.get("budget_stopped"):
        text += f"; the budget stopped it ({llm_usage.get('budget_skipped', 0):,} requests not sent)"
    reused = llm_usage.get("reused_from_artifacts")
    if reused:
        text += (f"; reused abduction from an earlier run (paid then, not now): {reused.get('calls', 0):,.0f} calls, "
                 f"{reused.get('prompt_tokens', 0) + reused.get('completion_tokens', 0):,.0f} tokens")
    return text


def render_report(cfg: PipelineConfig, run_dir: Path, log: EventLog, methods: list[MethodRun],
                  rows: list[dict[str, Any]], clock: StageClock, llm_usage: dict[str, Any],
                  cost: dict[str, Any] | None = None) -> str:
    n_test = len(methods[0].table.queries) if methods else 0
    llm_name = next((m.llm.split("@")[0] for m in methods if m.llm), None)  # without the weights' hash
    selection = select_on_valid(valid_scores(rows)) if rows else None
    directions = sorted({str(r["direction"]) for r in rows} - {"both"})
    lines = [
        f"# lamp run: {log.name}, task `{cfg.task}` ({cfg.directions} direction), M={cfg.top_m}", "",
        f"**{run_headline(rows, methods)}**", "",
        f"Test: a seeded sample of {n_test} queries (seed {cfg.seed}; size fixed in the config before the run). "
        f"Base model `{cfg.base_model.name}`; LLM `{llm_name or 'none'}`; retriever `{cfg.retriever.name}`; "
        f"ranker `{cfg.ranker.name if cfg.ranker else 'none'}`" + _ranker_queries(methods) + ".", "",
        "## Results (test)", "",
        results_table(rows), "",
    ]
    if len(directions) > 1:
        for d in directions:
            lines += [f"Direction `{d}`:", "", results_table(rows, d), ""]
    if selection is not None:
        lines += ["## Selection on valid", "", f"The report leads with the method chosen by: {selection.how}.", "",
                  _valid_table(rows), ""]
    lines += _plots(run_dir, rows)
    lines += explanations(log, methods, selection.method if selection else None, cfg.n_explanations)
    lines += ["## Cost and time", "", _timings_table(clock), ""]
    if llm_usage:
        lines += [usage_line(llm_usage) + ".", ""]
    if cost:
        lines += ["Cost (`cost.json`; the stages' own wall time, without process start-up and this report): "
                  + cost_line(cost) + ".", ""]
    lines += [
        "## How to read the metrics", "",
        "`rank` is the paper's metric: the mean position of the gold event among the base model's top-M over "
        "the queries whose gold is there (`in top-M` says how many; lower is better). `MRR` and `H@k` are "
        "time-aware filtered over the full candidate set (the ranker reorders the top-M, the rest keep the base "
        "order), ties at the average rank, with 95% bootstrap intervals over timestamps. ICEWS events predate "
        "the LLMs' training data: rows that use an LLM carry possible pre-training leakage. Every number, per "
        "direction and with all its intervals, is in `metrics.json`.", ""]
    return "\n".join(lines) + "\n"


def _ranker_queries(methods: list[MethodRun]) -> str:
    """How many valid queries the ranker learned from: those with the gold in the base top-M (a feature ranker:
    any true answer there; the others cannot teach an order of the top-M and are skipped); the same for every
    method (one base top-M)."""
    info = next((m.extra_metrics for m in methods if "ranker_train_used" in m.extra_metrics
                 or "ranker_fallback" in m.extra_metrics), None)
    if info is None:
        return ""
    if "ranker_train_used" not in info:
        return f" not trained ({info.get('ranker_fallback', 'no usable valid query')})"
    sampled = info.get("ranker_valid_examples", info.get("ranker_valid_queries"))
    teacher = next((m.extra_metrics["ranker_trained_on"] for m in methods if "ranker_trained_on" in m.extra_metrics),
                   None)
    gold = "the gold in the base top-M"
    train_rule = info.get("ranker_train_rule", gold)
    used = (f"those with {gold}" if train_rule == gold
            else f"those with {train_rule}; of the held-out ones, those with {gold}")
    return (f" trained on {info['ranker_train_used']} valid queries and early-stopped on {info['ranker_stop_used']} "
            f"({used}, of {sampled} sampled: the first 2/3 by time train, the last 1/3 "
            "early-stops and chooses the weight of the base score)"
            + (f"; an LLM abducer's ranker learned from {teacher}" if teacher else ""))


def _plots(run_dir: Path, rows: list[dict[str, Any]]) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        return []
    frame = pd.DataFrame(one_direction(rows))
    if frame.empty:
        return []
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
    return ["## Plots", "", "![MRR with 95% intervals](mrr.png)", "", "![mean rank in top-M](mean_rank.png)", ""]
