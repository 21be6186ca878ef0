"""numba kernels for ranking: the filtered gold rank of many configurations, and score combination."""

from __future__ import annotations

from typing import Any

import numpy as np

from lamp.rules._jit import jit


@jit
def combine(scores: Any, k: int, fallback: Any, weight: float, out: Any) -> None:
    """``out = float32(scores[:, k] + weight * fallback)``, summed in float64 (as the tuning ranks it)."""
    for b in range(out.shape[0]):
        for c in range(out.shape[1]):
            out[b, c] = np.float32(scores[b, k, c] + weight * fallback[b, c])


@jit
def filtered_ranks(scores: Any, fallback: Any, weights: Any, gold: Any, f_ptr: Any, f_ids: Any, out: Any) -> None:
    """Average-tie, time-aware filtered rank of the gold: ``out[k, w, b]`` for ``scores[b, k] + w * fallback[b]``.

    ``f_ptr``/``f_ids``: per query, the true answers at its time step (CSR); all but the gold are skipped.
    """
    n_b, n_k, n_c = scores.shape
    for b in range(n_b):
        g = gold[b]
        for k in range(n_k):
            for wi in range(weights.shape[0]):
                w = weights[wi]
                gs = np.float32(scores[b, k, g] + w * fallback[b, g])
                greater = 0
                equal = 0
                for c in range(n_c):
                    v = np.float32(scores[b, k, c] + w * fallback[b, c])
                    if v > gs:
                        greater += 1
                    elif v == gs:
                        equal += 1
                for j in range(f_ptr[b], f_ptr[b + 1]):
                    c = f_ids[j]
                    if c == g:
                        continue
                    v = np.float32(scores[b, k, c] + w * fallback[b, c])
                    if v > gs:
                        greater -= 1
                    elif v == gs:
                        equal -= 1
                out[k, wi, b] = 1.0 + greater + (equal - 1) / 2.0
