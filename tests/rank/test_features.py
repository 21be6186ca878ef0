"""Ranking features: a hand-computed oracle on a tiny log, and no leakage from events at or after the query."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from rank_synthetic import synthetic_log

from lamp.data.eventlog import EventLog, TimeSpec, build_event_log
from lamp.data.queries import make_queries
from lamp.errors import LeakageError
from lamp.rank.features import NO_AGE, base_features, build_features, candidate_scores, evidence_features
from lamp.tpp.base import CandidateTable
from lamp.types import Evidence


def tiny_log() -> EventLog:
    """Entities 0..3, relations 0..1, days 1..5; the valid split is day 3 (the queries), test days 4-5."""
    rows = [(1, 0, 0, 1), (1, 2, 1, 0), (2, 0, 0, 1), (2, 0, 1, 2),  # train (time, s, r, o)
            (3, 0, 0, 2), (3, 0, 0, 1),  # valid: the query's own time step (never counted)
            (4, 1, 0, 0), (5, 3, 1, 3)]  # test: the future
    frame = pd.DataFrame(rows, columns=["time", "subject", "relation", "object"]).astype({"time": float})
    parts = {"train": frame.iloc[:4], "valid": frame.iloc[4:6], "test": frame.iloc[6:]}
    return build_event_log("tiny", parts, ["A", "B", "C", "D"], ["r0", "r1"], TimeSpec("day", 86400.0))


def query_table(log: EventLog, candidates: list[list[int]], *, positions: list[int] | None = None) -> CandidateTable:
    q = make_queries(log, "object", "valid", directions="both")
    if positions is not None:
        q = q.take(np.array(positions))
    cands = np.array(candidates, dtype=np.int64)
    scores = -np.arange(cands.shape[1], dtype=np.float32)[None, :].repeat(len(q), 0)
    return CandidateTable("base:test", q, cands.shape[1], cands, scores, np.ones(len(q)))


def test_history_features_match_a_hand_count() -> None:
    log = tiny_log()
    q = make_queries(log, "object", "valid", directions="both")
    # the first query is (A, r0, ?) at day 3 (gold C); candidates B (=1) and C (=2)
    first = int(np.flatnonzero((q.frame["subject"] == 0) & (q.frame["relation"] == 0) &
                               (q.frame["target"] == 2))[0])
    table = query_table(log, [[1, 2]], positions=[first])
    f = build_features(log, table)
    v = {name: f.values[0, :, k] for k, name in enumerate(f.names)}
    one_day = np.log1p(1.0)
    # (A, r0, B) happened on days 1 and 2; (A, r0, C) never before day 3 (its day-3 event is the query itself)
    np.testing.assert_allclose(v["hist_src_count"], [np.log1p(2), 0.0])
    np.testing.assert_allclose(v["hist_src_age"], [one_day, NO_AGE])
    np.testing.assert_allclose(v["hist_src_recent"], [np.log1p(2), 0.0])
    # (A, *, c) in query space: B twice with r0; C with r1 on day 2 and, read backwards, (C, r1, A) on day 1
    np.testing.assert_allclose(v["hist_pair_count"], [np.log1p(2), np.log1p(2)])
    np.testing.assert_allclose(v["hist_pair_age"], [one_day, one_day])
    # (c, r0, A): C did r0 to A? no; B did r0 to A? only on day 4 (the future)
    np.testing.assert_allclose(v["hist_reverse_count"], [0.0, 0.0])
    # (*, r0, c): B twice; C never before day 3
    np.testing.assert_allclose(v["hist_rel_cand_count"], [np.log1p(2), 0.0])
    # c in any role: B in 2 events; C in (C, r1, A) day 1 and (A, r1, C) day 2
    np.testing.assert_allclose(v["hist_cand_count"], [np.log1p(2), np.log1p(2)])
    np.testing.assert_allclose(v["hist_cand_age"], [one_day, one_day])
    # the subject A: 4 events before day 3, 2 of them with r0
    np.testing.assert_allclose(v["hist_subj_count"], [np.log1p(4)] * 2)
    np.testing.assert_allclose(v["hist_subj_rel_count"], [np.log1p(2)] * 2)
    np.testing.assert_allclose(v["base_position"], [0.0, 1.0])
    np.testing.assert_allclose(v["base_gap_top"], [0.0, -1.0])


def test_inverse_queries_count_the_events_the_other_way_round() -> None:
    log = tiny_log()
    q = make_queries(log, "object", "valid", directions="both")
    # subject query of (A, r0, C): (C, r0^-1, ?) asks who did r0 to C; candidate A did so on day... never before 3
    inv = int(np.flatnonzero((q.frame["subject"] == 2) & (q.frame["relation"] == 2))[0])
    table = query_table(log, [[0, 1]], positions=[inv])
    f = build_features(log, table)
    v = {name: f.values[0, :, k] for k, name in enumerate(f.names)}
    np.testing.assert_allclose(v["hist_src_count"], [0.0, 0.0])
    # (C, *, A) in query space: (C, r1, A) day 1 and (A, r1, C) day 2 read backwards
    np.testing.assert_allclose(v["hist_pair_count"], [np.log1p(2), 0.0])


def rewrite_from(log: EventLog, cutoff: float, seed: int) -> EventLog:
    """The same log with every event at or after ``cutoff`` replaced by random ones (same times, same splits)."""
    rng = np.random.default_rng(seed)
    frame = log.frame.copy()
    late = frame["time"].to_numpy() >= cutoff
    for col, n in (("subject", log.num_entities), ("object", log.num_entities), ("relation", log.num_relations)):
        frame.loc[late, col] = rng.integers(0, n, int(late.sum())).astype(np.int32)
    ends = log.split_ends
    parts = {"train": frame.iloc[: ends[0]], "valid": frame.iloc[ends[0] : ends[1]], "test": frame.iloc[ends[1] :]}
    return build_event_log(log.name, parts, list(log.entities.names), list(log.relations.names), log.time_spec)


def test_features_ignore_everything_at_or_after_the_query_time() -> None:
    log = synthetic_log()
    q = make_queries(log, "object", "valid", directions="both")
    times = q.frame["time"].to_numpy()
    t = float(np.unique(times)[5])
    pos = np.flatnonzero(times == t)
    rng = np.random.default_rng(0)
    cands = np.stack([rng.choice(log.num_entities, 6, replace=False) for _ in pos])
    evid = [Evidence(int(q.frame["query_id"][p]), int(c), np.sort(rng.choice(int(q.frame["history_end"][p]), 5,
                                                                              replace=False)).astype(np.int64),
                     rng.random(5).astype(np.float32), t) for p, row in zip(pos, cands, strict=True) for c in row]
    table = CandidateTable("base:x", q.take(pos), 6, cands, rng.normal(size=cands.shape).astype(np.float32),
                           np.ones(len(pos)))
    before = build_features(log, table, evid)
    changed = rewrite_from(log, t, seed=1)  # the queries' own events (at t) included: the queries stay as asked
    assert not changed.frame.equals(log.frame)
    after = build_features(changed, table, evid)
    assert before.names == after.names
    np.testing.assert_array_equal(before.values, after.values)
    # and the features do change when the past changes
    moved = build_features(rewrite_from(log, float(np.unique(times)[0]), seed=1), table, evid)
    assert not np.array_equal(moved.values, before.values)


def test_evidence_features_by_hand_and_leakage() -> None:
    log = tiny_log()
    q = make_queries(log, "object", "valid", directions="both")
    first = int(np.flatnonzero((q.frame["subject"] == 0) & (q.frame["relation"] == 0) & (q.frame["target"] == 2))[0])
    table = query_table(log, [[1, 2]], positions=[first])
    qid = int(table.queries.frame["query_id"][0])
    evid = [Evidence(qid, 1, np.array([0, 2], dtype=np.int64), np.array([0.5, 0.25], np.float32), 3.0)]
    f = evidence_features(log, table, evid)
    v = {name: f.values[0, :, k] for k, name in enumerate(f.names)}
    np.testing.assert_allclose(v["ev_count"], [np.log1p(2), 0.0])
    np.testing.assert_allclose(v["ev_score_sum"], [0.75, 0.0])
    np.testing.assert_allclose(v["ev_score_max"], [0.5, 0.0])
    np.testing.assert_allclose(v["ev_age_latest"], [np.log1p(1.0), NO_AGE])  # row 2 is day 2
    np.testing.assert_allclose(v["ev_age_mean"], [(np.log1p(2.0) + np.log1p(1.0)) / 2, NO_AGE], rtol=1e-6)
    np.testing.assert_allclose(v["ev_with_candidate"], [2.0, 0.0])  # both events involve B
    np.testing.assert_allclose(v["ev_relations"], [1.0, 0.0])
    late = [Evidence(qid, 1, np.array([4], dtype=np.int64), np.ones(1, np.float32), 3.0)]  # row 4: day 3 itself
    with pytest.raises(LeakageError, match="history_end"):
        evidence_features(log, table, late)


def test_candidate_scores_of_the_base_model_itself_agree_with_its_table() -> None:
    from lamp.tpp.recurrency import RecurrencyBaseline

    log = synthetic_log()
    train, valid = (make_queries(log, "object", s, directions="both") for s in ("train", "valid"))
    model = RecurrencyBaseline(lmbda=0.1, alpha=0.9)
    table = model.score(log, valid, 5)
    scores, ranks = candidate_scores(model, log, valid, table.candidates, batch_size=64)
    np.testing.assert_allclose(scores, table.scores, rtol=1e-6)
    assert (np.diff(ranks, axis=1) >= 0).all()  # the top-M is in rank order
    assert (ranks[:, 0] < 1.0 + 0.5 * log.num_entities).all()
    feats = base_features(table)
    assert feats.values.shape == (len(valid), 5, len(feats.names))
