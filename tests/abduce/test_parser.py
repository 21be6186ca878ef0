"""The tolerant cause parser: every answer form, causes parsed as units, names/dates mapped, failures counted."""

from __future__ import annotations

import json
from datetime import datetime

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lamp.abduce.parser import NameResolver, parse_batched, parse_causes
from lamp.abduce.schema import parse_time
from lamp.data.eventlog import EventLog, TimeSpec, build_event_log

ENTITIES = ["Barack Obama", "Russia", "China", "Citizen (Nigeria)", "Japan"]
RELATIONS = ["Impose sanctions", "Threaten", "Make statement", "Make_an_appeal_or_request"]
DAY = TimeSpec("day", 86400.0, datetime(2013, 12, 31))  # t=1 is 2014-01-01, as ICEWS14
EFFECT_T = 80.0  # 2014-03-21


def make_log(time_spec: TimeSpec = DAY, objects: bool = True) -> EventLog:
    def part(t0: int) -> pd.DataFrame:
        return pd.DataFrame({"time": [float(t0), float(t0 + 1)], "subject": [0, 1], "relation": [0, 1],
                             "object": [1, 2] if objects else [-1, -1]})

    return build_event_log("tiny", {"train": part(1), "valid": part(100), "test": part(200)}, ENTITIES,
                           RELATIONS, time_spec)


@pytest.fixture(scope="module")
def res() -> NameResolver:
    return NameResolver.from_log(make_log())


def triples(parsed):  # noqa: ANN001, ANN201 - test helper
    return [(c.subject, c.relation, c.object, c.time) for c in parsed.causes]


def test_json_bare_fenced_embedded_and_list(res: NameResolver) -> None:
    one = {"subject": "Barack Obama", "relation": "Threaten", "object": "Russia", "date": "2014-03-12"}
    expected = [("Barack Obama", "Threaten", "Russia", 71.0)]
    for text in (json.dumps({"causes": [one]}), f"Sure!\n```json\n{json.dumps({'causes': [one]})}\n```\nDone.",
                 f"Here you go: {json.dumps([one])} hope it helps", json.dumps(one)):
        p = parse_causes(text, res, EFFECT_T)
        assert triples(p) == expected and p.parse_failures == 0, text


def test_missing_field_does_not_shift_the_others_json(res: NameResolver) -> None:
    causes = [
        {"subject": "Barack Obama", "relation": "Threaten", "object": "Russia", "date": "2014-03-01"},
        {"subject": "China", "relation": "Make statement", "date": "2014-03-02"},  # no object
        {"subject": "Russia", "relation": "Impose sanctions", "object": "Japan", "date": "2014-03-03"},
    ]
    p = parse_causes(json.dumps({"causes": causes}), res, EFFECT_T)
    assert p.parse_failures == 1
    assert triples(p) == [("Barack Obama", "Threaten", "Russia", 60.0), ("Russia", "Impose sanctions", "Japan", 62.0)]


def test_missing_field_does_not_shift_the_others_blocks(res: NameResolver) -> None:
    # The paper's layout; block 2 lacks its subject: it alone fails, block 3 keeps its own fields.
    text = """effect event
event type: Impose sanctions
event time: 2014-03-21
subject name: Barack Obama
object name: Russia

reasoning:
cause event 1
event headline: talks fail
event type: Threaten
event time: 2014-03-02
subject name: Barack Obama
object name: Russia
key phrases: a, b

cause event 2
event type: Make statement
event time: 2014-03-03
object name: Russia

cause event 3
event type: Make statement
event time: 2014-03-04
subject name: China
object name: Japan
"""
    p = parse_causes(text, res, EFFECT_T)
    assert p.parse_failures == 1
    assert triples(p) == [("Barack Obama", "Threaten", "Russia", 61.0), ("China", "Make statement", "Japan", 63.0)]
    assert p.causes[0].text == "talks fail"


def test_field_names_the_prompt_did_not_ask_for_still_parse(res: NameResolver) -> None:
    # The paper's parser looked for a field its prompt no longer used and so parsed nothing.
    text = json.dumps({"causes": [{"Actor1": "China", "Event_Type": "threaten", "Target": "japan",
                                   "Event Time": "2014-02-01"}]})
    p = parse_causes(text, res, EFFECT_T)
    assert triples(p) == [("China", "Threaten", "Japan", 32.0)] and p.parse_failures == 0


def test_pipe_lines_in_render_order_with_bad_line_counted(res: NameResolver) -> None:
    text = ("1. 2014-03-12 | Barack Obama | Impose sanctions | Russia\n"
            "- 2014-03-10 | China | Threaten\n"  # too few fields: one failure, no shift
            "| 2014-03-09 | China | Make statement | Japan | a headline |\n")
    p = parse_causes(text, res, EFFECT_T)
    assert p.parse_failures == 1
    assert triples(p) == [("Barack Obama", "Impose sanctions", "Russia", 71.0), ("China", "Make statement", "Japan", 68.0)]
    assert p.causes[1].text == "a headline"


def test_markdown_table_header_sets_column_order(res: NameResolver) -> None:
    text = "| subject | object | relation | date |\n|---|---|---|---|\n| China | Japan | Threaten | 2014-03-01 |\n"
    assert triples(parse_causes(text, res, EFFECT_T)) == [("China", "Threaten", "Japan", 60.0)]


def test_inline_key_value_lines(res: NameResolver) -> None:
    text = ("subject: Barack Obama, relation: Impose sanctions, object: Russia, date: 2014-03-12\n"
            "subject: Russia, object: China, date: 2014-03-01\n"  # no relation
            "Subject: China; Relation: Make statement; Object: Japan; Date: 2014-03-05")
    p = parse_causes(text, res, EFFECT_T)
    assert p.parse_failures == 1
    assert triples(p) == [("Barack Obama", "Impose sanctions", "Russia", 71.0), ("China", "Make statement", "Japan", 64.0)]


def test_truncated_json_keeps_complete_causes_and_counts_the_cut_one(res: NameResolver) -> None:
    text = '{"causes": [{"subject": "China", "relation": "Threaten", "object": "Japan", "date": "2014-03-01"}, {"subject": "Ru'
    p = parse_causes(text, res, EFFECT_T)
    assert triples(p) == [("China", "Threaten", "Japan", 60.0)] and p.parse_failures == 1


def test_names_map_to_ids_exact_then_folded_else_kept_as_text(res: NameResolver) -> None:
    text = json.dumps({"causes": [
        {"subject": "citizen (NIGERIA)", "relation": "Make an appeal or request", "object": "Unknown Land",
         "date": "2014-01-05"}]})
    (c,) = parse_causes(text, res, EFFECT_T).causes
    assert (c.subject, c.subject_id) == ("Citizen (Nigeria)", 3)
    assert (c.relation, c.relation_id) == ("Make_an_appeal_or_request", 3)
    assert (c.object, c.object_id) == ("Unknown Land", -1)


def test_future_causes_dropped_and_counted_bad_date_kept_undated(res: NameResolver) -> None:
    causes = [{"subject": "China", "relation": "Threaten", "object": "Japan", "date": d}
              for d in ("2014-03-20", "2014-03-21", "2014-04-01", "sometime last spring")]
    p = parse_causes(json.dumps({"causes": causes}), res, EFFECT_T)
    assert p.dropped_future == 2  # the effect's own day and later
    assert [c.time for c in p.causes] == [79.0, None]
    assert p.parse_failures == 0


def test_nothing_recognisable_is_one_failure_explicit_empty_list_is_none(res: NameResolver) -> None:
    for text in ("", "I cannot answer that.", "{}"):
        p = parse_causes(text, res, EFFECT_T)
        assert p.causes == () and p.parse_failures == 1, text
    assert parse_causes('{"causes": []}', res, EFFECT_T).parse_failures == 0


def test_duplicates_removed_and_num_causes_caps(res: NameResolver) -> None:
    rows = [f"2014-03-0{d} | China | Threaten | Japan" for d in (1, 1, 2, 3, 4)]
    p = parse_causes("\n".join(rows), res, EFFECT_T, num_causes=2)
    assert p.duplicates == 1 and [c.time for c in p.causes] == [60.0, 61.0]


def test_relative_times_without_an_origin() -> None:
    spec = TimeSpec("minute", 60.0, None, granularity=15.0)
    r = NameResolver.from_log(make_log(spec))
    assert parse_time("t=45 min", spec) == 45.0 and parse_time("day 1", spec) == 1440.0
    assert parse_time("2014-01-01", spec) is None
    p = parse_causes("t=30 min | China | Threaten | Japan\nt=90 min | China | Threaten | Japan", r, 60.0)
    assert [c.time for c in p.causes] == [30.0] and p.dropped_future == 1


def test_sequence_data_without_objects_uses_default_subject() -> None:
    r = NameResolver.from_log(make_log(objects=False))
    p = parse_causes('{"causes": [{"relation": "Threaten", "date": "2014-02-01"}]}', r, EFFECT_T,
                     default_subject="China")
    assert triples(p) == [("China", "Threaten", "", 32.0)]
    assert parse_causes("2014-02-01 | China | Make statement", r, EFFECT_T).causes[0].relation == "Make statement"


def test_batched_keyed_json_missing_candidate_counted(res: NameResolver) -> None:
    one = {"subject": "China", "relation": "Threaten", "object": "Japan", "date": "2014-03-01"}
    text = json.dumps({"1": {"causes": [one]}, "3": {"causes": []}})
    p1, p2, p3 = parse_batched(text, 3, res, [EFFECT_T] * 3)
    assert triples(p1) == [("China", "Threaten", "Japan", 60.0)] and p1.parse_failures == 0
    assert p2.causes == () and p2.parse_failures == 1  # no section for candidate 2
    assert p3.parse_failures == 0


def test_batched_text_sections_and_truncated_json(res: NameResolver) -> None:
    text = "Candidate 1: 2014-03-01 | China | Threaten | Japan\nCandidate 2:\n2014-03-02 | Russia | Threaten | China\n"
    p1, p2 = parse_batched(text, 2, res, [EFFECT_T, EFFECT_T])
    assert triples(p1) == [("China", "Threaten", "Japan", 60.0)] and triples(p2) == [("Russia", "Threaten", "China", 61.0)]
    cut = '{"1": {"causes": [{"subject": "China", "relation": "Threaten", "object": "Japan", "date": "2014-03-01"}]}, "2": {"causes": [{"subj'
    p1, p2 = parse_batched(cut, 2, res, [EFFECT_T, EFFECT_T])
    assert len(p1.causes) == 1 and p1.parse_failures == 0
    assert p2.causes == () and p2.parse_failures >= 1


_name = st.sampled_from(ENTITIES)
_rel = st.sampled_from(["Impose sanctions", "Threaten", "Make statement"])
_day = st.integers(min_value=1, max_value=78)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_name, _rel, _name, _day, st.booleans()), min_size=1, max_size=6),
       st.sampled_from(["json", "pipe", "kv"]))
def test_round_trip_any_form_any_missing_object(res: NameResolver, rows, form) -> None:  # noqa: ANN001
    """Whatever causes lack their object, the others parse exactly and each broken one is one failure."""
    def date(d: int) -> str:
        return DAY.format(float(d))

    if form == "json":
        items = [{"subject": s, "relation": r, **({} if miss else {"object": o}), "date": date(d)}
                 for s, r, o, d, miss in rows]
        text = json.dumps({"causes": items})
    elif form == "pipe":
        text = "\n".join(" | ".join([date(d), s, r] + ([] if miss else [o])) for s, r, o, d, miss in rows)
    else:
        text = "\n".join(f"subject: {s}, relation: {r}, " + ("" if miss else f"object: {o}, ") + f"date: {date(d)}"
                         for s, r, o, d, miss in rows)
    p = parse_causes(text, res, EFFECT_T)
    want = list(dict.fromkeys((s, r, o, float(d)) for s, r, o, d, miss in rows if not miss))
    assert triples(p) == want
    assert p.parse_failures == sum(miss for *_, miss in rows)
