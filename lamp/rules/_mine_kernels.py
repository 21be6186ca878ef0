"""The numba kernel that counts rule and body support exhaustively for one first body relation.

For a first body relation ``r1`` it walks every triple ``A = (X, r1, Z)``; for length 1 the body is
each event of ``A``, for length 2 every event pair of ``A`` and a triple ``B = (Z, r2, Y)`` with
``t1 <= t2``. Counts are aggregated per triple pair (``cc`` holds, for each time of ``B``, how many
bodies end there), so the work grows with the number of triple pairs, not event pairs. A body counts
for head ``h`` when an event ``(X, h, Y, t)`` follows it: ``t > t_last`` and, with a window,
``t <= t_last + window``. Self-loop events are no body atoms, and a length-2 body never returns to X.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lamp.rules._jit import jit, lower_bound, upper_bound


@jit
def _head_follows(times: Any, h0: int, h1: int, t: float, window: float) -> bool:
    j = upper_bound(times, h0, h1, t)
    return j < h1 and (window < 0.0 or times[j] <= t + window)


@jit
def mine_slab(a_tris: Any, n_rel2: int, num_entities: int, window: float, do1: bool, do2: bool, max_len: int,
              tri_src: Any, tri_rel: Any, tri_dst: Any, tri_ptr: Any, times: Any, src_ptr: Any,
              pair_dst: Any, pair_ptr: Any, pair_tri: Any, psrc_ptr: Any) -> Any:
    """Support counts of every rule whose first body relation is that of the triples ``a_tris``.

    Returns ``(body1, rule1[h], body2[r2], rule2[r2, h])``; ``window < 0`` means no window.
    """
    body1 = 0
    rule1 = np.zeros(n_rel2, np.int64)
    body2 = np.zeros(n_rel2, np.int64)
    rule2 = np.zeros((n_rel2, n_rel2), np.int64)
    pair_of = np.full(num_entities, -1, np.int64)
    cc = np.zeros(max_len + 1, np.int64)
    cur_x = -1
    for ai in range(a_tris.shape[0]):
        a = a_tris[ai]
        x, z = tri_src[a], tri_dst[a]
        if x != cur_x:  # pairs of X, for O(1) head lookups
            if cur_x >= 0:
                for p in range(psrc_ptr[cur_x], psrc_ptr[cur_x + 1]):
                    pair_of[pair_dst[p]] = -1
            for p in range(psrc_ptr[x], psrc_ptr[x + 1]):
                pair_of[pair_dst[p]] = p
            cur_x = x
        if z == x:
            continue
        a0, a1 = tri_ptr[a], tri_ptr[a + 1]
        if do1:
            body1 += a1 - a0
            p = pair_of[z]
            for k in range(pair_ptr[p], pair_ptr[p + 1]):
                h = pair_tri[k]
                h0, h1 = tri_ptr[h], tri_ptr[h + 1]
                if times[h1 - 1] <= times[a0]:
                    break  # pair triples come latest-first: no later head for any body
                if window < 0.0:
                    cnt = lower_bound(times, a0, a1, times[h1 - 1]) - a0
                else:
                    cnt = 0
                    for i in range(a0, a1):
                        if _head_follows(times, h0, h1, times[i], window):
                            cnt += 1
                rule1[tri_rel[h]] += cnt
        if not do2:
            continue
        for b in range(src_ptr[z], src_ptr[z + 1]):
            y = tri_dst[b]
            if y == x or y == z:  # noqa: SIM109  (plain comparisons in numba)
                continue
            b0, b1 = tri_ptr[b], tri_ptr[b + 1]
            j0 = lower_bound(times, b0, b1, times[a0])
            if j0 == b1:
                continue
            i = a0
            total = 0
            for j in range(j0, b1):
                while i < a1 and times[i] <= times[j]:
                    i += 1
                total += i - a0
                cc[j - j0] = total
            r2 = tri_rel[b]
            body2[r2] += total
            p = pair_of[y]
            if p < 0:
                continue
            for k in range(pair_ptr[p], pair_ptr[p + 1]):
                h = pair_tri[k]
                h0, h1 = tri_ptr[h], tri_ptr[h + 1]
                last = times[h1 - 1]
                if last <= times[j0]:
                    break
                if window < 0.0:
                    m = lower_bound(times, j0, b1, last) - j0  # bodies ending before the last head
                    cnt = cc[m - 1]
                else:
                    cnt = 0
                    prev = 0
                    for j in range(j0, b1):
                        if _head_follows(times, h0, h1, times[j], window):
                            cnt += cc[j - j0] - prev
                        prev = cc[j - j0]
                rule2[r2, tri_rel[h]] += cnt
    return body1, rule1, body2, rule2
