"""Metrics over a :class:`CandidateTable`, the rows of the results table and the predictions frame.

What each metric conditions on:

- ``mean_rank_top_m`` (the LAMP paper's metric): the mean 1-based position of the gold answer in the
  top-M list, over the queries whose gold answer is in the base model's top-M (others are not
  counted; ``n_gold_in_top_m`` says how many were). Positions are unfiltered: the list as a ranker sees it.
  Candidates the order cannot tell apart (equal base scores, or equal keys of a reordering) share their
  average position, so a tie favours no class (the listing itself puts the lower id first: with all five
  Amazon ratings tied, "1 star" would otherwise always come first). Which queries count as having the
  gold in the top-M still follows the listing's cut (lower ids first at the M-th place).
- ``mrr_filtered`` / ``hits_at_k``: from ``gold_rank_filtered``, the gold's time-aware filtered rank
  over the FULL candidate set (average tie rule), over all queries. After a ranker reorders the
  top-M (:func:`apply_reorder`), a gold inside the top-M takes its new filtered rank, ties of the
  reordering's own keys averaged the same way, and every other query keeps its base rank. For ``relation_object`` (factored candidates) a gold outside the
  factored set has no rank (NaN); these metrics are then NaN and only the top-M metrics are reported.
- Every mean gets a 95% interval from :mod:`lamp.eval.bootstrap` (resampling timestamps).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from lamp.errors import ConfigError
from lamp.eval.bootstrap import CI_METHOD, PairedResult, bootstrap_ci, paired_bootstrap
from lamp.types import TIE_RULE, CandidateTable, tie_groups_of

HITS = (1, 3, 10)


@dataclass(frozen=True)
class TopMRank:
    """The paper's metric: mean position of the gold among the top-M, and what it is conditioned on."""

    value: float  # NaN when no gold answer is in the top-M
    n_gold_in_top_m: int
    n_queries: int


def gold_positions(table: CandidateTable, m: int | None = None) -> np.ndarray:
    """1-based position of the gold answer in the first ``m`` (default: all M) candidates; 0 if absent.

    Ties share their average position among the first ``m`` (:meth:`CandidateTable.tied`): the expected
    position under a random order of the tied candidates, given that the gold is among the first ``m``.
    """
    m = table.top_m if m is None else m
    if not 1 <= m <= table.top_m:
        raise ConfigError(f"m must lie in 1..{table.top_m} (the table's top-M), got {m}; score with a larger top_m.")
    pos = table.gold_position()
    hit = (pos >= 0) & (pos < m)
    return np.where(hit, average_position(table.tied()[:, :m], np.where(hit, pos, 0)), 0.0)


def average_position(groups: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """1-based average position of entry ``pos`` of each row among the entries of its tie group
    (``groups`` [Q, m], non-decreasing per row): 1 + #before its group + (#in its group - 1) / 2."""
    g = groups[np.arange(len(pos)), pos][:, None]
    return 1.0 + (groups < g).sum(axis=1) + ((groups == g).sum(axis=1) - 1) / 2.0


def mean_rank_top_m(table: CandidateTable, m: int | None = None) -> TopMRank:
    """Mean 1-based position of the gold among the top-``m`` over queries whose gold is there."""
    pos = gold_positions(table, m)
    hit = pos > 0
    value = float(pos[hit].mean()) if hit.any() else float("nan")
    return TopMRank(value, int(hit.sum()), len(pos))


def mrr(ranks: np.ndarray) -> float:
    """Mean reciprocal rank; NaN if any rank is undefined (NaN) or there are none."""
    ranks = np.asarray(ranks, dtype=np.float64)
    return float(np.mean(1.0 / ranks)) if ranks.size and not np.isnan(ranks).any() else float("nan")


def hits_at(ranks: np.ndarray, k: int) -> float:
    """Share of queries with rank <= k; NaN if any rank is undefined or there are none."""
    ranks = np.asarray(ranks, dtype=np.float64)
    return float(np.mean(ranks <= k)) if ranks.size and not np.isnan(ranks).any() else float("nan")


def ranking_metrics(ranks: np.ndarray) -> dict[str, float]:
    """``mrr_filtered`` and ``hits_at_{1,3,10}`` of (filtered) ranks."""
    return {"mrr_filtered": mrr(ranks), **{f"hits_at_{k}": hits_at(ranks, k) for k in HITS}}


def apply_reorder(table: CandidateTable, order: np.ndarray, method: str | None = None, *,
                  scores: np.ndarray | None = None, tie_keys: np.ndarray | None = None) -> CandidateTable:
    """Reorder each query's top-M by ``order`` ([Q, M], a permutation of positions 0..M-1 per row, best first).

    The new ranking is the reordered top-M block followed by the rest in base order. A gold answer
    inside the block gets its filtered rank under the average tie rule: 1 + the other non-answers
    placed strictly above it + half of those tied with it, where ``tie_keys`` ([Q, M] or [Q, M, K],
    aligned with the BASE positions: the new order's sort keys) say which candidates the reordering
    could not tell apart; ``None`` means a strict order. Two cases keep the base rank's tie share:
    if the gold has the same candidates above it and tied with it as in the base order, its base rank
    is kept exactly; if it stays in the block's last tie group and was in it before, a base tie that
    straddles the M cut keeps its share from outside the block. Every query whose gold is not in the
    block keeps its base rank. ``scores`` ([Q, M], in the new order) replaces the base scores, e.g.
    with the ranker's. The new table's ``tie_groups`` hold the ties of ``tie_keys`` in the new order (for
    the paper's metric, :func:`gold_positions`).
    """
    order = np.asarray(order)
    shape = table.candidates.shape
    if order.shape != shape:
        raise ConfigError(f"order has shape {order.shape}, expected {shape} (one permutation of 0..M-1 per query).")
    if order.size and not (np.sort(order, axis=1) == np.arange(shape[1])).all():
        raise ConfigError("each row of order must be a permutation of positions 0..M-1 (no repeats, no gaps).")
    order = order.astype(np.int64)
    cands = np.take_along_axis(table.candidates, order, axis=1)
    new_scores = np.take_along_axis(table.scores, order, axis=1) if scores is None else np.asarray(scores, np.float32)
    if new_scores.shape != shape:
        raise ConfigError(f"scores has shape {new_scores.shape}, expected {shape}.")
    if tie_keys is None:  # a strict order: every candidate its own key
        keys = np.arange(shape[1], dtype=np.float64)[None, :, None].repeat(shape[0], 0)
    else:
        keys = np.asarray(tie_keys, dtype=np.float64)
        if keys.shape[:2] != shape or keys.ndim not in (2, 3):
            raise ConfigError(f"tie_keys has shape {keys.shape}, expected {shape} or {shape} + (K,).")
        keys = keys.reshape(shape[0], shape[1], -1)
    q = table.queries
    target = q.frame["target"].to_numpy().astype(np.int64)
    is_true = _true_cells(q, table.candidates)
    is_gold = table.candidates == target[:, None]
    has_gold = is_gold.any(axis=1)
    ident = np.arange(shape[1])[None, :].repeat(shape[0], 0)
    b_pos, b_above, b_tied, b_last = _standing(ident, table.scores.astype(np.float64)[:, :, None], is_true, is_gold)
    n_pos, n_above, n_tied, n_last = _standing(order, keys, is_true, is_gold)
    same = (b_above == n_above).all(axis=1) & (b_tied == n_tied).all(axis=1)
    straddle = n_pos + (table.gold_rank_filtered - b_pos)  # the base tie's share from beyond the cut, carried over
    ranks = np.where(same, table.gold_rank_filtered, np.where(b_last & n_last, np.maximum(1.0, straddle), n_pos))
    ranks = np.where(has_gold, ranks, table.gold_rank_filtered)
    groups = tie_groups_of(np.take_along_axis(keys, order[:, :, None], axis=1))  # the keys in the new order
    return replace(table, method=method or table.method, candidates=cands, scores=new_scores, gold_rank_filtered=ranks,
                   tie_groups=groups)


def _true_cells(q: Any, cands: np.ndarray) -> np.ndarray:
    """[Q, M] bool: the candidate is a true answer of its query (the gold or a filtered one)."""
    n_cand = max(int(q.num_candidates), int(cands.max(initial=0)) + 1)
    owner, flat = _filter_cells(q)
    true_keys = np.sort(owner * n_cand + q.filter_ids[flat])
    cell_keys = np.arange(cands.shape[0])[:, None] * n_cand + cands
    idx = np.minimum(np.searchsorted(true_keys, cell_keys), max(len(true_keys) - 1, 0))
    return (true_keys[idx] == cell_keys) if len(true_keys) else np.zeros(cands.shape, dtype=bool)


def _standing(order: np.ndarray, keys: np.ndarray, is_true: np.ndarray, is_gold: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The gold's standing in the block under ``order`` (best first; ``keys`` aligned with base
    positions, equal keys = tied): its expected filtered 1-based position (non-answers only counted),
    the [Q, M] masks of non-answers above it and tied with it, and whether it is in the last tie group."""
    rows = np.arange(order.shape[0])
    gold_base = is_gold.argmax(axis=1)
    tied_all = (keys == keys[rows, gold_base][:, None, :]).all(axis=2) & ~is_gold  # [Q, M] base positions
    where = np.empty_like(order)
    np.put_along_axis(where, order, np.arange(order.shape[1])[None, :].repeat(order.shape[0], 0), axis=1)
    after = where > where[rows, gold_base][:, None]
    in_last = ~(after & ~tied_all).any(axis=1)  # nothing placed after the gold is untied with it
    other = ~is_true
    above, tied = ~after & ~tied_all & ~is_gold & other, tied_all & other
    return 1.0 + above.sum(axis=1) + 0.5 * tied.sum(axis=1), above, tied, in_last


def _filter_cells(q: Any) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.diff(q.filter_ptr)
    owner = np.repeat(np.arange(len(lengths)), lengths)
    return owner, np.arange(int(q.filter_ptr[-1]))


def average_precision_at_k(ranked: Sequence[int] | np.ndarray, relevant: Sequence[int] | np.ndarray, k: int) -> float:
    """AP@k (ml_metrics ``apk``): sum of precision@i at each relevant hit i <= k, / min(|relevant|, k)."""
    rel = set(np.asarray(relevant).tolist())
    hits, score, seen = 0, 0.0, set()
    for i, c in enumerate(np.asarray(ranked)[:k].tolist()):
        if c in rel and c not in seen:
            hits += 1
            score += hits / (i + 1.0)
        seen.add(c)
    return score / min(len(rel), k) if rel else 0.0


def average_recall_at_k(ranked: Sequence[int] | np.ndarray, relevant: Sequence[int] | np.ndarray, k: int) -> float:
    """AR@k (recmetrics ``_ark``): as AP@k but divided by |relevant|."""
    n_rel = len(set(np.asarray(relevant).tolist()))
    return average_precision_at_k(ranked, relevant, k) * min(n_rel, k) / n_rel if n_rel else 0.0


def map_at_k(table: CandidateTable, k: int, relevant: Sequence[np.ndarray] | None = None) -> float:
    """Mean AP@k over queries; ``relevant`` per query defaults to the gold answer alone (in listing order:
    ties by candidate id, unlike :func:`mean_rank_top_m` and :func:`accuracy`)."""
    rel = relevant if relevant is not None else table.queries.frame["target"].to_numpy()[:, None]
    return float(np.mean([average_precision_at_k(c, r, k) for c, r in zip(table.candidates, rel, strict=True)]))


def mar_at_k(table: CandidateTable, k: int, relevant: Sequence[np.ndarray] | None = None) -> float:
    """Mean AR@k over queries; ``relevant`` per query defaults to the gold answer alone (listing order, see
    :func:`map_at_k`)."""
    rel = relevant if relevant is not None else table.queries.frame["target"].to_numpy()[:, None]
    return float(np.mean([average_recall_at_k(c, r, k) for c, r in zip(table.candidates, rel, strict=True)]))


def accuracy(table: CandidateTable) -> float:
    """Top-1 accuracy (type prediction): share of queries whose first candidate is the gold answer; a gold
    tied with k - 1 others for the first place (among the listed top-M) counts 1/k, favouring no class."""
    if not len(table.queries):
        return float("nan")
    pos = table.gold_position()
    groups = table.tied()
    first = groups == groups[:, :1]
    hit = (pos >= 0) & first[np.arange(len(pos)), np.maximum(pos, 0)]
    return float(np.mean(np.where(hit, 1.0 / first.sum(axis=1), 0.0)))


def rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Root mean squared error (time prediction), in the data's time units."""
    p, a = np.asarray(predicted, dtype=np.float64), np.asarray(actual, dtype=np.float64)
    if p.shape != a.shape:
        raise ConfigError(f"predicted {p.shape} and actual {a.shape} times must have the same shape.")
    return float(np.sqrt(np.mean((p - a) ** 2))) if p.size else float("nan")


def per_query_values(table: CandidateTable) -> dict[str, np.ndarray]:
    """Per query: ``rr`` (1 / filtered rank), ``hits_at_k`` indicators, ``top_m_rank`` (NaN if absent), ``time``."""
    ranks = table.gold_rank_filtered.astype(np.float64)
    pos = gold_positions(table).astype(np.float64)
    out = {"rr": 1.0 / ranks, "top_m_rank": np.where(pos > 0, pos, np.nan),
           "time": table.queries.frame["time"].to_numpy()}
    out.update({f"hits_at_{k}": np.where(np.isnan(ranks), np.nan, (ranks <= k).astype(np.float64)) for k in HITS})
    return out


def paired_difference(table_a: CandidateTable, table_b: CandidateTable, metric: str = "mrr_filtered", *,
                      n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> PairedResult:
    """Paired bootstrap (grouped by timestamp) of ``metric(a) - metric(b)`` over the same queries.

    ``metric``: mrr_filtered, hits_at_1/3/10 or mean_rank_top_m (over queries with the gold in both top-Ms).
    """
    ids_a, ids_b = table_a.queries.frame["query_id"].to_numpy(), table_b.queries.frame["query_id"].to_numpy()
    if not np.array_equal(ids_a, ids_b):
        raise ConfigError("the two tables hold different queries; compare methods scored on the same QuerySet.")
    key = {"mrr_filtered": "rr", "mean_rank_top_m": "top_m_rank", **{f"hits_at_{k}": f"hits_at_{k}" for k in HITS}}
    if metric not in key:
        raise ConfigError(f"Unknown metric {metric!r}. Valid choices are: {', '.join(key)}")
    va, vb = per_query_values(table_a), per_query_values(table_b)
    return paired_bootstrap(va[key[metric]], vb[key[metric]], va["time"], n_boot=n_boot, seed=seed, level=level)


def metrics_rows(table: CandidateTable, *, dataset: str, task: str, split: str, method: str,
                 extra: dict[str, Any] | None = None, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> list[dict[str, Any]]:
    """One row per direction present (object, subject) plus ``both``, with 95% bootstrap intervals."""
    values = per_query_values(table)
    directions = table.queries.frame["direction"].to_numpy()
    rows = []
    for direction in [*sorted(set(directions.tolist())), "both"]:
        mask = np.ones(len(directions), dtype=bool) if direction == "both" else directions == direction
        v = {k: a[mask] for k, a in values.items()}
        ranks = table.gold_rank_filtered[mask]
        top = mean_rank_top_m_values(v["top_m_rank"])
        row: dict[str, Any] = {"method": method, "dataset": dataset, "task": task, "direction": direction,
                               "split": split, "top_m": table.top_m, "n_queries": int(mask.sum()),
                               "n_gold_in_top_m": top[1], "n_gold_ranked": int((~np.isnan(ranks)).sum()),
                               "mean_rank_top_m": top[0], **ranking_metrics(ranks)}
        for name, per_query in (("mean_rank_top_m", v["top_m_rank"]), ("mrr_filtered", v["rr"]),
                                *((f"hits_at_{k}", v[f"hits_at_{k}"]) for k in HITS)):
            defined = not np.isnan(row[name])
            low, high = bootstrap_ci(per_query, v["time"], n_boot=n_boot, seed=seed, level=level) if defined \
                else (float("nan"), float("nan"))
            row[f"{name}_ci_low"], row[f"{name}_ci_high"] = low, high
        row.update({"tie_rule": TIE_RULE, "ci_method": CI_METHOD, "ci_level": level, "n_boot": n_boot, "seed": seed})
        row.update(extra or {})
        rows.append(row)
    return rows


def mean_rank_top_m_values(top_m_rank: np.ndarray) -> tuple[float, int]:
    """(mean, count) of the defined entries of a per-query ``top_m_rank`` array."""
    hit = ~np.isnan(top_m_rank)
    return (float(top_m_rank[hit].mean()) if hit.any() else float("nan")), int(hit.sum())


PREDICTION_COLUMNS = ("query_id", "method", "candidate", "score", "rank", "is_gold", "gold_rank_filtered",
                      "direction", "time", "target", "tie_group")


def predictions_frame(table: CandidateTable) -> pd.DataFrame:
    """The predictions table (``predictions.parquet``): one row per (query, top-M candidate).

    ``rank`` is the candidate's 1-based position in the listing; candidates of a query with the same
    ``tie_group`` are tied in the method's order (their metric position is the group's average);
    ``gold_rank_filtered`` and ``target`` repeat per query, so every metric of :func:`metrics_rows` can
    be recomputed from it (:func:`metrics_from_predictions`).
    """
    f = table.queries.frame
    n, m = table.candidates.shape
    target = f["target"].to_numpy()
    return pd.DataFrame({
        "query_id": np.repeat(f["query_id"].to_numpy(), m), "method": table.method,
        "candidate": table.candidates.reshape(-1), "score": table.scores.reshape(-1),
        "rank": np.tile(np.arange(1, m + 1, dtype=np.int64), n),
        "is_gold": (table.candidates == target[:, None]).reshape(-1),
        "gold_rank_filtered": np.repeat(table.gold_rank_filtered, m), "direction": np.repeat(f["direction"].to_numpy(), m),
        "time": np.repeat(f["time"].to_numpy(), m), "target": np.repeat(target, m),
        "tie_group": table.tied().reshape(-1),
    }, columns=list(PREDICTION_COLUMNS))


def metrics_from_predictions(frame: pd.DataFrame, m: int | None = None) -> dict[str, float | int]:
    """Recompute the point metrics of one method (and one direction, if filtered) from :func:`predictions_frame`."""
    missing = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
    if missing:
        raise ConfigError(f"the predictions frame lacks columns {missing}; build it with predictions_frame().")
    if frame["method"].nunique() > 1:
        raise ConfigError("the predictions frame holds several methods; select one (frame[frame.method == ...]).")
    per_query = frame.groupby("query_id", sort=False)["gold_rank_filtered"].first().to_numpy()
    listed = frame[frame["rank"] <= (m or int(frame["rank"].max() if len(frame) else 0))]
    gold = listed[listed["is_gold"]][["query_id", "rank", "tie_group"]]
    # the gold's average position among the listed candidates of its tie group
    both = listed[["query_id", "tie_group"]].merge(gold, on="query_id", suffixes=("", "_gold"))
    before = both["tie_group"] < both["tie_group_gold"]
    same = both["tie_group"] == both["tie_group_gold"]
    counts = pd.DataFrame({"query_id": both["query_id"], "before": before, "same": same}).groupby("query_id").sum()
    position = 1.0 + counts["before"] + (counts["same"] - 1) / 2.0
    return {"n_queries": len(per_query), "n_gold_in_top_m": len(gold),
            "mean_rank_top_m": float(position.mean()) if len(gold) else float("nan"), **ranking_metrics(per_query)}
