"""Benchmark lamp's neural base models: base:ke_anhp on ICEWS, easy-tpp models through lamp's adapter,
and lamp's adapter against easy-tpp's own runner on the same model and data.

Parts (each job runs in a fresh process, so its wall time and peak memory, ru_maxrss, are its own):

- ``ke``: base:ke_anhp on the object task (both directions through inverse relations), test split,
  single-step setting, time-aware filtered, average ties, with its training curve (train loss and
  valid MRR per epoch), next to base:frequency (count(s, r, o) / count(s, r) before t) on the same queries.
- ``tpp``: easy-tpp NHP / AttNHP / THP through lamp's adapter: seconds per training epoch, peak
  memory, valid and test MRR, on the ICEWS14 relation task (one sequence per subject) and, when the
  Amazon reader can load it, the Amazon type task.
- ``runner``: NHP trained for the same epochs on the same windows (easy-tpp's own loglike_loss,
  ``objective="native"``) through lamp's adapter and through easy-tpp's runner (a YAML written to a
  temporary folder, run from a temporary working directory); the ratio of training seconds per epoch.
  The runner's dev set (its per-epoch validation log-likelihood) is every 10th train window: only its
  time is reported, separately from training.

    LAMP_DATA_DIR=/path/to/datasets python benchmarks/bench_neural.py
    python benchmarks/bench_neural.py --parts ke --ke-epochs 8 --threads 2
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
from dataclasses import asdict
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
REFERENCE = {  # /work/shared/REFERENCE_RESULTS.md: peers' code on the same splits, both directions, filtered
    "icews14": "recurrency baseline psi+xi .3743 (H@10 .5219); TLogic rule lengths 1-2 .4111 (H@10 .6015); TLogic "
               "lengths 1-3 .425 (published on this split, recurrency paper Table 2, H@10 .603; the TLogic paper's own "
               ".4304 is on xERTE's ICEWS14 split, not comparable)",
    "icews18": "recurrency baseline psi+xi .2880 (H@10 .4378); TLogic lengths 1-3 .296 (published, H@10 .481)",
}
MARK = "RESULT "
HYPERPARAMETERS = (
    "How the settings were chosen: only the epoch, by filtered MRR on the valid queries (the best of the epochs run, "
    "early stop after 2 without improvement); every other setting above is a fixed default of "
    "`conf/base_model/ke_anhp.yaml`, set by hand when the model was written (commit 224184b), not searched (no search over them "
    "is recorded, on valid or on test).")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _gpu_peak_mb() -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None


def job_ke(dataset: str, epochs: int, settings: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from lamp.data import load_dataset
    from lamp.data.queries import make_queries
    from lamp.eval.metrics import metrics_rows
    from lamp.tpp.frequency import FrequencyBaseline
    from lamp.tpp.ke_anhp import KEANHP

    log = load_dataset(dataset)
    train, valid, test = (make_queries(log, "object", s, directions="both") for s in ("train", "valid", "test"))
    t0 = time.perf_counter()
    freq = FrequencyBaseline().score(log, test, 10)
    t_freq = time.perf_counter() - t0
    model = KEANHP(epochs=epochs, **settings)
    t0 = time.perf_counter()
    report = model.fit(log, train, valid)
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    table = model.score(log, test, 10)
    t_score = time.perf_counter() - t0
    rows = {name: metrics_rows(tab, dataset=dataset, task="object", split="test", method=name, n_boot=200)
            for name, tab in (("base:frequency", freq), ("base:ke_anhp", table))}
    return {"dataset": dataset, "rows": rows, "curve": report["curve"], "best_epoch": report["best_epoch"],
            "train_examples": report["train_examples"], "fit_s": t_fit, "score_s": t_score, "freq_s": t_freq,
            "params": int(sum(p.numel() for p in model.net.parameters())) if model.net is not None else 0,
            "settings": {k: v for k, v in asdict(model.settings).items() if k != "progress"},
            "peak_mb": _peak_mb(), "gpu_peak_mb": _gpu_peak_mb(), "n_test": len(test), "mrr_freq_valid": float(np.mean(1 / FrequencyBaseline().score(log, valid, 1)
                                                                  .gold_rank_filtered))}


def _sequence_data(name: str) -> tuple[Any, str]:
    from lamp.data import load_dataset

    if name == "icews14":
        return load_dataset("icews14"), "relation"
    return load_dataset(name), "type"


def job_tpp(model_name: str, dataset: str, epochs: int, settings: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from lamp.data.queries import make_queries
    from lamp.tpp.easytpp_adapter import EasyTPPModel
    from lamp.tpp.frequency import FrequencyBaseline

    log, task = _sequence_data(dataset)
    train, valid, test = (make_queries(log, task, s) for s in ("train", "valid", "test"))
    freq_mrr = float(np.mean(1 / FrequencyBaseline().score(log, test, 5).gold_rank_filtered))
    model = EasyTPPModel(model_name, epochs=epochs, patience=epochs, **settings)
    t0 = time.perf_counter()
    report = model.fit(log, train, valid)
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    table = model.score(log, test, 5)
    t_score = time.perf_counter() - t0
    secs = [r["train_seconds"] for r in report["curve"]]
    return {"model": model_name, "dataset": dataset, "task": task, "windows": report["windows"],
            "train_epoch_s": float(np.median(secs)), "valid_mrr": report["best_score"],
            "test_mrr": float(np.mean(1 / table.gold_rank_filtered)), "n_test": len(test), "fit_s": t_fit,
            "score_s": t_score, "peak_mb": _peak_mb(), "gpu_peak_mb": _gpu_peak_mb(), "settings": settings,
            "num_types": log.num_relations, "epochs": epochs, "freq_test_mrr": freq_mrr}


def job_runner(dataset: str, epochs: int, settings: dict[str, Any]) -> dict[str, Any]:
    """Same NHP, windows, batch size, learning rate and epochs through the adapter and the runner."""
    import pickle
    import tempfile

    import numpy as np

    from lamp.data.queries import make_queries
    from lamp.tpp.easytpp_adapter import EasyTPPModel
    from lamp.tpp.sequences import EntityEvents, build_windows, mean_group_gap

    log, task = _sequence_data(dataset)
    s = {**settings, "objective": "native", "overlap": 0}
    train, valid = make_queries(log, task, "train"), make_queries(log, task, "valid")
    model = EasyTPPModel("nhp", epochs=epochs, patience=epochs, **s)
    t0 = time.perf_counter()
    report = model.fit(log, train, valid)
    adapter_total = time.perf_counter() - t0
    adapter_epoch = float(np.median([r["train_seconds"] for r in report["curve"]]))

    events = EntityEvents.build(log, end=log.split_ends[0])
    w = build_windows(events, log.num_relations, s["max_len"], 0, mean_group_gap(events))

    def seqs(win: Any, rows: Any) -> list[list[dict[str, float | int]]]:
        return [[{"time_since_start": float(win.times[i, j]), "time_since_last_event": float(win.dts[i, j]),
                  "type_event": int(win.types[i, j])} for j in range(int(win.lengths[i]))]
                for i in rows if win.lengths[i] >= 2]

    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            for split, data in (("train", seqs(w, range(len(w)))), ("dev", seqs(w, range(0, len(w), 10)))):
                with open(f"{split}.pkl", "wb") as fh:
                    pickle.dump({"dim_process": log.num_relations, split: data}, fh)
            yaml = {"pipeline_config_id": "runner_config",
                    "data": {"bench": {"data_format": "pkl", "train_dir": f"{tmp}/train.pkl", "valid_dir": f"{tmp}/dev.pkl",
                                       "test_dir": None, "data_specs": {
                                           "num_event_types": log.num_relations, "pad_token_id": log.num_relations,
                                           "padding_side": "right", "truncation_side": "right"}}},
                    "NHP_train": {"base_config": {"stage": "train", "backend": "torch", "dataset_id": "bench",
                                                  "runner_id": "std_tpp", "model_id": "NHP", "base_dir": f"{tmp}/ckpt"},
                                  "trainer_config": {"batch_size": s["batch_size"], "max_epoch": epochs, "shuffle": True,
                                                     "optimizer": "adam", "learning_rate": s.get("lr", 1e-3),
                                                     "valid_freq": 1, "use_tfb": False, "metrics": [], "seed": 0,
                                                     "gpu": 0 if _gpu_peak_mb() is not None else -1},
                                  "model_config": {"hidden_size": s["hidden_size"], "loss_integral_num_sample_per_step":
                                                   s["mc_samples"], "thinning": None}}}
            import yaml as pyyaml

            Path("runner.yaml").write_text(pyyaml.safe_dump(yaml), encoding="utf-8")
            from easy_tpp.config_factory import Config
            from easy_tpp.runner import Runner

            config = Config.build_from_yaml_file("runner.yaml", experiment_id="NHP_train")
            runner = Runner.build_from_config(config)
            phases: dict[str, list[float]] = {"train": [], "validate": []}
            inner = runner.run_one_epoch

            def timed(loader: Any, phase: Any) -> Any:
                t = time.perf_counter()
                out = inner(loader, phase)
                phases["train" if "train" in str(phase).lower() else "validate"].append(time.perf_counter() - t)
                return out

            runner.run_one_epoch = timed  # type: ignore[method-assign]
            t0 = time.perf_counter()
            runner.run()
            runner_total = time.perf_counter() - t0
        finally:
            os.chdir(cwd)
    runner_epoch = float(np.median(phases["train"]))
    return {"dataset": dataset, "epochs": epochs, "windows": len(w), "adapter_epoch_s": adapter_epoch,
            "runner_epoch_s": runner_epoch, "ratio": runner_epoch / adapter_epoch, "adapter_total_s": adapter_total,
            "runner_total_s": runner_total, "runner_valid_s": float(np.median(phases["validate"] or [0.0])),
            "adapter_valid_s": float(np.median([r["valid_seconds"] for r in report["curve"]])), "settings": s}


JOBS = {"ke": job_ke, "tpp": job_tpp, "runner": job_runner}


def run_child(name: str, args: list[Any], threads: int) -> dict[str, Any]:
    code = (f"import json,sys,torch; torch.set_num_threads({threads}); sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import bench_neural as b; r = b.JOBS[{name!r}](*json.loads(sys.argv[1])); "
            f"r['peak_mb'] = b._peak_mb(); print({MARK!r} + json.dumps(r, default=float))")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    if proc.returncode or not lines:
        return {"error": (proc.stderr or proc.stdout)[-2000:], "job": name, "args": args}
    return json.loads(lines[-1][len(MARK):])


def _f(x: Any, nd: int = 3) -> str:
    return "-" if x is None else f"{x:.{nd}f}" if isinstance(x, float) else str(x)


def _cmd(rows: list[dict[str, Any]]) -> list[str]:
    r = rows[0] if rows else {}
    return ["```", r.get("command", "?"), "```", f"(load average {r.get('load_avg', float('nan')):.1f} when it ended)", ""]


def render(results: dict[str, list[dict[str, Any]]], threads: int) -> str:
    import torch

    out = ["# Neural base models", "",
           f"CPython {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
           f"({threads} torch threads per job), device={'cuda' if torch.cuda.is_available() else 'cpu'}. The machine is "
           "shared with other jobs: timings are noisy. Time-aware filtered, average ties, single-step setting, test split.",
           ""]
    for r in results.get("ke", []):
        if "error" in r:
            out += [f"ke_anhp failed: `{r['error'][-400:]}`", ""]
            continue
        out += [f"## base:ke_anhp, {r['dataset']}, object task (both directions)", "", *_cmd([r]),
                "| method | direction | MRR | H@1 | H@3 | H@10 | queries |", "|---|---|---:|---:|---:|---:|---:|"]
        for name, rows in r["rows"].items():
            out += [f"| {name} | {x['direction']} | {x['mrr_filtered']:.4f} | {x['hits_at_1']:.4f} | {x['hits_at_3']:.4f} | "
                    f"{x['hits_at_10']:.4f} | {x['n_queries']} |" for x in rows]
        out += ["", f"fit {r['fit_s']:.0f} s ({len(r['curve'])} epochs over {r['train_examples']:,} train examples, best "
                f"epoch {r['best_epoch'] + 1} by valid MRR), score test {r['score_s']:.1f} s, frequency baseline "
                f"{r['freq_s']:.1f} s; {r['params']:,} parameters; peak RSS {r['peak_mb']:.0f} MB"
                + (f", GPU peak {r['gpu_peak_mb']:.0f} MB" if r.get("gpu_peak_mb") else "")
                + f". Settings: `{r['settings']}`. Frequency baseline valid MRR {r['mrr_freq_valid']:.4f}.", "",
                HYPERPARAMETERS, "",
                f"For reference, on the same splits and protocol (MRR; measured with the peers' code unless marked "
                f"published): {REFERENCE.get(r['dataset'], '-')}.", "",
                "| epoch | train loss | valid MRR | train s | valid s |", "|---:|---:|---:|---:|---:|"]
        out += [f"| {c['epoch'] + 1} | {c['train_loss']:.4f} | {c['valid_score']:.4f} | {c['train_seconds']:.0f} | "
                f"{c['valid_seconds']:.0f} |" for c in r["curve"]]
        out += [""]
    if results.get("tpp"):
        out += ["## easy-tpp models through lamp's adapter", "", *_cmd(results["tpp"]),
                "| model | data / task | windows | s / train epoch | valid MRR | test MRR | base:frequency test MRR | "
                "test queries | peak RSS MB |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in results["tpp"]:
            if "error" in r:
                out += [f"| {r['args'][0]} | {r['args'][1]} | failed: {r['error'][-200:]!r} | | | | | | |"]
                continue
            out += [f"| {r['model']} | {r['dataset']} / {r['task']} | {r['windows']:,} | {r['train_epoch_s']:.1f} | "
                    f"{r['valid_mrr']:.4f} | {r['test_mrr']:.4f} | {_f(r.get('freq_test_mrr'), 4)} | {r['n_test']:,} | "
                    f"{r['peak_mb']:.0f} |"]
        ok = [r for r in results["tpp"] if "error" not in r]
        out += ["", f"Settings: `{ok[0]['settings'] if ok else None}`, {results['tpp'][0].get('epochs', '?')} epochs, "
                "grouped strict-prefix likelihood. ICEWS14 relation task: one sequence per subject entity, types = "
                "230 relations, the object is not modelled; base:frequency there counts r given (s, o), so it sees the "
                "object these models do not. Amazon (2014 Musical Instruments, a proxy for the paper's data): event "
                "type = star rating (5 types), base:frequency = the user's own past type frequencies.", ""]
    for r in results.get("runner", []):
        if "error" in r:
            out += [f"runner comparison failed: `{r['error'][-600:]}`", ""]
            continue
        out += [f"## NHP: lamp adapter vs easy-tpp runner ({r['dataset']}, {r['windows']:,} windows, {r['epochs']} epochs)",
                *_cmd([r]), "| path | s / train epoch (median) | validation s / epoch | total s |", "|---|---:|---:|---:|",
                f"| lamp adapter (objective=native) | {r['adapter_epoch_s']:.1f} | {r['adapter_valid_s']:.1f} (valid MRR) | "
                f"{r['adapter_total_s']:.0f} |",
                f"| easy-tpp runner (YAML in a temp dir) | {r['runner_epoch_s']:.1f} | {r['runner_valid_s']:.1f} (dev loglik) | "
                f"{r['runner_total_s']:.0f} |", "",
                f"Ratio runner / adapter, train seconds per epoch: **{r['ratio']:.2f}** (one run each; same windows, batch "
                f"size, learning rate, model and loss; the adapter batches windows of similar length, the runner pads "
                f"each shuffled batch to its longest window). Settings: `{r['settings']}`.", ""]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default="ke,tpp,runner")
    ap.add_argument("--ke-datasets", default="icews14")
    ap.add_argument("--ke-epochs", type=int, default=8)
    ap.add_argument("--tpp-models", default="nhp,anhp,thp")
    ap.add_argument("--tpp-datasets", default="icews14,amazon-instruments")
    ap.add_argument("--tpp-epochs", type=int, default=2)
    ap.add_argument("--runner-dataset", default="icews14")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(RESULTS / "bench_neural.md"))
    ap.add_argument("--render-only", action="store_true", help="rewrite the markdown from the JSON, running nothing")
    ap.add_argument("--keep-other-parts", action="store_true",
                    help="keep the results (and commands) of parts not run now (and of other ke datasets) "
                         "from the previous JSON")
    args = ap.parse_args()
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__), *sys.argv[1:]])
    parts = args.parts.split(",")
    tpp_settings = {"hidden_size": 32, "max_len": 64, "batch_size": 32, "mc_samples": 10, "lr": 1e-3}
    out = Path(args.out)
    if args.render_only:
        text = render(json.loads(out.with_suffix(".json").read_text(encoding="utf-8")), args.threads)
        out.write_text(text + "\n", encoding="utf-8")
        print(text)
        return
    results: dict[str, list[dict[str, Any]]] = {}
    old: dict[str, list[dict[str, Any]]] = {}
    if args.keep_other_parts and out.with_suffix(".json").is_file():
        old = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
        results = {k: v for k, v in old.items() if k not in parts}
    if "ke" in parts:
        new = [run_child("ke", [d, args.ke_epochs, {"progress": False}], args.threads) for d in args.ke_datasets.split(",")]
        kept = [r for r in old.get("ke", []) if r.get("dataset") not in args.ke_datasets.split(",")]
        results["ke"] = kept + new
    if "tpp" in parts:
        results["tpp"] = [run_child("tpp", [m, d, args.tpp_epochs, tpp_settings], args.threads)
                          for d in args.tpp_datasets.split(",") for m in args.tpp_models.split(",")]
    if "runner" in parts:
        results["runner"] = [run_child("runner", [args.runner_dataset, args.tpp_epochs, tpp_settings],
                                       args.threads)]
    for part in parts:
        for r in results.get(part, []):
            r.setdefault("command", command)
            r.setdefault("load_avg", os.getloadavg()[0])
    text = render(results, args.threads)
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n", encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps(results, indent=1, default=float), encoding="utf-8")


if __name__ == "__main__":
    main()
