"""The numba kernel that counts rule and body support exhaustively for one first body relation.

For a first body relation ``r1`` it walks every triple ``A = (X, r1, Z)``; for length 1 the body is
each event of ``A``, for length 2 every event pair of ``A`` and a triple ``B = (Z, r2, Y)`` with
``t1 <= t2``. Counts are aggregated per triple pair (``cc`` holds, for each time of ``B``, how many
bodies end there), so the work grows with the number of triple pairs, not event pairs; when ``B`` holds
far more events than ``A`` (a popular triple after a rare one), one binary search per event of ``A``
replaces the walk over ``B``, so the work no longer grows with the popular triple's length. A body counts
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
def _log2(n: int) -> int:
    """floor(log2(n)) for n >= 1: the steps of a binary search over n items."""
    k = 0
    while n > 1:
        n >>= 1
        k += 1
    return k


@jit
def lower_bound_int(a: Any, lo: int, hi: int, v: int) -> int:
    """First index in ``[lo, hi)`` with ``a[i] >= v`` (``hi`` if none); integer ``a`` ascending there."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@jit
def _pairs_le(times: Any, a0: int, a1: int, b0: int, b1: int) -> int:
    """How many (i, j) with i in [a0, a1), j in [b0, b1) and ``times[i] <= times[j]`` (both ranges ascending)."""
    i = a0
    total = 0
    for j in range(b0, b1):
        while i < a1 and times[i] <= times[j]:
            i += 1
        total += i - a0
    return total


@jit
def _sorted_le(ta: Any, tb: Any) -> int:
    """How many (a, b) with ``ta[a] <= tb[b]`` (both ascending)."""
    i = 0
    total = 0
    for j in range(tb.shape[0]):
        while i < ta.shape[0] and ta[i] <= tb[j]:
            i += 1
        total += i
    return total


@jit
def body2_counts(z_lo: int, z_hi: int, n_rel2: int, tri_rel: Any, tri_dst: Any, tri_ptr: Any, times: Any,
                 src_ptr: Any, pair_ptr: Any, pair_tri: Any, psrc_ptr: Any) -> Any:
    """``body2[r1, r2]``: length-2 bodies ``(X, r1, Z, t1), (Z, r2, Y, t2)`` with ``t1 <= t2``, X, Y, Z distinct,
    for the middle entities Z in ``[z_lo, z_hi)``.

    Counted per Z, not per triple pair: an atom ``(X, r1, Z)`` is Z's edge ``(Z, r1^-1, X)`` with the same
    times, so with ``L[r]`` the sorted times of Z's edges of relation r (self-loops left out), the bodies of
    (r1, r2) through Z are the pairs ``t1 <= t2`` of ``L[r1^-1] x L[r2]``, less those with Y = X (both atoms
    on Z's edges to the same X). The work is (relations at Z) x (events at Z), whatever the degrees.
    """
    half = n_rel2 // 2
    body2 = np.zeros((n_rel2, n_rel2), np.int64)
    for z in range(z_lo, z_hi):
        t0, t1 = src_ptr[z], src_ptr[z + 1]
        if t1 == t0:
            continue
        # Z's triples are sorted by (relation, destination): gather each relation's times, self-loops left out
        rels = np.empty(t1 - t0, np.int64)
        starts = np.empty(t1 - t0 + 1, np.int64)
        n_ev = 0
        for a in range(t0, t1):
            if tri_dst[a] != z:
                n_ev += tri_ptr[a + 1] - tri_ptr[a]
        buf = np.empty(n_ev, np.float64)
        n_rel = 0
        k = 0
        a = t0
        while a < t1:
            r = tri_rel[a]
            rels[n_rel] = r
            starts[n_rel] = k
            while a < t1 and tri_rel[a] == r:
                if tri_dst[a] != z:
                    for i in range(tri_ptr[a], tri_ptr[a + 1]):
                        buf[k] = times[i]
                        k += 1
                a += 1
            buf[starts[n_rel]:k] = np.sort(buf[starts[n_rel]:k])
            n_rel += 1
        starts[n_rel] = k
        for p in range(n_rel):
            r1 = (rels[p] + half) % n_rel2  # an edge (Z, r, X) is the first atom (X, r^-1, Z)
            ta = buf[starts[p]:starts[p + 1]]
            if ta.shape[0] == 0:
                continue
            for q in range(n_rel):
                tb = buf[starts[q]:starts[q + 1]]
                if tb.shape[0]:
                    body2[r1, rels[q]] += _sorted_le(ta, tb)
        # Y = X is no body: subtract the pairs of Z's edges to the same X
        for pz in range(psrc_ptr[z], psrc_ptr[z + 1]):
            k0, k1 = pair_ptr[pz], pair_ptr[pz + 1]
            if tri_dst[pair_tri[k0]] == z:
                continue
            for ka in range(k0, k1):
                a = pair_tri[ka]
                r1 = (tri_rel[a] + half) % n_rel2
                for kb in range(k0, k1):
                    b = pair_tri[kb]
                    body2[r1, tri_rel[b]] -= _pairs_le(times, tri_ptr[a], tri_ptr[a + 1], tri_ptr[b], tri_ptr[b + 1])
    return body2


@jit
def mine_slab(a_tris: Any, n_rel2: int, num_entities: int, window: float, do1: bool, do2: bool, max_len: int,
              tri_src: Any, tri_rel: Any, tri_dst: Any, tri_ptr: Any, times: Any, src_ptr: Any,
              pair_dst: Any, pair_ptr: Any, pair_tri: Any, psrc_ptr: Any) -> Any:
    """Rule support of every rule whose first body relation is that of the triples ``a_tris``.

    Returns ``(body1, rule1[h], rule2[r2, h])``; ``window < 0`` means no window. Length-2 body support is
    :func:`body2_counts`. A length-2 rule needs a head ``(X, h, Y)``, so only the Y that are neighbours of
    both X and Z are visited (the shorter neighbour list is walked), not every triple out of Z.
    """
    body1 = 0
    rule1 = np.zeros(n_rel2, np.int64)
    rule2 = np.zeros((n_rel2, n_rel2), np.int64)
    pair_of = np.full(num_entities, -1, np.int64)
    cc = np.zeros(max_len + 1, np.int64)
    lb = np.zeros(max_len + 1, np.int64)
    lb_sum = np.zeros(max_len + 2, np.int64)
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
        zx0, zx1 = psrc_ptr[z], psrc_ptr[z + 1]
        walk_z = zx1 - zx0 <= psrc_ptr[x + 1] - psrc_ptr[x]
        n_walk = zx1 - zx0 if walk_z else psrc_ptr[x + 1] - psrc_ptr[x]
        for w in range(n_walk):
            if walk_z:  # Z's neighbours, kept when X has a pair with them
                pz = zx0 + w
                y = pair_dst[pz]
                p = pair_of[y]
                if p < 0:
                    continue
            else:  # X's neighbours, kept when Z has a pair with them (binary search in Z's sorted list)
                p = psrc_ptr[x] + w
                y = pair_dst[p]
                pz = lower_bound_int(pair_dst, zx0, zx1, y)
                if pz == zx1 or pair_dst[pz] != y:
                    continue
            if y == x or y == z:  # noqa: SIM109  (plain comparisons in numba)
                continue
            for kb in range(pair_ptr[pz], pair_ptr[pz + 1]):
                b = pair_tri[kb]
                b0, b1 = tri_ptr[b], tri_ptr[b + 1]
                j0 = lower_bound(times, b0, b1, times[a0])
                if j0 == b1:
                    continue
                # bodies ending at B's event j: A's events at or before it. Either a merge that fills cc for every
                # event of B, or (no window, B much longer than A) one binary search per event of A: lb[i] = first
                # event of B at or after A's event i, so bodies ending before index e = sum_i max(0, e - lb[i]).
                n_a = a1 - a0
                by_a = window < 0.0 and n_a * (1 + _log2(b1 - j0)) < b1 - j0
                if by_a:
                    for i in range(a0, a1):
                        lb[i - a0] = lower_bound(times, j0, b1, times[i])
                        lb_sum[i - a0 + 1] = lb_sum[i - a0] + lb[i - a0]
                else:
                    i = a0
                    total = 0
                    for j in range(j0, b1):
                        while i < a1 and times[i] <= times[j]:
                            i += 1
                        total += i - a0
                        cc[j - j0] = total
                r2 = tri_rel[b]
                for k in range(pair_ptr[p], pair_ptr[p + 1]):
                    h = pair_tri[k]
                    h0, h1 = tri_ptr[h], tri_ptr[h + 1]
                    last = times[h1 - 1]
                    if last <= times[j0]:
                        break
                    if by_a:
                        e = lower_bound(times, j0, b1, last)  # bodies ending before the last head
                        kk = lower_bound_int(lb, 0, n_a, e)  # lb ascends with A's times
                        cnt = kk * e - lb_sum[kk]
                    elif window < 0.0:
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
    return body1, rule1, rule2
