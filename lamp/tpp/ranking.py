"""Top-M and the gold's filtered rank of dense score rows: the ranking rules every base model shares.

Tie rules (documented, deterministic):
- top-M order: higher score first; equal scores by lower candidate id first (a listing rule only:
  the metrics give tied candidates their average position, see :meth:`lamp.types.CandidateTable.tied`).
- gold rank: the average ("realistic") rank among tied candidates:
  ``rank = 1 + #{c : score_c > score_gold} + #{c != gold : score_c == score_gold} / 2``,
  after removing the other true answers at the same time step (time-aware filter).
"""

from __future__ import annotations

import numpy as np

from lamp.data.queries import QuerySet


def filtered_gold_rank(scores: np.ndarray, queries: QuerySet, positions: np.ndarray) -> np.ndarray:
    """Average-tie, time-aware filtered rank of each query's gold answer in ``scores`` [B, C].

    ``rank = 1 + #{c : score_c > score_gold} + #{c != gold : score_c == score_gold} / 2`` over the
    candidates that are not other true answers at the query's time step.
    """
    positions = np.asarray(positions, dtype=np.int64)
    target = queries.frame["target"].to_numpy()[positions]
    rows = np.arange(len(positions))
    gold = scores[rows, target]
    greater = (scores > gold[:, None]).sum(axis=1, dtype=np.int64).astype(np.float64)
    equal = (scores == gold[:, None]).sum(axis=1, dtype=np.int64).astype(np.float64) - 1.0
    # the other true answers of each query, gathered as one flat array (no per-query Python loop)
    starts, ends = queries.filter_ptr[positions], queries.filter_ptr[positions + 1]
    lengths = ends - starts
    if lengths.sum():
        owner = np.repeat(rows, lengths)
        flat = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
        ids = queries.filter_ids[flat]
        keep = ids != target[owner]
        owner, ids = owner[keep], ids[keep]
        vals = scores[owner, ids]
        greater -= np.bincount(owner, weights=vals > gold[owner], minlength=len(rows))
        equal -= np.bincount(owner, weights=vals == gold[owner], minlength=len(rows))
    return 1.0 + greater + equal / 2.0


def top_m_of(scores: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-m candidate ids and scores per row; ties by lower candidate id (as a stable sort on -score).

    Fast path for wide rows: the m-th largest of per-block maxima is a lower bound ``low`` on each
    row's m-th largest score, so only candidates above ``low`` (plus the lowest-id candidates equal to
    it, when fewer than m are above) need sorting. The result equals the stable full sort.
    Raises ValueError on NaN scores.
    """
    n_rows, n_cols = scores.shape
    m = min(m, n_cols)
    if m <= 0 or n_rows == 0:
        return np.zeros((n_rows, max(m, 0)), dtype=np.int64), np.zeros((n_rows, max(m, 0)), dtype=np.float32)
    if n_cols <= 8 * m:
        if np.isnan(scores).any():
            raise ValueError("scores contain NaN")
        ids = np.argsort(-scores, axis=1, kind="stable")[:, :m].astype(np.int64)
        return ids, np.take_along_axis(scores, ids, axis=1).astype(np.float32)
    block = max(1, n_cols // (4 * m))
    block_max = np.maximum.reduceat(scores, np.arange(0, n_cols, block), axis=1)
    if np.isnan(block_max).any():  # maximum propagates NaN: the check is free here
        raise ValueError("scores contain NaN")
    n_blocks = block_max.shape[1]
    low = np.partition(block_max, n_blocks - m, axis=1)[:, n_blocks - m]
    flat = np.flatnonzero(scores > low[:, None])  # 1-D nonzero is much faster than 2-D
    r_above, c_above = flat // n_cols, flat % n_cols
    n_above = np.bincount(r_above, minlength=n_rows)
    parts_r, parts_c = [r_above], [c_above]
    fill_rows = np.flatnonzero(n_above < m)
    if fill_rows.size:
        # fewer than m above ``low``: the m-th largest is ``low`` itself; take the lowest-id ties,
        # looking at a growing prefix of the row (the ties are usually near its start).
        need = m - n_above[fill_rows]
        width = min(n_cols, int(need.max() + n_above[fill_rows].max()) + 64)
        while True:
            eq = scores[fill_rows, :width] == low[fill_rows, None]
            counts = np.cumsum(eq, axis=1)
            if width == n_cols or bool((counts[:, -1] >= need).all()):
                break
            width = min(n_cols, 4 * width)
        fr, fc = np.nonzero(eq & (counts <= need[:, None]))
        parts_r.append(fill_rows[fr])
        parts_c.append(fc)
    rr, cc = np.concatenate(parts_r), np.concatenate(parts_c)
    # order by (row, -score, id): entries arrive sorted by (row, id), so two stable sorts suffice
    order = np.lexsort((cc, rr))
    rr, cc = rr[order], cc[order]
    vals = scores[rr, cc]
    order = np.argsort(-vals, kind="stable")
    order = order[np.argsort(rr[order], kind="stable")]
    rr, cc, vals = rr[order], cc[order], vals[order]
    first = np.searchsorted(rr, np.arange(n_rows))
    pick = first[:, None] + np.arange(m)[None, :]
    return cc[pick].astype(np.int64), vals[pick].astype(np.float32)
