"""Confidence intervals by bootstrap over queries grouped by timestamp, and paired comparisons.

Queries at the same timestamp share their history and are not independent, so the resampling unit
is the timestamp (a cluster bootstrap): each replicate draws timestamps with replacement and takes
the mean over all their queries (a ratio of sums). Intervals are percentile intervals; the
generator is seeded, so every number is reproducible. With one timestamp the interval collapses to
the point estimate (there is nothing to resample).

>>> low, high = bootstrap_ci(1.0 / ranks, times, n_boot=1000, seed=0)     # doctest: +SKIP
>>> res = paired_bootstrap(rr_lamp, rr_base, times)                      # doctest: +SKIP
>>> res.diff, res.ci_low, res.ci_high, res.p_value                       # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lamp.errors import ConfigError

CI_METHOD = "bootstrap over timestamps (percentile)"
_MAX_CELLS = 4_000_000  # replicates x groups drawn at once


def _check(values: np.ndarray, groups: np.ndarray, level: float, n_boot: int) -> None:
    if values.shape != groups.shape or values.ndim != 1:
        raise ConfigError(f"values {values.shape} and groups {groups.shape} must be 1-D arrays of equal length.")
    if not 0.0 < level < 1.0:
        raise ConfigError(f"level must lie in (0, 1), e.g. 0.95; got {level}.")
    if n_boot < 1:
        raise ConfigError(f"n_boot must be >= 1, got {n_boot}.")


def _replicates(values: np.ndarray, groups: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Bootstrap means of ``values``, resampling the distinct ``groups`` with replacement."""
    _, codes = np.unique(groups, return_inverse=True)
    sums = np.bincount(codes, weights=values)
    counts = np.bincount(codes).astype(np.float64)
    n_groups = len(sums)
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    step = max(1, _MAX_CELLS // max(n_groups, 1))
    for start in range(0, n_boot, step):
        k = min(step, n_boot - start)
        draw = rng.integers(0, n_groups, size=(k, n_groups))
        out[start : start + k] = sums[draw].sum(axis=1) / counts[draw].sum(axis=1)
    return out


def bootstrap_ci(values: np.ndarray, groups: np.ndarray, *, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the mean of ``values`` (NaN entries dropped), resampling ``groups``."""
    values, groups = np.asarray(values, dtype=np.float64), np.asarray(groups)
    _check(values, groups, level, n_boot)
    keep = ~np.isnan(values)
    values, groups = values[keep], groups[keep]
    if values.size == 0:
        return float("nan"), float("nan")
    if np.unique(groups).size == 1:
        mean = float(values.mean())
        return mean, mean
    reps = _replicates(values, groups, n_boot, seed)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(reps, [tail, 1.0 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class PairedResult:
    """Mean difference ``a - b`` over the same queries, its interval and a two-sided p-value."""

    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    n_queries: int
    n_groups: int
    n_boot: int
    level: float


def paired_bootstrap(a: np.ndarray, b: np.ndarray, groups: np.ndarray, *, n_boot: int = 1000, seed: int = 0,
                     level: float = 0.95) -> PairedResult:
    """Paired cluster bootstrap of ``mean(a - b)`` (per-query values of two methods on the same queries).

    Queries where either value is NaN are dropped. The p-value tests "no difference": the share of
    replicates at least as far from the observed difference as the observed difference is from 0,
    ``(1 + #{|d* - d| >= |d|}) / (1 + n_boot)`` (the null distribution is the replicates, recentred).
    """
    a, b, groups = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), np.asarray(groups)
    if a.shape != b.shape:
        raise ConfigError(f"paired values must have the same shape, got {a.shape} and {b.shape}; "
                          "score both methods on the same queries.")
    d = a - b
    _check(d, groups, level, n_boot)
    keep = ~np.isnan(d)
    d, groups = d[keep], groups[keep]
    n_groups = int(np.unique(groups).size)
    if d.size == 0:
        nan = float("nan")
        return PairedResult(nan, nan, nan, nan, 0, 0, n_boot, level)
    diff = float(d.mean())
    if n_groups == 1:
        return PairedResult(diff, diff, diff, float("nan"), int(d.size), 1, n_boot, level)
    reps = _replicates(d, groups, n_boot, seed)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(reps, [tail, 1.0 - tail])
    p = (1.0 + np.count_nonzero(np.abs(reps - diff) >= abs(diff))) / (1.0 + n_boot)
    return PairedResult(diff, float(low), float(high), float(min(p, 1.0)), int(d.size), n_groups, n_boot, level)
