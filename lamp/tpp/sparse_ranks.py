"""Exact filtered ranks and top-M of the heuristic baselines without dense rows.

A heuristic score has the form ``score(v) = explicit(v)`` on the query's *slots* (its strict-key
history P and its true answers X, gold included) and ``(1 - alpha) * (c(v) / n)`` elsewhere, where
``c(v)`` counts v with the query's relaxed key before the query time (all zero for ``base:frequency``).
So the gold's average-tie filtered rank needs explicit scores only for the slots; how many other
values beat or tie the gold is read from the relaxed key's counts, sorted once per time cutoff, by
binary search. The top-M merges the slots with the head of that sorted list. Per query this costs
O(|P| + |X| + M + log) instead of O(#candidates), and it computes the same float operations as the
dense ``score_batch`` of each model, so ranks, ties and top-M come out exactly equal (tested).
Used to choose hyperparameters on valid and, through ``rank_batch``, to score.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from lamp.data.history import concat_ranges
from lamp.data.queries import QuerySet
from lamp.tpp.task_history import HistoryCache, TaskHistory, query_keys


def psi_normaliser(lmbda: np.ndarray, n_steps: np.ndarray) -> np.ndarray:
    """``sum_{j=0}^{n-1} 2^(-lmbda j)``: psi's Z divided by its most recent term (at least 1)."""
    lam = np.asarray(lmbda, dtype=np.float64)
    n = np.asarray(n_steps, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        geo = np.expm1(-lam * n * np.log(2.0)) / np.expm1(-lam * np.log(2.0))
    return np.maximum(np.where(lam > 0, geo, n), 1.0)


def decay(lmbda: np.ndarray, d: np.ndarray) -> np.ndarray:
    """``2^(-lmbda * d)``, elementwise (the one place the decay is computed)."""
    return np.exp2(-lmbda * d)


def psi_span(hist: TaskHistory, relaxed: np.ndarray, cut: np.ndarray, qtimes: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """Per query: steps since its relaxed key's last event, and the span of that key's history in steps."""
    r_start, r_end = hist.relaxed.ranges(relaxed, cut)
    has = r_end > r_start
    first = hist.times[hist.relaxed.slot[np.where(has, r_start, 0)]]
    last = hist.times[hist.relaxed.slot[np.where(has, r_end - 1, 0)]]
    return (qtimes - last) / hist.step, np.where(has, np.rint((last - first) / hist.step), 0.0)


@dataclass(frozen=True)
class GroupCounts:
    """Values seen with each relaxed key before one cutoff, sorted by (key, -count, value)."""

    values: np.ndarray
    counts: np.ndarray
    key_start: np.ndarray  # [num_relaxed + 1] segment offsets

    @classmethod
    def build(cls, hist: TaskHistory, pair_counts: np.ndarray, pairs: np.ndarray | None = None) -> GroupCounts:
        """From the counts of every pair, or of ``pairs`` only (indices into ``pair_keys``, every pair of
        some relaxed keys): the segments of the other keys are then empty, those of these keys the same."""
        keep = pair_counts > 0
        keys = (hist.pair_keys if pairs is None else hist.pair_keys[pairs])[keep]
        rk, val, cnt = keys // hist.num_values, keys % hist.num_values, pair_counts[keep]
        order = np.lexsort((val, -cnt, rk))
        return cls(val[order], cnt[order], np.searchsorted(rk[order], np.arange(hist.num_relaxed + 1)))


@dataclass(frozen=True)
class SparseParts:
    """What ranks and top-M need for a set of queries, independent of lmbda and alpha."""

    n_values: int
    entry_slot: np.ndarray  # slot of each strict-history event
    entry_owner: np.ndarray  # query of each event
    entry_d: np.ndarray  # decay exponent per event (steps, shifted); float32 when integral
    entry_index: np.ndarray | None  # int32 entry_d - min(entry_d) when integral (decay table lookup)
    n_steps: np.ndarray  # per query: span of its relaxed key's history, in steps
    n_strict: np.ndarray  # per query: events of its strict key before its time (>= 1)
    slot_keys: np.ndarray  # owner * n_values + value, ascending
    slot_owner: np.ndarray
    slot_count: np.ndarray  # count of (relaxed key, value) before the query time
    in_p: np.ndarray
    in_x: np.ndarray
    gold_slot: np.ndarray
    n_relaxed: np.ndarray  # per query: events of its relaxed key before its time (>= 1)
    g_values: np.ndarray  # concatenated GroupCounts segments (one per query group)
    g_counts: np.ndarray
    g_comp: np.ndarray  # ascending: segment * big + (big - 1 - count)
    q_start: np.ndarray  # per query: its segment in g_values
    q_end: np.ndarray
    q_base: np.ndarray  # per query: segment * big
    big: int

    def at_least(self, k: np.ndarray) -> np.ndarray:
        """Per query: how many values have count >= k (k >= 1; k >= big gives 0)."""
        k = np.minimum(np.maximum(k, 1), self.big)
        return np.searchsorted(self.g_comp, self.q_base + (self.big - 1 - k), "right") - self.q_start

    def psi(self, lmbda: np.ndarray) -> np.ndarray:
        """psi of every slot under per-query ``lmbda`` (summed per slot, then divided by Z)."""
        d = self.entry_d
        if self.entry_index is not None and len(d) and lmbda.min() == lmbda.max():
            lo = int(d.min())  # one lmbda, integral exponents: a small table of the same values
            weights = decay(lmbda[:1], np.arange(lo, lo + int(self.entry_index.max()) + 1, dtype=np.float64))[
                self.entry_index]
        else:
            weights = decay(lmbda[self.entry_owner], d.astype(np.float64))
        raw = np.bincount(self.entry_slot, weights=weights, minlength=len(self.slot_owner))
        return raw / psi_normaliser(lmbda, self.n_steps)[self.slot_owner]

    def frequency(self) -> np.ndarray:
        """``count(strict key, value) / count(strict key)`` of every slot (base:frequency's score)."""
        raw = np.bincount(self.entry_slot, weights=np.ones(len(self.entry_slot)), minlength=len(self.slot_owner))
        return raw / self.n_strict[self.slot_owner]

    def slot_scores(self, psi: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        so = self.slot_owner
        return (1.0 - alpha[so]) * (self.slot_count / self.n_relaxed[so]) + alpha[so] * psi

    def ranks_explicit_only(self, sc: np.ndarray) -> np.ndarray:
        """Filtered ranks when every non-slot value scores 0 (alpha = 1, or base:frequency)."""
        nq, so = len(self.q_start), self.slot_owner
        s_gold = sc[self.gold_slot]
        explicit = self.in_p & ~self.in_x
        gt = np.bincount(so, weights=explicit & (sc > s_gold[so]), minlength=nq)
        eq = np.bincount(so, weights=explicit & (sc == s_gold[so]), minlength=nq)
        eq += (self.n_values - np.bincount(so, minlength=nq)) * (s_gold == 0.0)
        return 1.0 + gt + eq / 2.0

    def ranks(self, sc: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """Average-tie filtered rank of the gold per query, given slot scores and per-query alpha."""
        nq, so, cnt = len(alpha), self.slot_owner, self.slot_count
        s_gold = sc[self.gold_slot]
        explicit = self.in_p & ~self.in_x
        gt = np.bincount(so, weights=explicit & (sc > s_gold[so]), minlength=nq)
        eq = np.bincount(so, weights=explicit & (sc == s_gold[so]), minlength=nq)
        # every other value scores g(c) = (1 - alpha) * (c / n), non-decreasing in its count c:
        # it ties the gold for c_lo <= c < c_hi and beats it for c >= c_hi.
        c_lo, c_hi = self._tie_window(s_gold, alpha)
        n_seen = self.q_end - self.q_start
        gt += self.at_least(c_hi) - np.bincount(so, weights=cnt >= c_hi[so], minlength=nq)
        eq += np.where(c_lo >= c_hi, 0, self.at_least(c_lo) - self.at_least(c_hi))
        eq += (self.n_values - n_seen) * (c_lo == 0)
        eq -= np.bincount(so, weights=(cnt >= c_lo[so]) & (cnt < c_hi[so]), minlength=nq)
        return 1.0 + gt + eq / 2.0

    def _tie_window(self, s_gold: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Smallest count with g(c) >= s_gold (c_lo) and with g(c) > s_gold (c_hi), capped at ``big``."""
        big, n = self.big, self.n_relaxed
        with np.errstate(divide="ignore", invalid="ignore"):
            approx = np.where(alpha < 1.0, s_gold * n / (1.0 - alpha), 0.0)
        base = np.floor(np.minimum(approx, big)).astype(np.int64) - 2
        window = np.maximum(base[:, None] + np.arange(6)[None, :], 0)  # g's float boundary lies in here
        g = (1.0 - alpha)[:, None] * (window / n[:, None])
        ge, gt = g >= s_gold[:, None], g > s_gold[:, None]
        rows = np.arange(len(base))
        c_lo = np.where(ge.any(axis=1), window[rows, ge.argmax(axis=1)], window[:, -1] + 1)
        c_hi = np.where(gt.any(axis=1), window[rows, gt.argmax(axis=1)], window[:, -1] + 1)
        only_psi = alpha >= 1.0  # g == 0: ties only a zero-scored gold, never beats it
        c_lo = np.where(only_psi, np.where(s_gold == 0.0, 0, big), c_lo)
        c_hi = np.where(only_psi, big, c_hi)
        return np.minimum(c_lo, big), np.minimum(c_hi, big)

    def top_m(self, sc: np.ndarray, alpha: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-m (ids, float32 scores) per query, ties by lower id: equal to ``top_m_of`` on dense rows."""
        nq, v = len(self.q_start), self.n_values
        pos_slot = self.in_p & (sc > 0)
        own, val, score = [self.slot_owner[pos_slot]], [self.slot_keys[pos_slot] % v], [sc[pos_slot]]
        n_p = np.bincount(self.slot_owner[self.in_p], minlength=nq)
        rows = np.flatnonzero(alpha < 1.0)  # with alpha = 1 the counted values score 0, like the rest
        g_own, g_pos = concat_ranges(self.q_start[rows], np.minimum(self.q_start + m + n_p, self.q_end)[rows])
        g_own = rows[g_own]
        g_val = self.g_values[g_pos]
        key = g_own * v + g_val
        at = np.minimum(np.searchsorted(self.slot_keys, key), len(self.slot_keys) - 1)
        fresh = ~((self.slot_keys[at] == key) & self.in_p[at])  # P values are already in with their scores
        cnt = self.g_counts[g_pos]
        own.append(g_own[fresh])
        val.append(g_val[fresh])
        score.append(((1.0 - alpha[g_own]) * (cnt / self.n_relaxed[g_own]))[fresh])
        o, vv, s = np.concatenate(own), np.concatenate(val), np.concatenate(score)
        order = np.lexsort((vv, -s, o))
        o, vv, s = o[order], vv[order], s[order]
        first = np.searchsorted(o, np.arange(nq))
        n_pos = np.bincount(o, minlength=nq)
        rank_in = np.arange(len(o)) - first[o]
        keep = rank_in < m
        ids = np.zeros((nq, m), dtype=np.int64)
        vals = np.zeros((nq, m), dtype=np.float32)
        ids[o[keep], rank_in[keep]] = vv[keep]
        vals[o[keep], rank_in[keep]] = s[keep]
        short = np.flatnonzero(n_pos < m)  # fill with the lowest ids that score 0
        if short.size:
            need = m - n_pos[short]
            f_own, f_pos = concat_ranges(np.zeros(len(short), dtype=np.int64), need + n_pos[short])
            taken = np.sort(o * v + vv)
            cand = short[f_own] * v + f_pos
            at = np.minimum(np.searchsorted(taken, cand), max(len(taken) - 1, 0))
            free = ~(taken[at] == cand) if len(taken) else np.ones(len(cand), dtype=bool)
            f_own, f_pos = f_own[free], f_pos[free]
            col = np.arange(len(f_own)) - np.searchsorted(f_own, f_own) + n_pos[short][f_own]
            ok = col < m
            ids[short[f_own[ok]], col[ok]] = f_pos[ok]
        return ids, vals


def build_parts(hist: TaskHistory, cache: HistoryCache, queries: QuerySet, pos: np.ndarray,
                num_entities: int, *, counts: bool = True) -> SparseParts:
    """Gather the (lmbda, alpha)-independent pieces for the queries at positions ``pos``.

    ``counts=False`` skips the relaxed-key counts (enough when every non-slot value scores 0).
    """
    v, nq = hist.num_values, len(pos)
    strict, relaxed = query_keys(queries, pos, num_entities)
    qtimes = queries.frame["time"].to_numpy()[pos]
    target = queries.frame["target"].to_numpy()[pos].astype(np.int64)
    cut = hist.cutoffs(qtimes)
    start, end = hist.strict.ranges(strict, cut)
    owner, ppos = concat_ranges(start, end)
    d_last, n_steps = psi_span(hist, relaxed, cut, qtimes)
    entry_d = (qtimes[owner] - hist.times[hist.strict.slot[ppos]]) / hist.step - d_last[owner] - 1.0
    entry_index = None
    if np.array_equal(entry_d, np.rint(entry_d)) and np.abs(entry_d).max(initial=0) < 2**24:
        entry_d = entry_d.astype(np.float32)  # integral step counts: exact in float32, half the memory
        entry_index = (entry_d - (entry_d.min() if len(entry_d) else 0.0)).astype(np.int32)
    x_own, xpos = concat_ranges(queries.filter_ptr[pos], queries.filter_ptr[pos + 1])
    keys = np.concatenate([owner * v + hist.strict.values[ppos], x_own * v + queries.filter_ids[xpos],
                           np.arange(nq) * v + target])
    slot_keys, inv = np.unique(keys, return_inverse=True)
    n_p = len(owner)
    in_p = np.zeros(len(slot_keys), dtype=bool)
    in_p[inv[:n_p]] = True
    in_x = np.zeros(len(slot_keys), dtype=bool)
    in_x[inv[n_p:]] = True
    slot_owner = slot_keys // v
    pk = relaxed[slot_owner] * v + slot_keys % v
    pid = np.minimum(np.searchsorted(hist.pair_keys, pk), len(hist.pair_keys) - 1)
    known = hist.pair_keys[pid] == pk
    slot_count = np.zeros(len(slot_keys), dtype=np.int64)
    cut_values = np.unique(cut)
    groups = []
    for cv in cut_values if counts else []:
        sel = known & (cut[slot_owner] == cv)
        used = np.unique(relaxed[cut == cv])
        lo, hi = hist.pair_range(used)
        if 2 * int((hi - lo).sum()) >= len(hist.pair_keys):  # most pairs: whole tables, shared with other batches
            pc = cache.pair_counts(hist, int(cv))
            slot_count[sel] = pc[pid[sel]]
            groups.append(cache.per_cutoff("group_counts", hist, int(cv), partial(GroupCounts.build, hist, pc)))
        else:  # the pairs of these queries' keys only: a few queries per cutoff cost what their keys hold, not the log
            slot_count[sel] = hist.pair_counts(int(cv), pid[sel])
            groups.append(GroupCounts(*cache.key_groups(hist, int(cv), used, partial(GroupCounts.build, hist))))
    if not counts:
        empty = np.zeros(hist.num_relaxed + 1, dtype=np.int64)
        groups = [GroupCounts(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), empty)] * len(cut_values)
    # any bound above the counts of these queries' keys gives the same ranks (at_least(big) = 0 for them)
    big = max(int(g.counts.max(initial=0)) for g in groups) + 2
    seg_offsets = np.cumsum([0] + [len(g.values) for g in groups])
    ci = np.searchsorted(cut_values, cut)
    q_start = np.zeros(nq, dtype=np.int64)
    q_end = np.zeros(nq, dtype=np.int64)
    for i, g in enumerate(groups):
        rows = ci == i
        q_start[rows] = seg_offsets[i] + g.key_start[relaxed[rows]]
        q_end[rows] = seg_offsets[i] + g.key_start[relaxed[rows] + 1]
    seg = np.concatenate([i * hist.num_relaxed + np.repeat(np.arange(hist.num_relaxed), np.diff(g.key_start))
                          for i, g in enumerate(groups)])
    g_counts = np.concatenate([g.counts for g in groups])
    r_start, r_end = hist.relaxed.ranges(relaxed, cut)
    return SparseParts(
        v, inv[:n_p].astype(np.int32), owner.astype(np.int32), entry_d, entry_index, n_steps,
        np.maximum(end - start, 1).astype(np.float64), slot_keys, slot_owner, slot_count, in_p, in_x,
        inv[-nq:], np.maximum(r_end - r_start, 1).astype(np.float64),
        np.concatenate([g.values for g in groups]), g_counts, seg.astype(np.int64) * big + (big - 1 - g_counts),
        q_start, q_end, (ci * hist.num_relaxed + relaxed) * big, big)
