"""The spread of a result over seeds, printed beside its bootstrap interval (shared by the benchmarks).

A bootstrap interval measures how much a number would move with other test queries drawn from the
same period; it says nothing about how much it moves when the ranker starts from other weights or
when another sample of queries is drawn. Benchmarks that repeat a configuration over seeds (``--seeds``)
keep the first seed's row as the reported one (with its interval and paired test) and add, per
method, the mean +- standard deviation (ddof = 1) of each metric over all seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> [0, 1, 2]; at least one seed, no repeats."""
    seeds = [int(s) for s in text.split(",") if s.strip()]
    if not seeds or len(set(seeds)) != len(seeds):
        raise SystemExit(f"--seeds wants distinct integers separated by commas (e.g. 0,1,2), got {text!r}")
    return seeds


def mean_std(values: Sequence[float]) -> str:
    """``"m +- s (n)"`` over the finite values; ``"-"`` when there are none."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if not v.size:
        return "-"
    std = float(v.std(ddof=1)) if v.size > 1 else 0.0
    digits = 4 if abs(float(v.mean())) < 1 else 3
    return f"{v.mean():.{digits}f} +- {std:.{digits}f} ({v.size})"


def spread_columns(rows: list[dict[str, Any]], keys: dict[str, str], group: Sequence[str]) -> list[dict[str, Any]]:
    """The rows of the first seed, each with ``keys[k]`` = mean +- std of ``row[k]`` over the rows of all
    seeds sharing its ``group`` values (``rows`` carry a ``seed``; the first seed is the smallest)."""
    first = min(int(r["seed"]) for r in rows)
    out = []
    for r in rows:
        if int(r["seed"]) != first:
            continue
        same = [o for o in rows if all(o.get(g) == r.get(g) for g in group)]
        out.append({**r, **{label: mean_std([o.get(k) for o in same]) for k, label in keys.items()}})
    return out
