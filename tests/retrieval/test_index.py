"""HistoryIndex answers like a brute-force scan of the log, on real ICEWS14."""

from __future__ import annotations

import numpy as np

from lamp.data.eventlog import EventLog
from lamp.data.render import render_row
from lamp.retrieval.index import HistoryIndex, normalise_name


def test_entity_rows_match_a_full_scan(icews14: EventLog) -> None:
    index = HistoryIndex.for_log(icews14)
    assert HistoryIndex.for_log(icews14) is index  # built once per log
    rng = np.random.default_rng(0)
    s, o, t = icews14.subjects, icews14.objects, icews14.times
    for _ in range(40):
        ents = rng.choice(icews14.num_entities, int(rng.integers(1, 4)), replace=False).tolist()
        ents.append(int(s[rng.integers(len(s))]))  # at least one busy entity
        qt = float(rng.uniform(t[0], t[-1] + 1))
        end = index.history_end(qt)
        assert end == icews14.history_end(qt) and (t[:end] < qt).all() and (end == len(t) or t[end] >= qt)
        window = [None, 30.0][int(rng.integers(2))]
        start = index.window_start(qt, window)
        limit = [None, 50][int(rng.integers(2))]
        got = index.entity_rows(ents, end, start=start, limit=limit)
        rows = np.arange(len(t))
        want = rows[(np.isin(s, ents) | np.isin(o, ents)) & (rows < end) & (rows >= start)]
        if window is not None:
            assert (t[want] >= qt - window).all()
        np.testing.assert_array_equal(got, want[-limit:] if limit else want)
        per = [rows[(np.isin(s, [e]) | np.isin(o, [e])) & (rows < end) & (rows >= start)][-20:] for e in ents]
        np.testing.assert_array_equal(index.entity_rows(ents, end, start=start, per_entity=20),
                                      np.unique(np.concatenate(per)))


def test_triples_group_identical_events_and_render_like_render_row(icews14: EventLog) -> None:
    index = HistoryIndex.for_log(icews14)
    key = np.stack([icews14.subjects, icews14.rels, icews14.objects], axis=1)
    rng = np.random.default_rng(1)
    rows = rng.integers(len(icews14), size=200)
    for row in rows.tolist():
        same = np.flatnonzero(index.triple_of_row == index.triple_of_row[row])
        assert (key[same] == key[row]).all()
        assert index.triple_row[index.triple_of_row[row]] == same[0]
    assert index.num_triples == len(np.unique(key, axis=0))
    texts = index.triple_texts(index.triple_of_row[rows])
    assert texts == [render_row(icews14, int(r), with_time=False) for r in rows]


def test_names_resolve_exactly_then_loosely(icews14: EventLog) -> None:
    index = HistoryIndex.for_log(icews14)
    name = icews14.entities.name(5)
    assert index.entity_id(name) == 5
    assert index.entity_id("  " + name.upper().replace(" ", "_") + " ") == icews14.entities.get(name)
    assert index.entity_id("certainly not an entity") == -1
    rel = icews14.relations.name(3)
    assert index.relation_id(rel.lower()) == 3 or normalise_name(icews14.relations.name(index.relation_id(
        rel.lower()))) == normalise_name(rel)
