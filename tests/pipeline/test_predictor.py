"""lamp.Pipeline on real ICEWS14: fit, predict against a caller's own history, save/load, unseen names.

The pipeline is the session's shared one (``icews14_pipeline`` in tests/conftest.py: train + valid, recurrency,
mined rules, fuzzy retrieval, a 2-epoch ranker on 30 valid queries), used the way an engineer would: a history
table of named events and a query.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lamp.data.eventlog import EventLog
from lamp.errors import ArtifactError, ConfigError
from lamp.pipeline.predictor import Pipeline, Prediction

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def pipe(icews14_pipeline: Pipeline) -> Pipeline:
    return icews14_pipeline  # fitted on train + valid; these tests give their history explicitly


def _test_query(log: EventLog, k: int = 0) -> tuple[pd.DataFrame, str, str, str, str, float]:
    """A real test event as a query, and the named history of everything before it."""
    start, _ = log.split_range("test")
    row = start + 50 + k
    t, s, r, o = log.event(row)
    hist = log.frame.iloc[: log.history_end(t)]
    ents, rels = np.asarray(log.entities.names, dtype=object), np.asarray(log.relations.names, dtype=object)
    frame = pd.DataFrame({"subject": ents[hist["subject"]], "relation": rels[hist["relation"]],
                          "object": ents[hist["object"]], "time": [
                              log.time_spec.format(x) for x in hist["time"]]})
    return frame, log.entities.name(s), log.relations.name(r), log.entities.name(o), log.time_spec.format(t), t


def test_predict_ranks_with_explanations_and_matches_the_base_model(pipe: Pipeline, icews14: EventLog) -> None:
    history, s, r, gold, date, t = _test_query(icews14)
    pred = pipe.predict(s, r, date, history=history)
    assert isinstance(pred, Prediction) and len(pred.candidates) == pipe.top_m
    assert [c.rank for c in pred.candidates] == list(range(1, pipe.top_m + 1))
    assert sorted(c.base_rank for c in pred.candidates) == list(range(1, pipe.top_m + 1))
    assert pred.time == pytest.approx(t) and pred.history_events == icews14.history_end(t)
    # The same base model on the same history gives the same top-M as on the dataset itself.
    from lamp.data.queries import make_queries
    from lamp.tpp.base import rank_candidates

    queries = make_queries(icews14, "object", "test", directions="object")
    pos = int(np.flatnonzero(queries.frame["event_index"].to_numpy() == icews14.split_range("test")[0] + 50)[0])
    table = rank_candidates(pipe.base_model, icews14, queries.take(np.array([pos])), pipe.top_m)
    by_base = sorted(pred.candidates, key=lambda c: c.base_rank)
    assert [c.entity for c in by_base] == [icews14.entities.name(int(e)) for e in table.candidates[0]]
    # Every piece of evidence is a real event strictly before the query time.
    for c in pred.candidates:
        for e in c.evidence:
            assert e.date < date and icews14.entities.get(e.subject) >= 0
    assert pred.ranker_used and all(c.energy is not None for c in pred.candidates)
    frame = pred.to_frame()
    assert list(frame["rank"]) == list(range(1, pipe.top_m + 1)) and "evidence" in frame
    assert pred.explain().startswith(f"Query: {date} | {s} | {r} | ?")


def test_future_events_are_ignored_and_counted(pipe: Pipeline, icews14: EventLog) -> None:
    history, s, r, gold, date, t = _test_query(icews14)
    later = pd.DataFrame([{"subject": s, "relation": r, "object": gold, "time": date}] * 3)  # the answer itself
    pred = pipe.predict(s, r, date, history=pd.concat([history, later]))
    plain = pipe.predict(s, r, date, history=history)
    assert pred.ignored_future == 3 and plain.ignored_future == 0
    assert [c.entity for c in pred.candidates] == [c.entity for c in plain.candidates]


def test_unseen_entities_are_candidates_and_unseen_relations_are_dropped(pipe: Pipeline, icews14: EventLog) -> None:
    history, s, r, gold, date, t = _test_query(icews14)
    day_before = (pd.Timestamp(date) - pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    extra = pd.DataFrame([{"subject": s, "relation": r, "object": "Atlantis (new)", "time": day_before}] * 5 +
                         [{"subject": s, "relation": "Invent a relation", "object": gold, "time": day_before}])
    pred = pipe.predict(s, r, date, history=pd.concat([history, extra]))
    assert pred.unseen_entities == ("Atlantis (new)",) and pred.dropped_unseen_relation == 1
    assert "Atlantis (new)" in [c.entity for c in pred.candidates]  # five recent repeats make it a top candidate
    # A subject never seen anywhere is still a query; an unseen relation in the query is not.
    lone = pipe.predict("Nobody Known", r, date, history=history)
    assert lone.unseen_entities == ("Nobody Known",) and len(lone.candidates) == pipe.top_m
    with pytest.raises(ConfigError, match="not seen in training"):
        pipe.predict(s, "Invent a relation", date, history=history)
    with pytest.raises(ConfigError, match="lacks column"):
        pipe.predict(s, r, date, history=history.drop(columns=["object"]))
    with pytest.raises(ConfigError, match="ISO date like"):
        pipe.predict(s, r, "not a date", history=history)


def test_save_load_roundtrip_predicts_the_same(pipe: Pipeline, icews14: EventLog, tmp_path: Path) -> None:
    path = pipe.save(tmp_path / "icews14.lamp")
    manifest = json.loads((path / "pipeline.json").read_text())
    assert manifest["format_version"] == 3 and manifest["dataset"]["fingerprint"] == icews14.head(icews14.split_range("test")[0]).fingerprint()
    assert manifest["components"] == {"base_model": "recurrency", "abducer": "rules", "retriever": "fuzzy",
                                      "ranker": "energy"}
    assert (path / "abducer" / "rules.json").is_file()  # each component saves itself, mined rules included
    assert not list(path.rglob("*.pkl")) and not list(path.rglob("*.pt"))  # safe formats only
    loaded = Pipeline.load(path)
    history, s, r, gold, date, t = _test_query(icews14, 7)
    a = pipe.predict(s, r, date, history=history)
    b = loaded.predict(s, r, date, history=history)
    assert [(c.entity, c.base_rank) for c in a.candidates] == [(c.entity, c.base_rank) for c in b.candidates]
    assert np.allclose([c.energy for c in a.candidates], [c.energy for c in b.candidates], atol=1e-5)
    (path / "pipeline.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(ArtifactError, match="version 99"):
        Pipeline.load(path)
    with pytest.raises(ArtifactError, match="not a readable lamp pipeline"):
        Pipeline.load(tmp_path / "missing")


def test_bundle_never_holds_a_secret(tmp_path: Path) -> None:
    from lamp.pipeline.predictor import _public_llm

    cfg = {"kind": "openai", "model": "m", "api_key": "sk-123", "api_key_env": "MY_KEY",
           "extra": {"token": "t", "base_url": "http://x"}}
    assert _public_llm(cfg) == {"kind": "openai", "model": "m", "api_key_env": "MY_KEY",
                                "extra": {"base_url": "http://x"}}
