"""Metrics on hand-computed candidate tables (with ties), reordering, rows and the predictions frame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lamp.data.eventlog import EventLog, TimeSpec, build_event_log
from lamp.data.queries import QuerySet, make_queries
from lamp.errors import ConfigError
from lamp.eval.metrics import (
    accuracy,
    apply_reorder,
    average_precision_at_k,
    average_recall_at_k,
    gold_positions,
    map_at_k,
    mar_at_k,
    mean_rank_top_m,
    metrics_from_predictions,
    metrics_rows,
    paired_difference,
    per_query_values,
    predictions_frame,
    ranking_metrics,
    rmse,
)
from lamp.tpp.base import CandidateTable, rank_candidates
from lamp.tpp.frequency import FrequencyBaseline


def hand_table() -> CandidateTable:
    """4 queries, M = 3, 10 candidates. q0's other true answer 5 sits above its gold in the top-M."""
    frame = pd.DataFrame({
        "query_id": [0, 1, 2, 3], "event_index": [0, 1, 2, 3], "time": [1.0, 1.0, 2.0, 2.0],
        "subject": [0, 1, 2, 3], "relation": [0, 0, 1, 1], "object": -1,
        "direction": ["object", "object", "subject", "subject"], "target": [2, 9, 0, 3], "history_end": 0,
    })
    filters = [[2, 5], [9], [0], [3]]
    ptr = np.concatenate([[0], np.cumsum([len(f) for f in filters])])
    q = QuerySet("object", "test", frame, 10, 2, ptr, np.concatenate(filters))
    cands = np.array([[5, 2, 7], [1, 3, 4], [0, 8, 6], [4, 6, 3]])
    scores = np.array([[3, 2, 1], [3, 2, 1], [3, 2, 1], [3, 3, 1]], dtype=np.float32)
    # base ranks: q0 1 (5 is filtered), q1 12.5 (gold tied outside the top-M), q2 1, q3 3.5 (a tie)
    return CandidateTable("base:hand", q, 3, cands, scores, np.array([1.0, 12.5, 1.0, 3.5]))


def test_mean_rank_top_m_hand() -> None:
    t = hand_table()
    res = mean_rank_top_m(t)
    assert (res.value, res.n_gold_in_top_m, res.n_queries) == (2.0, 3, 4)  # positions 2, 1, 3
    res2 = mean_rank_top_m(t, 2)
    assert (res2.value, res2.n_gold_in_top_m) == (1.5, 2)
    with pytest.raises(ConfigError):
        mean_rank_top_m(t, 4)


def test_filtered_mrr_and_hits_hand() -> None:
    m = ranking_metrics(hand_table().gold_rank_filtered)
    assert m["mrr_filtered"] == pytest.approx((1 + 1 / 12.5 + 1 + 1 / 3.5) / 4)
    assert (m["hits_at_1"], m["hits_at_3"], m["hits_at_10"]) == (0.5, 0.5, 0.75)
    assert np.isnan(ranking_metrics(np.array([1.0, np.nan]))["mrr_filtered"])


def test_apply_reorder_hand() -> None:
    t = hand_table()
    same = apply_reorder(t, np.tile(np.arange(3), (4, 1)))
    # an unchanged order keeps every base rank, q3's tie with a candidate beyond the cut included
    np.testing.assert_array_equal(same.gold_rank_filtered, [1.0, 12.5, 1.0, 3.5])
    order = np.array([[2, 0, 1], [2, 1, 0], [1, 0, 2], [2, 1, 0]])
    new = apply_reorder(t, order, "lamp[x]")
    assert new.method == "lamp[x]"
    np.testing.assert_array_equal(new.candidates, [[7, 5, 2], [4, 3, 1], [8, 0, 6], [3, 6, 4]])
    # q0: gold third, the true answer 5 before it does not count -> 2; q1 keeps 12.5; q2 -> 2;
    # q3 -> 1 (moved to the top, it leaves the tie beyond the cut behind)
    np.testing.assert_array_equal(new.gold_rank_filtered, [2.0, 12.5, 2.0, 1.0])
    np.testing.assert_array_equal(new.scores[0], [1, 3, 2])
    with pytest.raises(ConfigError, match="permutation"):
        apply_reorder(t, np.array([[0, 0, 1]] * 4))
    with pytest.raises(ConfigError, match="shape"):
        apply_reorder(t, np.zeros((4, 2), dtype=int))


def test_apply_reorder_average_ties_of_the_new_order() -> None:
    """Ties of the reordering's own keys count half, as the base ranks' average rule does."""
    t = hand_table()
    t = CandidateTable(t.method, t.queries, 3, t.candidates, np.array([[3, 2, 1], [3, 2, 1], [2, 2, 1], [3, 3, 1]],
                                                                        np.float32), np.array([1.0, 12.5, 1.5, 3.5]))
    keep = np.tile(np.arange(3), (4, 1))
    # the no-ranker's keys (support, base score): zero support everywhere keeps every base rank and tie
    keys = np.stack([np.zeros((4, 3)), t.scores], axis=2)
    np.testing.assert_array_equal(apply_reorder(t, keep, tie_keys=keys).gold_rank_filtered, [1.0, 12.5, 1.5, 3.5])
    # q2's gold (candidate 0) tied with 8: support for 8 only puts 8 first, support for 0 breaks the tie for it
    np.testing.assert_array_equal(apply_reorder(t, keep).gold_rank_filtered, [1.0, 12.5, 1.0, 3.5])
    support = np.zeros((4, 3))
    support[2, 1] = 1.0
    swapped = keep.copy()
    swapped[2] = [1, 0, 2]
    out = apply_reorder(t, swapped, tie_keys=np.stack([support, t.scores], axis=2))
    assert out.gold_rank_filtered[2] == 2.0
    # q3: the ranker ties the gold with 6 (equal keys) and puts them first: 1.5, the outside tie left behind
    order3 = keep.copy()
    order3[3] = [2, 1, 0]
    energies = np.zeros((4, 3))
    energies[3] = [0.0, 5.0, 5.0]
    assert apply_reorder(t, order3, tie_keys=energies).gold_rank_filtered[3] == 1.5
    with pytest.raises(ConfigError, match="tie_keys"):
        apply_reorder(t, keep, tie_keys=np.zeros((4, 2)))


def ratings_log() -> tuple[EventLog, QuerySet]:
    """Users rating items (5 types, no objects): user 0 has no earlier review at its test time, user 1 two
    5-star reviews, user 2 one 1-star and one 5-star review (tied), user 3 one 5-star review."""
    rows = [(1.0, 1, 4), (2.0, 1, 4), (1.0, 2, 0), (2.0, 2, 4), (2.0, 3, 4), (3.0, 4, 2), (4.0, 4, 2),
            (5.0, 0, 4), (5.0, 1, 4), (5.0, 2, 4), (5.0, 3, 0)]
    frame = pd.DataFrame(rows, columns=["time", "subject", "relation"]).assign(object=-1)
    parts = {"train": frame[frame.time < 3], "valid": frame[(frame.time >= 3) & (frame.time < 5)],
             "test": frame[frame.time >= 5]}
    log = build_event_log("ratings", parts, [f"u{i}" for i in range(5)], [f"{k} star" for k in range(1, 6)],
                          TimeSpec("day", 86400.0, None))
    return log, make_queries(log, "type", "test")


def test_tied_types_share_their_average_position_and_favour_no_class() -> None:
    """The listing puts tied types in id order ("1 star" first); the metrics must not: a gold tied with
    k others sits at its group's average position whatever its id, and top-1 accuracy credits 1/k."""
    log, q = ratings_log()
    table = FrequencyBaseline().score(log, q, 5)
    by_user = {int(u): i for i, u in enumerate(q.frame["subject"])}
    np.testing.assert_array_equal(table.candidates[by_user[0]], [0, 1, 2, 3, 4])  # all tied: listed by id
    pos = dict(zip(q.frame["subject"].tolist(), per_query_values(table)["top_m_rank"].tolist(), strict=True))
    # user 0 (no history): 5 stars at 3 = (1 + 5) / 2, not 5; user 1: 5 stars alone first; user 2: tied
    # first with 1 star (1.5 for either class); user 3: its gold 1 star tied last with three others
    assert pos == {0: 3.0, 1: 1.0, 2: 1.5, 3: 2.0 + 1.5}
    assert gold_positions(table, 1).tolist() == [0.0, 1.0, 0.0, 0.0]  # users 0..3 in query order
    assert gold_positions(table, 2).tolist() == [0.0, 1.0, 1.5, 2.0]  # ties counted among the first m only
    assert accuracy(table) == pytest.approx((1 / 5 + 1 + 1 / 2 + 0) / 4)
    # the same gold with another id (1 star for user 0) gets the same position: no class is favoured
    flipped = QuerySet(q.task, q.split, q.frame.assign(target=np.where(q.frame["subject"] == 0, 0, q.frame["target"])),
                       q.num_candidates, q.num_relations, q.filter_ptr, q.filter_ids)
    again = FrequencyBaseline().score(log, flipped, 5)
    assert per_query_values(again)["top_m_rank"][by_user[0]] == 3.0
    # the predictions frame carries the ties, so the metric is recomputed from it exactly
    frame = predictions_frame(table)
    assert metrics_from_predictions(frame)["mean_rank_top_m"] == pytest.approx(mean_rank_top_m(table).value)
    for m in (1, 2, 3):
        assert metrics_from_predictions(frame, m)["mean_rank_top_m"] == pytest.approx(
            mean_rank_top_m(table, m).value, nan_ok=True)


def test_reordered_tables_keep_the_ties_of_their_keys() -> None:
    log, q = ratings_log()
    table = FrequencyBaseline().score(log, q, 5)
    keep = np.tile(np.arange(5), (len(q), 1))
    # the base order kept with its own scores as keys: every position as in the base table
    same = apply_reorder(table, keep, tie_keys=table.scores.astype(np.float64))
    np.testing.assert_array_equal(per_query_values(same)["top_m_rank"], per_query_values(table)["top_m_rank"])
    # a strict order (no keys) breaks every tie: positions are the listing's
    strict = apply_reorder(table, keep)
    assert per_query_values(strict)["top_m_rank"].tolist() == [5.0, 1.0, 2.0, 2.0]
    assert strict.tied().tolist() == [list(range(5))] * len(q)


def test_map_mar_accuracy_rmse_hand() -> None:
    t = hand_table()
    assert map_at_k(t, 3) == pytest.approx((1 / 2 + 0 + 1 + 1 / 3) / 4)
    assert mar_at_k(t, 3) == pytest.approx((1 / 2 + 0 + 1 + 1 / 3) / 4)  # one relevant item: AR = AP
    assert average_precision_at_k([1, 2, 3], [2, 3, 9], 3) == pytest.approx((1 / 2 + 2 / 3) / 3)
    assert average_precision_at_k([1, 2, 3], [2, 3, 9], 2) == pytest.approx((1 / 2) / 2)
    assert average_recall_at_k([1, 2, 3], [2, 3, 9], 2) == pytest.approx((1 / 2) / 3)
    assert accuracy(t) == 0.25
    assert rmse(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0])) == pytest.approx(np.sqrt(4 / 3))


def test_metrics_rows_per_direction() -> None:
    rows = metrics_rows(hand_table(), dataset="d", task="object", split="test", method="base:hand",
                        extra={"wall_time_s": 1.0})
    by = {r["direction"]: r for r in rows}
    assert set(by) == {"object", "subject", "both"}
    assert by["object"]["n_queries"] == 2 and by["object"]["n_gold_in_top_m"] == 1
    assert by["object"]["mean_rank_top_m"] == 2.0 and by["subject"]["mean_rank_top_m"] == 2.0
    assert by["subject"]["mrr_filtered"] == pytest.approx((1 + 1 / 3.5) / 2)
    for r in rows:
        assert r["tie_rule"] == "average" and r["wall_time_s"] == 1.0 and r["top_m"] == 3
        for name in ("mean_rank_top_m", "mrr_filtered", "hits_at_1", "hits_at_3", "hits_at_10"):
            assert r[f"{name}_ci_low"] <= r[name] + 1e-12 <= r[f"{name}_ci_high"] + 2e-12


def small_table() -> CandidateTable:
    rng = np.random.default_rng(0)
    t = np.repeat(np.arange(12.0), 10)
    frame = pd.DataFrame({"time": t, "subject": rng.integers(0, 4, t.size), "relation": rng.integers(0, 2, t.size),
                          "object": rng.integers(0, 9, t.size)}).drop_duplicates(["time", "subject", "relation", "object"])
    parts = {"train": frame[frame.time < 6], "valid": frame[(frame.time >= 6) & (frame.time < 8)],
             "test": frame[frame.time >= 8]}
    log = build_event_log("small", parts, [f"e{i}" for i in range(9)], ["r0", "r1"], TimeSpec("day", 86400.0, None))
    return FrequencyBaseline().score(log, make_queries(log, "object", "test"), 4)


def test_predictions_frame_recomputes_every_metric() -> None:
    table = small_table()
    frame = predictions_frame(table)
    assert list(frame.columns[:9]) == ["query_id", "method", "candidate", "score", "rank", "is_gold",
                                       "gold_rank_filtered", "direction", "time"]
    assert len(frame) == len(table.queries) * 4
    rows = {r["direction"]: r for r in metrics_rows(table, dataset="s", task="object", split="test", method="m")}
    for direction, row in rows.items():
        part = frame if direction == "both" else frame[frame["direction"] == direction]
        again = metrics_from_predictions(part)
        for key in ("n_queries", "n_gold_in_top_m", "mean_rank_top_m", "mrr_filtered", "hits_at_1", "hits_at_10"):
            assert again[key] == pytest.approx(row[key], nan_ok=True), key
    assert metrics_from_predictions(frame, 2)["mean_rank_top_m"] == pytest.approx(mean_rank_top_m(table, 2).value)


def test_paired_difference_on_tables() -> None:
    table = small_table()
    res = paired_difference(table, table)
    assert res.diff == 0.0 and res.p_value == 1.0
    better = apply_reorder(table, np.tile(np.arange(4), (len(table.queries), 1)), "same")
    assert paired_difference(better, table, "hits_at_1").n_queries == len(table.queries)
    with pytest.raises(ConfigError, match="Unknown metric"):
        paired_difference(table, table, "auc")


def test_a_reordering_that_changes_nothing_reproduces_real_base_ranks(icews14) -> None:  # type: ignore[no-untyped-def]
    """Real ICEWS14 test queries under the frequency baseline (ties are common, across the M cut too):
    the no-ranker ordering with no evidence, and a strict identity order, give the base ranks exactly;
    breaking every tie in the gold's favour can only improve them."""
    from lamp.pipeline.stages import no_ranker_order

    q = make_queries(icews14, "object", "test", directions="object").sample(300, seed=0)
    table = rank_candidates(FrequencyBaseline(), icews14, q, 5)
    order, keys = no_ranker_order(table, [])
    assert (order == np.arange(5)).all()
    tied = (table.scores[:, :, None] == table.scores[:, None, :]).sum(axis=(1, 2)) > 5
    assert tied.sum() > 30  # the case this test is about
    np.testing.assert_array_equal(apply_reorder(table, order, tie_keys=keys).gold_rank_filtered, table.gold_rank_filtered)
    pos = table.gold_position()
    favour = np.where(np.arange(5)[None, :] == pos[:, None], 1.0, 0.0)  # support for the gold only
    better = apply_reorder(table, np.lexsort((np.arange(5)[None, :].repeat(len(q), 0), -favour), axis=1),
                           tie_keys=np.stack([favour, table.scores], axis=2)).gold_rank_filtered
    assert (better <= table.gold_rank_filtered).all() and (better[pos >= 0] == 1.0).all()
