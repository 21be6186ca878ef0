"""Time and peak memory versus the number of events: load, queries, base:recurrency, base:rules, history index.

    LAMP_DATA_DIR=../shared/datasets python benchmarks/bench_scale.py --sizes icews18 1m 3m 10m

Sizes: ``icews18`` (the real log, as lamp's loader gives it) and synthetic logs of ``<n>k`` / ``<n>m``
events drawn with ICEWS18's statistics (:mod:`lamp.data.synthetic`: entity and relation frequencies,
events per time step, repetition of triples and its gaps), written as RE-Net folders under
``--workdir`` so that "load" measures the real loader. Each (size, stage) runs in its own process
under an address-space cap (``prlimit --as``), so its peak RSS is its own and a blow-up fails that
stage ("did not fit") instead of the machine. Stages:

- ``load``: cold load (parse the text files, validate, attach CAMEO, write the Parquet cache), then a
  cached load;
- ``queries``: object queries of the whole valid and test splits, both directions, with their
  time-aware filters (a scan of the whole log), then a seeded sample of ``--queries`` of each;
- ``recurrency``: the history index (whole log), hyperparameter choice on the valid sample, scoring
  of the test sample (top-10 and filtered ranks);
- ``rules``: mining on train (lengths 1-2), the applier's index (whole log), application of the default
  parameters to the test sample;
- ``retrieval``: the history index of the retrievers (:class:`lamp.retrieval.index.HistoryIndex`).

Per-event costs (s per million events) are given for the steps that scan the log, ms per query for
the steps that score the fixed samples. Results accumulate in ``benchmarks/results/scale.json`` (a
rerun of one size replaces that size's rows); the table goes to ``benchmarks/results/scale.md`` and
the plot to ``benchmarks/results/scale.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
STAGES = ("load", "queries", "recurrency", "rules", "retrieval")
SOURCE = "icews18"
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


# -- child side: one (size, stage) per process ------------------------------------------------------
class PeakRSS:
    """Polls this process's resident memory in a thread; ``step()`` records wall time and peak of a block."""

    def __init__(self, every: float = 0.02) -> None:
        self.every, self.peak = every, 0
        threading.Thread(target=self._poll, daemon=True).start()

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _poll(self) -> None:
        while True:
            self.peak = max(self.peak, self.rss())
            time.sleep(self.every)

    @contextmanager
    def step(self, out: list[dict[str, Any]], name: str, per: str, **extra: Any) -> Iterator[dict[str, Any]]:
        self.peak = self.rss()
        row: dict[str, Any] = {"step": name, "per": per, **extra}
        wall, cpu = time.perf_counter(), time.process_time()
        yield row
        row["wall_s"] = round(time.perf_counter() - wall, 3)
        row["cpu_s"] = round(time.process_time() - cpu, 3)
        row["peak_gb"] = round(max(self.peak, self.rss()) / 2**30, 3)
        out.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)


def _load(target: str) -> Any:
    from lamp.data.load import load_dataset
    from lamp.data.registry import get_spec

    return load_dataset(target, time_spec=None if target == SOURCE else get_spec(SOURCE).time_spec, download=False)


def _sample_path(work: Path, split: str, n_queries: int, seed: int) -> Path:
    """Where the queries stage leaves the seeded query sample of ``split`` (the later stages read it)."""
    return work / f"{split}-q{n_queries}-s{seed}"


def _save_queries(qs: Any, path: Path) -> None:
    import numpy as np

    qs.frame.to_parquet(path.with_suffix(".parquet"))
    np.savez(path.with_suffix(".npz"), filter_ptr=qs.filter_ptr, filter_ids=qs.filter_ids,
             meta=np.array([qs.num_candidates, qs.num_relations]))


def _read_queries(path: Path, task: str, split: str) -> Any:
    import numpy as np
    import pandas as pd

    from lamp.data.queries import QuerySet

    frame = pd.read_parquet(path.with_suffix(".parquet"))
    z = np.load(path.with_suffix(".npz"))
    n_cand, n_rel = (int(v) for v in z["meta"])
    frame.attrs["num_entities"] = n_cand
    return QuerySet(task, split, frame, n_cand, n_rel, z["filter_ptr"], z["filter_ids"])


def child(stage: str, target: str, work: Path, n_queries: int, seed: int) -> dict[str, Any]:
    import numpy as np

    from lamp.data.load import cache_dir

    mem = PeakRSS()
    rows: list[dict[str, Any]] = []
    out: dict[str, Any] = {"stage": stage, "rows": rows}
    if stage == "load":
        shutil.rmtree(cache_dir() / "eventlogs", ignore_errors=True)
        with mem.step(rows, "load: cold (parse, validate, CAMEO, write cache)", "event"):
            log = _load(target)
        del log
        with mem.step(rows, "load: cached (Parquet)", "event"):
            log = _load(target)
        out["events"] = len(log)
        out["describe"] = {k: v for k, v in log.describe().items() if k in ("splits", "num_entities", "num_relations",
                                                                              "first_date", "last_date")}
        return out
    log = _load(target)
    out["events"] = len(log)
    if stage == "queries":
        from lamp.data.queries import make_queries

        for split in ("valid", "test"):
            with mem.step(rows, f"queries: all {split} (both directions, filters)", "event") as row:
                qs = make_queries(log, "object", split, directions="both")
                row["queries"] = len(qs)
            _save_queries(qs.sample(n_queries, seed=seed), _sample_path(work, split, n_queries, seed))
            del qs
        return out
    valid = _read_queries(_sample_path(work, "valid", n_queries, seed), "object", "valid")
    test = _read_queries(_sample_path(work, "test", n_queries, seed), "object", "test")
    from lamp.rules import rank_metrics

    if stage == "recurrency":
        from lamp.tpp.recurrency import RecurrencyBaseline

        model = RecurrencyBaseline()
        with mem.step(rows, "recurrency: history index (whole log)", "event"):
            model._cache.history(log, valid)
        with mem.step(rows, f"recurrency: fit on {len(valid):,} valid queries", "query", queries=len(valid)):
            model.fit(log, valid, valid)
        with mem.step(rows, f"recurrency: score {len(test):,} test queries", "query", queries=len(test)):
            table = model.score(log, test, top_m=10)
        out["test_metrics"] = rank_metrics(table.gold_rank_filtered)
        return out
    if stage == "rules":
        from lamp.rules import MiningConfig, RuleApplier, _apply_kernels, _mine_kernels, mine_rules  # noqa: F401  (numba kernels load outside timings)
        from lamp.tpp.base import rank_candidates
        from lamp.tpp.rules_model import RulesModel

        with mem.step(rows, "rules: mine lengths 1-2 (train)", "event") as row:
            rules = mine_rules(log, MiningConfig())
            row["rules"] = len(rules)
        with mem.step(rows, "rules: applier index (whole log)", "event"):
            applier = RuleApplier(rules, log)
        model = RulesModel(rules=rules, tune=False)
        model._applier = applier
        with mem.step(rows, f"rules: apply to {len(test):,} test queries", "query", queries=len(test)):
            table = rank_candidates(model, log, test, 10)
        out["test_metrics"] = rank_metrics(table.gold_rank_filtered)
        return out
    if stage == "retrieval":
        from lamp.retrieval.index import HistoryIndex

        with mem.step(rows, "retrieval: history index (whole log)", "event") as row:
            index = HistoryIndex(log)
            row["triples"] = index.num_triples
        rng = np.random.default_rng(seed)
        ents = rng.integers(0, log.num_entities, size=(len(test), 2))
        with mem.step(rows, f"retrieval: entity rows of {len(test):,} test queries", "query", queries=len(test)):
            for (a, b), end in zip(ents.tolist(), test.frame["history_end"].tolist(), strict=True):
                index.entity_rows([a, b], int(end), per_entity=50, limit=100)
        return out
    raise SystemExit(f"unknown stage {stage!r}; valid: {', '.join(STAGES)}")


# -- parent side ------------------------------------------------------------------------------------
def parse_size(size: str) -> int | None:
    """Events of a synthetic size ("300k", "1m"); None for the real log."""
    if size == SOURCE:
        return None
    unit = {"k": 1_000, "m": 1_000_000}.get(size[-1].lower())
    if unit is None:
        raise SystemExit(f"size {size!r}: use {SOURCE} or a number with k or m (e.g. 300k, 1m, 10m)")
    return int(float(size[:-1]) * unit)


def generate(n: int, workdir: Path, seed: int) -> Path:
    """The synthetic folder of ``n`` events (written once, reused)."""
    folder = workdir / f"{SOURCE}-synthetic-{n}-s{seed}"
    if (folder / "test.txt").is_file():
        return folder
    from lamp.data.load import load_dataset
    from lamp.data.synthetic import source_stats, synthesize, write_renet

    start = time.perf_counter()
    fake = synthesize(source_stats(load_dataset(SOURCE, download=False)), n, seed=seed)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    write_renet(fake, tmp)
    tmp.rename(folder)
    print(f"generated {n:,} events in {time.perf_counter() - start:.1f} s -> {folder}", file=sys.stderr)
    return folder


def run_stage(stage: str, target: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    env = {**os.environ, "LAMP_CACHE_DIR": str(work / "cache"), "PYTHONUNBUFFERED": "1",
           **{v: str(args.threads) for v in THREAD_VARS}}
    cmd = ["prlimit", f"--as={int(args.mem_gb * 2**30)}", sys.executable, __file__, "--child", stage, "--target", target,
           "--work", str(work), "--queries", str(args.queries), "--seed", str(args.seed)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        return {"stage": stage, "error": f"timeout after {args.timeout} s", "rows": _partial(stderr)}
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = stderr.strip().splitlines()[-3:]
        kind = "did not fit" if any("MemoryError" in line or "Cannot allocate" in line for line in stderr.splitlines()) \
            else "failed"
        return {"stage": stage, "error": f"{kind} (exit {proc.returncode}): {' / '.join(tail)}", "rows": _partial(stderr)}
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    result["process_wall_s"] = round(wall, 2)
    return result


def _partial(stderr: str) -> list[dict[str, Any]]:
    rows = []
    for line in stderr.splitlines():
        if line.startswith('{"step"'):
            rows.append(json.loads(line))
    return rows


def markdown(results: dict[str, Any], command: str) -> str:
    sizes = sorted(results["sizes"].values(), key=lambda s: s.get("events", 0))
    lines = ["# Scale: time and peak memory versus the number of events", "", "```", command, "```", "",
             f"{results['date']}; {platform.machine()}, {os.cpu_count()} cores, "
             f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GB RAM, Python "
             f"{platform.python_version()}; {results['threads']} threads per process; each (size, stage) in its own "
             f"process under `prlimit --as={results['mem_gb']}G`; load average at start: {results['load']}.", "",
             "Synthetic sizes are drawn from ICEWS18's statistics (lamp.data.synthetic, seed "
             f"{results['seed']}): same entities and relations, ~1,540 events per daily step, so 10 M events span "
             "~18 years of steps. Query-bound steps use the same seeded samples of "
             f"{results['queries']:,} valid and {results['queries']:,} test object queries (both directions) "
             "at every size; their cost is given per query. Peak RSS is the process's resident memory during the "
             "step (the loaded log included), polled every 20 ms.", "",
             "| size | events | stage / step | wall s | CPU s | s per M events | ms per query | peak RSS GB |",
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    for s in sizes:
        n = s.get("events", 0)
        for st in s["stages"]:
            for row in st.get("rows", []):
                per_m = f"{row['wall_s'] / (n / 1e6):.2f}" if row["per"] == "event" and n else "-"
                per_q = f"{1000 * row['wall_s'] / row['queries']:.2f}" if row.get("queries") and row["per"] == "query" \
                    else "-"
                lines.append(f"| {s['label']} | {n:,} | {row['step']} | {row['wall_s']:.2f} | {row['cpu_s']:.2f} | "
                             f"{per_m} | {per_q} | {row['peak_gb']:.2f} |")
            if st.get("error"):
                lines.append(f"| {s['label']} | {n:,} | **{st['stage']}: {st['error'][:160]}** | - | - | - | - | - |")
    lines += ["", "Runs (git commit of lamp, start time, load average of the machine: other jobs shared its 2 cores, "
              "so CPU seconds are the steadier figure):", ""]
    for s in sizes:
        for run in s.get("runs", []):
            lines.append(f"- {s['label']}: {' '.join(run['stages'])} at {run['commit']}, {run['date']}, load {run['load']}")
    lines += ["", "Sanity (the fixed test sample, filtered MRR, average ties):", ""]
    for s in sizes:
        got = [f"{st['stage']} {st['test_metrics']['mrr']:.4f}" for st in s["stages"] if st.get("test_metrics")]
        if got:
            lines.append(f"- {s['label']}: " + ", ".join(got))
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[tuple[int, float, float]]] = {}
    for s in results["sizes"].values():
        for st in s["stages"]:
            for row in st.get("rows", []):
                series.setdefault(row["step"].split(" (")[0].replace(f"{results['queries']:,} ", ""), []).append(
                    (s["events"], row["wall_s"], row["peak_gb"]))
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(13, 5.5))
    colors = plt.get_cmap("tab20").colors
    for k, (name, pts) in enumerate(sorted(series.items())):
        pts.sort()
        x = [p[0] for p in pts]
        style = {"color": colors[k % 20], "marker": "osd^v<>"[k % 7], "ls": "-" if k < 7 else "--"}
        ax_t.loglog(x, [max(p[1], 1e-3) for p in pts], label=name, **style)
        ax_m.loglog(x, [p[2] for p in pts], label=name, **style)
    xs = sorted({s["events"] for s in results["sizes"].values()})
    if len(xs) > 1:
        ax_t.loglog(xs, [10 * x / xs[-1] for x in xs], "k:", label="linear (slope 1)")
    ax_t.set(xlabel="events", ylabel="wall seconds", title="time versus log size")
    ax_m.set(xlabel="events", ylabel="peak RSS (GB)", title="peak memory versus log size")
    ax_m.axhline(24, color="red", ls="--", lw=1)
    ax_t.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=[SOURCE, "1m", "3m", "10m"])
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    parser.add_argument("--queries", type=int, default=2000, help="valid and test queries sampled at every size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--mem-gb", type=float, default=18.0, help="address-space cap of each stage process")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per stage process")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/lamp-scale"))
    parser.add_argument("--fresh", action="store_true", help="forget earlier results in scale.json")
    parser.add_argument("--report", action="store_true", help="only rewrite scale.md and scale.png from scale.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.target, args.work, args.queries, args.seed)))
        return 0
    if not os.environ.get("LAMP_DATA_DIR"):
        raise SystemExit("set LAMP_DATA_DIR to the datasets folder")
    store = RESULTS / "scale.json"
    results: dict[str, Any] = {} if args.fresh or not store.is_file() else json.loads(store.read_text())
    results.setdefault("sizes", {})
    if not args.report:
        results.update(date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), threads=args.threads,
                       mem_gb=args.mem_gb, queries=args.queries, seed=args.seed,
                       load=" ".join(f"{v:.2f}" for v in os.getloadavg()))
    for size in [] if args.report else args.sizes:
        n = parse_size(size)
        target = SOURCE if n is None else str(generate(n, args.workdir, args.seed))
        work = args.workdir / "runs" / (size if n is None else f"{n}-s{args.seed}")
        work.mkdir(parents=True, exist_ok=True)
        entry = results["sizes"].get(size) if not args.fresh else None
        entry = {"label": size, "events": n or 0, "stages": []} if entry is None else entry
        stages = list(args.stages)
        samples = [_sample_path(work, split, args.queries, args.seed).with_suffix(".parquet") for split in ("valid", "test")]
        if "queries" not in stages and set(stages) & {"recurrency", "rules", "retrieval"} and \
                not all(path.is_file() for path in samples):  # their query samples come from the queries stage
            print(f"   {size}: no query samples in {work} yet: the queries stage runs first", file=sys.stderr)
            stages = sorted({*stages, "queries"}, key=STAGES.index)
        entry["stages"] = [st for st in entry["stages"] if st["stage"] not in stages]
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, check=False).stdout.strip()
        entry.setdefault("runs", []).append({"stages": stages, "commit": commit, "date": results["date"],
                                             "load": results["load"]})
        for stage in stages:
            print(f"== {size} {stage}", file=sys.stderr, flush=True)
            res = run_stage(stage, target, work, args)
            entry["events"] = res.get("events", entry["events"])
            entry["stages"].append(res)
            entry["stages"].sort(key=lambda st: STAGES.index(st["stage"]))
            results["sizes"][size] = entry
            store.write_text(json.dumps(results, indent=1))
            if res.get("error"):
                print(f"   {size} {stage}: {res['error']}", file=sys.stderr)
    command = "LAMP_DATA_DIR=" + shlex.quote(os.environ["LAMP_DATA_DIR"]) + " python benchmarks/bench_scale.py " + \
        " ".join(shlex.quote(a) for a in sys.argv[1:])
    results.setdefault("commands", [])
    if command not in results["commands"] and not args.report:
        results["commands"].append(command)
    store.write_text(json.dumps(results, indent=1))
    text = markdown(results, "\n".join(results["commands"]))
    (RESULTS / "scale.md").write_text(text, encoding="utf-8")
    plot(results, RESULTS / "scale.png")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
