"""Choose :class:`ApplyParams` on VALID by time-aware filtered MRR (average tie rule).

Two stages of one-pass grid evaluations (every configuration of a stage is scored in the same walk
over the rules): first the shape of the score (decay, TLogic's mix or a product, noisy-or or max,
early stop), then the thresholds (minimum support and confidence, length-2 rules per head) together
with the fallback weight. Large valid splits are subsampled (seeded, in time order) for speed.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from lamp.data.queries import QuerySet
from lamp.progress import progress_bar
from lamp.rules._rank_kernels import filtered_ranks
from lamp.rules.applier import ApplyParams, RuleApplier

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TuningGrid:
    """The values tried; stage 1 uses ``base`` thresholds, stage 2 the best stage-1 shape."""

    decay: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0)
    mix: tuple[float | None, ...] = (0.5, None)
    aggregation: tuple[str, ...] = ("noisy_or", "max")
    stop_at: tuple[int, ...] = (20, 40)  # 0 (apply every rule) was never chosen on ICEWS14/18 and is slow
    min_support: tuple[int, ...] = (2, 5, 10)
    min_confidence: tuple[float, ...] = (0.01, 0.05)
    max_length2: tuple[int, ...] = (0, 20, 50)
    fallback_weight: tuple[float, ...] = (0.0, 1e-4, 1e-2)
    base: ApplyParams = field(default_factory=ApplyParams)
    max_queries: int | None = 10000  # valid queries used (seeded sample); None = all
    seed: int = 0


def rank_metrics(ranks: np.ndarray) -> dict[str, float]:
    """MRR and Hits@1/3/10 of 1-based ranks."""
    r = np.asarray(ranks, dtype=np.float64)
    if r.size == 0:
        return {"mrr": float("nan"), "hits@1": float("nan"), "hits@3": float("nan"), "hits@10": float("nan")}
    return {"mrr": float((1.0 / r).mean()), "hits@1": float((r <= 1).mean()), "hits@3": float((r <= 3).mean()),
            "hits@10": float((r <= 10).mean())}


def evaluate_params(applier: RuleApplier, queries: QuerySet, params: Sequence[ApplyParams],
                    fallback_weights: Sequence[float] = (), *, batch_size: int = 64,
                    progress: bool | None = None) -> np.ndarray:
    """Filtered gold ranks ``[K, W, Q]`` (average ties) for each configuration and fallback weight.

    With no ``fallback_weights``, each configuration's own ``fallback_weight`` is used (``W == 1``).
    """
    weights = np.asarray(fallback_weights, dtype=np.float64)
    n, k = len(queries), len(params)
    out = np.zeros((k, max(1, len(weights)), n), dtype=np.float64)
    gold_all = queries.frame["target"].to_numpy().astype(np.int64)
    for a in progress_bar(range(0, n, batch_size), desc="rules on valid", unit="batch", enabled=progress, leave=False):
        b = min(n, a + batch_size)
        pos = np.arange(a, b)
        scores, fb = applier.score_queries(queries, pos, params)
        ptr = (queries.filter_ptr[a:b + 1] - queries.filter_ptr[a]).astype(np.int64)
        ids = queries.filter_ids[queries.filter_ptr[a]:queries.filter_ptr[b]].astype(np.int64)
        gold = gold_all[a:b]
        if len(weights):
            filtered_ranks(scores, fb, weights, gold, ptr, ids, out[:, :, a:b])
        else:
            for j, p in enumerate(params):
                filtered_ranks(scores[:, j:j + 1], fb, np.array([p.fallback_weight]), gold, ptr, ids,
                               out[j:j + 1, :, a:b])
    return out


def select_params(applier: RuleApplier, valid: QuerySet, grid: TuningGrid | None = None, *,
                  progress: bool | None = None) -> tuple[ApplyParams, list[dict[str, Any]]]:
    """The best :class:`ApplyParams` on ``valid`` and one row per evaluated configuration."""
    g = grid or TuningGrid()
    queries = valid.sample(g.max_queries, g.seed)
    rows: list[dict[str, Any]] = []
    stage1 = [replace(g.base, decay=d, mix=m, aggregation=a, stop_at=s)
              for d, m, a, s in itertools.product(g.decay, g.mix, g.aggregation, g.stop_at)]
    ranks = evaluate_params(applier, queries, stage1, progress=progress)
    best = _record(rows, 1, stage1, ranks[:, 0])
    shape = stage1[best]
    stage2 = [replace(shape, min_support=s, min_confidence=c, max_length2=n)
              for s, c, n in itertools.product(g.min_support, g.min_confidence, g.max_length2)]
    ranks = evaluate_params(applier, queries, stage2, g.fallback_weight, progress=progress)
    flat = [replace(p, fallback_weight=w) for p in stage2 for w in g.fallback_weight]
    best2 = _record(rows, 2, flat, ranks.reshape(-1, ranks.shape[-1]))
    chosen = flat[best2]
    logger.info("rules: chose %s (valid MRR %.4f on %d queries)", chosen, rows[-len(flat) + best2]["mrr"],
                len(queries))
    return chosen, rows


def _record(rows: list[dict[str, Any]], stage: int, params: Sequence[ApplyParams], ranks: np.ndarray) -> int:
    """Append one row per configuration; return the best index (highest MRR, first on ties)."""
    mrrs = []
    for p, r in zip(params, ranks, strict=True):
        m = rank_metrics(r)
        rows.append({"stage": stage, **asdict(p), **m, "queries": int(r.size)})
        mrrs.append(m["mrr"])
    return int(np.argmax(np.asarray(mrrs)))
