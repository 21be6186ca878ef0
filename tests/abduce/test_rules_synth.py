"""Rule mining and application on tiny synthetic logs, checked against brute force by definition.

Also holds the synthetic-log helpers the other ``test_rules_*`` files import.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from lamp.data.eventlog import EventLog, TimeSpec, build_event_log
from lamp.errors import ConfigError
from lamp.rules import ApplyParams, MiningConfig, RuleApplier, RuleSet, mine_rules

Event = tuple[int, int, int, float]  # subject, relation, object, time


def make_log(events: list[Event], n_ent: int, rel_names: list[str], splits: tuple[float, float]) -> EventLog:
    """A log whose train split is ``t < splits[0]``, valid ``t < splits[1]``, test the rest (all non-empty)."""
    df = pd.DataFrame(events, columns=["subject", "relation", "object", "time"])
    parts = {"train": df[df.time < splits[0]], "valid": df[(df.time >= splits[0]) & (df.time < splits[1])],
             "test": df[df.time >= splits[1]]}
    return build_event_log("synth", parts, [f"E{i}" for i in range(n_ent)], rel_names,
                           TimeSpec("day", 86400.0, datetime(2020, 1, 1)))


def planted_log() -> EventLog:
    """A threatens B at t, B mobilises against A at t+1 in 8 of 10 cases; plus a consult->threaten chain."""
    ev: list[Event] = []
    for k in range(10):
        a, b, t = 2 * k % 12, (2 * k + 1) % 12, 1.0 + 3 * k
        ev.append((a, 0, b, t))  # threaten
        if k < 8:
            ev.append((b, 1, a, t + 1))  # mobilize
    ev += [(12, 2, 13, 40.0), (13, 0, 14, 41.0), (12, 1, 14, 43.0)]  # consult, threaten, mobilize
    ev += [(12, 3, 13, 50.0), (0, 3, 1, 51.0), (2, 0, 3, 52.0), (3, 3, 2, 53.0), (5, 0, 4, 54.0)]
    return make_log(ev, 15, ["Threaten", "Mobilize", "Consult", "Other"], (45.0, 52.5))


def random_log(seed: int, n_ent: int = 7, n_rel: int = 3, n_events: int = 70, t_max: int = 20) -> EventLog:
    rng = np.random.default_rng(seed)
    ev = {(int(rng.integers(n_ent)), int(rng.integers(n_rel)), int(rng.integers(n_ent)), float(rng.integers(1, t_max)))
          for _ in range(n_events)}
    ev |= {(0, 0, 1, float(t_max)), (1, 1, 2, float(t_max + 1)), (2, 2, 0, float(t_max + 2))}
    return make_log(sorted(ev, key=lambda e: e[3]), n_ent, [f"r{i}" for i in range(n_rel)],
                    (t_max * 0.7, t_max * 0.85))


def edges(log: EventLog, end: int) -> list[Event]:
    """Query-space edges of rows [0, end): every event and its inverse."""
    R = log.num_relations
    out = []
    cols = (log.times[:end].tolist(), log.subjects[:end].tolist(), log.rels[:end].tolist(), log.objects[:end].tolist())
    for t, s, r, o in zip(*cols, strict=True):
        out += [(s, r, o, t), (o, r + R, s, t)]
    return out


def brute_mine(log: EventLog, window: float | None = None) -> dict[tuple[int, int, int], tuple[int, int]]:
    """(head, body1, body2) -> (rule support, body support) by the definition in ``ruleset``."""
    E = edges(log, log.split_ends[0])
    heads = defaultdict(list)
    for s, r, o, t in E:
        heads[(s, o)].append((r, t))

    def follows(x: int, y: int, t_last: float) -> set[int]:
        return {h for h, t in heads[(x, y)] if t > t_last and (window is None or t <= t_last + window)}

    body: dict[tuple[int, int], int] = defaultdict(int)
    supp: dict[tuple[int, int, int], int] = defaultdict(int)
    for x, r1, y, t1 in E:
        if x != y:
            body[(r1, -1)] += 1
            for h in follows(x, y, t1):
                supp[(h, r1, -1)] += 1
    for x, r1, z, t1 in E:
        for z2, r2, y, t2 in E:
            if z2 == z and t1 <= t2 and len({x, y, z}) == 3:
                body[(r1, r2)] += 1
                for h in follows(x, y, t2):
                    supp[(h, r1, r2)] += 1
    return {k: (v, body[(k[1], k[2])]) for k, v in supp.items()}


def as_dict(rules: RuleSet) -> dict[tuple[int, int, int], tuple[int, int]]:
    return {(int(h), int(a), int(b)): (int(s), int(n)) for h, a, b, s, n in
            zip(rules.head, rules.body1, rules.body2, rules.rule_support, rules.body_support, strict=True)}


ALL = MiningConfig(min_support=1, min_confidence=0.0, max_length2_per_head=None, n_jobs=2)


def test_planted_rule_is_found_with_its_confidence() -> None:
    log = planted_log()
    rules = as_dict(mine_rules(log, ALL))
    R = log.num_relations
    # X Mobilize Y <= Y Threaten X earlier: 11 threats in train (10 planted + 1 in the chain), 8 answered.
    assert rules[(1, 0 + R, -1)] == (8, 11)
    # X Mobilize Y <= X Consult Z, then Z Threaten Y: the one chain is confirmed.
    assert rules[(1, 2, 0)] == (1, 1)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("window", [None, 2.0])
def test_exact_counts_equal_brute_force(seed: int, window: float | None) -> None:
    log = random_log(seed)
    mined = as_dict(mine_rules(log, MiningConfig(min_support=1, min_confidence=0.0, max_length2_per_head=None,
                                                 window=window, n_jobs=2)))
    assert mined == brute_mine(log, window)


@pytest.mark.parametrize("max_events", [1, 9, 25])
def test_max_events_mines_the_latest_whole_time_steps(max_events: int) -> None:
    """With ``max_events`` the counts are those of a log holding only the train events from the time step of
    row ``end - max_events`` on (whole steps), counted by definition."""
    log = random_log(4, n_events=120)
    end = log.split_ends[0]
    first_t = log.times[end - max_events]
    first = int(np.searchsorted(log.times, first_t))
    assert first <= end - max_events and (first == 0 or log.times[first - 1] < first_t)
    kept = [(int(s), int(r), int(o), float(t)) for s, r, o, t in
            zip(log.subjects, log.rels, log.objects, log.times, strict=True) if t >= first_t]
    recent = make_log(kept, log.num_entities, [f"r{i}" for i in range(log.num_relations)],
                      (log.times[end], log.times[log.split_ends[1]]))
    rules = mine_rules(log, MiningConfig(min_support=1, min_confidence=0.0, max_length2_per_head=None,
                                         max_events=max_events, n_jobs=2))
    assert as_dict(rules) == brute_mine(recent)
    assert rules.provenance["start_row"] == first and rules.provenance["end_row"] == end
    whole = mine_rules(log, MiningConfig(min_support=1, min_confidence=0.0, max_length2_per_head=None,
                                         max_events=end, n_jobs=2))
    assert as_dict(whole) == brute_mine(log) and whole.provenance["start_row"] == 0


def test_floors_and_length2_budget() -> None:
    log = random_log(3, n_events=120)
    full = mine_rules(log, ALL)
    kept = mine_rules(log, MiningConfig(min_support=2, min_confidence=0.2, max_length2_per_head=3))
    assert (kept.rule_support >= 2).all() and (kept.confidence >= 0.2).all()
    assert max(np.bincount(kept.head[kept.body2 >= 0])) <= 3
    assert set(as_dict(kept)) <= set(as_dict(full))
    only1 = mine_rules(log, MiningConfig(lengths=(1,), min_support=1, min_confidence=0.0))
    assert (only1.body2 == -1).all() and len(only1) == int((full.body2 == -1).sum())


# -- application ----------------------------------------------------------------------------------
def brute_scores(log: EventLog, rules: RuleSet, s: int, h: int, t: float, p: ApplyParams) -> np.ndarray:
    """Aggregated rule scores of every object candidate of (s, h, ?, t) by definition (stop_at = 0)."""
    by_key: dict[tuple[int, int], list[tuple[int, float]]] = defaultdict(list)
    for x, r, y, te in edges(log, len(log)):
        if te < t:
            by_key[(x, r)].append((y, te))
    out = np.zeros(log.num_entities)
    conf = rules.confidence
    for i in np.flatnonzero(rules.head == h):
        if rules.rule_support[i] < p.min_support or conf[i] < p.min_confidence:
            continue
        b1, b2 = int(rules.body1[i]), int(rules.body2[i])
        best: dict[int, float] = {}
        for z, t1 in by_key[(s, b1)]:
            if z == s:
                continue
            if b2 < 0:
                best[z] = max(best.get(z, -1.0), t1)
                continue
            for y, t2 in by_key[(z, b2)]:
                if t1 <= t2 and y not in (s, z):
                    best[y] = max(best.get(y, -1.0), t1)
        for y, t1 in best.items():
            if p.window is not None and t - t1 > p.window:
                continue
            d = math.exp(-p.decay * (t - t1))
            sc = conf[i] * d if p.mix is None else p.mix * conf[i] + (1 - p.mix) * d
            out[y] = out[y] - math.log1p(-min(sc, 1 - 1e-7)) if p.aggregation == "noisy_or" else max(out[y], sc)
    return out


@pytest.mark.parametrize("params", [ApplyParams(stop_at=0, min_support=1, min_confidence=0.0, max_length2=99),
                                    ApplyParams(stop_at=0, mix=None, aggregation="max", decay=0.3, min_support=2,
                                                min_confidence=0.1, max_length2=99),
                                    ApplyParams(stop_at=0, min_support=1, min_confidence=0.0, max_length2=99, window=4)])
def test_object_scores_equal_brute_force(params: ApplyParams) -> None:
    log = random_log(4, n_events=90)
    rules = mine_rules(log, ALL)
    app = RuleApplier(rules, log, n_jobs=2)
    start = log.split_ends[0]
    rows = list(range(start, len(log)))
    R = log.num_relations
    qs = [(log.event(r)[1], log.event(r)[2], log.event(r)[0]) for r in rows]
    qs += [(log.event(r)[3], log.event(r)[2] + R, log.event(r)[0]) for r in rows]
    s, h, t = (np.array(c) for c in zip(*qs, strict=True))
    got = app.rule_scores_object(s, h, t, [params])[:, 0]
    for b, (si, hi, ti) in enumerate(qs):
        np.testing.assert_allclose(got[b], brute_scores(log, rules, si, hi, ti, params), rtol=1e-5, atol=1e-6)


def test_relation_scores_equal_object_scores() -> None:
    log = random_log(5, n_events=90)
    rules = mine_rules(log, ALL)
    app = RuleApplier(rules, log, n_jobs=1)
    p = ApplyParams(stop_at=0, min_support=1, min_confidence=0.0, max_length2=99)
    t = float(log.times[log.split_ends[0]])
    for s in range(3):
        for o in range(3):
            rel = app.rule_scores_relation(np.array([s]), np.array([o]), np.array([t]), [p])[0, 0]
            obj = app.rule_scores_object(np.full(log.num_relations, s), np.arange(log.num_relations),
                                         np.full(log.num_relations, t), [p])[:, 0, o]
            np.testing.assert_allclose(rel, obj, rtol=1e-6)


def test_explain_lists_the_real_body_events() -> None:
    log = planted_log()
    rules = mine_rules(log, ALL)
    app = RuleApplier(rules, log)
    apps = app.explain(12, 1, 14, 60.0, ApplyParams(min_support=1, min_confidence=0.0))
    chains = [a for a in apps if len(a.rows) == 2]
    assert chains, "the consult -> threaten chain must explain (E12, Mobilize, E14)"
    t1, s1, r1, o1 = log.event(chains[0].rows[0])
    t2, s2, r2, o2 = log.event(chains[0].rows[1])
    assert (s1, r1, o1, s2, r2, o2) == (12, 2, 13, 13, 0, 14) and t1 <= t2 < 60.0
    assert chains[0].score == pytest.approx(chains[0].confidence * math.exp(-0.1 * (60.0 - t1)))


def test_bad_settings_raise_config_errors() -> None:
    with pytest.raises(ConfigError, match="Valid choices are: noisy_or, max"):
        ApplyParams(aggregation="sum")
    with pytest.raises(ConfigError, match="subset of \\(1, 2\\)"):
        MiningConfig(lengths=(3,))
    with pytest.raises(ConfigError, match="window must be positive"):
        MiningConfig(window=0)
    with pytest.raises(ConfigError, match="max_events"):
        MiningConfig(max_events=0)
    with pytest.raises(ConfigError, match="outside the log"):
        mine_rules(planted_log(), MiningConfig(end=10_000))


def test_early_stop_skips_weaker_rules_once_enough_candidates_are_scored() -> None:
    log = random_log(6, n_events=120)
    app = RuleApplier(mine_rules(log, ALL), log, n_jobs=1)
    t = float(log.times[log.split_ends[0]])
    s, h = np.arange(4), np.zeros(4, dtype=np.int64)
    p_all = ApplyParams(stop_at=0, min_support=1, min_confidence=0.0, max_length2=99)
    full, stopped = app.rule_scores_object(s, h, np.full(4, t), [p_all, ApplyParams(**{**p_all.__dict__, "stop_at": 1})])[
        :, [0, 1]].transpose(1, 0, 2)
    assert ((stopped > 0) <= (full > 0)).all() and (stopped <= full + 1e-6).all()
    assert (stopped > 0).sum() < (full > 0).sum()
