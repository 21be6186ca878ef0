"""The leakage audit (lamp.tpp.leakage): its log and query variants, every check on leak-free models, and
every positive control flagged by the checks written for it (so CI proves the audit can fail)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lamp.data.eventlog import EventLog, TimeSpec, build_event_log
from lamp.data.queries import QuerySet, make_queries
from lamp.tpp.base import BaseModel
from lamp.tpp.factory import build_base_model
from lamp.tpp.frequency import FrequencyBaseline
from lamp.tpp.leakage import (
    MUST_FLAG,
    FilterLeak,
    FitLeak,
    SameTimeLeak,
    TargetLeak,
    TwinLeak,
    audit_base_model,
    future_log_checks,
    query_set_checks,
    training_checks,
)
from lamp.tpp.leakage.controls import LeakyWrapper
from lamp.tpp.leakage.variants import future_logs, hidden_filters, hidden_targets, randomised_from, twins


def kg_log(seed: int = 0, n_ent: int = 20, n_rel: int = 4, n_times: int = 30, per_time: int = 12) -> EventLog:
    """Subjects 0..7 meet objects that depend on (s, r) up to noise, so histories predict something."""
    rng = np.random.default_rng(seed)
    t = np.repeat(np.arange(1, n_times + 1, dtype=float), per_time)
    s, r = rng.integers(0, 8, t.size), rng.integers(0, n_rel, t.size)
    frame = pd.DataFrame({"time": t, "subject": s, "relation": r, "object": (3 * s + r + rng.integers(0, 3, t.size)) % n_ent})
    frame = frame.drop_duplicates()
    parts = {"train": frame[frame.time <= 18], "valid": frame[(frame.time > 18) & (frame.time <= 24)],
             "test": frame[frame.time > 24]}
    return build_event_log("kg", parts, [f"e{i}" for i in range(n_ent)], [f"r{i}" for i in range(n_rel)],
                           TimeSpec("day", 86400.0))


def ratings_log(seed: int = 0, n_users: int = 25, n_days: int = 60) -> EventLog:
    """Users rating (5 types, no objects), each with a favourite rating, so histories predict something."""
    rng = np.random.default_rng(seed)
    rows = [(float(d), u, int((u + rng.integers(0, 2)) % 5)) for d in range(1, n_days + 1)
            for u in rng.choice(n_users, size=4, replace=False).tolist()]
    frame = pd.DataFrame(rows, columns=["time", "subject", "relation"]).assign(object=-1)
    parts = {"train": frame[frame.time <= 36], "valid": frame[(frame.time > 36) & (frame.time <= 48)],
             "test": frame[frame.time > 48]}
    return build_event_log("ratings", parts, [f"u{i}" for i in range(n_users)], [f"{k} star" for k in range(1, 6)],
                           TimeSpec("day", 86400.0))


def fitted(name: str, log: EventLog, task: str, **kw: Any) -> tuple[BaseModel, QuerySet]:
    model = build_base_model(name, **kw)
    model.fit(log, make_queries(log, task, "train"), make_queries(log, task, "valid"))
    return model, make_queries(log, task, "test")


# -- the variants ----------------------------------------------------------------------------------
def test_variants_differ_only_where_a_model_must_not_look() -> None:
    log = kg_log()
    t = 26.0
    h = log.history_end(t)
    variants = future_logs(log, t, np.array([h, h + 1]), seed=0)
    assert len(variants["truncated"]) == h
    for v in variants.values():
        pd.testing.assert_frame_equal(v.frame.iloc[:h], log.frame.iloc[:h])
        assert v.fingerprint() != log.fingerprint()
    assert (variants["random future"].frame.iloc[h:] != log.frame.iloc[h:]).any(axis=None)
    answers = variants["answers in the future"].frame.iloc[h:]
    gold = {tuple(x) for x in log.frame.iloc[[h, h + 1]][["subject", "relation", "object"]].to_numpy().tolist()}
    assert {tuple(x) for x in answers[["subject", "relation", "object"]].to_numpy().tolist()} <= gold
    start = log.split_ends[1]
    rand = randomised_from(log, start, seed=1)
    pd.testing.assert_frame_equal(rand.frame.iloc[:start], log.frame.iloc[:start])
    assert (rand.frame.iloc[start:][["subject", "relation", "object"]] != log.frame.iloc[start:][
        ["subject", "relation", "object"]]).any(axis=None)
    assert rand.split_ends == log.split_ends and (rand.times == log.times).all()
    seqs = ratings_log()
    assert (randomised_from(seqs, seqs.split_ends[0], 0).objects == -1).all()  # no objects invented


def test_query_variants_and_twins() -> None:
    q = make_queries(kg_log(), "object", "test", directions="both")
    other = hidden_targets(q, 0)
    assert (other.frame["target"] != q.frame["target"]).any()
    assert other.frame.drop(columns="target").equals(q.frame.drop(columns="target"))
    assert (other.filter_ids == q.filter_ids).all()
    filt = hidden_filters(q, 0)
    assert filt.frame.equals(q.frame) and len(filt.filter_ids) == len(q)
    pair = twins(q)
    assert (pair >= 0).all() and (pair[pair] == np.arange(len(q))).all()  # mutual
    f = q.frame
    assert (f["event_index"].to_numpy()[pair] == f["event_index"].to_numpy()).all()
    assert (f["direction"].to_numpy()[pair] != f["direction"].to_numpy()).all()
    assert (f["subject"].to_numpy()[pair] == f["target"].to_numpy()).all()  # the twin's subject is the answer
    assert (twins(make_queries(kg_log(), "relation", "test")) == -1).all()


# -- each check against its control ------------------------------------------------------------------
def _flagged(rows: list[Any]) -> set[str]:
    return {r.check for r in rows if r.counts and not r.identical}


@pytest.mark.parametrize("control", [TwinLeak, TargetLeak, FilterLeak])
def test_query_set_checks_pass_the_model_and_flag_each_planted_leak(control: Callable[[BaseModel], LeakyWrapper]
                                                                    ) -> None:
    log = kg_log()
    model, test = fitted("recurrency", log, "object")
    pos = np.arange(0, len(test), 2)
    assert _flagged(query_set_checks(model, log, test, pos, 5, n_alone=30)) == set()
    leak = control(model)
    flagged = _flagged(query_set_checks(leak, log, test, pos, 5, subject=leak.kind, n_alone=30))
    assert set(MUST_FLAG[leak.kind]) <= flagged
    # the checks of the log alone (the audit before) are blind to a leak through the query set
    assert _flagged(future_log_checks(leak, log, test.take(pos), 5)) == set()
    if control is TwinLeak:  # with both directions in the run's batches, the twins leak there too
        both = np.arange(len(test))
        assert {"each query scored alone", "shuffled into batches of 7"} <= _flagged(
            query_set_checks(leak, log, test, both, 5, subject=leak.kind, n_alone=30))


def test_future_log_checks_flag_the_same_time_leak() -> None:
    log = kg_log()
    model, test = fitted("frequency", log, "object")
    sel = test.take(np.arange(0, len(test), 3))
    assert _flagged(future_log_checks(model, log, sel, 5)) == set()
    assert _flagged(future_log_checks(SameTimeLeak(model), log, sel, 5)) == set(MUST_FLAG[SameTimeLeak.kind])


class WholeLogPrior(BaseModel):
    """A realistic fit-time leak: a global type prior counted over every row of the log it is fitted on."""

    name = "whole-log prior"

    def fit(self, log: EventLog, train: QuerySet, valid: QuerySet) -> dict[str, Any]:
        self.prior = np.bincount(log.rels, minlength=log.num_relations) / len(log)  # should stop at split_ends[0]
        return {}

    def score_batch(self, log: EventLog, queries: QuerySet, positions: np.ndarray) -> np.ndarray:
        return np.asarray(FrequencyBaseline().score_batch(log, queries, positions)) + 1e-3 * self.prior


@pytest.mark.parametrize("task", ["object", "type"])
def test_training_checks_pass_a_clean_fit_and_flag_a_fit_that_reads_past_the_train_end(task: str) -> None:
    log = kg_log() if task == "object" else ratings_log()
    model, test = fitted("recurrency", log, task)
    sel = test.take(np.arange(0, len(test), 2))
    ref = model.score(log, sel, 5)
    pinned = {"lmbda": 0.1, "alpha": 0.9}
    rows = training_checks(lambda: build_base_model("recurrency"), ref, log, sel, 5,
                           pinned=lambda: build_base_model("recurrency", **pinned))
    assert [r.counts for r in rows] == [False, True, True] and _flagged(rows) == set()
    assert rows[0].max_abs_score_diff == 0.0  # fitting is deterministic: no seed noise to allow
    leak = FitLeak(model)
    leak.fit(log, make_queries(log, task, "train"), make_queries(log, task, "valid"))
    leak_rows = training_checks(lambda: FitLeak(model), leak.score(log, sel, 5), log, sel, 5, subject=leak.kind)
    assert _flagged(leak_rows) == set(MUST_FLAG[FitLeak.kind])
    assert _flagged(future_log_checks(leak, log, sel, 5)) == set()  # invisible to the checks of the log
    if task == "type":
        prior = WholeLogPrior()
        prior.fit(log, sel, sel)
        assert _flagged(training_checks(WholeLogPrior, prior.score(log, sel, 5), log, sel, 5)) == {
            "refit, test part random"}


# -- the whole audit ------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "task"), [("recurrency", "object"), ("frequency", "relation"),
                                            ("recurrency", "type"), ("rules", "object")])
def test_a_leak_free_model_passes_the_whole_audit_and_every_control_is_flagged(name: str, task: str) -> None:
    log = ratings_log() if task == "type" else kg_log()
    kw: dict[str, Any] = {"mining": {"min_support": 1, "min_confidence": 0.0}, "tune": False} if name == "rules" else {}
    res = audit_base_model(lambda: build_base_model(name, **kw), log, task, top_m=5, timestamps=3, per_timestamp=12,
                           n_alone=15)
    expected = {SameTimeLeak.kind, TargetLeak.kind, FilterLeak.kind, FitLeak.kind} | (
        {TwinLeak.kind} if task == "object" else set())
    assert res.model_passes, [r for r in res.rows if r.subject == "model" and not r.identical]
    assert set(res.controls_flagged) == expected and all(res.controls_flagged.values()) and res.ok
    families = {r.family for r in res.rows if r.subject == "model"}
    assert families == {"future log", "query set", "training"}


def test_ke_anhp_passes_the_whole_audit_with_deterministic_fits() -> None:
    tiny = {"dim": 16, "heads": 2, "history": 4, "batch_size": 64, "dropout": 0.1, "lr": 1e-2, "device": "cpu",
            "epochs": 1}
    res = audit_base_model(lambda: build_base_model("ke_anhp", **tiny), kg_log(), "object", top_m=5, timestamps=2,
                           per_timestamp=10, n_alone=10, tolerance=1e-4)
    assert res.ok, [r for r in res.rows if r.counts and (r.subject == "model") != (not r.identical)]
    refit = next(r for r in res.rows if r.subject == "model" and not r.counts)
    assert refit.max_abs_score_diff == 0.0  # a refit on the same data is bit-identical (dropout seeded too)


def test_a_model_that_fails_a_check_fails_the_audit() -> None:
    """The verdict itself can fail: audit a leaky model as if it were the model."""
    log = kg_log()
    res = audit_base_model(lambda: TargetLeak(build_base_model("frequency")), log, "object", top_m=5, timestamps=2,
                           per_timestamp=8, n_alone=5, training=False)
    assert not res.model_passes and not res.ok
    assert _flagged([r for r in res.rows if r.subject == "model"]) == {"targets replaced at random"}
