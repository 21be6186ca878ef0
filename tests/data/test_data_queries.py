"""make_queries on real ICEWS14: counts, filters, history cut-offs and candidate round trips."""

from __future__ import annotations

import numpy as np
import pytest

from lamp.data.queries import TASKS, QuerySet, make_queries
from lamp.errors import ConfigError


@pytest.fixture(scope="module")
def test_queries(icews14) -> QuerySet:
    """Object queries of the ICEWS14 test split, both directions (built once: it takes about a second)."""
    return make_queries(icews14, "object", "test")


@pytest.mark.parametrize("split", ["valid", "test"])
def test_object_queries_both_directions(icews14, test_queries: QuerySet, split: str) -> None:
    q = test_queries if split == "test" else make_queries(icews14, "object", split)
    n = icews14.split_sizes()[split]
    assert len(q) == 2 * n and q.num_candidates == icews14.num_entities
    f = q.frame
    assert (f["direction"] == "object").sum() == n == (f["direction"] == "subject").sum()
    assert f["query_id"].tolist() == list(range(len(q)))
    assert np.all(np.diff(f["time"].to_numpy()) >= 0)
    start, end = icews14.split_range(split)
    assert f["event_index"].between(start, end - 1).all()
    if split == "valid":
        assert len(make_queries(icews14, "object", split, directions="object")) == n


def test_filters_contain_the_gold_and_only_true_answers(icews14, test_queries: QuerySet) -> None:
    q = test_queries
    t, s, r, o = icews14.times, icews14.subjects, icews14.rels, icews14.objects
    R = icews14.num_relations
    rng = np.random.default_rng(0)
    for i in rng.choice(len(q), size=300, replace=False):
        row = q.frame.iloc[i]
        answers = q.true_answers(i)
        assert row["target"] in answers
        same_t = t == row["time"]
        if row["relation"] < R:  # (s, r, ?, t): every o with (s, r, o, t) in the log
            truth = set(o[same_t & (s == row["subject"]) & (r == row["relation"])].tolist())
        else:  # (o, r^-1, ?, t): every s with (s, r, o, t)
            truth = set(s[same_t & (o == row["subject"]) & (r == row["relation"] - R)].tolist())
        assert set(answers.tolist()) == truth


def test_history_end_counts_events_strictly_before(icews14, test_queries: QuerySet) -> None:
    q = test_queries
    times = icews14.times
    for i in np.random.default_rng(1).choice(len(q), size=200, replace=False):
        row = q.frame.iloc[i]
        end = int(row["history_end"])
        assert end == int((times < row["time"]).sum())
        assert times[end - 1] < row["time"] <= times[end]  # nothing at or after the query time is inside
        assert end == icews14.history_end(row["time"])


def test_candidate_event_round_trips(icews14, test_queries: QuerySet) -> None:
    q = test_queries
    for i in np.random.default_rng(2).choice(len(q), size=200, replace=False):
        row = q.frame.iloc[i]
        _, s, r, o = icews14.event(int(row["event_index"]))
        assert q.candidate_event(i, int(row["target"])) == (s, r, o)
    q = make_queries(icews14, "relation", "valid")
    assert len(q) == icews14.split_sizes()["valid"]
    for i in range(0, len(q), 500):
        row = q.frame.iloc[i]
        _, s, r, o = icews14.event(int(row["event_index"]))
        assert q.candidate_event(i, int(row["target"])) == (s, r, o) and row["target"] in q.true_answers(i)


def test_relation_object_and_predicate(icews14) -> None:
    q = make_queries(icews14, "relation_object", "test")
    E = icews14.num_entities
    row = q.frame.iloc[10]
    _, s, r, o = icews14.event(int(row["event_index"]))
    assert int(row["target"]) == r * E + o and q.candidate_event(10, int(row["target"])) == (s, r, o)
    p = make_queries(icews14, "predicate", "test")
    roots = np.asarray(icews14.meta["relation_root"])
    assert p.num_candidates == 20
    assert (p.frame["target"].to_numpy() == roots[icews14.rels[p.frame["event_index"].to_numpy()]]).all()


def test_sample_take_and_bad_arguments(icews14, test_queries: QuerySet) -> None:
    q = test_queries
    sub = q.sample(100, seed=3)
    assert len(sub) == 100 and sub.sample(100, seed=3).frame.equals(sub.frame)
    assert np.all(np.diff(sub.frame["time"].to_numpy()) >= 0)
    j = int(np.flatnonzero(q.frame["query_id"].to_numpy() == sub.frame["query_id"].iloc[5])[0])
    assert np.array_equal(sub.true_answers(5), q.true_answers(j))
    with pytest.raises(ConfigError, match="Valid choices"):
        make_queries(icews14, "nope", "test")
    with pytest.raises(ConfigError, match="directions"):
        make_queries(icews14, "object", "test", directions="sideways")
    assert "type" in TASKS


def test_predicate_maps_cameo_on_demand(icews14, data_dir, monkeypatch: pytest.MonkeyPatch) -> None:
    """queries._roots calls lamp.data.cameo.attach_cameo when the log carries no mapping yet."""
    import dataclasses

    monkeypatch.setenv("LAMP_DATA_DIR", str(data_dir))
    bare = dataclasses.replace(icews14, meta={})
    p = make_queries(bare, "predicate", "valid")
    assert p.num_candidates == 20 and p.frame["target"].between(0, 19).all()
