"""numba kernels that apply rules to queries, strictly before each query's time.

A rule fires for a candidate ``Y`` of query ``(s, h, ?, t)`` when its body has an instance from ``s``
to ``Y`` whose events all lie before ``t``. Per (rule, candidate) only the best instance counts, the
one with the latest first event ``t1`` (TLogic's choice); its time decay is ``exp(-lam * (t - t1))``.

Score of one firing (configuration ``k``): ``conf * decay`` when ``mix[k] < 0``, else TLogic's
``mix * conf + (1 - mix) * decay``. Aggregation over rules: noisy-or, stored as
``-sum(log(1 - score))`` (the same order as ``1 - prod(1 - score)`` without its float rounding to 1),
or the maximum.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lamp.rules._jit import jit, lower_bound, upper_bound

NOISY_OR, MAX = 0, 1


@jit
def rel_range(src_ptr: Any, tri_rel: Any, e: int, rel: int) -> tuple[int, int]:
    """Triples ``(e, rel, *)``: a slice of the (src, rel, dst)-sorted triples."""
    lo, hi = src_ptr[e], src_ptr[e + 1]
    a = lower_bound(tri_rel, lo, hi, rel)
    b = lower_bound(tri_rel, a, hi, rel + 1)
    return a, b


@jit
def firing_score(conf: float, dt: float, lam: float, mix: float) -> float:
    decay = np.exp(-lam * dt)
    if mix < 0.0:
        return conf * decay
    return mix * conf + (1.0 - mix) * decay


@jit
def aggregate(current: float, sc: float, agg: int) -> float:
    """One more firing of score ``sc`` into a candidate's score: noisy-or (as -log(1 - p) sums) or max."""
    if agg == NOISY_OR:
        return current - np.log1p(-min(sc, 1.0 - 1e-7))
    return max(current, sc)


@jit
def walk_rule(s: int, t: float, r1: int, r2: int, best: Any, touched: Any,
              tri_rel: Any, tri_dst: Any, tri_ptr: Any, times: Any, src_ptr: Any) -> int:
    """Fill ``best[y]`` with the latest ``t1`` of the rule's body instances ``s -> y`` before ``t``.

    ``best`` must be ``-inf`` everywhere on entry; returns how many entries of ``touched`` it set.
    """
    n = 0
    g0, g1 = rel_range(src_ptr, tri_rel, s, r1)
    for a in range(g0, g1):
        z = tri_dst[a]
        if z == s:
            continue
        a0 = tri_ptr[a]
        e = lower_bound(times, a0, tri_ptr[a + 1], t)
        if e == a0:
            continue
        if r2 < 0:
            touched[n] = z
            n += 1
            best[z] = times[e - 1]
            continue
        z0, z1 = rel_range(src_ptr, tri_rel, z, r2)
        for b in range(z0, z1):
            y = tri_dst[b]
            if y == s or y == z:  # noqa: SIM109  (plain comparisons in numba)
                continue
            b0 = tri_ptr[b]
            e2 = lower_bound(times, b0, tri_ptr[b + 1], t)
            if e2 == b0:
                continue
            i = upper_bound(times, a0, e, times[e2 - 1])  # first events no later than the second
            if i == a0:
                continue
            t1 = times[i - 1]
            if best[y] == -np.inf:
                touched[n] = y
                n += 1
                best[y] = t1
            elif t1 > best[y]:
                best[y] = t1
    return n


@jit
def score_object(q_s: Any, q_h: Any, q_t: Any, head_ptr: Any, rule_b1: Any, rule_b2: Any, rule_conf: Any,
                 rule_active: Any, lam: Any, mix: Any, agg: Any, window: Any, stop_at: Any, out: Any,
                 tri_rel: Any, tri_dst: Any, tri_ptr: Any, times: Any, src_ptr: Any) -> int:
    """Rule scores ``out[b, k, y]`` (zeroed by the caller) of every candidate of each query, per config.

    Rules of a head must come by decreasing confidence. ``rule_active[k, i]``: rule ``i`` is used by
    configuration ``k``; ``window[k]``: a firing counts only if its first body event is at most that
    long before ``t``. ``stop_at[k] > 0``: once that many candidates have a score, rules of lower
    confidence are skipped (TLogic's early stop). Returns the number of (rule, candidate) firings.
    """
    n_ent = out.shape[2]
    n_cfg = lam.shape[0]
    best = np.full(n_ent, -np.inf)
    touched = np.zeros(n_ent, np.int64)
    active = np.zeros(n_cfg, np.bool_)
    done = np.zeros(n_cfg, np.bool_)
    n_scored = np.zeros(n_cfg, np.int64)
    fired = 0
    for b in range(q_s.shape[0]):
        s, h, t = q_s[b], q_h[b], q_t[b]
        done[:] = False
        n_scored[:] = 0
        prev_conf = np.inf
        for ri in range(head_ptr[h], head_ptr[h + 1]):
            conf = rule_conf[ri]
            any_active = False
            all_done = True
            for k in range(n_cfg):
                if conf < prev_conf and stop_at[k] > 0 and n_scored[k] >= stop_at[k]:
                    done[k] = True
                active[k] = rule_active[k, ri] and not done[k]
                any_active = any_active or active[k]
                all_done = all_done and done[k]
            prev_conf = conf
            if all_done:
                break
            if not any_active:
                continue
            n = walk_rule(s, t, rule_b1[ri], rule_b2[ri], best, touched, tri_rel, tri_dst, tri_ptr, times, src_ptr)
            fired += n
            for j in range(n):
                y = touched[j]
                dt = t - best[y]
                best[y] = -np.inf
                for k in range(n_cfg):
                    if not active[k] or dt > window[k]:
                        continue
                    sc = firing_score(conf, dt, lam[k], mix[k])
                    if sc <= 0.0:  # an underflowed decay carries nothing (and must not count as scored)
                        continue
                    if out[b, k, y] == 0.0:
                        n_scored[k] += 1
                    out[b, k, y] = aggregate(out[b, k, y], sc, agg[k])
    return fired


@jit
def fallback_object(q_s: Any, q_h: Any, q_t: Any, prior: Any, out: Any, tri_rel: Any, tri_dst: Any, tri_ptr: Any,
                    times: Any, src_ptr: Any) -> None:
    """``out[b, y] = 0.5 * n / (1 + n) + 0.5 * prior[h, y]``, ``n`` = events ``(s, h, y)`` before ``t``."""
    for b in range(q_s.shape[0]):
        h = q_h[b]
        for y in range(out.shape[1]):
            out[b, y] = 0.5 * prior[h, y]
        g0, g1 = rel_range(src_ptr, tri_rel, q_s[b], h)
        for a in range(g0, g1):
            a0 = tri_ptr[a]
            n = lower_bound(times, a0, tri_ptr[a + 1], q_t[b]) - a0
            out[b, tri_dst[a]] += 0.5 * n / (1.0 + n)


@jit
def best_to_target(s: int, o: int, t: float, r1: int, r2: int, tri_rel: Any, tri_dst: Any, tri_ptr: Any,
                   times: Any, src_ptr: Any) -> float:
    """The latest ``t1`` of the rule's body instances from ``s`` to ``o`` before ``t`` (``-inf``: none)."""
    best = -np.inf
    if o == s:  # bodies never return to their start
        return best
    g0, g1 = rel_range(src_ptr, tri_rel, s, r1)
    if r2 < 0:
        a = lower_bound(tri_dst, g0, g1, o)
        if a < g1 and tri_dst[a] == o:
            e = lower_bound(times, tri_ptr[a], tri_ptr[a + 1], t)
            if e > tri_ptr[a]:
                best = times[e - 1]
        return best
    for a in range(g0, g1):
        z = tri_dst[a]
        if z == s or z == o:  # noqa: SIM109
            continue
        a0 = tri_ptr[a]
        e = lower_bound(times, a0, tri_ptr[a + 1], t)
        if e == a0 or times[e - 1] <= best:
            continue
        z0, z1 = rel_range(src_ptr, tri_rel, z, r2)
        bb = lower_bound(tri_dst, z0, z1, o)
        if bb == z1 or tri_dst[bb] != o:
            continue
        e2 = lower_bound(times, tri_ptr[bb], tri_ptr[bb + 1], t)
        if e2 == tri_ptr[bb]:
            continue
        i = upper_bound(times, a0, e, times[e2 - 1])
        if i > a0 and times[i - 1] > best:
            best = times[i - 1]
    return best


@jit
def score_relation(q_s: Any, q_o: Any, q_t: Any, head_ptr: Any, rule_b1: Any, rule_b2: Any, rule_conf: Any,
                   rule_active: Any, lam: Any, mix: Any, agg: Any, window: Any, out: Any,
                   tri_rel: Any, tri_dst: Any, tri_ptr: Any, times: Any, src_ptr: Any) -> int:
    """Rule scores ``out[b, k, h]`` of every relation ``h < out.shape[2]`` for queries ``(s, ?, o, t)``.

    ``rule_active[k, i]`` says whether rule ``i`` is used by configuration ``k``.
    """
    n_cfg = lam.shape[0]
    fired = 0
    for b in range(q_s.shape[0]):
        s, o, t = q_s[b], q_o[b], q_t[b]
        for h in range(out.shape[2]):
            for ri in range(head_ptr[h], head_ptr[h + 1]):
                used = False
                for k in range(n_cfg):
                    used = used or rule_active[k, ri]
                if not used:
                    continue
                t1 = best_to_target(s, o, t, rule_b1[ri], rule_b2[ri], tri_rel, tri_dst, tri_ptr, times, src_ptr)
                if t1 == -np.inf:
                    continue
                fired += 1
                for k in range(n_cfg):
                    if rule_active[k, ri] and t - t1 <= window[k]:
                        sc = firing_score(rule_conf[ri], t - t1, lam[k], mix[k])
                        out[b, k, h] = aggregate(out[b, k, h], sc, agg[k])
    return fired


@jit
def explain(s: int, o: int, t: float, rule_pos: Any, rule_b1: Any, rule_b2: Any, max_out: int,
            tri_rel: Any, tri_dst: Any, tri_ptr: Any, times: Any, rows: Any, src_ptr: Any) -> Any:
    """Body instances ``s -> o`` before ``t`` of the given rules: the latest one per (rule, Z).

    Nothing when ``o == s`` (bodies never return to their start). Returns ``(rule, row1, row2, t1)`` arrays; ``row2 == -1`` for length 1. Rows index the log.
    """
    out_rule = np.empty(max_out, np.int64)
    out_r1 = np.empty(max_out, np.int64)
    out_r2 = np.empty(max_out, np.int64)
    out_t = np.empty(max_out, np.float64)
    n = 0
    if o == s:
        return out_rule[:0], out_r1[:0], out_r2[:0], out_t[:0]
    for j in range(rule_pos.shape[0]):
        ri = rule_pos[j]
        r1, r2 = rule_b1[ri], rule_b2[ri]
        g0, g1 = rel_range(src_ptr, tri_rel, s, r1)
        for a in range(g0, g1):
            z = tri_dst[a]
            if z == s or (r2 < 0 and z != o) or (r2 >= 0 and z == o):
                continue
            a0 = tri_ptr[a]
            e = lower_bound(times, a0, tri_ptr[a + 1], t)
            if e == a0:
                continue
            row1, row2, t1 = rows[e - 1], -1, times[e - 1]
            if r2 >= 0:
                z0, z1 = rel_range(src_ptr, tri_rel, z, r2)
                bb = lower_bound(tri_dst, z0, z1, o)
                if bb == z1 or tri_dst[bb] != o:
                    continue
                e2 = lower_bound(times, tri_ptr[bb], tri_ptr[bb + 1], t)
                if e2 == tri_ptr[bb]:
                    continue
                i = upper_bound(times, a0, e, times[e2 - 1])
                if i == a0:
                    continue
                row1, row2, t1 = rows[i - 1], rows[e2 - 1], times[i - 1]
            if n < max_out:
                out_rule[n], out_r1[n], out_r2[n], out_t[n] = ri, row1, row2, t1
                n += 1
    return out_rule[:n], out_r1[:n], out_r2[:n], out_t[:n]
