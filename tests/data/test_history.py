"""The one history index (lamp.data.history): the strict cutoff, inverse edges, empty histories, and
every query form against a brute-force scan. Leakage safety of every stage rests on these rules."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from lamp.data.eventlog import EventLog, TimeSpec, build_event_log
from lamp.data.history import Edges, Postings, concat_ranges, involvement, strictly_before

R = 3  # relations of the small logs


def small_log(events: list[tuple[int, int, int, float]], n_ent: int = 5) -> EventLog:
    """One split per third of the events, in time order (build_event_log sorts and validates)."""
    df = pd.DataFrame(sorted(events, key=lambda e: e[3]), columns=["subject", "relation", "object", "time"])
    a, b = len(df) // 3, 2 * len(df) // 3
    parts = {"train": df.iloc[:a], "valid": df.iloc[a:b], "test": df.iloc[b:]}
    return build_event_log("small", parts, [f"E{i}" for i in range(n_ent)], [f"R{i}" for i in range(R)],
                           TimeSpec("day", 86400.0, datetime(2020, 1, 1)))


def random_log(seed: int, n: int = 120, n_ent: int = 6) -> EventLog:
    """Many events share a time (as on ICEWS), with self-loops."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, 12, n)).astype(float)
    return small_log([(int(rng.integers(n_ent)), int(rng.integers(R)), int(rng.integers(n_ent)), float(x))
                      for x in t], n_ent)


# -- the cutoff ---------------------------------------------------------------------------------------
def test_cutoff_is_strict_at_equal_times() -> None:
    times = np.array([1.0, 2.0, 2.0, 2.0, 5.0])
    assert strictly_before(times, 2.0) == 1  # the three events at t = 2 are not before t = 2
    assert strictly_before(times, 2.0 + 1e-9) == 4
    np.testing.assert_array_equal(strictly_before(times, np.array([0.0, 1.0, 5.0, 9.0])), [0, 0, 4, 5])
    log = small_log([(0, 0, 1, 1.0), (1, 1, 2, 2.0), (2, 2, 0, 2.0), (0, 1, 2, 3.0)])
    assert log.history_end(2.0) == 1 and log.history_end(3.0) == 3


def test_postings_never_return_an_entry_at_the_query_time() -> None:
    log = random_log(0)
    post = involvement(log.edges())
    t = log.times
    for qt in np.unique(t):
        end = log.history_end(qt)
        for e in range(log.num_entities):
            lo, hi = post.ranges(np.array([e]), end)
            rows = post.values[lo[0]:hi[0]]
            assert (t[rows] < qt).all()
            idx, n = post.last_k(np.array([e]), np.array([end]), 4)
            assert (t[post.values[idx[0, : n[0]]]] < qt).all() and (idx[0, n[0]:] == -1).all()


# -- inverse edges ------------------------------------------------------------------------------------
def test_inverse_edges_are_added_once_per_event_with_an_object() -> None:
    e = Edges.build(np.array([0, 1, 2]), np.array([0, 2, 1]), np.array([1, -1, 2]), np.array([1.0, 2.0, 3.0]), R)
    assert len(e) == 5  # row 1 has no object: no inverse; the self-loop (2, 1, 2) gets one
    np.testing.assert_array_equal(np.stack([e.src, e.rel, e.dst, e.row]), [[0, 1, 2, 1, 2], [0, 2, 1, 0 + R, 1 + R],
                                                                            [1, -1, 2, 0, 2], [0, 1, 2, 0, 2]])
    np.testing.assert_array_equal(e.inverse, [False, False, False, True, True])
    np.testing.assert_array_equal(e.time, [1.0, 2.0, 3.0, 1.0, 3.0])
    assert len(Edges.build(np.array([0]), np.array([0]), np.array([1]), np.array([1.0]), R, inverse=False)) == 1


def test_log_edges_cut_rows_and_match_the_events() -> None:
    log = random_log(1)
    e = log.edges(50)
    assert len(e) == 100 and e.num_rows == len(log) and (e.row < 50).all()
    s, r, o = log.subjects, log.rels, log.objects
    fwd, inv = ~e.inverse, e.inverse
    np.testing.assert_array_equal(np.stack([e.src[fwd], e.rel[fwd], e.dst[fwd]]), np.stack([s, r, o])[:, :50])
    np.testing.assert_array_equal(np.stack([e.src[inv], e.rel[inv] - R, e.dst[inv]]), np.stack([o, r, s])[:, :50])


def test_involvement_posts_each_row_once_per_entity() -> None:
    log = small_log([(0, 0, 0, 1.0), (0, 1, 1, 1.0), (1, 2, 0, 2.0), (2, 0, 1, 3.0)])
    post = involvement(log.edges())
    assert post.union([0], len(log)).tolist() == [0, 1, 2]  # the self-loop (row 0) once
    assert post.union([1], len(log)).tolist() == [1, 2, 3]
    assert post.union([0, 1], 2).tolist() == [0, 1]


# -- empty histories ----------------------------------------------------------------------------------
def test_empty_histories() -> None:
    log = random_log(2)
    post = involvement(log.edges())
    assert post.union([0, 1], 0).size == 0  # nothing before the first time
    assert post.union([], len(log)).size == 0
    assert post.union([-1, log.num_entities + 3], len(log)).size == 0  # unknown entities
    idx, n = post.last_k(np.array([0, 1]), np.array([0, 0]), 3)
    assert (n == 0).all() and (idx == -1).all()
    empty = Postings.build(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), 10)
    lo, hi = empty.ranges(np.array([0, 4]), np.array([10, 10]))
    assert (lo == hi).all() and empty.union([0], 10).size == 0
    assert [a.size for a in concat_ranges(np.zeros(0, np.int64), np.zeros(0, np.int64))] == [0, 0]
    none = Edges.build(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0), R)
    assert len(none) == 0 and len(involvement(none).comp) == 0


# -- every query form against a scan ------------------------------------------------------------------
@pytest.mark.parametrize("seed", [3, 4, 5])
def test_keyed_postings_equal_a_scan(seed: int) -> None:
    """(s, r) -> o postings over distinct times (the heuristic baselines' layout), inverse edges included."""
    log = random_log(seed)
    e = log.edges()
    times = np.unique(e.time)
    post = Postings.build(e.src * 2 * R + e.rel, e.dst, strictly_before(times, e.time), len(times))
    assert (np.diff(post.comp) >= 0).all()
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, log.num_entities * 2 * R, 40)
    qt = rng.integers(0, 13, 40).astype(float)
    lo, hi = post.ranges(keys, strictly_before(times, qt))
    owner, pos = concat_ranges(lo, hi)
    for i in range(40):
        s, r = divmod(int(keys[i]), 2 * R)
        want = e.dst[(e.src == s) & (e.rel == r) & (e.time < qt[i])]  # in row order, inverses after
        np.testing.assert_array_equal(post.values[pos[owner == i]], want)
        np.testing.assert_array_equal(times[post.slot[pos[owner == i]]], e.time[(e.src == s) & (e.rel == r)
                                                                                 & (e.time < qt[i])])


@pytest.mark.parametrize("seed", [6, 7])
def test_union_equals_a_scan(seed: int) -> None:
    log = random_log(seed, n=200)
    post = involvement(log.edges())
    s, o, rows = log.subjects, log.objects, np.arange(len(log))
    rng = np.random.default_rng(seed)
    for _ in range(50):
        ents = rng.integers(0, log.num_entities, int(rng.integers(1, 4))).tolist()
        end = int(rng.integers(0, len(log) + 1))
        start = int(rng.integers(0, end + 1))
        per_key, limit = [None, 3][int(rng.integers(2))], [None, 5][int(rng.integers(2))]
        parts = [rows[((s == x) | (o == x)) & (rows >= start) & (rows < end)] for x in set(ents)]
        cap = min(c for c in (per_key, limit) if c is not None) if (per_key or limit) else None
        want = np.unique(np.concatenate([p[-cap:] if cap else p for p in parts]))
        want = want[-limit:] if limit else want
        np.testing.assert_array_equal(post.union(ents, end, start=start, per_key=per_key, limit=limit), want)


def test_rule_index_sees_the_same_edges_before_a_time() -> None:
    """lamp.rules' triple layout is a view of the same edges: per (src, rel, dst) the same times and rows."""
    from lamp.rules.index import build_index

    log = random_log(8)
    ix = build_index(log, 80)
    e = log.edges(80)
    for a in range(ix.num_triples):
        sel = (e.src == ix.tri_src[a]) & (e.rel == ix.tri_rel[a]) & (e.dst == ix.tri_dst[a])
        times = ix.times[ix.tri_ptr[a]:ix.tri_ptr[a + 1]]
        np.testing.assert_array_equal(times, e.time[sel])
        np.testing.assert_array_equal(ix.rows[ix.tri_ptr[a]:ix.tri_ptr[a + 1]], e.row[sel])
        for qt in (3.0, 7.0):
            assert strictly_before(times, qt) == int((e.time[sel] < qt).sum())
    assert ix.num_triples == len(np.unique(np.stack([e.src, e.rel, e.dst]), axis=1).T)
