"""Load speed and memory of every dataset: cold (from the source files), cached (Parquet), peak RSS.

    LAMP_DATA_DIR=../shared/datasets python benchmarks/bench_data.py [--repeat 3] [NAME_OR_PATH ...]

Each measurement runs in a fresh Python process (imports done before the clock starts) with an
empty cache directory: "cold" is the first load (parse, validate, attach CAMEO, write the cache),
"cached" is a load in a second process that finds the cache entry. Peak memory is the cold
process's peak resident set size (ru_maxrss), and "import RSS" what the process held before
loading. Targets (ICEWS18): cold < 3 s, cached < 0.5 s, peak < 1 GB. Prints a markdown table and
writes it to benchmarks/results/bench_data.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULT = ["icews14", "icews18", "gdelt", "amazon-instruments", "amazon-fashion", "amazon-easytpp", "gdelt-raw"]
RESULTS = Path(__file__).resolve().parent / "results" / "bench_data.md"

_CHILD = """
import json, resource, sys, time
from lamp.data.load import load_dataset
import lamp.data.cameo, lamp.data.table, lamp.data.amazon, lamp.data.easytpp, lamp.data.gdelt_raw  # noqa
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
log = load_dataset(sys.argv[1], download=False)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "events": len(log), "peak_kb": peak, "import_kb": before}))
"""


def _target(name: str, data_dir: Path) -> str:
    """A registry name, or a folder of the data directory given by its name (gdelt-raw)."""
    from lamp.data.registry import DATASETS

    return name if name in DATASETS else str(data_dir / name)


def _child(target: str, cache: str) -> dict[str, float]:
    env = {**os.environ, "LAMP_CACHE_DIR": cache}
    out = subprocess.run([sys.executable, "-c", _CHILD, target], env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"loading {target} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(target: str, repeat: int) -> dict[str, float]:
    cold, cached, peaks = [], [], []
    info: dict[str, float] = {}
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="lamp-bench-") as cache:
            info = _child(target, cache)
            cold.append(info["seconds"])
            peaks.append(info["peak_kb"])
            cached.append(_child(target, cache)["seconds"])
    return {"events": info["events"], "cold": statistics.median(cold), "cached": statistics.median(cached),
            "peak_mb": max(peaks) / 1024, "import_mb": info["import_kb"] / 1024}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", default=DEFAULT)
    parser.add_argument("--repeat", type=int, default=3, help="runs per dataset (median time, max memory)")
    args = parser.parse_args()
    data_dir = Path(os.environ.get("LAMP_DATA_DIR", "")).expanduser()
    if not os.environ.get("LAMP_DATA_DIR") or not data_dir.is_dir():
        raise SystemExit("set LAMP_DATA_DIR to the datasets folder")
    rows = []
    for name in args.datasets:
        m = measure(_target(name, data_dir), args.repeat)
        rows.append(f"| {name} | {int(m['events']):,} | {m['cold']:.3f} | {m['cached']:.3f} | {m['peak_mb']:.0f} | "
                    f"{m['import_mb']:.0f} |")
        print(rows[-1], file=sys.stderr)
    command = "LAMP_DATA_DIR=" + shlex.quote(str(data_dir)) + " python benchmarks/bench_data.py " + " ".join(
        shlex.quote(a) for a in sys.argv[1:])
    table = "\n".join([
        "# Data loading benchmark", "", "```", command.strip(), "```", "",
        f"{platform.python_implementation()} {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs; median of {args.repeat} runs, each in a fresh process with an empty cache.",
        "Targets (ICEWS18): cold < 3 s, cached < 0.5 s, peak < 1 GB.", "",
        "| dataset | events | cold load (s) | cached load (s) | peak RSS (MB) | RSS after imports (MB) |",
        "|---|---:|---:|---:|---:|---:|", *rows, "",
    ])
    print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(table, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
