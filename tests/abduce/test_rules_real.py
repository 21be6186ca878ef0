"""Rules on real ICEWS14: no leakage from events at or after a query's time, and mining at scale."""

from __future__ import annotations

import numpy as np
import pytest

from lamp.abduce.rules import RulesAbducer
from lamp.data.eventlog import EventLog
from lamp.data.queries import make_queries
from lamp.errors import LeakageError
from lamp.rules import ApplyParams, MiningConfig, RuleApplier, RuleSet, mine_rules
from lamp.types import AbductionRequest

COLS = ("head", "body1", "body2", "rule_support", "body_support")
FAST = MiningConfig(lengths=(1, 2), max_length2_per_head=50)


def scrambled(log: EventLog, start: int, seed: int = 0) -> EventLog:
    """The log with rows ``>= start`` rewired (objects and relations permuted among them); times kept."""
    rng = np.random.default_rng(seed)
    frame = log.frame.copy()
    for col in ("object", "relation"):
        values = frame[col].to_numpy().copy()
        values[start:] = rng.permutation(values[start:])
        frame[col] = values
    return EventLog(log.name, frame, log.entities, log.relations, log.time_spec, log.split_ends, {})


def same_rules(a: RuleSet, b: RuleSet) -> bool:
    return all(np.array_equal(getattr(a, c), getattr(b, c)) for c in COLS)


@pytest.fixture(scope="module")
def rules14(icews14: EventLog) -> RuleSet:
    return mine_rules(icews14, FAST)


def test_scores_and_causes_ignore_events_at_and_after_the_query(icews14: EventLog, rules14: RuleSet) -> None:
    test = make_queries(icews14, "object", "test", directions="both")
    times = test.frame["time"].to_numpy()
    t_cut = float(np.unique(times)[len(np.unique(times)) // 2])
    pos = np.flatnonzero(times == t_cut)[:60]
    start = icews14.history_end(t_cut)
    future = scrambled(icews14, start)
    assert not np.array_equal(future.objects[start:], icews14.objects[start:])
    rules_future = mine_rules(future, FAST)
    assert same_rules(rules14, rules_future)  # the queries' own events (and all later ones) count nowhere
    params = ApplyParams(min_support=2, max_length2=20, stop_at=20)
    a = RuleApplier(rules14, icews14).score_queries(test, pos, [params])
    b = RuleApplier(rules_future, future).score_queries(test, pos, [params])
    assert a[0].max() > 0
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    qid, target = test.frame["query_id"].to_numpy(), test.frame["target"].to_numpy()
    reqs = []
    for i in pos[:20]:
        s, r, o = test.candidate_event(int(i), int(target[i]))
        reqs.append(AbductionRequest(int(qid[i]), int(target[i]), 0, s, r, o, t_cut, start))
    causes_a = RulesAbducer(rules=rules14).abduce(icews14, reqs)
    causes_b = RulesAbducer(rules=rules_future).abduce(future, reqs)
    assert sum(len(r.causes) for r in causes_a) > 0
    for ra, rb in zip(causes_a, causes_b, strict=True):
        assert ra.causes == rb.causes
        assert all(c.event_index is not None and c.event_index < start for c in ra.causes)


def test_confidences_count_only_events_before_the_mining_cutoff(icews14: EventLog) -> None:
    end = icews14.history_end(float(icews14.times[30000]))
    cfg = MiningConfig(lengths=(1,), end=end)
    rules = mine_rules(icews14, cfg)
    assert same_rules(rules, mine_rules(scrambled(icews14, end, seed=1), cfg))
    assert rules.last_time < float(icews14.times[end])
    train = make_queries(icews14, "object", "train", directions="object")
    late = np.flatnonzero(train.frame["time"].to_numpy() <= rules.last_time)[-3:]
    with pytest.raises(LeakageError):
        RuleApplier(rules, icews14).score_queries(train, late, [ApplyParams()])


@pytest.mark.slow
def test_mining_icews14_train_finds_many_rules(icews14: EventLog, rules14: RuleSet) -> None:
    counts = rules14.counts()
    assert counts["rules"] > 1000 and counts["length_1"] > 1000 and counts["length_2"] > 1000
    assert rules14.provenance["end_row"] == icews14.split_ends[0]
    assert (rules14.confidence <= 1.0).all() and (rules14.rule_support >= 2).all()
    same = np.flatnonzero((rules14.head == rules14.body1) & (rules14.body2 < 0))
    assert len(same) > 100  # recurrence rules: "X r Y <= X r Y earlier"
