"""Benchmark the heuristic base models (base:recurrency, base:frequency) on ICEWS14, ICEWS18 and the GDELT slice.

Object task (both directions through inverse relations), relation task and predicate task (20 CAMEO
roots), test split, single-step setting, time-aware filtered, average tie rule; hyperparameters are
chosen on valid. Every (dataset, model, task) runs in a fresh process, so wall time and peak memory
(ru_maxrss) are its own. Prints a markdown table and writes it to benchmarks/results/bench_base_models.md.

    LAMP_DATA_DIR=/path/to/datasets python benchmarks/bench_base_models.py
    python benchmarks/bench_base_models.py --datasets icews14 --models recurrency --tasks object
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
# (MRR, H@1, H@3, H@10, source), from /work/shared/REFERENCE_RESULTS.md
REFERENCE = {
    "icews14": [("recurrency baseline, authors' code (arbitrary ties; average-tie re-score .3739)", .3743, .2960, .4151, .5219,
                 "measured, same splits"),
                ("TLogic, rule lengths 1-2", .4111, .3121, .4632, .6015, "measured, same splits"),
                ("TLogic, lengths 1-3 (recurrency paper, Table 2)", .425, None, None, .603, "published, same splits")],
    "icews18": [("recurrency baseline, authors' code", .2880, .2090, .3241, .4378, "measured, same splits"),
                ("TLogic, lengths 1-3 (recurrency paper, Table 2)", .296, None, None, .481, "published, same splits"),
                ("RE-Net (TLogic paper, Table 1)", .2881, .1905, None, .4751, "published")],
    "gdelt": [],
}
PAPER_TOP_M = "LAMP paper (its own GDELT-2022 / ICEWS data, not comparable): GDELT object ANHP 2.901 / 5.098 / 8.937 " \
              "at M = 5 / 10 / 20; GDELT predicate ANHP 1.507 at M = 2 and 2.634 at M = 5; ICEWS predicate 3.340 at M = 5."


def run_job(dataset: str, model_name: str, task: str, top_m: int) -> dict[str, Any]:
    """Fit on valid, score test; returns metrics, timings and this process's peak memory."""
    import numpy as np

    from lamp.data import load_dataset
    from lamp.data.queries import make_queries
    from lamp.eval.metrics import mean_rank_top_m, metrics_rows
    from lamp.tpp.factory import build_base_model

    wall0, cpu0 = time.perf_counter(), time.process_time()
    log = load_dataset(dataset)
    if task == "predicate":
        try:
            from lamp.data.cameo import attach_cameo
        except ImportError:
            return {"skipped": "cameo mapping not available"}
        log = attach_cameo(log)
    directions = "both" if task == "object" else "object"
    valid = make_queries(log, task, "valid", directions=directions)
    test = make_queries(log, task, "test", directions=directions)
    t_load = time.perf_counter() - wall0
    model = build_base_model(model_name)
    t0 = time.perf_counter()
    report = model.fit(log, valid, valid)
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    table = model.score(log, test, top_m)
    t_score = time.perf_counter() - t0
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    rows = metrics_rows(table, dataset=dataset, task=task, split="test", method=table.method, n_boot=1000, seed=0)
    obj = np.flatnonzero(test.frame["direction"].to_numpy() == "object")
    sub_table = type(table)(table.method, test.take(obj), table.top_m, table.candidates[obj], table.scores[obj],
                            table.gold_rank_filtered[obj])
    ms = (5, 10, 20) if task == "object" else (2, 3, 4, 5)
    top = {m: mean_rank_top_m(sub_table, m).__dict__ for m in ms if m <= top_m}
    return {"dataset": dataset, "model": model_name, "task": task, "rows": rows, "top_m_object": top,
            "load_s": t_load, "fit_s": t_fit, "score_s": t_score, "wall_s": wall, "cpu_s": cpu,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "fit": {k: v for k, v in report.items() if k in ("valid_mrr", "groups_with_valid")},
            "n_test": len(test), "n_valid": len(valid)}


def fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return "nan" if x != x else f"{x:.{digits}f}"
    return str(x)


def render(results: list[dict[str, Any]], command: str, started: str, loads: tuple[str, str]) -> str:
    ok = [r for r in results if "rows" in r]
    lines = ["# Base models: recurrency and frequency baselines", "",
             f"Command: `{command}`  ", f"Run: {started}; {platform.platform()}, {os.cpu_count()} CPUs, "
             f"Python {platform.python_version()}; load average before / after: {loads[0]} / {loads[1]}.  ",
             "Protocol: test split, single-step (history = every event strictly before the query time), "
             "time-aware filtered, **average tie rule**; hyperparameters chosen on valid; 95% CIs by bootstrap "
             "over timestamps (1000 replicates, seed 0). Wall time includes loading the data and building the "
             "queries; CPU time is the process's user+system time (the machine is shared, so wall time varies).", ""]
    for task, title in (("object", "Object prediction, both directions (subject queries via inverse relations)"),
                        ("relation", "Relation prediction (s, ?, o, t)"),
                        ("predicate", "Predicate prediction (20 CAMEO roots) (s, ?, o, t)")):
        part = [r for r in ok if r["task"] == task]
        skipped = [r for r in results if r.get("task") == task and "skipped" in r]
        if not part and not skipped:
            continue
        lines += [f"## {title}", "",
                  "| dataset | method | MRR [95% CI] | H@1 | H@3 | H@10 | MRR by direction (obj / subj) | fit s | score s | "
                  "total wall s | CPU s | peak MB |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in part:
            by = {row["direction"]: row for row in r["rows"]}
            b = by["both"]
            dirs = " / ".join(fmt(by[d]["mrr_filtered"]) for d in ("object", "subject") if d in by)
            lines.append(f"| {r['dataset']} | {b['method']} | {fmt(b['mrr_filtered'])} [{fmt(b['mrr_filtered_ci_low'])}, "
                         f"{fmt(b['mrr_filtered_ci_high'])}] | {fmt(b['hits_at_1'])} | {fmt(b['hits_at_3'])} | "
                         f"{fmt(b['hits_at_10'])} | {dirs} | {fmt(r['fit_s'], 1)} | {fmt(r['score_s'], 1)} | "
                         f"{fmt(r['wall_s'], 1)} | {fmt(r['cpu_s'], 1)} | {fmt(r['peak_mb'], 0)} |")
        for r in skipped:
            lines.append(f"| {r['dataset']} | base:{r['model']} | skipped: {r['skipped']} | | | | | | | | | |")
        if task == "object":
            lines += ["", "References (same ICEWS splits and protocol unless noted):", "",
                      "| dataset | system | MRR | H@1 | H@3 | H@10 | source |", "|---|---|---|---|---|---|---|"]
            for ds in dict.fromkeys(r["dataset"] for r in part):
                for name, *vals, src in REFERENCE.get(ds, []):
                    lines.append(f"| {ds} | {name} | " + " | ".join(fmt(v) for v in vals) + f" | {src} |")
        lines += [""]
        ms = (5, 10, 20) if task == "object" else (2, 3, 4, 5)
        label = "object direction only (the paper's)" if task == "object" else "single direction"
        lines += [f"Paper's metric, mean rank of the gold in the top-M ({label}); in parentheses the number of "
                  "queries whose gold is in the top-M, of all:", "",
                  "| dataset | method | " + " | ".join(f"M={m}" for m in ms) + " |", "|---|---|" + "---|" * len(ms)]
        for r in part:
            cells = [f"{fmt(v['value'], 3)} ({v['n_gold_in_top_m']}/{v['n_queries']})"
                     for m, v in sorted(r["top_m_object"].items(), key=lambda kv: int(kv[0]))]
            lines.append(f"| {r['dataset']} | base:{r['model']} | " + " | ".join(cells) + " |")
        lines += [""]
    lines += [PAPER_TOP_M, ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["icews14", "icews18", "gdelt"])
    ap.add_argument("--models", nargs="+", default=["recurrency", "frequency"])
    ap.add_argument("--tasks", nargs="+", default=["object", "relation", "predicate"])
    ap.add_argument("--top-m", type=int, default=20)
    ap.add_argument("--out", default=str(RESULTS / "bench_base_models.md"))
    ap.add_argument("--job", nargs=3, metavar=("DATASET", "MODEL", "TASK"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.job:
        dataset, model, task = args.job
        print(json.dumps(run_job(dataset, model, task, top_m=args.top_m), default=float))
        return
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__), *sys.argv[1:]])
    if os.environ.get("LAMP_DATA_DIR"):
        command = f"LAMP_DATA_DIR={os.environ['LAMP_DATA_DIR']} {command}"
    started = time.strftime("%Y-%m-%d %H:%M")
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    results = []
    for task in args.tasks:
        for dataset in args.datasets:
            for model in args.models:
                proc = subprocess.run([sys.executable, __file__, "--job", dataset, model, task, "--top-m", str(args.top_m)],
                                      capture_output=True, text=True, check=False)
                if proc.returncode != 0:
                    results.append({"dataset": dataset, "model": model, "task": task,
                                    "skipped": f"failed: {proc.stderr.strip().splitlines()[-1:]}"})
                    continue
                res = json.loads(proc.stdout.strip().splitlines()[-1])
                res.setdefault("dataset", dataset)
                res.setdefault("model", model)
                res.setdefault("task", task)
                results.append(res)
                print(f"{task} {dataset} {model}: " + (res.get("skipped") or
                      f"MRR {res['rows'][-1]['mrr_filtered']:.4f} wall {res['wall_s']:.1f}s peak {res['peak_mb']:.0f}MB"),
                      file=sys.stderr)
    text = render(results, command, started, (load_before, " ".join(f"{x:.1f}" for x in os.getloadavg())))
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
