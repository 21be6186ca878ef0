"""The paper's protocol without an LLM: mean rank in the top-M and filtered MRR, with paired bootstrap
tests of every lamp variant against its base model, on ICEWS14, ICEWS18, the GDELT slice and Amazon.

Run (each configuration is one ``lamp.run``; stages are cached under ``--artifacts``)::

    export LAMP_DATA_DIR=/path/to/datasets HF_HUB_OFFLINE=1
    python benchmarks/bench_paper_protocol.py                       # every configuration below
    python benchmarks/bench_paper_protocol.py --only icews14        # a subset (substring of the label)

Configurations (the query sample size is fixed here, before any result is seen: ``--queries``
test queries and ``--valid`` valid queries per run, seed 0):

- ICEWS14 and ICEWS18, task object (the paper's direction), M = 5, 10, 20;
- GDELT slice, task relation (the paper's "predicate") at M = 2, 5 and object at M = 5, 10, 20;
- Amazon (instruments), task type at M = 5.

Methods in each run: ``base:recurrency`` (``base:frequency`` for Amazon), ``lamp[rules]`` and
``lamp[rules,no_ranker]`` (mined rules abduce, fuzzy retrieval, energy ranker trained on valid),
and the retrieval ablations ``random`` and ``recent``. Amazon reviews have no objects, so no
temporal rules: there only the base model and the ablations (evidence without abduction + ranker). No LLM: the LLM rows of the paper are
compared in the main job (``benchmarks/results/main_job.md``); the paper's own numbers sit beside
ours, labelled as different data where they are (``../shared/REFERENCE_RESULTS.md``).

With ``--llm`` the lamp rows use the embedded local LLM instead (``lamp[llm]`` and ``lamp[llm,no_ranker]``:
the main job's abducer settings, conf/abducer/llm.yaml, with the dataset family's prompt; hybrid
retrieval), on the configurations ``LLM_CONFIGS`` (the paper's, but the main job's ICEWS14 object M=5) and a
smaller fixed sample (``--queries 100 --valid 50``: 150 LLM calls per configuration). LLM answers are
cached, so a killed run resumes without repeating its calls. Written to ``paper_protocol_llm.md``::

    python benchmarks/bench_paper_protocol.py --llm --queries 100 --valid 50 --workers 2

Spread over seeds (``--seeds 0,1,2``): each configuration is run once per seed, the seed drawing both
the query samples (test and valid) and the ranker's initial weights and batches (``lamp.run(seed=...)``).
The reported row is the first seed's (bootstrap interval and paired test); beside it, mean +- standard
deviation over the seeds of the mean rank, the MRR and the paired rank difference to the base model
(``benchmarks/seed_spread.py``). It works the same with ``--llm`` (three seeds cost three times the LLM
calls: ``--queries 100 --valid 50 --seeds 0,1,2`` is 450 calls per configuration)::

    python benchmarks/bench_paper_protocol.py --seeds 0,1,2
    python benchmarks/bench_paper_protocol.py --llm --queries 100 --valid 50 --workers 2 --seeds 0,1,2

A configuration a component does not support is reported as such in the table, never dropped.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from seed_spread import parse_seeds, spread_columns

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "paper_protocol.md"
OUT_LLM = ROOT / "benchmarks" / "results" / "paper_protocol_llm.md"

# (label, dataset, task, M, base model)
CONFIGS = [(f"{d} object M={m}", d, "object", m, "recurrency") for d in ("icews14", "icews18") for m in (5, 10, 20)]
CONFIGS += [(f"gdelt relation M={m}", "gdelt", "relation", m, "recurrency") for m in (2, 5)]
CONFIGS += [(f"gdelt object M={m}", "gdelt", "object", m, "recurrency") for m in (5, 10, 20)]
CONFIGS += [("amazon-instruments type M=5", "amazon-instruments", "type", 5, "frequency")]

# The paper's numbers (mean rank in the top-M; its own GDELT-2022 / Amazon-clothing / ICEWS data).
PAPER = {
    ("gdelt", "relation", 2): "ANHP 1.507; +GPT-3.5 1.415 (paper's GDELT-2022, predicate)",
    ("gdelt", "relation", 5): "ANHP 2.634; +GPT-3.5 2.401 (paper's GDELT-2022, predicate)",
    ("gdelt", "object", 5): "ANHP 2.901; +GPT-3.5 2.292 (paper's GDELT-2022)",
    ("gdelt", "object", 10): "ANHP 5.098; +GPT-3.5 3.702 (paper's GDELT-2022)",
    ("gdelt", "object", 20): "ANHP 8.937; +GPT-3.5 5.550 (paper's GDELT-2022)",
    ("icews14", "object", 10): "ANHP 9.922; +GPT-3.5 6.943 (paper's ICEWS; its CSVs are suspect)",
    ("icews18", "object", 10): "ANHP 9.922; +GPT-3.5 6.943 (paper's ICEWS; its CSVs are suspect)",
    ("amazon-instruments", "type", 5): "ANHP 2.150; +GPT-3.5 2.060 (paper's Amazon clothing)",
}
METHODS = ("lamp[rules]", "lamp[rules,no_ranker]", "ablation:random", "ablation:recent")
LLM_CONFIGS = [("gdelt object M=5", "gdelt", "object", 5, "recurrency"),
               ("gdelt relation M=5", "gdelt", "relation", 5, "recurrency"),
               ("amazon-instruments type M=5", "amazon-instruments", "type", 5, "frequency"),
               ("icews18 object M=5", "icews18", "object", 5, "recurrency"),
               ("gdelt object M=10", "gdelt", "object", 10, "recurrency"),
               ("gdelt relation M=2", "gdelt", "relation", 2, "recurrency"),
               ("icews14 object M=10", "icews14", "object", 10, "recurrency"),
               ("icews18 object M=10", "icews18", "object", 10, "recurrency"),
               ("gdelt object M=20", "gdelt", "object", 20, "recurrency"),
               ("icews14 object M=20", "icews14", "object", 20, "recurrency"),
               ("icews18 object M=20", "icews18", "object", 20, "recurrency")]
REUSED: set[str] = set()  # configurations whose LLM abduction came from an earlier run (--llm)
USAGE: list[str] = []  # LLM usage per configuration (--llm)
SHARE: dict[str, float] = {}  # share of the run's stage wall time outside the LLM stages (--llm, when it ran)
COSTS: dict[str, tuple[float, float]] = {}  # (stage wall time, LLM stage time) in s, where the LLM stage ran
LLM_METHODS = ("lamp[llm]", "lamp[llm,no_ranker]", "ablation:random", "ablation:recent")


def llm_abducer() -> dict[str, Any]:
    """The main job's LLM abducer settings (conf/abducer/llm.yaml) with the dataset family's prompt."""
    import yaml

    params = yaml.safe_load((ROOT / "conf" / "abducer" / "llm.yaml").read_text(encoding="utf-8"))
    params["prompt"] = None  # lamp picks the dataset family's prompt (conf/prompt/gdelt.yaml, amazon.yaml)
    return params


def _reused(r: dict[str, Any] | None) -> str:
    if not r:
        return ""
    return (f" (abduction reused from an earlier run of this command, which paid {r['calls']:g} calls + "
            f"{r['cache_hits']:g} cache hits, {r['prompt_tokens']:,.0f} prompt + {r['completion_tokens']:,.0f} "
            "completion tokens)")


def run_one(label: str, dataset: str, task: str, m: int, base: str, args: argparse.Namespace,
            seed: int = 0) -> list[dict[str, Any]]:
    import lamp
    from lamp.eval.metrics import paired_difference

    t0 = time.perf_counter()
    abducers: list[Any] = [] if dataset.startswith("amazon") else ["rules"]  # rules need (s, r, o) events
    llm: dict[str, Any] | None = None
    retriever: dict[str, Any] = {"name": "fuzzy", "max_pool": 200}
    if args.llm:
        abducers = [llm_abducer()]
        llm = {"kind": "local", "packaged": "smollm2", "workers": args.workers, "n_threads": 1,
               "budget": {"max_calls": args.queries + args.valid}}
        retriever = {"name": "hybrid"}
    result = lamp.run(dataset=dataset, task=task, directions="object", top_m=m, n_test_queries=args.queries,
                      n_valid_queries=args.valid, seed=seed, base_model=base, abducers=abducers, llm=llm,
                      retriever=retriever, ablations=["random", "recent"],
                      run_dir=str(Path(args.runs) / (label.replace(" ", "_").replace("=", "") + (f"_seed{seed}" if seed else ""))),
                      artifacts_dir=args.artifacts)
    seconds = time.perf_counter() - t0
    if result.cost.get("outside_llm_share") is not None:
        SHARE[label] = result.cost["outside_llm_share"]
        COSTS[label] = (float(result.cost["wall_time_s"]), float(result.cost["llm_stage_s"]))
    u = result.llm_usage or {}
    if args.llm:
        USAGE.append(f"{label}: {u.get('calls', 0)} calls + {u.get('cache_hits', 0)} cache hits, "
                     f"{u.get('prompt_tokens', 0):,} prompt + {u.get('completion_tokens', 0):,} completion tokens, "
                     f"{u.get('failures', 0)} failures, model {u.get('model', '?')}"
                     + _reused(u.get("reused_from_artifacts")))
        if u.get("reused_from_artifacts"):
            REUSED.add(label)
    tables = {r.method: r.table for r in result.methods}
    base_name = f"base:{base}"
    rows = []
    for r in result.metrics:
        methods = LLM_METHODS if args.llm else METHODS
        if r["direction"] != "object" or r["method"] not in (base_name, *methods):  # the paper's direction
            continue
        row = {"config": label, "method": r["method"], "seed": seed, "n_queries": r["n_queries"],
               "n_gold_in_top_m": r["n_gold_in_top_m"], "mean_rank_top_m": r["mean_rank_top_m"],
               "mrr_filtered": r["mrr_filtered"], "mrr_ci": f"[{r['mrr_filtered_ci_low']:.3f}, {r['mrr_filtered_ci_high']:.3f}]",
               "vs_base": "", "seconds": seconds, "paper": PAPER.get((dataset, task, m), ""),
               "ranker_queries": _ranker_queries(r)}
        if r["method"] != base_name and r["method"] in tables and base_name in tables:
            mr = paired_difference(tables[r["method"]], tables[base_name], "mean_rank_top_m", seed=0)
            mrr = paired_difference(tables[r["method"]], tables[base_name], "mrr_filtered", seed=0)
            row["vs_base"] = (f"rank {mr.diff:+.3f} [{mr.ci_low:+.3f}, {mr.ci_high:+.3f}] p={mr.p_value:.2f}; "
                              f"MRR {mrr.diff:+.4f} p={mrr.p_value:.2f}")
            row["rank_diff"] = mr.diff
        rows.append(row)
    return rows


def _ranker_queries(row: dict[str, Any]) -> str:
    """The valid queries a ranked row's ranker learned from: train + early-stop parts with the gold in the
    top-M, of the sampled valid queries (the others cannot train a softmax over the top-M)."""
    if "ranker_train_used" not in row:
        return "base order kept" if "ranker_fallback" in row else ""
    return f"{row['ranker_train_used']} + {row['ranker_stop_used']} of {row.get('ranker_valid_examples', row.get('ranker_valid_queries'))}"


def overall_share() -> str:
    """The share outside the LLM stages over every configuration whose LLM stage ran in this invocation."""
    total = sum(t for t, _ in COSTS.values())
    llm = sum(x for _, x in COSTS.values())
    return (f"Over the {len(COSTS)} configurations whose LLM stage ran here: {total:.0f} s of stage wall time, "
            f"{llm:.0f} s in the LLM stages, {100 * (total - llm) / total:.1f}% outside them "
            "(the embedding cache starts as the command finds it: one-time embedding passes are included).")


COLUMNS = ["config", "method", "n_queries", "n_gold_in_top_m", "mean_rank_top_m", "mrr_filtered", "mrr_ci",
           "vs_base", "ranker_queries", "paper"]
SPREAD = {"mean_rank_top_m": "mean rank over seeds", "mrr_filtered": "MRR over seeds",
          "rank_diff": "rank vs base over seeds"}


def table(rows: list[dict[str, Any]]) -> str:
    def fmt(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    seeds = {r.get("seed", 0) for r in rows if "seed" in r}
    if len(seeds) > 1:
        rows = spread_columns(rows, SPREAD, ("config", "method"))
    cols = COLUMNS[:8] + (list(SPREAD.values()) if len(seeds) > 1 else []) + COLUMNS[8:]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queries", type=int, default=200, help="test queries per run (fixed before the results)")
    ap.add_argument("--valid", type=int, default=100, help="valid queries per run (train the ranker)")
    ap.add_argument("--only", default="", help="run the configurations whose label contains one of these "
                    "comma-separated texts (e.g. 'relation M=2,object M=10')")
    ap.add_argument("--runs", default="runs/paper_protocol")
    ap.add_argument("--artifacts", default=os.path.expanduser("~/.cache/lamp/artifacts"))
    ap.add_argument("--out", default=None, help=f"default {OUT.name}, or {OUT_LLM.name} with --llm")
    ap.add_argument("--llm", action="store_true", help="lamp rows with the embedded local LLM (LLM_CONFIGS)")
    ap.add_argument("--workers", type=int, default=2, help="local LLM worker processes (1 thread each)")
    ap.add_argument("--seeds", default="0", help="run each configuration once per seed (query samples and ranker), "
                    "e.g. 0,1,2: mean +- std over the seeds beside the first seed's bootstrap interval")
    args = ap.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    args.out = args.out or str(OUT_LLM if args.llm else OUT)
    rows: list[dict[str, Any]] = []
    timings = []
    for label, dataset, task, m, base in (LLM_CONFIGS if args.llm else CONFIGS):
        if args.only and not any(part.strip() and part.strip() in label for part in args.only.split(",")):
            continue
        t0 = time.perf_counter()
        for seed in seeds:
            try:
                rows += run_one(label, dataset, task, m, base, args, seed)
            except Exception as exc:  # reported in the table, never dropped
                traceback.print_exc()
                rows.append({"config": label, "method": "(not run)", "seed": seed,
                             "vs_base": f"seed {seed}: {type(exc).__name__}: {exc}"[:200]})
        timings.append(f"{label}: {time.perf_counter() - t0:.0f} s"
                       + (" (LLM abduction reused from an earlier run)" if label in REUSED else "")
                       + (f", {100 * SHARE[label]:.1f}% outside the LLM stage" if label in SHARE else ""))
        print(table(rows), flush=True)
        if COSTS:
            print(overall_share(), flush=True)
    cmd = "python benchmarks/bench_paper_protocol.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    if args.llm:
        title = "# The paper's protocol with the embedded local LLM"
        method = ("Abducer: the local LLM (SmolLM2-135M-Instruct, llama.cpp; batched, constrained, 2 causes per "
                  "candidate, 4 train demonstrations; the dataset family's prompt); retriever: hybrid (dense "
                  "all-MiniLM-L6-v2 + rapidfuzz ratio). LLM usage: " + "; ".join(USAGE) + ". SmolLM2 was trained "
                  "after these events: possible pre-training leakage.")
    else:
        title = "# The paper's protocol without an LLM"
        method = ("Abducer: mined rules (train split); retriever: fuzzy (rapidfuzz ratio, 200 most recent events "
                  "per entity); no LLM.")
    text = "\n".join([
        title, "",
        f"Command: `LAMP_DATA_DIR=... HF_HUB_OFFLINE=1 {cmd.strip()}`", "",
        f"Test split, a seeded sample of {args.queries} queries per run (object direction; fixed before the run), "
        f"ranker trained on a seeded sample of {args.valid} valid queries, of which it learns from those with the "
        "gold in the base top-M (ranker_queries: the first 2/3 by time that train it + the last 1/3 that "
        f"early-stop it and choose w, of the sample). {method} mean_rank_top_m: the paper's metric, the "
        "mean position of the gold among the top-M over the n_gold_in_top_m queries whose gold is there (tied "
        "candidates at their average position, so a tie favours no class); "
        "mrr_filtered: time-aware filtered MRR over all candidates (95% bootstrap CI grouped by timestamp). "
        "vs_base: paired bootstrap of the difference to the base model on the same queries (mean rank over "
        "the queries with the gold in both top-Ms; negative is better), with its 95% interval and p-value. "
        "paper: the LAMP paper's numbers, on its own data (labelled)."
        + (f" Seeds {', '.join(map(str, seeds))}: each configuration was run once per seed (the seed draws the test "
           "and valid samples and the ranker's initialisation and batches); the row is seed "
           f"{min(seeds)}'s, and the 'over seeds' columns give mean +- standard deviation (ddof 1; number of "
           "seeds) of the mean rank, the MRR and the paired rank difference to the base model over all seeds."
           if len(seeds) > 1 else ""),
        f"Machine: {platform.machine()}, {os.cpu_count()} cores; wall time per configuration: "
        + "; ".join(timings) + "." + (" " + overall_share() if COSTS else ""), "",
        table(rows), "",
    ])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
