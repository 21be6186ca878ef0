"""Hyperparameter selection for ``base:recurrency``: filtered MRR on valid, per relation or global.

As the original (nec-research/recurrency_baseline_tkg, ``parameter_selection.py``): first lmbda with
psi alone (alpha = 1), then alpha with that lmbda, each the first grid value with the best mean
reciprocal rank of the group's valid queries. Ranks are exact (average ties) and computed without
dense rows by :mod:`lamp.tpp.sparse_ranks`, so the whole valid split is used.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from lamp.data.queries import QuerySet
from lamp.tpp.sparse_ranks import build_parts
from lamp.tpp.task_history import HistoryCache, TaskHistory


def _best_per_group(rr: np.ndarray, groups: np.ndarray, n_groups: int, grid: tuple[float, ...],
                    default: float) -> tuple[np.ndarray, np.ndarray]:
    """Per group, the first grid value with the highest mean reciprocal rank (``default`` for groups
    without queries), and its grid index."""
    counts = np.bincount(groups, minlength=n_groups)
    means = np.stack([np.bincount(groups, weights=row, minlength=n_groups) for row in rr]) / np.maximum(counts, 1)
    idx = np.argmax(means, axis=0)
    return np.where(counts > 0, np.asarray(grid, dtype=np.float64)[idx], default), idx


def select_hyperparameters(hist: TaskHistory, cache: HistoryCache, valid: QuerySet, num_entities: int,
                           groups: np.ndarray, n_groups: int, *, lmbda_grid: tuple[float, ...],
                           alpha_grid: tuple[float, ...], default_lmbda: float, default_alpha: float,
                           chunk_size: int = 20000) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """lmbda per group with psi alone (alpha = 1), then alpha per group with that lmbda, on ``valid``.

    Groups without valid queries get the defaults; a one-value grid fixes the parameter.
    """
    n = len(valid)
    if n == 0:
        lam0 = lmbda_grid[0] if len(lmbda_grid) == 1 else default_lmbda
        alp0 = alpha_grid[0] if len(alpha_grid) == 1 else default_alpha
        return (np.full(n_groups, lam0), np.full(n_groups, alp0),
                {"valid_mrr": float("nan"), "n_valid_queries": 0, "groups": n_groups, "groups_with_valid": 0})
    chunks = [np.arange(i, min(n, i + chunk_size)) for i in range(0, n, chunk_size)]
    parts = [build_parts(hist, cache, valid, pos, num_entities) for pos in chunks]
    if len(lmbda_grid) > 1:
        rr = np.zeros((len(lmbda_grid), n))
        for pos, part in zip(chunks, parts, strict=True):
            for k, value in enumerate(lmbda_grid):
                rr[k, pos] = 1.0 / part.ranks_explicit_only(part.psi(np.full(len(pos), value)))
        lmbda, _ = _best_per_group(rr, groups, n_groups, lmbda_grid, default_lmbda)
    else:
        lmbda = np.full(n_groups, lmbda_grid[0], dtype=np.float64)
    rr = np.zeros((len(alpha_grid), n))
    for pos, part in zip(chunks, parts, strict=True):
        psi = part.psi(lmbda[groups[pos]])
        for k, value in enumerate(alpha_grid):
            alpha = np.full(len(pos), value)
            rr[k, pos] = 1.0 / part.ranks(part.slot_scores(psi, alpha), alpha)
    if len(alpha_grid) > 1:
        alpha_g, idx = _best_per_group(rr, groups, n_groups, alpha_grid, default_alpha)
    else:
        alpha_g, idx = np.full(n_groups, alpha_grid[0], dtype=np.float64), np.zeros(n_groups, dtype=np.int64)
    with_valid = np.bincount(groups, minlength=n_groups) > 0
    report = {
        "valid_mrr": float(rr[idx[groups], np.arange(n)].mean()), "n_valid_queries": n, "groups": n_groups,
        "groups_with_valid": int(with_valid.sum()),
        "lmbda_chosen": {str(k): c for k, c in sorted(Counter(lmbda[with_valid].tolist()).items())},
        "alpha_chosen": {str(k): c for k, c in sorted(Counter(alpha_g[with_valid].tolist()).items())},
    }
    return lmbda, alpha_g, report
