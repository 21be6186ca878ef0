"""Prompt specs, demonstrations (train only, seeded; the paper's files) and the context-fitting builder."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lamp.abduce.demos import build_demonstrations, load_paper_amazon_demos, load_paper_gdelt_demos
from lamp.abduce.prompts import PromptBuilder, load_prompt_spec
from lamp.abduce.schema import CauseConstraints, batched_schema, causes_schema
from lamp.data.eventlog import EventLog, TimeSpec, build_event_log
from lamp.data.render import render_event
from lamp.errors import ConfigError
from lamp.types import AbductionRequest

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf" / "prompt"


def synthetic_log(seed: int = 0, n: int = 600) -> EventLog:
    """Events on days 1..n/2 where "Threaten(x, y)" is followed a day later by "Impose sanctions(x, y)"."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        t = 1 + i // 2
        s, o = rng.choice(20, size=2, replace=False)
        r = int(rng.integers(2, 5))
        rows.append((t, s, r, o))
        if rng.random() < 0.4:
            rows.append((t, s, 0, o))
            rows.append((t + 1, s, 1, o))
    df = pd.DataFrame(rows, columns=["time", "subject", "relation", "object"]).sort_values("time", kind="stable")
    times = df["time"].to_numpy()
    cut1, cut2 = np.quantile(times, 0.7), np.quantile(times, 0.85)
    parts = {"train": df[times < cut1], "valid": df[(times >= cut1) & (times < cut2)], "test": df[times >= cut2]}
    ents = [f"Country {c}" for c in "ABCDEFGHIJKLMNOPQRST"]
    rels = ["Threaten", "Impose sanctions", "Make statement", "Consult", "Praise or endorse"]
    return build_event_log("synthetic", parts, ents, rels, TimeSpec("day", 86400.0, datetime(2013, 12, 31)))


def test_conf_prompts_load() -> None:
    for name in ("icews", "gdelt", "amazon"):
        spec = load_prompt_spec(CONF / f"{name}.yaml")
        assert spec.name == name and "{num_causes}" in spec.instruction


def test_prompt_spec_errors_name_the_fix() -> None:
    base = {"name": "x", "instruction": "Explain {num_causes} causes."}
    with pytest.raises(ConfigError, match="Valid fields are"):
        load_prompt_spec({**base, "instructions": "typo"})
    with pytest.raises(ConfigError, match="placeholder"):
        load_prompt_spec({**base, "question": "Effect {effect}"})
    with pytest.raises(ConfigError, match="Valid choices"):
        load_prompt_spec({**base, "demos": "random"})
    with pytest.raises(ConfigError, match="missing field"):
        load_prompt_spec({**base, "demos": [{"effect": {"subject": "A"}, "causes": [{"relation": "B", "date": "d"}]}]})


def test_inline_demos_and_definitions() -> None:
    spec = load_prompt_spec({
        "name": "x", "instruction": "Explain.", "definitions": [{"name": "Threaten", "description": "warn"}],
        "demos": [{"effect": {"subject": "A", "relation": "Impose sanctions", "object": "B", "date": "2014-02-02"},
                   "causes": [{"subject": "A", "relation": "Threaten", "object": "B", "date": "2014-02-01"}]}],
    })
    assert spec.definitions == (("Threaten", "warn"),)
    assert isinstance(spec.demos, tuple) and spec.demos[0].causes[0].relation == "Threaten"


def test_paper_gdelt_demos(data_dir: Path) -> None:
    demos = load_paper_gdelt_demos(data_dir / "lamp-gdelt" / "gdelt_16shot.txt")
    assert len(demos) == 16 and sum(len(d.causes) for d in demos) == 67
    assert demos[0].effect.subject == "UNITED STATES" and demos[0].effect.date == "2022-04-19"
    assert all(c.relation and c.date < d.effect.date or c.date == d.effect.date for d in demos for c in d.causes)
    # example 6 spells one field "cause type": it is still read as the relation
    assert all(c.relation for c in demos[5].causes)


def test_paper_amazon_demos(data_dir: Path) -> None:
    demos = load_paper_amazon_demos(data_dir / "amazon" / "lamp-prompts")
    assert len(demos) == 16 and sum(len(d.causes) for d in demos) == 55
    assert demos[0].effect.relation == "Children Shoes" and demos[0].causes[0].headline == "Great Value"


def test_train_demonstrations_are_train_only_earlier_and_seeded() -> None:
    log = synthetic_log()
    demos = build_demonstrations(log, 3, seed=1, window=5, min_causes=1)
    assert len(demos) == 3
    train_end = log.split_ends[0]
    for d in demos:
        assert d.effect.row is not None and d.effect.row < train_end
        _, s, _, o = log.event(d.effect.row)
        for c in d.causes:
            assert c.row is not None and c.row < d.effect.row
            t, cs, _, co = log.event(c.row)
            assert t < log.times[d.effect.row] and {cs, co} & {s, o}
    again = build_demonstrations(log, 3, seed=1, window=5, min_causes=1)
    assert [d.effect.row for d in demos] == [d.effect.row for d in again]
    # the planted pattern wins: an "Impose sanctions" effect is explained by "Threaten"
    sanction = [d for d in demos if d.effect.relation == "Impose sanctions"]
    assert sanction and all("Threaten" in [c.relation for c in d.causes] for d in sanction)


def test_train_demonstrations_on_icews14(icews14: EventLog) -> None:
    demos = build_demonstrations(icews14, 4, seed=0)
    assert len(demos) == 4
    assert all(c.row < icews14.split_ends[0] for d in demos for c in (d.effect, *d.causes))  # type: ignore[operator]


def _request(log: EventLog, row: int, qid: int = 0) -> AbductionRequest:
    t, s, r, o = log.event(row)
    return AbductionRequest(qid, o, 0, s, r, o, t, log.history_end(t))


def test_builder_renders_effect_with_render_event_and_shares_the_prefix() -> None:
    log = synthetic_log()
    spec = dataclasses.replace(load_prompt_spec(CONF / "icews.yaml"), definitions="none")
    demos = build_demonstrations(log, 2, seed=0, window=5, min_causes=1)
    b = PromptBuilder(spec, log, demos, num_causes=3, mode="per_candidate", count_tokens=lambda s: len(s.split()),
                      context_length=100_000)
    test0 = log.split_ends[1]
    m1, used = b.build([_request(log, test0)], None, 100)
    m2, _ = b.build([_request(log, test0 + 3)], None, 100)
    assert used == 2 and len(m1) == 1 + 2 * 2 + 1
    assert m1[:-1] == m2[:-1]  # system + demonstrations identical: a local backend reuses their KV cache
    t, s, r, o = log.event(test0)
    assert render_event(log, s, r, o, t) in m1[-1][1]
    assert '"causes"' in m1[2][1] and m1[0][0] == "system"


def test_system_prompt_has_the_20_cameo_roots(data_dir: Path) -> None:
    log = synthetic_log()
    b = PromptBuilder(load_prompt_spec(CONF / "icews.yaml"), log, [], num_causes=2, mode="per_candidate",
                      count_tokens=len, context_length=100_000)
    assert "01 Make public statement" in b.system and "20 Use unconventional mass" in b.system
    assert '{"causes":[{"subject"' in b.system  # the answer format follows the schema's fields


def test_builder_drops_shots_to_fit_then_raises() -> None:
    log = synthetic_log()
    spec = load_prompt_spec({"name": "x", "instruction": "Explain {num_causes}.", "definitions": "none"})
    demos = build_demonstrations(log, 3, seed=0, window=5, min_causes=1)
    count = lambda s: len(s.split())  # noqa: E731
    full = PromptBuilder(spec, log, demos, num_causes=3, mode="batched", count_tokens=count, context_length=100_000)
    req = [_request(log, log.split_ends[1])]
    msgs, used = full.build(req, None, 50)
    need = sum(count(c) + 8 for _, c in msgs) + 50
    small = PromptBuilder(spec, log, demos, num_causes=3, mode="batched", count_tokens=count,
                          context_length=need - 1)
    _, used_small = small.build(req, None, 50)
    assert used == 3 and used_small == 2 and small.shots_dropped == 1
    tiny = PromptBuilder(spec, log, demos, num_causes=3, mode="batched", count_tokens=count, context_length=60)
    with pytest.raises(ConfigError, match="context"):
        tiny.build(req, None, 50)


def test_schemas() -> None:
    c = CauseConstraints(("Threaten", "Consult"), ("A", "B", "A"), ("2014-01-01",))
    s = causes_schema(3, c)
    item = s["properties"]["causes"]["items"]
    assert item["properties"]["relation"]["enum"] == ["Threaten", "Consult"]
    assert item["properties"]["subject"]["enum"] == ["A", "B"]  # distinct, order kept
    assert s["properties"]["causes"]["maxItems"] == 3 and "headline" not in item["properties"]
    b = batched_schema(2, 3, c, has_object=False, with_headline=True)
    assert b["required"] == ["1", "2"]
    one = b["properties"]["1"]["items"]["properties"]  # {"1": [cause, ...], "2": [...]}
    assert set(one) == {"relation", "date", "headline"} and b["properties"]["1"]["maxItems"] == 3
    assert causes_schema(2)["properties"]["causes"]["items"]["properties"]["date"] == {"type": "string"}
    assert "date" not in causes_schema(2, c, with_date=False)["properties"]["causes"]["items"]["properties"]


def test_batched_prompt_prints_the_shared_date_once_and_keys_causes_by_candidate() -> None:
    log = synthetic_log()
    spec = dataclasses.replace(load_prompt_spec(CONF / "icews.yaml"), definitions="none")
    assert "{date}" in spec.batched_question
    demos = build_demonstrations(log, 1, seed=0, window=5, min_causes=1)
    b = PromptBuilder(spec, log, demos, num_causes=2, mode="batched", count_tokens=lambda s: len(s.split()),
                      context_length=100_000, with_date=False)
    row = log.split_ends[1]
    group = [dataclasses.replace(_request(log, row), candidate=c, position=i, object=c) for i, c in enumerate((3, 5, 7))]
    msgs, _ = b.build(group, None, 100)
    question = msgs[-1][1]
    t, s, r, _ = log.event(row)
    date = log.time_spec.format(t)
    assert question.count(date) == 1  # once in the header, not on every candidate line
    for i, req in enumerate(group, 1):
        assert f"Candidate {i}: {render_event(log, req.subject, req.relation, req.object, None, with_time=False)}" \
            in question
    demo_answer = json.loads(msgs[2][1])
    assert list(demo_answer) == ["1"] and isinstance(demo_answer["1"], list)  # {"1": [cause, ...]}
    assert all("date" not in c for c in demo_answer["1"])  # with_date=False: no date field anywhere
    # a demonstration shows at most the causes the question asks for: its best (first) ones
    one = PromptBuilder(spec, log, demos, num_causes=1, mode="batched", count_tokens=len, context_length=100_000)
    shown = json.loads(one.demo_turns[0][1][1])["1"]
    assert len(demos[0].causes) > 1 and [c["relation"] for c in shown] == [demos[0].causes[0].relation]
    assert '"date"' not in msgs[0][1]


def test_history_hint_lists_only_the_actors_the_question_does_not_name() -> None:
    log = synthetic_log()
    spec = dataclasses.replace(load_prompt_spec(CONF / "icews.yaml"), definitions="none")
    b = PromptBuilder(spec, log, [], num_causes=2, mode="batched", count_tokens=len, context_length=100_000)
    group = [_request(log, log.split_ends[1])]
    named = {log.entities.name(group[0].subject), log.entities.name(group[0].object)}
    others = ("Country Q", "Country R")
    cons = CauseConstraints(entities=(*sorted(named), *others), dates=("2014-01-02",))
    question = b.question(group, cons)
    assert "Other actors in the recent history: Country Q; Country R." in question
    assert not any(n in question.split("Other actors")[1] for n in named)
    # the constrained answer may still name the candidates' own actors
    item = batched_schema(1, 2, cons)["properties"]["1"]["items"]
    assert set(named) <= set(item["properties"]["subject"]["enum"])
    # with nothing left to add, no hint line about actors at all
    assert "actors" not in b.question(group, CauseConstraints(entities=tuple(sorted(named))))
