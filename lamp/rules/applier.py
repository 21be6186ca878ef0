"""Apply mined rules to queries and candidates, strictly before each query's time.

:class:`RuleApplier` scores every candidate of object queries (``(s, r, ?, t)``, inverse relations
included) and relation queries (``(s, ?, o, t)``), and lists the real past events behind one
candidate (:meth:`RuleApplier.explain`). Several :class:`ApplyParams` can be scored in one pass
(that is how thresholds are tuned on valid).

Fallback (documented tie-breaker, TLogic uses a baseline for queries no rule reaches): candidates no
rule reaches would otherwise all tie at 0, so the final score adds ``fallback_weight * fb`` with
``fb = 0.5 * n / (1 + n) + 0.5 * p``: ``n`` the number of earlier events ``(s, r, candidate)`` in the
history, ``p`` the train frequency of the candidate for relation ``r`` (object task: the object
distribution of ``r``, as TLogic's baseline; relation task: the relation distribution).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from lamp.data.eventlog import EventLog
from lamp.data.history import strictly_before
from lamp.data.queries import QuerySet
from lamp.errors import ConfigError, LeakageError
from lamp.rules import _apply_kernels as K
from lamp.rules.index import EdgeIndex, build_index
from lamp.rules.ruleset import RuleSet

AGGREGATIONS = {"noisy_or": K.NOISY_OR, "max": K.MAX}


@dataclass(frozen=True)
class ApplyParams:
    """How rules turn into candidate scores; every field but ``window`` is selected on valid (``tuning``).

    The defaults are the choice on ICEWS14 valid (benchmarks/results/rules.md).

    ``decay``: lambda of ``exp(-decay * steps)``, steps = time since the body's first event in units
    of the log's granularity. ``mix``: TLogic's ``a`` in ``a * conf + (1 - a) * decay``; ``None``
    scores ``conf * decay``. ``max_length2``: length-2 rules used per head (most supported first; 0
    = length 1 only). ``stop_at``: TLogic's early stop (0 = off). ``window``: TLogic's application
    window in time steps (``None``: the whole history).
    """

    decay: float = 0.1
    mix: float | None = 0.5
    aggregation: str = "noisy_or"
    min_support: int = 2
    min_confidence: float = 0.01
    max_length2: int = 20
    stop_at: int = 40
    fallback_weight: float = 0.01
    window: float | None = None  # only body instances starting at most this many time steps before t

    def __post_init__(self) -> None:
        if self.aggregation not in AGGREGATIONS:
            raise ConfigError(f"Unknown rule aggregation {self.aggregation!r}. Valid choices are: "
                              f"{', '.join(AGGREGATIONS)}")
        if self.window is not None and self.window <= 0:
            raise ConfigError(f"window must be positive (time steps) or None, got {self.window}")
        if self.decay < 0 or (self.mix is not None and not 0.0 <= self.mix <= 1.0):
            raise ConfigError(f"decay must be >= 0 and mix in [0, 1] or None; got decay={self.decay}, mix={self.mix}")


@dataclass(frozen=True)
class Application:
    """One rule instance behind a candidate: its body events (log rows, body order) and scores."""

    rule: int  # position in the applier's rules
    rows: tuple[int, ...]
    first_time: float  # time of the body's first event (the decay reference)
    confidence: float
    score: float  # confidence * time decay


class RuleApplier:
    """Rules sorted for application plus a temporal index of the whole log (times < t are used only)."""

    def __init__(self, rules: RuleSet, log: EventLog, *, n_jobs: int = 0) -> None:
        rules.check_log(log)
        conf = rules.confidence
        order = np.lexsort((rules.body2, rules.body1, -rules.rule_support, -conf, rules.head))
        self.rules = RuleSet(rules.num_relations, rules.head[order], rules.body1[order], rules.body2[order],
                             rules.rule_support[order], rules.body_support[order], dict(rules.provenance))
        self.log = log
        self.granularity = float(log.time_spec.granularity)
        self.n_jobs = n_jobs or os.cpu_count() or 1
        r = self.rules
        self.conf = r.confidence
        self.head_ptr = np.searchsorted(r.head, np.arange(2 * log.num_relations + 1)).astype(np.int64)
        self.b1, self.b2 = r.body1.astype(np.int64), r.body2.astype(np.int64)
        self.l2_rank = _length2_rank(r)
        self.index: EdgeIndex = build_index(log)
        self._object_prior, self._relation_prior = _train_priors(log, rules)
        self._active_cache: tuple[tuple[ApplyParams, ...], np.ndarray] = ((), np.zeros((0, 0), dtype=bool))

    # -- configuration arrays -------------------------------------------------------------------
    def active(self, params: Sequence[ApplyParams]) -> np.ndarray:
        """bool [K, n_rules]: which rules each configuration uses (cached for the last configurations)."""
        key = tuple(params)
        if self._active_cache[0] == key:
            return self._active_cache[1]
        r = self.rules
        out = np.zeros((len(params), len(r)), dtype=bool)
        for k, p in enumerate(params):
            out[k] = (r.rule_support >= p.min_support) & (self.conf >= p.min_confidence) & \
                ((r.body2 < 0) | (self.l2_rank < p.max_length2))
        self._active_cache = (key, out)
        return out

    def _cfg(self, params: Sequence[ApplyParams]) -> tuple[np.ndarray, ...]:
        lam = np.array([p.decay / self.granularity for p in params], dtype=np.float64)
        mix = np.array([-1.0 if p.mix is None else p.mix for p in params], dtype=np.float64)
        agg = np.array([AGGREGATIONS[p.aggregation] for p in params], dtype=np.int64)
        window = np.array([np.inf if p.window is None else p.window * self.granularity for p in params])
        return lam, mix, agg, window

    def check_times(self, t: np.ndarray) -> None:
        """Rules counted events up to ``last_time``; a query at or before it would see its own future."""
        if "last_time" not in self.rules.provenance:
            raise LeakageError("this rule set does not record the last event time it was mined on "
                               "(provenance['last_time']), so no query can be shown to come after it. "
                               "Fix: mine it with lamp.rules.mine_rules, which records it.")
        if len(t) and float(np.min(t)) <= self.rules.last_time:
            raise LeakageError(
                f"a query at time {float(np.min(t)):g} is not after the last event the rules were mined on "
                f"({self.rules.last_time:g}), so their confidences count events at or after the query. "
                "Fix: score valid/test queries only, or mine on an earlier cutoff (MiningConfig(end=...)).")

    # -- scores ---------------------------------------------------------------------------------
    def _parallel(self, n: int, fn: Any) -> None:
        chunks = np.array_split(np.arange(n), min(self.n_jobs, max(1, n)))
        with ThreadPoolExecutor(max_workers=len(chunks)) as pool:
            list(pool.map(lambda c: fn(int(c[0]), int(c[-1]) + 1) if len(c) else None, chunks))

    def rule_scores_object(self, s: np.ndarray, r: np.ndarray, t: np.ndarray,
                           params: Sequence[ApplyParams]) -> np.ndarray:
        """float32 [B, K, num_entities]: aggregated rule scores of every object candidate."""
        self.check_times(t)
        s, r, t = (np.ascontiguousarray(x, dtype=d) for x, d in ((s, np.int64), (r, np.int64), (t, np.float64)))
        out = np.zeros((len(s), len(params), self.log.num_entities), dtype=np.float32)
        act, (lam, mix, agg, window) = self.active(params), self._cfg(params)
        stop = np.array([p.stop_at for p in params], dtype=np.int64)
        ix = self.index

        def run(a: int, b: int) -> None:
            K.score_object(s[a:b], r[a:b], t[a:b], self.head_ptr, self.b1, self.b2, self.conf, act, lam, mix, agg,
                           window, stop, out[a:b], ix.tri_rel, ix.tri_dst, ix.tri_ptr, ix.times, ix.src_ptr)

        self._parallel(len(s), run)
        return out

    def rule_scores_relation(self, s: np.ndarray, o: np.ndarray, t: np.ndarray,
                             params: Sequence[ApplyParams]) -> np.ndarray:
        """float32 [B, K, num_relations]: aggregated rule scores of every relation candidate."""
        self.check_times(t)
        s, o, t = (np.ascontiguousarray(x, dtype=d) for x, d in ((s, np.int64), (o, np.int64), (t, np.float64)))
        out = np.zeros((len(s), len(params), self.log.num_relations), dtype=np.float32)
        act, (lam, mix, agg, window) = self.active(params), self._cfg(params)
        ix = self.index

        def run(a: int, b: int) -> None:
            K.score_relation(s[a:b], o[a:b], t[a:b], self.head_ptr, self.b1, self.b2, self.conf, act, lam, mix, agg,
                             window, out[a:b], ix.tri_rel, ix.tri_dst, ix.tri_ptr, ix.times, ix.src_ptr)

        self._parallel(len(s), run)
        return out

    def fallback_object(self, s: np.ndarray, r: np.ndarray, t: np.ndarray) -> np.ndarray:
        """float32 [B, num_entities]: the fallback score (module docstring)."""
        s, r, t = (np.ascontiguousarray(x, dtype=d) for x, d in ((s, np.int64), (r, np.int64), (t, np.float64)))
        out = np.empty((len(s), self.log.num_entities), dtype=np.float32)
        ix = self.index
        K.fallback_object(s, r, t, self._object_prior, out, ix.tri_rel, ix.tri_dst, ix.tri_ptr, ix.times, ix.src_ptr)
        return out

    def fallback_relation(self, s: np.ndarray, o: np.ndarray, t: np.ndarray) -> np.ndarray:
        """float32 [B, num_relations]: the fallback score for relation queries."""
        R, ix = self.log.num_relations, self.index
        n = np.zeros((len(s), R), dtype=np.float64)
        for b in range(len(s)):
            lo, hi = ix.src_ptr[s[b]], ix.src_ptr[s[b] + 1]
            tri = np.arange(lo, hi)[(ix.tri_dst[lo:hi] == o[b]) & (ix.tri_rel[lo:hi] < R)]
            for a in tri:
                n[b, ix.tri_rel[a]] = strictly_before(ix.times[ix.tri_ptr[a]:ix.tri_ptr[a + 1]], t[b])
        return (0.5 * n / (1.0 + n) + 0.5 * self._relation_prior[None, :]).astype(np.float32)

    def score_queries(self, queries: QuerySet, positions: np.ndarray, params: Sequence[ApplyParams]
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Rule scores [B, K, C] and fallback [B, C] of object or relation queries at ``positions``."""
        f = queries.frame
        pos = np.asarray(positions, dtype=np.int64)
        t = f["time"].to_numpy()[pos]
        s = f["subject"].to_numpy()[pos]
        if queries.task == "object":
            r = f["relation"].to_numpy()[pos]
            return self.rule_scores_object(s, r, t, params), self.fallback_object(s, r, t)
        if queries.task == "relation":
            o = f["object"].to_numpy()[pos]
            return self.rule_scores_relation(s, o, t, params), self.fallback_relation(s, o, t)
        raise ConfigError(f"temporal rules score the tasks 'object' and 'relation', not {queries.task!r}. "
                          "Fix: use task=object or task=relation, or another base model.")

    # -- explanations -----------------------------------------------------------------------------
    def explain(self, s: int, h: int, o: int, t: float, params: ApplyParams, *, max_instances: int = 2000
                ) -> list[Application]:
        """Instances of the rules with head ``h`` (used by ``params``) from ``s`` to ``o`` before ``t``.

        One per (rule, intermediate entity): the latest. At most ``max_instances`` are gathered, the most
        confident rules first; the result is sorted by score (confidence x time decay).
        """
        self.check_times(np.array([t]))
        lo, hi = int(self.head_ptr[h]), int(self.head_ptr[h + 1])
        pos = np.arange(lo, hi)[self.active([params])[0, lo:hi]]
        ix = self.index
        rule, row1, row2, t1 = K.explain(int(s), int(o), float(t), pos.astype(np.int64), self.b1, self.b2,
                                         max_instances, ix.tri_rel, ix.tri_dst, ix.tri_ptr, ix.times, ix.rows, ix.src_ptr)
        out = []
        horizon = np.inf if params.window is None else params.window * self.granularity
        for ri, a, b, tt in zip(rule.tolist(), row1.tolist(), row2.tolist(), t1.tolist(), strict=True):
            if t - tt > horizon:
                continue
            conf = float(self.conf[ri])
            score = conf * float(np.exp(-params.decay * (t - tt) / self.granularity))
            out.append(Application(ri, (a,) if b < 0 else (a, b), tt, conf, score))
        out.sort(key=lambda x: (-x.score, x.rule, x.rows))
        return out


def _length2_rank(rules: RuleSet) -> np.ndarray:
    """Rank of each length-2 rule within its head by support (then confidence); length 1 gets 0."""
    rank = np.zeros(len(rules), dtype=np.int64)
    idx = np.flatnonzero(rules.body2 >= 0)
    if len(idx):
        o = idx[np.lexsort((-rules.confidence[idx], -rules.rule_support[idx], rules.head[idx]))]
        heads = rules.head[o]
        rank[o] = np.arange(len(o)) - np.searchsorted(heads, heads, side="left")
    return rank


def _train_priors(log: EventLog, rules: RuleSet) -> tuple[np.ndarray, np.ndarray]:
    """Train object distribution per query-space relation [2R, E] and relation distribution [R]."""
    end = min(int(rules.provenance.get("end_row", log.split_ends[0])), len(log))  # a short history: all of it
    R, E = log.num_relations, log.num_entities
    e = log.edges(end)
    ok = e.dst >= 0
    counts = np.zeros((2 * R, E), dtype=np.float32)
    np.add.at(counts, (e.rel[ok], e.dst[ok]), 1.0)
    counts /= np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    rel = np.bincount(e.rel[~e.inverse], minlength=R).astype(np.float32)
    return counts, rel / max(float(rel.sum()), 1.0)
