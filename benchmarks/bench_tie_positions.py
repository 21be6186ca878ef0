"""What average-position ties change in the paper's metric: each base row of the paper protocol (no-LLM and
LLM samples; the main job's base row is the no-LLM ICEWS14 object M=5 one), scored once, its mean rank in
the top-M with tied candidates at the listing's place (lower id first: the rule until 2026-12-04) and at
their average position (the rule since). Ranked rows are not recomputed here: their keys rarely tie.

    LAMP_DATA_DIR=/path/to/datasets python benchmarks/bench_tie_positions.py --artifacts /tmp/art

Writes ``benchmarks/results/tie_positions.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from bench_paper_protocol import CONFIGS, LLM_CONFIGS

OUT = Path(__file__).resolve().parent / "results" / "tie_positions.md"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--artifacts", default=os.path.expanduser("~/.cache/lamp/artifacts"))
    ap.add_argument("--runs", default="runs/tie_positions")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)

    import lamp
    from lamp.eval.metrics import mean_rank_top_m

    jobs = [(c, 200, 100, "no-LLM protocol") for c in CONFIGS] + [(c, 100, 50, "LLM protocol") for c in LLM_CONFIGS]
    lines = ["| config | sample | queries | gold in top-M | golds tied in the top-M | listing (lower id first) | "
             "average position | change |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for (label, dataset, task, m, base), n_test, n_valid, sample in jobs:
        res = lamp.run(dataset=dataset, task=task, directions="object", top_m=m, n_test_queries=n_test,
                       n_valid_queries=n_valid, seed=0, base_model=base, abducers=[], llm=None, ablations=[],
                       ranker=None, stages=("data", "base", "eval"),
                       run_dir=str(Path(args.runs) / f"{label.replace(' ', '_').replace('=', '')}_{n_test}"),
                       artifacts_dir=args.artifacts)
        table = res.methods[0].table
        pos = table.gold_position()
        hit = np.flatnonzero(pos >= 0)
        groups = table.tied()[hit]
        tied = int(((groups == groups[np.arange(len(hit)), pos[hit]][:, None]).sum(axis=1) > 1).sum())
        old, new = float((pos[hit] + 1).mean()), mean_rank_top_m(table).value
        lines.append(f"| {label} | {sample} | {n_test} | {len(hit)} | {tied} | {old:.4f} | {new:.4f} | "
                     f"{new - old:+.4f} |")
        print(lines[-1], flush=True)
    cmd = "python benchmarks/bench_tie_positions.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = "\n".join(["# Ties in the paper's metric: the listing's place vs the average position", "",
                      f"Command: `LAMP_DATA_DIR=... {cmd.strip()}`", "", __doc__.split("\n\n")[0].replace("\n", " "),
                      "Test split, seed 0, the object direction (the paper's), base model rows only.", "", *lines, ""])
    Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
