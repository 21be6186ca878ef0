"""The rules abducer, rule-set persistence, abduction quality, the llm_rules combination and the factory."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from test_rules_synth import ALL, planted_log

from lamp.abduce.base import build_abducer
from lamp.abduce.combined import LLMRulesAbducer, match_level
from lamp.abduce.quality import abduction_quality
from lamp.abduce.rules import RulesAbducer
from lamp.data.eventlog import EventLog, Vocab
from lamp.errors import ArtifactError, ConfigError, LeakageError
from lamp.rules import RuleSet, mine_rules
from lamp.types import AbductionRequest, AbductionResult, CauseEvent

PARAMS = {"min_support": 1, "min_confidence": 0.0, "max_length2": 99}


def request(log: EventLog, s: int, r: int, o: int, t: float, qid: int = 0) -> AbductionRequest:
    return AbductionRequest(qid, o, 0, s, r, o, t, log.history_end(t))


@pytest.fixture(scope="module")
def log() -> EventLog:
    return planted_log()


@pytest.fixture(scope="module")
def rules(log: EventLog) -> RuleSet:
    return mine_rules(log, ALL)


def test_rules_causes_are_real_events_with_explanations(log: EventLog, rules: RuleSet) -> None:
    ab = RulesAbducer(rules=rules, params=PARAMS, max_causes=5)
    req = request(log, 3, 1, 2, 54.0)  # E3 Mobilize E2, after E2 threatened E3 at t=52
    (res,) = ab.abduce(log, [req])
    assert res.causes and len(res.causes) <= 5
    for c in res.causes:
        assert c.source == "rules" and c.event_index is not None and c.event_index < req.history_end
        t, s, r, o = log.event(c.event_index)
        assert (c.subject_id, c.relation_id, c.object_id, c.time) == (s, r, o, t) and t < req.time
        assert c.subject == log.entities.name(s) and c.text.startswith("2020-")
    best = res.causes[0]
    assert (best.subject, best.relation, best.object) == ("E2", "Threaten", "E3")
    assert best.explanation.startswith("E2 | Threaten | E3 (2020-02-22), within 2 days before 2020-02-24 | E3 | "
                                       "Mobilize | E2")
    assert "Rule: X Mobilize Y <= Y Threaten X earlier; confidence 0.73 (8 of 11 cases in train)" in best.explanation
    assert best.score == pytest.approx(8 / 11 * 2.718281828 ** (-0.1 * 2), rel=1e-6)


def test_length2_explanation_and_leakage_guard(log: EventLog, rules: RuleSet) -> None:
    ab = RulesAbducer(rules=rules, params=PARAMS)
    (res,) = ab.abduce(log, [request(log, 12, 1, 14, 60.0)])
    chain = [c for c in res.causes if "then" in c.explanation]
    assert chain and "Rule: X Mobilize Y <= X Consult Z, then Z Threaten Y; confidence 1.00 (1 of 1" in \
        chain[0].explanation
    with pytest.raises(LeakageError, match="not after the last event the rules were mined on"):
        ab.abduce(log, [request(log, 12, 1, 14, 43.0)])  # inside train: the counts saw its future


def test_ruleset_json_round_trip_and_checks(log: EventLog, rules: RuleSet, tmp_path: Path) -> None:
    path = rules.save(tmp_path / "rules.json")
    back = RuleSet.load(path, log)
    for col in ("head", "body1", "body2", "rule_support", "body_support"):
        assert (getattr(back, col) == getattr(rules, col)).all()
    prov = back.provenance
    assert prov["fingerprint"] == log.fingerprint() and prov["config"]["min_support"] == 1
    assert prov["end_row"] == log.split_ends[0] and prov["last_time"] == 43.0
    assert rules.verbalize(0, log).count("[conf") == 1
    # Rules apply to any log with the same relations (a caller's own history), never to other relations.
    RuleSet.load(path, planted_log().head(len(log) - 1))
    renamed = dataclasses.replace(log, relations=Vocab(tuple(n + "!" for n in log.relations.names)))
    with pytest.raises(ConfigError, match="other relation names"):
        RuleSet.load(path, renamed)
    legacy = dict(json.loads(path.read_text()))
    legacy["provenance"] = {k: v for k, v in legacy["provenance"].items() if k != "relations"}
    (tmp_path / "legacy.json").write_text(json.dumps(legacy))
    with pytest.raises(ConfigError, match="fingerprint"):  # older rule sets: the exact data only
        RuleSet.load(tmp_path / "legacy.json", planted_log().head(len(log) - 1))
    data = json.loads(path.read_text())
    data["rules"]["head"] = data["rules"]["head"][:-1]
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="different lengths"):
        RuleSet.load(tmp_path / "bad.json")
    (tmp_path / "old.json").write_text(json.dumps({**data, "version": 99}))
    with pytest.raises(ArtifactError, match="mine the rules again"):
        RuleSet.load(tmp_path / "old.json")


def test_abducer_mines_lazily_and_saves(log: EventLog, tmp_path: Path) -> None:
    ab = build_abducer("rules", rules_path=str(tmp_path / "r.json"), mining={"lengths": [1], "min_support": 1})
    assert isinstance(ab, RulesAbducer)
    ab.abduce(log, [request(log, 3, 1, 2, 54.0)])
    assert (tmp_path / "r.json").is_file() and (RuleSet.load(tmp_path / "r.json").body2 == -1).all()


def test_quality_grounding_by_ids_and_names(log: EventLog, rules: RuleSet) -> None:
    req = request(log, 3, 1, 2, 54.0, qid=7)
    res_rules = RulesAbducer(rules=rules, params=PARAMS).abduce(log, [req])
    q = abduction_quality(log, [req], res_rules, gold_triples={7: (3, 1, 2)})
    assert q["grounded_share"] == 1.0 and q["parse_rate"] == 1.0
    llm = AbductionResult(7, req.candidate, (
        CauseEvent("e2", "threaten", "E3"),  # real, earlier: matched by name without case
        CauseEvent("E2", "Threaten", "E3"),  # the same again: not a distinct cause
        CauseEvent("E5", "Threaten", "E4"),  # real, but at t=54: not before the effect
        CauseEvent("Atlantis", "Threaten", "E3"),  # no such entity
    ), parse_failures=1)
    q = abduction_quality(log, [req], [llm], gold_triples={7: (3, 0, 2)})
    assert q["grounded_share"] == pytest.approx(2 / 4)
    assert q["distinct_causes_per_answer"] == 3 and q["parse_rate"] == pytest.approx(4 / 5)
    assert q["gold_in_causes"] == 1.0  # (E2, Threaten, E3) is the reverse of the gold (E3, Threaten, E2)
    with pytest.raises(ConfigError, match="requests but"):
        abduction_quality(log, [req, req], [llm])


class Fixed:
    """A fake abducer returning fixed causes."""

    def __init__(self, name: str, causes: Sequence[CauseEvent], error: str | None = None) -> None:
        self.name, self.causes, self.error = name, tuple(causes), error

    def abduce(self, log: EventLog, requests: Sequence[AbductionRequest]) -> list[AbductionResult]:
        return [AbductionResult(r.query_id, r.candidate, self.causes, "raw", 1, 0, self.error) for r in requests]


R1 = CauseEvent("A", "Threaten", "B", 1.0, source="rules", event_index=3, subject_id=0, relation_id=0, object_id=1)
R2 = CauseEvent("C", "Consult", "B", 2.0, source="rules", event_index=5, subject_id=2, relation_id=2, object_id=1)
R3 = CauseEvent("A", "Consult", "D", 2.0, source="rules", event_index=6, subject_id=0, relation_id=2, object_id=3)


def test_llm_rules_union_and_rerank(log: EventLog) -> None:
    llm = Fixed("llm", [CauseEvent("c", "consult", "b", source="llm"), CauseEvent("X", "Y", "Z", source="llm"),
                        CauseEvent("X", "y", "z", source="llm"), CauseEvent("A", "Consult", "Q", source="llm")],
                error="timeout")
    req = request(log, 3, 1, 2, 54.0)
    (res,) = LLMRulesAbducer(llm, Fixed("rules", [R1, R2, R3]), mode="union").abduce(log, [req])
    assert [c.source for c in res.causes] == ["rules", "llm+rules", "rules", "llm", "llm"]
    assert res.causes[1].event_index == 5 and res.parse_failures == 2 and res.error == "llm: timeout"
    (res,) = LLMRulesAbducer(llm, Fixed("rules", [R1, R2, R3]), mode="rerank").abduce(log, [req])
    assert [c.event_index for c in res.causes] == [5, 6, 3]  # exact match, then relation + subject, then rest
    assert match_level(R1, CauseEvent("B", "Accuse", "A")) == 1
    with pytest.raises(ConfigError, match="Valid choices are: union, rerank"):
        LLMRulesAbducer(llm, llm, mode="both")


def test_factory(log: EventLog) -> None:
    both = build_abducer("llm_rules", llm=Fixed("llm", []), rules=Fixed("rules", [R1]), mode="rerank")
    assert isinstance(both, LLMRulesAbducer) and both.name == "llm_rules"
    assert both.abduce(log, [request(log, 3, 1, 2, 54.0)])[0].causes == (R1,)
    with pytest.raises(ConfigError, match="Valid choices are: llm, llm_rules, pmi, rules"):
        build_abducer("oracle")
    with pytest.raises(ConfigError, match=r"Invalid option\(s\) \[.temperature.\]"):
        build_abducer("llm_rules", llm=Fixed("llm", []), rules=Fixed("rules", []), temperature=0.3)
