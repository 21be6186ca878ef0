"""Benchmark ``base:rules``: accuracy, speed and memory of rule mining and application.

Protocol (as TLogic and the recurrency baseline on these splits): rules mined on train, every
application threshold chosen on valid by MRR, then test scored once; object task, both directions
through inverse relations, single-step history, time-aware filtered ranks with the average tie rule
(``lamp.tpp.base.rank_candidates``). Each dataset runs in its own process so peak memory is its own.

    LAMP_DATA_DIR=/path/to/datasets python benchmarks/bench_rules.py --datasets icews14 icews18

Prints a markdown table and writes it to ``benchmarks/results/rules.md`` (with the exact command).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TLOGIC = {  # REFERENCE_RESULTS.md: TLogic's own code on these splits, 2-core machine, best-rank ties
    "icews14": [("TLogic, lengths 1 (measured)", ".4063", ".3107", ".4616", ".5878", "learn 7 min + apply 3 min"),
                ("TLogic, lengths 1-2 (measured)", ".4111", ".3121", ".4632", ".6015", "learn 7 min + apply 8.5 min"),
                ("TLogic, lengths 1-3 (published, recurrency paper)", ".425", "-", "-", ".603", "-")],
    "icews18": [("TLogic, lengths 1-3 (published, recurrency paper)", ".296", "-", "-", ".481", "-")],
}


class PeakRSS:
    """Polls this process's resident memory in a thread; ``stage()`` records the peak inside a block."""

    def __init__(self, every: float = 0.02) -> None:
        self.every, self.peak, self._stop = every, 0, False
        threading.Thread(target=self._poll, daemon=True).start()

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _poll(self) -> None:
        while not self._stop:
            self.peak = max(self.peak, self.rss())
            time.sleep(self.every)

    @contextmanager
    def stage(self, out: dict[str, Any], name: str) -> Iterator[None]:
        self.peak = self.rss()
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        out[f"{name}_s"] = round(time.perf_counter() - wall, 2)
        out[f"{name}_cpu_s"] = round(time.process_time() - cpu, 2)
        out[f"{name}_peak_gb"] = round(max(self.peak, self.rss()) / 2**30, 3)


def run_one(name: str, tune_queries: int | None, top_m: int) -> dict[str, Any]:
    """Mine, tune, score test for one dataset; returns a JSON-able result."""
    from lamp.data import load_dataset
    from lamp.data.queries import make_queries
    from lamp.rules import (
        MiningConfig,
        RuleApplier,
        TuningGrid,
        mine_rules,
        rank_metrics,
        select_params,
    )
    from lamp.tpp.base import rank_candidates
    from lamp.tpp.rules_model import RulesModel

    mem = PeakRSS()
    out: dict[str, Any] = {"dataset": name}
    log = load_dataset(name)
    valid = make_queries(log, "object", "valid", directions="both")
    test = make_queries(log, "object", "test", directions="both")
    from lamp.rules import _apply_kernels, _mine_kernels  # noqa: F401  (compile/load kernels outside timings)

    out["baseline_gb"] = round(mem.rss() / 2**30, 3)
    with mem.stage(out, "mining"):
        rules = mine_rules(log, MiningConfig())
    with mem.stage(out, "index"):
        applier = RuleApplier(rules, log)
    with mem.stage(out, "tuning"):
        params, rows = select_params(applier, valid, TuningGrid(max_queries=tune_queries))
    model = RulesModel(rules=rules, params=params, tune=False)
    model._applier = applier
    with mem.stage(out, "test"):
        table = rank_candidates(model, log, test, top_m)
    ranks = table.gold_rank_filtered
    direction = test.frame["direction"].to_numpy()
    out["metrics"] = {"both": rank_metrics(ranks), **{d: rank_metrics(ranks[direction == d]) for d in ("object", "subject")}}
    out["queries"] = {"valid_used": min(len(valid), tune_queries or len(valid)), "test": len(test)}
    used = applier.active([params])[0]
    out["rules"] = {**rules.counts(), "used": int(used.sum())}
    out["params"] = asdict(params)
    out["valid_mrr"] = max(r["mrr"] for r in rows)
    used_rules = applier.rules
    R, top, seen = log.num_relations, [], set()
    for i in used_rules.top(len(used_rules), min_support=500).tolist():
        h, b1, b2 = int(used_rules.head[i]), int(used_rules.body1[i]), int(used_rules.body2[i])
        twin = ((h + R) % (2 * R), (b1 + R) % (2 * R), -1) if b2 < 0 else None  # the same rule read backwards
        if used[i] and twin not in seen:
            seen.add((h, b1, b2))
            top.append(used_rules.verbalize(i, log))
    out["top_rules"] = top[:10]
    return out


def markdown(results: list[dict[str, Any]], command: str) -> str:
    lines = ["# base:rules: temporal rules mined on train, thresholds chosen on valid", "",
             f"Command: `{command}`", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
             f"load average at start {results[0].get('load', '?')} (other jobs shared the cores: CPU seconds "
             "are given next to wall seconds).", "",
             "Object task, both directions (inverse relations), single-step, time-aware filtered, "
             "**average tie rule**, all test queries. TLogic rows: its own code (REFERENCE_RESULTS.md), "
             "which gives ties the best rank and an unreached gold rank = number of entities.", "",
             "| data | method | MRR | H@1 | H@3 | H@10 | time |", "|---|---|---|---|---|---|---|"]
    for r in results:
        m = r["metrics"]
        total = r["mining_s"] + r["index_s"] + r["test_s"]
        for d in ("both", "object", "subject"):
            x = m[d]
            label = "base:rules (lamp, lengths 1-2)" + ("" if d == "both" else f", {d} queries only")
            tm = f"mine {r['mining_s']:.1f} s + apply {r['index_s'] + r['test_s']:.1f} s = {total:.1f} s" \
                if d == "both" else ""
            lines.append(f"| {r['dataset']} | {label} | {x['mrr']:.4f} | {x['hits@1']:.4f} | {x['hits@3']:.4f} | "
                         f"{x['hits@10']:.4f} | {tm} |")
        for row in TLOGIC.get(r["dataset"], []):
            lines.append(f"| {r['dataset']} | {row[0]} | {row[1]} | {row[2]} | {row[3]} | {row[4]} | {row[5]} |")
    lines += ["", "| data | mining s (CPU) | index s | tuning on valid s (CPU, queries) | test application s (CPU, "
              "queries) | mining + application s | peak RSS GB (mining / tuning / test) | rules mined (len 1 / 2) | "
              "rules used |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        total = r["mining_s"] + r["index_s"] + r["test_s"]
        lines.append(
            f"| {r['dataset']} | {r['mining_s']:.1f} ({r['mining_cpu_s']:.1f}) | {r['index_s']:.1f} | "
            f"{r['tuning_s']:.1f} ({r['tuning_cpu_s']:.1f}, {r['queries']['valid_used']}) | "
            f"{r['test_s']:.1f} ({r['test_cpu_s']:.1f}, {r['queries']['test']}) | {total:.1f} | "
            f"{r['mining_peak_gb']:.2f} / {r['tuning_peak_gb']:.2f} / {r['test_peak_gb']:.2f} | "
            f"{r['rules']['rules']} ({r['rules']['length_1']} / {r['rules']['length_2']}) | {r['rules']['used']} |")
    lines += ["", "Peak RSS is the whole process (Python, numpy, numba and the data included; "
              f"baseline after loading: {', '.join(str(r['baseline_gb']) + ' GB' for r in results)})."]
    for r in results:
        lines += ["", f"## {r['dataset']}: chosen on valid (MRR {r['valid_mrr']:.4f})", "",
                  "`" + json.dumps(r["params"]) + "`", "",
                  "Top 10 rules used with a rule support of at least 500, by confidence (`conf = rule support / "
                  "body support`, counted on train; a length-1 rule and its mirror `Y h X <= Y b X` listed once):",
                  ""]
        lines += [f"{i + 1}. {text}" for i, text in enumerate(r["top_rules"])]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["icews14", "icews18"])
    ap.add_argument("--tune-queries", type=int, default=10000, help="valid queries for the choice (0 = all)")
    ap.add_argument("--top-m", type=int, default=10)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "rules.md"))
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    tune = args.tune_queries or None
    if args.one:
        print(json.dumps(run_one(args.one, tune, args.top_m)))
        return
    results = []
    for name in args.datasets:
        load = f"{os.getloadavg()[0]:.1f}"
        cmd = [sys.executable, __file__, "--one", name, "--tune-queries", str(args.tune_queries), "--top-m", str(args.top_m)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        res["load"] = load
        results.append(res)
    command = "LAMP_DATA_DIR=<datasets folder> python benchmarks/bench_rules.py " + " ".join(sys.argv[1:])
    text = markdown(results, command)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
