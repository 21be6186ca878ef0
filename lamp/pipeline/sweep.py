"""Collect the runs of a sweep (``lamp run -m candidates.top_m=5,10,20 ...``) into one table and the
paper-style plot of mean rank in the top-M versus M, one line per method.

>>> from lamp.pipeline.sweep import summarize_sweep
>>> summarize_sweep("multirun/2026-11-23_12-00-00")     # doctest: +SKIP  (writes sweep.md, mean_rank_vs_m.png)

Rows come from every ``metrics.json`` under the folder (one per job). Only rows that can be compared
go into one line: same dataset, task, direction and split, and the same number of test queries;
a sweep that mixes several values of another setting (``retriever=dense,fuzzy``) gets one line per
(method, retriever, abducer, LLM), labelled with them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from lamp.errors import ConfigError

LABEL_KEYS = ("method", "retriever", "abducer", "llm")


def collect(folder: str | Path) -> pd.DataFrame:
    """Every metric row of every run under ``folder``, with the run's folder in column ``run``."""
    root = Path(folder).expanduser()
    files = sorted(root.rglob("metrics.json"))
    if not files:
        raise ConfigError(f"no metrics.json under {root}. Fix: point at a run or multirun folder that finished "
                          "its eval stage (lamp run -m ... writes multirun/<date>/<job>/metrics.json).")
    rows: list[dict[str, Any]] = []
    for f in files:
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{f} is not readable JSON ({exc}); delete it or rerun that job.") from exc
        for r in data:
            rows.append({**r, "run": str(f.parent.relative_to(root)) or "."})
    return pd.DataFrame(rows)


def _label(row: pd.Series, varying: list[str]) -> str:
    extra = [f"{k}={row[k]}" for k in varying if k != "method" and pd.notna(row.get(k))]
    return str(row["method"]) + (f" ({', '.join(extra)})" if extra else "")


def summarize_sweep(folder: str | Path, *, direction: str = "both", split: str = "test") -> Path:
    """Write ``sweep.md`` and ``mean_rank_vs_m.png`` into ``folder``; returns the markdown path."""
    root = Path(folder).expanduser()
    frame = collect(root)
    frame = frame[(frame["split"] == split) & (frame["direction"] == direction)]
    if frame.empty:
        raise ConfigError(f"no {split} rows with direction={direction!r} under {root}.")
    groups = frame.groupby(["dataset", "task", "n_queries"], dropna=False)
    if groups.ngroups > 1:
        keys: list[Any] = list(groups.groups)
        found = ", ".join("/".join(str(k) for k in key) + " queries" for key in keys)  # dataset/task/n
        raise ConfigError(f"the runs under {root} are not comparable ({found}); give the folder of one sweep.")
    varying = [k for k in LABEL_KEYS if k in frame and frame.groupby("method")[k].nunique(dropna=True).max() > 1]
    frame = frame.assign(label=[_label(r, varying) for _, r in frame.iterrows()])
    mean_rank = frame.pivot_table(index="label", columns="top_m", values="mean_rank_top_m", aggfunc="first")
    n_in = frame.pivot_table(index="label", columns="top_m", values="n_gold_in_top_m", aggfunc="first")
    mrr = frame.pivot_table(index="label", columns="top_m", values="mrr_filtered", aggfunc="first")
    first = frame.iloc[0]
    lines = [f"# Sweep: {first['dataset']}, task {first['task']}, {split} split, direction {direction}", "",
             f"{int(first['n_queries'])} queries per run; {frame['run'].nunique()} runs under `{root}`.", "",
             "Mean rank of the gold among the top-M (lower is better; over the queries whose gold is in the "
             "top-M, count in brackets), the paper's metric:", "",
             "| method | " + " | ".join(f"M={m}" for m in mean_rank.columns) + " |",
             "|---|" + "---|" * len(mean_rank.columns)]
    for label in mean_rank.index:
        cells = [f"{mean_rank.loc[label, m]:.3f} ({int(n_in.loc[label, m])})" if pd.notna(mean_rank.loc[label, m])
                 else "-" for m in mean_rank.columns]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Time-aware filtered MRR over all candidates (does not depend on M for the base model; a "
              "reranker moves only the top-M):", "",
              "| method | " + " | ".join(f"M={m}" for m in mrr.columns) + " |", "|---|" + "---|" * len(mrr.columns)]
    for label in mrr.index:
        lines.append(f"| {label} | " + " | ".join(f"{v:.4f}" if pd.notna(v) else "-" for v in mrr.loc[label]) + " |")
    lines += ["", "![mean rank vs M](mean_rank_vs_m.png)", ""]
    _plot(mean_rank, root / "mean_rank_vs_m.png", f"{first['dataset']} ({direction}, {int(first['n_queries'])} queries)")
    out = root / "sweep.md"
    out.write_text("\n".join(lines), encoding="utf-8")
    return out


def _plot(mean_rank: pd.DataFrame, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label in mean_rank.index:
        series = mean_rank.loc[label].dropna()
        ax.plot(series.index.astype(int), series.to_numpy(), marker="o", label=label)
    ax.set_xlabel("M (candidates reranked)")
    ax.set_ylabel("mean rank of the gold in the top-M")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
