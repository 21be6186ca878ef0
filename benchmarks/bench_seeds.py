"""The spread of a ``lamp run`` over seeds: the main job (or any configuration) once per seed, and per
method the mean +- standard deviation over the seeds beside the first seed's bootstrap interval.

``queries.seed`` draws the test and valid query samples and seeds the ranker's training, so the spread
covers both (the base model's own fit does not depend on it). Every other setting is the command line's
Hydra overrides, the same for every seed::

    export LAMP_DATA_DIR=/path/to/datasets HF_HUB_OFFLINE=1
    python benchmarks/bench_seeds.py --seeds 0,1,2                                   # the main job (LLM)
    python benchmarks/bench_seeds.py --seeds 0,1,2 --out /tmp/rules.md experiment=rules_only

Each seed's run lands in ``--runs/seed<k>`` (report, metrics.json, cost.json as usual); artifacts and
LLM answers are cached as for any run, so a killed sweep resumes. Writes ``benchmarks/results/main_job_seeds.md``
by default, with the exact command.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from seed_spread import parse_seeds, spread_columns

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "main_job_seeds.md"
SPREAD = {"mean_rank_top_m": "mean rank over seeds", "mrr_filtered": "MRR over seeds",
          "hits_at_1": "Hits@1 over seeds"}


def run_seed(seed: int, overrides: list[str], runs: Path) -> list[dict[str, Any]]:
    """One ``lamp run`` with ``queries.seed=<seed>``; its metric rows."""
    from lamp.cli.main import main as lamp_main

    run_dir = runs / f"seed{seed}"
    code = lamp_main(["run", f"queries.seed={seed}", f"hydra.run.dir={run_dir}", *overrides])
    if code != 0:
        raise SystemExit(f"lamp run failed for seed {seed} (exit code {code}); see {run_dir}")
    rows: list[dict[str, Any]] = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    return [{**r, "seed": seed} for r in rows]


def table(rows: list[dict[str, Any]], direction: str) -> str:
    rows = spread_columns([r for r in rows if r["direction"] == direction], SPREAD, ("method",))
    cols = ["method", "n_queries", "n_gold_in_top_m", "mean_rank_top_m", "mrr_filtered", "mrr_ci", *SPREAD.values(),
            "ranker_queries"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        r = {**r, "mrr_ci": f"[{r['mrr_filtered_ci_low']:.3f}, {r['mrr_filtered_ci_high']:.3f}]",
             "ranker_queries": (f"{r['ranker_train_used']} + {r['ranker_stop_used']} of {r.get('ranker_valid_examples', r.get('ranker_valid_queries'))}"
                                if "ranker_train_used" in r else "")}
        lines.append("| " + " | ".join(f"{r[c]:.4f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (queries.seed), at least 3 for a spread")
    ap.add_argument("--runs", default="runs/seeds", help="one run folder per seed below this")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("overrides", nargs="*", help="Hydra overrides for every run (e.g. experiment=rules_only)")
    args = ap.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    t0 = time.perf_counter()
    rows = [r for s in seeds for r in run_seed(s, args.overrides, Path(args.runs))]
    direction = str(rows[0]["direction"])
    first = rows[0]
    cmd = "python benchmarks/bench_seeds.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None
                                                                                   else sys.argv[1:]))
    text = "\n".join([
        f"# `lamp run` over seeds {', '.join(map(str, seeds))}: {first['dataset']}, task {first['task']}, "
        f"M={first['top_m']}", "",
        f"Command: `LAMP_DATA_DIR=... HF_HUB_OFFLINE=1 {cmd.strip()}`", "",
        f"Direction {direction}; each row is seed {min(seeds)}'s run (its 95% bootstrap interval over timestamps); "
        "the 'over seeds' columns give mean +- standard deviation (ddof 1; number of seeds) over the runs with "
        "queries.seed = each seed, which draws the test and valid samples and seeds the ranker. ranker_queries: "
        "the valid queries the ranker learned from (gold in the top-M: train + early-stop parts, of the sample). "
        f"Wall time {time.perf_counter() - t0:.0f} s.", "",
        table(rows, direction), ""])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
