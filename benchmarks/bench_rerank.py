"""The ranking stage against its base models (issue 17): one command, a table in benchmarks/results/ranker.md.

    LAMP_DATA_DIR=../shared/datasets python benchmarks/bench_rerank.py --base-dir /tmp/bases \
        [--datasets icews14,gdelt,icews18] [--rankers lightgbm,energy] [--m-grid 5,10,20] [--n-test-icews18 10000]

Per dataset (object task, both directions, time-aware filtered, average ties), all from the library:

1. base models recurrency, rules and KE-ANHP fitted on train (valid for selection) or loaded from
   ``--base-dir`` (``benchmarks/fit_bases.py``; a missing KE-ANHP checkpoint is fitted here);
   the strongest base is the one with the best valid MRR (never test).
2. for base = recurrency and the strongest base: the top-M of every valid and test query, the rules
   abducer's evidence of each candidate (the same rows and scores as abducer + retriever,
   :func:`lamp.abduce.rules.evidence.rule_evidence`), and for the ensemble the other bases' scores.
3. M chosen on the held-out last third of valid (filtered MRR over all candidates) from ``--m-grid``;
   then every method on test: base, lamp[rules,no_ranker], lamp[rules] with each ranker,
   lamp[rules,ensemble] (LightGBM with the other bases' scores), and the ranker without evidence
   features; paired bootstrap (timestamps, 1000 replicates) against the base and against no_ranker.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fit_bases import checkpoint_dir, fit_or_load  # noqa: E402

from lamp.abduce.rules import RulesAbducer  # noqa: E402
from lamp.abduce.rules.evidence import rule_evidence  # noqa: E402
from lamp.data import load_dataset  # noqa: E402
from lamp.data.queries import QuerySet, make_queries  # noqa: E402
from lamp.eval.metrics import apply_reorder, metrics_rows, paired_difference  # noqa: E402
from lamp.pipeline.stages import abduction_requests, no_ranker_order  # noqa: E402
from lamp.rank.features import candidate_scores  # noqa: E402
from lamp.rank.rerank import rerank_top_m  # noqa: E402
from lamp.tpp.base import CandidateTable  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "ranker.md"
logger = logging.getLogger("bench_rerank")
BASES = ("recurrency", "rules", "ke_anhp")
RULES = RulesAbducer()  # default mining and application settings (conf/abducer/rules.yaml)


def top(table: CandidateTable, m: int) -> CandidateTable:
    return CandidateTable(table.method, table.queries, m, table.candidates[:, :m], table.scores[:, :m],
                          table.gold_rank_filtered)


def evidence_top(table: CandidateTable, evidence: list[Any], m: int) -> list[Any]:
    keep = {(int(q), int(c)) for q, row in zip(table.queries.frame["query_id"], table.candidates[:, :m], strict=True)
            for c in row}
    return [e for e in evidence if (int(e.query_id), int(e.candidate)) in keep]


def stop_mrr(table: CandidateTable, out: Any, fraction: float) -> float:
    """Filtered MRR over all candidates on the held-out part of valid, as reordered by ``out``."""
    from lamp.rank.rerank import split_positions

    _, stop = split_positions(table, fraction)
    sub = CandidateTable(table.method, table.queries.take(stop), table.top_m, table.candidates[stop],
                         table.scores[stop], table.gold_rank_filtered[stop])
    reordered = apply_reorder(sub, out.stop_order, tie_keys=out.stop_final)
    return float(np.mean(1.0 / reordered.gold_rank_filtered))


def cached_rule_evidence(log: Any, requests: list[Any], cache: dict[tuple[int, int], Any]) -> list[Any]:
    """Rule evidence of each request; (query, candidate) pairs already seen (another base's top-M) are reused."""
    todo = [r for r in requests if (r.query_id, r.candidate) not in cache]
    for req, ev in zip(todo, rule_evidence(log, RULES, todo), strict=True):
        cache[(req.query_id, req.candidate)] = ev
    return [cache[(r.query_id, r.candidate)] for r in requests]


def run_base(dataset: str, log: Any, base_name: str, models: dict[str, Any], q: dict[str, QuerySet],
             args: argparse.Namespace, cache: dict[str, dict[tuple[int, int], Any]]) -> dict[str, Any]:
    m_max = max(args.m_grid)
    t0 = time.perf_counter()
    full = {s: models[base_name].score(log, q[s], m_max) for s in ("valid", "test")}
    evid = {s: cached_rule_evidence(log, abduction_requests(log, full[s]), cache[s]) for s in ("valid", "test")}
    t_evid = time.perf_counter() - t0
    t0 = time.perf_counter()
    others = [n for n in models if n != base_name]
    ens = {s: {n: candidate_scores(models[n], log, q[s], full[s].candidates) for n in others} for s in ("valid", "test")}
    t_ens = time.perf_counter() - t0
    logger.info("%s base:%s: top-%d + rule evidence %.1f s, ensemble scores %.1f s", dataset, base_name, m_max,
                t_evid, t_ens)
    # M on valid: the held-out part's filtered MRR over all candidates, LightGBM with the rule evidence
    choice = {}
    for m in args.m_grid:
        tabs = {s: top(full[s], m) for s in full}
        ev = {s: evidence_top(full[s], evid[s], m) for s in full}
        out = rerank_top_m(log, tabs, ev, ranker="lightgbm", seed=args.seed)
        choice[m] = stop_mrr(tabs["valid"], out, 2 / 3)
    m = max(choice, key=lambda k: (choice[k], -k))
    logger.info("%s base:%s: M chosen on valid %d (%s)", dataset, base_name, m, choice)
    tabs = {s: top(full[s], m) for s in full}
    ev = {s: evidence_top(full[s], evid[s], m) for s in full}
    ens_m = {s: {n: (a[:, :m], b[:, :m]) for n, (a, b) in ens[s].items()} for s in ens}
    test = tabs["test"]
    methods: dict[str, CandidateTable] = {f"base:{base_name}": test}
    order, keys = no_ranker_order(test, ev["test"])
    methods["lamp[rules,no_ranker]"] = apply_reorder(test, order, "lamp[rules,no_ranker]", tie_keys=keys)
    infos: dict[str, Any] = {}
    rankers = [r for r in args.rankers if r != "energy" or dataset in args.energy_datasets.split(",")]
    energy = {"epochs": args.energy_epochs, "patience": 2, "max_evidence": args.energy_max_evidence}
    variants = [(f"lamp[rules] ({r})", {"ranker": r, **(energy if r == "energy" else {})}) for r in rankers]
    variants += [("lamp[rules,ensemble] (lightgbm)", {"ranker": "lightgbm", "ensemble": ens_m})]
    if args.no_evidence_variant:
        variants += [("ranker without evidence (lightgbm)", {"ranker": "lightgbm", "use_evidence": False})]
    for name, kw in variants:
        out = rerank_top_m(log, tabs, ev, seed=args.seed, **kw)
        methods[name] = apply_reorder(test, out.order, name, tie_keys=out.tie_keys)
        infos[name] = {k: v for k, v in out.info.items() if k not in ("features", "weight_grid")}
        infos[name]["stop_mrr_full"] = stop_mrr(tabs["valid"], out, 2 / 3)
    rows = []
    base_t, norank = methods[f"base:{base_name}"], methods["lamp[rules,no_ranker]"]
    for name, table in methods.items():
        r = metrics_rows(table, dataset=dataset, task="object", split="test", method=name, n_boot=1000)
        row: dict[str, Any] = {"method": name, "dir": {x["direction"]: x for x in r}}
        if name != f"base:{base_name}":
            row["vs_base"] = paired_difference(table, base_t, n_boot=1000)
        if name.startswith("lamp[rules]") or name.startswith("lamp[rules,ens") or name.startswith("ranker"):
            row["vs_no_ranker"] = paired_difference(table, norank, n_boot=1000)
        rows.append(row)
    return {"base": base_name, "m": m, "m_choice": choice, "rows": rows, "infos": infos,
            "n_valid": len(q["valid"]), "n_test": len(q["test"]), "evidence_seconds": t_evid,
            "ensemble_seconds": t_ens}


def run_dataset(dataset: str, args: argparse.Namespace) -> dict[str, Any]:
    log = load_dataset(dataset)
    q = {s: make_queries(log, "object", s, directions="both") for s in ("train", "valid", "test")}
    n_test = args.n_test_icews18 if dataset == "icews18" else None
    n_valid = args.n_valid_icews18 if dataset == "icews18" else None
    q["test"] = q["test"].sample(n_test, seed=args.seed)
    q["valid"] = q["valid"].sample(n_valid, seed=args.seed)
    models, valid_mrr, fit = {}, {}, {}
    for name in BASES:
        if name == "ke_anhp" and not args.fit_ke_anhp and \
                not (checkpoint_dir(args.base_dir, log.name, name) / "checkpoint.json").is_file():
            logger.warning("%s: no KE-ANHP checkpoint in %s and --fit-ke-anhp not given: left out", dataset,
                           args.base_dir)
            continue
        t0 = time.perf_counter()
        models[name], report = fit_or_load(name, log, q["train"], make_queries(log, "object", "valid",
                                                                                directions="both"), args.base_dir)
        fit[name] = {"seconds": time.perf_counter() - t0, "loaded": "loaded" in report,
                     "best_epoch": report.get("best_epoch")}
        valid_mrr[name] = float(np.mean(1.0 / models[name].score(log, q["valid"], 1).gold_rank_filtered))
    strongest = max(valid_mrr, key=lambda k: valid_mrr[k])
    logger.info("%s: valid MRR %s, strongest %s", dataset, valid_mrr, strongest)
    bases = ["recurrency"] + ([strongest] if strongest != "recurrency" else [])
    if args.bases != "both":  # one of the two (a run per base can go in parallel; --merge joins them)
        bases = [b for b in bases if (b == "recurrency") == (args.bases == "recurrency")]
    cache: dict[str, dict[tuple[int, int], Any]] = {"valid": {}, "test": {}}
    return {"dataset": dataset, "valid_mrr": valid_mrr, "strongest": strongest, "fit": fit,
            "results": [run_base(dataset, log, b, models, q, args, cache) for b in bases]}


# -- report ---------------------------------------------------------------------------------------------
def f4(x: Any) -> str:
    return "-" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.4f}"


def render(results: list[dict[str, Any]], command: str, started: str, loads: tuple[str, str]) -> str:
    out = ["# The ranking stage against its base models (issue 17)", "",
           f"Command: `{command}`  ", f"Run: {started}; {platform.platform()}, {os.cpu_count()} CPUs, Python "
           f"{platform.python_version()}; load average before / after: {loads[0]} / {loads[1]} (shared machine).  ",
           "Protocol: object task, both directions, test split, single-step (history = every event strictly before "
           "the query time), time-aware filtered MRR / Hits over the FULL candidate set, **average tie rule**; the "
           "ranker reorders the base top-M and the rest keep the base order. Models, M, the ranker and its "
           "combination weight are chosen on valid (first 2/3 by time trains, last 1/3 early-stops and chooses; "
           "the LightGBM ranker is then boosted again on all of valid, its rounds scaled by the queries added); "
           "test is touched once. Paired bootstrap over timestamps (1000 replicates): difference in MRR and "
           "two-sided p-value. Evidence: the rules abducer (rule body events before the query time).", ""]
    for res in results:
        ds = res["dataset"]
        out += [f"## {ds}", "", "Valid MRR of the base models (chooses the strongest): " +
                ", ".join(f"{k} {v:.4f}" for k, v in res["valid_mrr"].items()) + f"; strongest: **{res['strongest']}**. "
                "Fit: " + ", ".join(f"{k} {v['seconds']:.0f} s{' (checkpoint loaded)' if v['loaded'] else ''}"
                                    for k, v in res["fit"].items()) + ".", ""]
        for br in res["results"]:
            out += [f"### base:{br['base']}, M = {br['m']} (chosen on valid: " +
                    ", ".join(f"M={k}: {v:.4f}" for k, v in br["m_choice"].items()) +
                    f"); {br['n_valid']} valid / {br['n_test']} test queries", "",
                    "| method | MRR [95% CI] | H@1 | H@3 | H@10 | MRR obj / subj | mean rank top-M (n) | "
                    "vs base: diff, p | vs no_ranker: diff, p |", "|---|---|---|---|---|---|---|---|---|"]
            for row in br["rows"]:
                b = row["dir"]["both"]
                vb, vn = row.get("vs_base"), row.get("vs_no_ranker")
                out.append(
                    f"| {row['method']} | {f4(b['mrr_filtered'])} [{f4(b['mrr_filtered_ci_low'])}, "
                    f"{f4(b['mrr_filtered_ci_high'])}] | {f4(b['hits_at_1'])} | {f4(b['hits_at_3'])} | "
                    f"{f4(b['hits_at_10'])} | {f4(row['dir']['object']['mrr_filtered'])} / "
                    f"{f4(row['dir']['subject']['mrr_filtered'])} | {b['mean_rank_top_m']:.3f} ({b['n_gold_in_top_m']}) | "
                    + (f"{vb.diff:+.4f}, {vb.p_value:.3f}" if vb else "-") + " | "
                    + (f"{vn.diff:+.4f}, {vn.p_value:.3f}" if vn else "-") + " |")
            out += ["", "| ranker | train / stop queries used (of valid) | train s | weight w | held-out top-M MRR: "
                        "base / ranker / chosen | held-out MRR (all candidates) | evidence control |",
                    "|---|---|---|---|---|---|---|"]
            for name, info in br["infos"].items():
                w = info.get("weight")
                out.append(f"| {name} | {info['train_used']} / {info['stop_used']} (of {info['valid_queries']}) | "
                           f"{info.get('train_seconds', 0):.1f} | {w if isinstance(w, str) else f'{w:.3g}'} | "
                           f"{f4(info.get('stop_top_m_mrr_base'))} / {f4(info.get('stop_top_m_mrr_ranker'))} / "
                           f"{f4(info.get('stop_top_m_mrr_combined'))} | {f4(info.get('stop_mrr_full'))} | "
                           f"{info.get('evidence_control', '-')} |")
            out.append("")
            for name, info in br["infos"].items():
                if info.get("curve"):
                    out.append(f"- {name}: epochs (train loss / held-out loss): " + ", ".join(
                        f"{int(r['epoch'])}: {r['train_loss']:.3f} / {r.get('valid_loss', float('nan')):.3f}"
                        for r in info["curve"]) + f"; best epoch {info.get('best_epoch')}.")
                if info.get("importance"):
                    out.append(f"- {name}: largest total gains: " + ", ".join(list(info["importance"])[:8]) + ".")
            out.append("")
    return "\n".join(out) + "\n"


def load_result(path: Path) -> list[dict[str, Any]]:
    """Results written by a run (``<out>.json``), paired comparisons as attribute objects again."""
    from types import SimpleNamespace

    results = json.loads(path.read_text())
    for res in results:
        for br in res["results"]:
            for row in br["rows"]:
                for key in ("vs_base", "vs_no_ranker"):
                    if isinstance(row.get(key), dict):
                        row[key] = SimpleNamespace(**row[key])
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default="icews14,gdelt,icews18")
    ap.add_argument("--rankers", default="lightgbm,energy")
    ap.add_argument("--m-grid", default="5,10,20")
    ap.add_argument("--base-dir", type=Path, required=True)
    ap.add_argument("--n-test-icews18", type=int, default=10000)
    ap.add_argument("--n-valid-icews18", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-evidence-variant", action="store_true", help="also the LightGBM ranker without evidence")
    ap.add_argument("--bases", choices=("both", "recurrency", "strongest"), default="both")
    ap.add_argument("--fit-ke-anhp", action="store_true", help="fit KE-ANHP where no checkpoint exists (slow)")
    ap.add_argument("--energy-datasets", default="icews14", help="datasets on which the energy ranker runs")
    ap.add_argument("--energy-epochs", type=int, default=8)
    ap.add_argument("--energy-max-evidence", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--merge", default=None, help="render --out from these result JSON files (comma-separated)")
    ap.add_argument("--commands", default="", help="with --merge: the commands that made them (';'-separated)")
    args = ap.parse_args()
    if args.merge:
        by_dataset: dict[str, dict[str, Any]] = {}
        for part in (load_result(Path(p)) for p in args.merge.split(",")):
            for res in part:  # runs of one dataset (one per base) become one section
                if res["dataset"] in by_dataset:
                    by_dataset[res["dataset"]]["results"] += res["results"]
                else:
                    by_dataset[res["dataset"]] = res
        for res in by_dataset.values():
            res["results"].sort(key=lambda br: br["base"] != "recurrency")
        args.out.write_text(render(list(by_dataset.values()), args.commands, time.strftime("%Y-%m-%d %H:%M"),
                                   ("-", " ".join(f"{x:.1f}" for x in os.getloadavg()))))
        return
    args.m_grid = [int(x) for x in args.m_grid.split(",")]
    args.rankers = args.rankers.split(",")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import torch

    torch.set_num_threads(args.threads)
    started = time.strftime("%Y-%m-%d %H:%M")
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    results = []
    for ds in args.datasets.split(","):
        results.append(run_dataset(ds, args))
        text = render(results, "python benchmarks/" + " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name,
                                                                                          *sys.argv[1:]]), started,
                      (load_before, " ".join(f"{x:.1f}" for x in os.getloadavg())))
        args.out.write_text(text)
        (args.out.with_suffix(".json")).write_text(json.dumps(results, default=lambda o: getattr(o, "__dict__", str(o)),
                                                              indent=1))
    print(text)


if __name__ == "__main__":
    main()
