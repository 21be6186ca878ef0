"""base:ke_anhp: planted patterns, exact recurrency features, no leakage on real ICEWS14, strict persistence."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from leakage_logs import future_variants

from lamp.data import EventLog, TimeSpec, build_event_log
from lamp.data.queries import make_queries
from lamp.errors import ArtifactError, ConfigError
from lamp.tpp.checkpoint import META_FILE, TENSORS_FILE
from lamp.tpp.ke_anhp import KEANHP
from lamp.tpp.sequences import FeatureIndex

TINY = {"dim": 32, "heads": 2, "history": 4, "batch_size": 64, "dropout": 0.0, "lr": 1e-2, "device": "cpu"}


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def kg_log(rows: list[tuple[float, int, int, int]], n_ent: int, n_rel: int, days: int) -> EventLog:
    df = pd.DataFrame(rows, columns=["time", "subject", "relation", "object"])
    t = df["time"]
    parts = {"train": df[t <= days * 0.7], "valid": df[(t > days * 0.7) & (t <= days * 0.85)], "test": df[t > days * 0.85]}
    return build_event_log("kg", parts, [f"e{i}" for i in range(n_ent)], [f"r{i}" for i in range(n_rel)],
                           TimeSpec("day", 86400.0))


def follow_up_log(days: int = 80, n_ent: int = 30, seed: int = 0) -> EventLog:
    """Odd days: each of 10 subjects meets a random partner (r0); even days: it follows up (r1) with the
    partner of the day before. r1 objects are only predictable by attending to the right past event."""
    rng = np.random.default_rng(seed)
    rows, partner = [], {}
    for d in range(1, days + 1):
        for s in range(10):
            if d % 2:
                partner[s] = int(rng.integers(10, n_ent))
                rows.append((float(d), s, 0, partner[s]))
            else:
                rows.append((float(d), s, 1, partner[s]))
    return kg_log(rows, n_ent, 2, days)


def test_attention_learns_the_planted_follow_up_pattern() -> None:
    log = follow_up_log()
    train, valid, test = (make_queries(log, "object", s, directions="object") for s in ("train", "valid", "test"))
    model = KEANHP(epochs=8, patience=3, recurrency_features=False, **TINY)
    report = model.fit(log, train, valid)
    assert [r["epoch"] for r in report["curve"]][0] == 0 and np.isfinite(report["curve"][-1]["train_loss"])
    table = model.score(log, test, top_m=3)
    follow = test.frame["relation"].to_numpy() == 1
    mrr = float(np.mean(1.0 / table.gold_rank_filtered[follow]))
    assert mrr > 0.9, mrr  # chance is about 0.18 over 20 partners


def test_recurrency_features_match_a_brute_force_count(icews14: EventLog) -> None:
    index = FeatureIndex.build(icews14, "object", end=None, max_relaxed=10**9)
    q = make_queries(icews14, "object", "test", directions="both").sample(25, seed=1).frame
    arrays = {"s": q["subject"].to_numpy(), "r": q["relation"].to_numpy(), "time": q["time"].to_numpy()}
    owner, value, feat = index.features(arrays)
    strict = feat[:, 0] > 0
    R = icews14.num_relations
    s, r, o, t = icews14.subjects, icews14.rels, icews14.objects, icews14.times
    for i in range(len(q)):
        qs, qr, qt = arrays["s"][i], arrays["r"][i], arrays["time"][i]
        before = t < qt
        hit = before & ((s == qs) & (r == qr) if qr < R else (o == qs) & (r == qr - R))
        other = o[hit] if qr < R else s[hit]
        want = dict(zip(*np.unique(other, return_counts=True), strict=True))
        mine = strict & (owner == i)
        got = {int(v): int(round(np.expm1(c))) for v, c in zip(value[mine], feat[mine, 0], strict=True)}
        assert got == {int(k): int(v) for k, v in want.items()}


@pytest.mark.parametrize("task", ["object", "relation"])
def test_no_leakage_on_real_icews14(icews14: EventLog, task: str) -> None:
    """Scores of queries at time t* are identical after altering or removing every event at/after t*
    (including the many events that share t* with a query's subject)."""
    q = make_queries(icews14, task, "test", directions="both")
    t_star = float(q.frame["time"].iloc[0])
    sel = q.take(np.flatnonzero(q.frame["time"].to_numpy() == t_star)[:24])
    torch.manual_seed(0)
    model = KEANHP(dim=32, heads=2, history=8, device="cpu")
    model.task = task
    model.net = model._new_net(icews14.num_entities, icews14.num_relations, task).eval()
    pos = np.arange(len(sel))
    base = model.score_batch(icews14, sel, pos)
    altered, truncated = future_variants(icews14, t_star, sel.frame["subject"].to_numpy())
    np.testing.assert_array_equal(model.score_batch(altered, sel, pos), base)
    np.testing.assert_array_equal(model.score_batch(truncated, sel, pos), base)
    # and the test can see a change: altering the events before t* does change the scores
    h, rng, frame = icews14.history_end(t_star), np.random.default_rng(1), altered.frame.copy()
    frame.loc[np.arange(h - 2000, h), "object"] = rng.integers(icews14.num_entities, size=2000).astype(np.int32)
    past = EventLog("past", frame, icews14.entities, icews14.relations, icews14.time_spec, icews14.split_ends, {})
    assert not np.array_equal(model.score_batch(past, sel, pos), base)


def test_save_load_round_trip_is_strict(tmp_path: Path) -> None:
    log = follow_up_log(days=30)
    train, valid, test = (make_queries(log, "object", s, directions="both") for s in ("train", "valid", "test"))
    model = KEANHP(epochs=1, **TINY)
    model.fit(log, train, valid)
    model.save(tmp_path / "ke")
    back = KEANHP.load(tmp_path / "ke", log, device="cpu")
    pos = np.arange(len(test))
    np.testing.assert_array_equal(back.score_batch(log, test, pos), model.score_batch(log, test, pos))
    with pytest.raises(ArtifactError, match="fingerprint"):
        KEANHP.load(tmp_path / "ke", follow_up_log(days=30, seed=1))
    (tmp_path / "ke" / TENSORS_FILE).write_bytes((tmp_path / "ke" / TENSORS_FILE).read_bytes()[:-8])
    with pytest.raises(ArtifactError):
        KEANHP.load(tmp_path / "ke", log)
    (tmp_path / "ke" / META_FILE).unlink()
    with pytest.raises(ArtifactError):
        KEANHP.load(tmp_path / "ke", log)


@pytest.mark.parametrize("task", ["relation", "predicate"])
def test_relation_tasks_train_and_score(task: str) -> None:
    log = follow_up_log(days=30)
    roots = np.array([0, 1]) if task == "predicate" else None
    if roots is not None:
        log.meta["relation_root"] = roots
    train, valid, test = (make_queries(log, task, s, relation_roots=roots) for s in ("train", "valid", "test"))
    model = KEANHP(epochs=2, **TINY)
    report = model.fit(log, train, valid)
    assert report["task"] == "relation" and np.isfinite(report["curve"][-1]["train_loss"])
    table = model.score(log, test, top_m=2)
    assert table.candidates.shape == (len(test), 2) and np.all(table.gold_rank_filtered >= 1)


def test_rejects_tasks_and_settings_it_cannot_handle() -> None:
    log = follow_up_log(days=30)
    with pytest.raises(ConfigError, match="scores tasks"):
        KEANHP(**TINY).fit(log, make_queries(log, "type", "train"), make_queries(log, "type", "valid"))
    with pytest.raises(ConfigError, match="divisible"):
        KEANHP(dim=30, heads=4)
    with pytest.raises(ConfigError, match=r"Invalid option\(s\)"):
        KEANHP(layers=2)
