"""Bootstrap intervals grouped by timestamp and the paired bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from lamp.errors import ConfigError
from lamp.eval.bootstrap import bootstrap_ci, paired_bootstrap


def grouped(seed: int = 0, n_groups: int = 30, per: int = 20) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), per)
    values = rng.random(n_groups)[groups] * 0.5 + rng.random(groups.size) * 0.5  # correlated within a group
    return values, groups


def test_ci_brackets_the_mean_and_is_seeded() -> None:
    values, groups = grouped()
    low, high = bootstrap_ci(values, groups, n_boot=500, seed=1)
    assert low < values.mean() < high
    assert (low, high) == bootstrap_ci(values, groups, n_boot=500, seed=1)
    assert (low, high) != bootstrap_ci(values, groups, n_boot=500, seed=2)
    # grouping matters: resampling timestamps gives a wider interval than resampling queries
    q_low, q_high = bootstrap_ci(values, np.arange(values.size), n_boot=500, seed=1)
    assert high - low > q_high - q_low


def test_ci_edge_cases() -> None:
    assert bootstrap_ci(np.array([0.2, 0.4]), np.array([5, 5])) == pytest.approx((0.3, 0.3))
    assert np.isnan(bootstrap_ci(np.array([np.nan]), np.array([0]))[0])
    low, high = bootstrap_ci(np.array([1.0, np.nan, 3.0]), np.array([0, 1, 2]), n_boot=200)
    assert 1.0 <= low <= high <= 3.0
    with pytest.raises(ConfigError):
        bootstrap_ci(np.ones(3), np.ones(2))
    with pytest.raises(ConfigError):
        bootstrap_ci(np.ones(3), np.ones(3), level=1.5)


def test_paired_bootstrap() -> None:
    values, groups = grouped()
    same = paired_bootstrap(values, values, groups)
    assert (same.diff, same.ci_low, same.ci_high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    rng = np.random.default_rng(3)
    better = values + 0.05 + rng.normal(0, 0.01, values.size)
    res = paired_bootstrap(better, values, groups, n_boot=999, seed=0)
    assert res.diff == pytest.approx(0.05, abs=0.01) and res.ci_low > 0 and res.p_value <= 0.002
    assert res.n_groups == 30 and res.n_queries == values.size
    noise = paired_bootstrap(values + rng.normal(0, 0.01, values.size), values, groups, seed=0)
    assert noise.ci_low < 0 < noise.ci_high and noise.p_value > 0.05
    with pytest.raises(ConfigError, match="same shape"):
        paired_bootstrap(values, values[:-1], groups)
