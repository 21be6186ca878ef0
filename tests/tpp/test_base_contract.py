"""The base-model contract: top-M tie rule, filtered ranks against brute force, streaming scorer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lamp.data.eventlog import EventLog, TimeSpec, build_event_log
from lamp.data.queries import QuerySet, make_queries
from lamp.errors import ConfigError
from lamp.tpp.base import BaseModel, filtered_gold_rank, rank_candidates, top_m_of


def random_log(seed: int = 0, n_ent: int = 12, n_rel: int = 3, n_times: int = 12, per_time: int = 6) -> EventLog:
    """A small random log in which many events share a timestamp (so filters matter)."""
    rng = np.random.default_rng(seed)
    t = np.repeat(np.arange(n_times, dtype=float), per_time)
    frame = pd.DataFrame({"time": t, "subject": rng.integers(0, n_ent, t.size), "relation": rng.integers(0, n_rel, t.size),
                          "object": rng.integers(0, n_ent, t.size)}).drop_duplicates(["time", "subject", "relation", "object"])
    cut1, cut2 = n_times * 6 // 10, n_times * 8 // 10
    parts = {"train": frame[frame.time < cut1], "valid": frame[(frame.time >= cut1) & (frame.time < cut2)],
             "test": frame[frame.time >= cut2]}
    return build_event_log("random", parts, [f"e{i}" for i in range(n_ent)], [f"r{i}" for i in range(n_rel)],
                           TimeSpec("day", 86400.0, None))


def brute_rank(scores: np.ndarray, queries: QuerySet, positions: np.ndarray) -> np.ndarray:
    out = []
    for b, q in enumerate(positions):
        gold = int(queries.frame["target"].to_numpy()[int(q)])
        others = set(queries.true_answers(int(q)).tolist()) - {gold}
        g = scores[b, gold]
        greater = sum(1 for c in range(scores.shape[1]) if c not in others and scores[b, c] > g)
        equal = sum(1 for c in range(scores.shape[1]) if c not in others and c != gold and scores[b, c] == g)
        out.append(1 + greater + equal / 2)
    return np.asarray(out)


def test_top_m_tie_rule_hand_example() -> None:
    scores = np.array([[0.5, 0.9, 0.5, 0.1, 0.9, 0.5]])
    ids, vals = top_m_of(scores, 4)
    # higher score first; equal scores by lower candidate id
    assert ids.tolist() == [[1, 4, 0, 2]]
    assert vals.tolist() == [[np.float32(0.9), np.float32(0.9), 0.5, 0.5]]


@pytest.mark.parametrize("kind", ["ties", "sparse", "continuous", "negative", "sorted"])
def test_top_m_of_equals_stable_sort(kind: str) -> None:
    rng = np.random.default_rng(1)
    for _ in range(40):
        rows, cols, m = int(rng.integers(1, 12)), int(rng.integers(1, 700)), int(rng.integers(1, 40))
        s: np.ndarray
        if kind == "ties":
            s = rng.integers(0, 4, (rows, cols)).astype(np.float32)
        elif kind == "sparse":
            s = np.zeros((rows, cols))
            s[:, rng.integers(0, cols, 3)] = rng.random(3)
        elif kind == "continuous":
            s = rng.standard_normal((rows, cols))
        elif kind == "negative":
            s = np.full((rows, cols), -np.inf)
            s[:, rng.integers(0, cols, 5)] = -rng.random(5)
        else:
            s = np.sort(rng.integers(-3, 3, (rows, cols)).astype(np.float64), axis=1)
        ids, vals = top_m_of(s, m)
        ref = np.argsort(-s, axis=1, kind="stable")[:, : min(m, cols)]
        np.testing.assert_array_equal(ids, ref)
        np.testing.assert_array_equal(vals, np.take_along_axis(s, ref, 1).astype(np.float32))


def test_filtered_rank_hand_example() -> None:
    log = random_log()
    q = make_queries(log, "object", "test")
    i = int(np.flatnonzero(np.diff(q.filter_ptr) >= 2)[0])  # a query with another true answer
    gold = int(q.frame["target"].to_numpy()[i])
    other = int(next(c for c in q.true_answers(i) if c != gold))
    scores = np.zeros((1, q.num_candidates))
    scores[0, other] = 5.0  # a true answer above the gold: filtered out
    scores[0, gold] = 1.0
    free = [c for c in range(q.num_candidates) if c not in set(q.true_answers(i).tolist())]
    scores[0, free[0]] = 2.0  # one better candidate
    scores[0, free[1]] = 1.0  # one tie: average rank adds 1/2
    assert filtered_gold_rank(scores, q, np.array([i]))[0] == pytest.approx(2.5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_filtered_rank_matches_brute_force(seed: int) -> None:
    log = random_log(seed)
    rng = np.random.default_rng(seed)
    for task in ("object", "relation"):
        q = make_queries(log, task, "test")
        pos = np.arange(len(q))
        scores = rng.integers(0, 3, (len(q), q.num_candidates)).astype(np.float64)  # many ties
        np.testing.assert_allclose(filtered_gold_rank(scores, q, pos), brute_rank(scores, q, pos))


class TableModel(BaseModel):
    """Returns fixed scores from a [queries, candidates] table."""

    name = "table"

    def __init__(self, table: np.ndarray, thread_safe: bool = False) -> None:
        self.table = table
        self.thread_safe = thread_safe

    def score_batch(self, log: EventLog, queries: QuerySet, positions: np.ndarray) -> np.ndarray:
        return self.table[positions]


def test_rank_candidates_streams_and_threads_agree() -> None:
    log = random_log(3)
    q = make_queries(log, "object", "test")
    scores = np.random.default_rng(3).integers(0, 5, (len(q), q.num_candidates)).astype(np.float32)
    one = rank_candidates(TableModel(scores), log, q, 4, batch_size=7, n_jobs=1)
    two = rank_candidates(TableModel(scores, thread_safe=True), log, q, 4, batch_size=7, n_jobs=2)
    np.testing.assert_array_equal(one.candidates, two.candidates)
    np.testing.assert_array_equal(one.gold_rank_filtered, two.gold_rank_filtered)
    np.testing.assert_allclose(one.gold_rank_filtered, brute_rank(scores, q, np.arange(len(q))))
    ref = np.argsort(-scores, axis=1, kind="stable")[:, :4]
    np.testing.assert_array_equal(one.candidates, ref)
    assert one.method == "base:table" and one.top_m == 4


def test_rank_candidates_rejects_bad_scores() -> None:
    log = random_log(4)
    q = make_queries(log, "object", "test")
    bad = np.zeros((len(q), q.num_candidates))
    bad[0, 0] = np.nan
    with pytest.raises(RuntimeError, match="NaN"):
        rank_candidates(TableModel(bad), log, q, 3)
    with pytest.raises(RuntimeError, match="shape"):
        rank_candidates(TableModel(np.zeros((len(q), 2))), log, q, 3)


def test_relation_object_needs_a_factored_scorer() -> None:
    log = random_log(5)
    q = make_queries(log, "relation_object", "test")
    with pytest.raises(ConfigError, match="relation_object_scores"):
        TableModel(np.zeros((len(q), 1))).score(log, q, 5)
