"""The history a fitted lamp.Pipeline keeps, on real ICEWS14: observe, its policies, predict from it, ties.

The pipeline is the session's shared one (``icews14_pipeline`` in tests/conftest.py), fitted on train + valid (events up to 2014-11-30; recurrency, mined rules,
fuzzy retrieval, a 2-epoch ranker on 30 valid queries); December 2014 (the test split) comes in through
``observe`` as tables of named events, the way a live feed would. Each test works on its own copy
(``dataclasses.replace``: the same fitted components, its own history).
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import lamp
from lamp.data.eventlog import EventLog
from lamp.errors import ConfigError, RequestError
from lamp.pipeline.prediction import tie_report
from lamp.pipeline.predictor import Pipeline, Prediction

pytestmark = [pytest.mark.slow]

SANCTIONS = "Impose embargo, boycott, or sanctions"


@pytest.fixture(scope="module")
def fitted(icews14_pipeline: Pipeline) -> Pipeline:
    return icews14_pipeline


@pytest.fixture(scope="module")
def december(icews14: EventLog) -> pd.DataFrame:
    return lamp.named_events(icews14, "test")


def _fresh(pipe: Pipeline) -> Pipeline:
    return replace(pipe)  # the same fitted components, its own history and locks


def _comparable(pred: Prediction) -> dict[str, Any]:
    """Everything a prediction says but the bookkeeping of its input: the kept history's version, and what a
    given table held that was not used (its events with unseen relations are also counted as future there)."""
    out = asdict(pred)
    for key in ("history_version", "dropped_unseen_relation", "ignored_future"):
        out.pop(key)
    return out


def test_observe_then_predict_is_predict_on_the_same_events_given_explicitly(fitted: Pipeline, icews14: EventLog,
                                                                             december: pd.DataFrame) -> None:
    pipe = _fresh(fitted)
    first = december[december["time"] < "2014-12-10"]
    extra = pd.DataFrame([  # an entity unseen in training, and a relation unseen in training
        {"subject": "Barack Obama", "relation": SANCTIONS, "object": "Atlantis (new)", "time": "2014-12-17"},
        {"subject": "Atlantis (new)", "relation": "Make statement", "object": "Gazprom", "time": "2014-12-18"},
        {"subject": "Barack Obama", "relation": "Invent a relation", "object": "Gazprom", "time": "2014-12-18"}])
    second = pd.concat([december[(december["time"] >= "2014-12-10") & (december["time"] < "2014-12-19")], extra])
    second = second.iloc[::-1]  # any order within a batch: sorted by time on arrival (stably)
    one = pipe.observe(first)
    two = pipe.observe(second)
    assert (one.added, one.version, two.version) == (len(first), 1, 2)
    assert two.added == len(second) - 1 and two.dropped_unseen_relation == 1 and two.new_entities == ("Atlantis (new)",)
    assert two.history_events == len(fitted.history.log) + len(first) + len(second) - 1  # type: ignore[union-attr]
    given = pd.concat([lamp.named_events(icews14.head(icews14.split_range("test")[0])), first, second])
    on_19 = december[december["time"] == "2014-12-19"].iloc[:4]
    queries = [(r.subject, r.relation, "2014-12-19") for r in on_19.itertuples()]
    queries += [("Barack Obama", SANCTIONS, "2014-12-19"), ("Atlantis (new)", "Make statement", "2014-12-19"),
                ("Barack Obama", SANCTIONS, "2014-12-05")]  # the last one: a time inside the observed events
    for q in queries:
        kept, explicit = pipe.predict(*q), pipe.predict(*q, history=given)
        assert _comparable(kept) == _comparable(explicit), q
        assert kept.history_version == 2 and explicit.history_version is None
    back = pipe.predict("Barack Obama", SANCTIONS, "2014-12-05")
    assert back.ignored_future == len(pipe.history.log) - back.history_events > 0  # type: ignore[union-attr]
    assert back.ignored_future == pipe.predict("Barack Obama", SANCTIONS, "2014-12-05", history=given).ignored_future - 1
    assert all(e.date < "2014-12-05" for c in back.candidates for e in c.evidence)
    # The README's query: Obama's sanctions on Gazprom (2014-12-15) were observed, so Gazprom leads the base ranks.
    pred = pipe.predict("Barack Obama", SANCTIONS, "2014-12-19")
    assert "Gazprom" in [c.entity for c in pred.candidates]
    assert "Atlantis (new)" in pred.unseen_entities


def test_a_batch_is_checked_whole_and_refused_whole(fitted: Pipeline, december: pd.DataFrame) -> None:
    pipe = _fresh(fitted)
    week = december[december["time"] < "2014-12-08"]
    pipe.observe(week)
    before = (len(pipe.history.log), pipe.history.version)  # type: ignore[union-attr]
    good = december[(december["time"] >= "2014-12-08") & (december["time"] < "2014-12-09")]
    cases = {
        "time": good.assign(time=["2014-12-08"] * (len(good) - 1) + ["2014-13-45"]),  # the last one is no date
        "subject": good.assign(subject=[""] + list(good["subject"].iloc[1:])),
        "relation": good.assign(relation=[None] + list(good["relation"].iloc[1:])),
    }
    for field, batch in cases.items():
        with pytest.raises(RequestError) as err:
            pipe.observe(batch)
        assert err.value.field == field and err.value.row is not None
    late = pd.concat([good, december[december["time"] == "2014-12-01"].iloc[:1].assign(subject="Someone New")])
    with pytest.raises(RequestError, match="earlier than the newest event already observed") as err:
        pipe.observe(late)
    assert err.value.field == "time" and err.value.row == len(good) and "2014-12-07" in str(err.value)
    with pytest.raises(RequestError, match="lacks column"):
        pipe.observe(good.drop(columns=["object"]))
    assert (len(pipe.history.log), pipe.history.version) == before  # type: ignore[union-attr]  # nothing was kept
    # Re-sending what is already kept (a retry) changes nothing; so does an empty batch.
    again = pipe.observe(week.iloc[-50:])
    assert (again.added, again.duplicates, again.version) == (0, 50, before[1])
    assert pipe.observe(week.iloc[:0]).added == 0
    # Events at the newest time are accepted (a day may come in several batches), duplicates in a batch dropped.
    same_day = pd.concat([week[week["time"] == "2014-12-07"].iloc[:3],
                          pd.DataFrame([{"subject": "Someone New", "relation": "Make statement", "object": "Gazprom",
                                         "time": "2014-12-07"}] * 2)])
    report = pipe.observe(same_day)
    assert (report.added, report.duplicates, report.new_entities) == (1, 4, ("Someone New",))


def test_observe_takes_an_eventlog_as_it_takes_its_table(fitted: Pipeline, icews14: EventLog,
                                                        december: pd.DataFrame) -> None:
    """The whole log up to 2014-12-09 as an EventLog: what the pipeline was fitted on comes back as duplicates,
    December's days are added exactly as the table of the same named events adds them."""
    from lamp.pipeline.history import to_time

    end = icews14.history_end(to_time("2014-12-10", icews14.time_spec))
    by_log, by_table = _fresh(fitted), _fresh(fitted)
    a = by_log.observe(icews14.head(end))
    b = by_table.observe(december[december["time"] < "2014-12-10"])
    assert a.added == b.added > 0 and a.duplicates == len(fitted.history.log) + b.duplicates  # type: ignore[union-attr]
    assert by_log.history.log.frame.equals(by_table.history.log.frame)  # type: ignore[union-attr]


def test_predict_says_when_the_scores_cannot_tell_candidates_apart(fitted: Pipeline) -> None:
    pipe = _fresh(fitted)
    # The example: two events as the whole history, nothing about sanctions: every candidate scores 0.
    two = pd.DataFrame({"subject": ["Barack Obama", "Russia"], "relation": ["Make statement", "Threaten"],
                        "object": ["Russia", "Ukraine"], "time": ["2014-12-10", "2014-12-12"]})
    pred = pipe.predict("Barack Obama", SANCTIONS, "2014-12-20", history=two)
    assert pred.ranking == "arbitrary" and pred.ties.beyond_cut == len(pipe.entities) + len(pred.unseen_entities) - pipe.top_m
    assert pred.ties.at_cut == tuple(range(1, pipe.top_m + 1)) and all(c.base_score == 0 for c in pred.candidates)
    assert "Not a forecast" in pred.explain() and pred.to_dict()["note"] == pred.note()
    # From the kept history the same query is ranked; with M = 20 the cut falls among relation-frequency ties.
    ranked = pipe.predict("Barack Obama", SANCTIONS, "2014-12-20")
    assert ranked.ranking == "ranked" and ranked.note() is None and not ranked.ties.any
    wide = pipe.predict("Barack Obama", SANCTIONS, "2014-12-20", top_m=20)
    assert wide.ranking == "tied" and wide.ties.beyond_cut > 0 and "left out of the top-20" in wide.explain()
    cut = wide.ties.score_at_cut
    assert [c.rank for c in wide.candidates if c.base_score == pytest.approx(cut, abs=0)] == list(wide.ties.at_cut)


def test_tie_report_reads_final_and_base_scores() -> None:
    base = np.array([0.5, 0.3, 0.2, 0.2])
    everything = np.concatenate([base, [0.2, 0.1, 0.0]])  # one more candidate at the cut's 0.2, left out
    final = np.array([1.0, 2.0, 0.5, 0.5])  # the ranker ties positions 2 and 3
    order = np.array([1, 0, 2, 3])
    ranking, ties = tie_report(final, base, order, everything)
    assert ranking == "tied" and ties.groups == ((3, 4),) and ties.at_cut == (3, 4) and ties.beyond_cut == 1
    assert tie_report(final[:2], base[:2], np.array([1, 0]), everything)[0] == "ranked"
    flat = np.zeros(4)
    assert tie_report(flat, flat, np.arange(4), np.zeros(9))[0] == "arbitrary"


def test_save_load_keeps_the_observed_history(fitted: Pipeline, december: pd.DataFrame, tmp_path: Path) -> None:
    pipe = _fresh(fitted)
    pipe.observe(pd.concat([december[december["time"] < "2014-12-12"], pd.DataFrame([
        {"subject": "Atlantis (new)", "relation": "Make statement", "object": "Gazprom", "time": "2014-12-11"}])]))
    path = pipe.save(tmp_path / "observed.lamp")
    assert (path / "history" / "events.parquet").is_file() and not list(path.rglob("*.pkl"))
    loaded = Pipeline.load(path)
    assert loaded.history is not None and pipe.history is not None
    assert loaded.history.version == 1 and loaded.history.log.entities == pipe.history.log.entities
    assert loaded.history.log.frame.equals(pipe.history.log.frame)
    a, b = pipe.predict("Atlantis (new)", "Make statement", "2014-12-12"), loaded.predict("Atlantis (new)",
                                                                                         "Make statement", "2014-12-12")
    assert [(c.entity, c.base_score) for c in a.candidates] == [(c.entity, c.base_score) for c in b.candidates]
    assert np.allclose([c.energy for c in a.candidates], [c.energy for c in b.candidates], atol=1e-5)


def test_query_errors_name_the_field(fitted: Pipeline) -> None:
    pipe = _fresh(fitted)
    cases = [(("Barack Obama", "Impose sanctions", "2014-12-20"), {}, "relation"),
             (("", "Make statement", "2014-12-20"), {}, "subject"),
             (("Barack Obama", "Make statement", "soon"), {}, "time"),
             (("Barack Obama", "Make statement", "2014-03-17"), {}, "time"),  # inside the train split of the rules
             (("Barack Obama", "Make statement", "2014-12-20"), {"top_m": 0}, "top_m")]
    for args, kwargs, field in cases:
        with pytest.raises(RequestError) as err:
            pipe.predict(*args, **kwargs)
        assert err.value.field == field and "Fix:" in str(err.value)
    with pytest.raises(RequestError, match="keyword"):
        pipe.predict(pd.DataFrame(), "Barack Obama", "Make statement")  # type: ignore[arg-type]  # the old order
    with pytest.raises(ConfigError, match="keeps no history"):
        replace(pipe, history=None).predict("Barack Obama", "Make statement", "2014-12-20")
