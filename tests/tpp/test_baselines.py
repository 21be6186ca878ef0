"""Recurrency / frequency baselines: hand-computed scores, selection = dense evaluation, no leakage on
real ICEWS14, strict save/load, the factory, factored relation_object scoring and the ICEWS14 MRR."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lamp.data.eventlog import EventLog, TimeSpec, build_event_log
from lamp.data.queries import make_queries
from lamp.errors import ArtifactError, ConfigError
from lamp.tpp.base import filtered_gold_rank, rank_candidates
from lamp.tpp.checkpoint import save_checkpoint
from lamp.tpp.factored import rank_relation_object
from lamp.tpp.factory import available_models, build_base_model, load_base_model
from lamp.tpp.frequency import FrequencyBaseline
from lamp.tpp.recurrency import RecurrencyBaseline
from lamp.tpp.sparse_ranks import build_parts

EVENTS = {  # (s, r, o, t); 4 entities, 2 relations, one day per step
    "train": [(0, 0, 1, 1), (0, 0, 2, 2), (0, 0, 1, 3), (3, 0, 2, 3), (1, 1, 0, 2)],
    "valid": [(0, 0, 2, 4)],
    "test": [(0, 0, 1, 5), (0, 0, 3, 5)],
}


def tiny_log() -> EventLog:
    parts = {k: pd.DataFrame(v, columns=["subject", "relation", "object", "time"]) for k, v in EVENTS.items()}
    return build_event_log("tiny", parts, ["a", "b", "c", "d"], ["r0", "r1"], TimeSpec("day", 86400.0, None))


def random_log(seed: int, n_ent: int = 15, n_rel: int = 3, n_times: int = 20, per_time: int = 8) -> EventLog:
    rng = np.random.default_rng(seed)
    t = np.repeat(np.arange(n_times, dtype=float), per_time)
    frame = pd.DataFrame({"time": t, "subject": rng.integers(0, 5, t.size), "relation": rng.integers(0, n_rel, t.size),
                          "object": rng.integers(0, n_ent, t.size)}).drop_duplicates(["time", "subject", "relation", "object"])
    parts = {"train": frame[frame.time < 12], "valid": frame[(frame.time >= 12) & (frame.time < 16)],
             "test": frame[frame.time >= 16]}
    return build_event_log("random", parts, [f"e{i}" for i in range(n_ent)], [f"r{i}" for i in range(n_rel)],
                           TimeSpec("day", 86400.0, None))


def test_recurrency_scores_hand_computed() -> None:
    log = tiny_log()
    q = make_queries(log, "object", "test")
    lam, alpha = 1.0, 0.5
    scores = RecurrencyBaseline(lmbda=lam, alpha=alpha).score_batch(log, q, np.arange(len(q)))
    row = int(np.flatnonzero((q.frame.direction == "object").to_numpy())[0])  # (a, r0, ?, t=5)
    # psi: (a, r0) history before t=5: b at 1 and 3, c at 2 and 4; relation r0 spans steps 1..4,
    # Z = 2^-4 + 2^-3 + 2^-2 (steps 1..3, the last step excluded, as the original)
    z = 2.0**-4 + 2.0**-3 + 2.0**-2
    psi = {1: (2.0**-4 + 2.0**-2) / z, 2: (2.0**-3 + 2.0**-1) / z}
    xi = {1: 2 / 5, 2: 3 / 5}  # objects of r0 before t=5: b, c, b, c, c
    expected = np.zeros(4)
    for o in (1, 2):
        expected[o] = alpha * psi[o] + (1 - alpha) * xi[o]
    np.testing.assert_allclose(scores[row], expected)
    # subject query (b, r0^-1, ?, 5): b's inverse history is a at 1 and 3; subjects of r0: a four times, d once
    sub = int(np.flatnonzero(((q.frame.direction == "subject") & (q.frame.subject == 1)).to_numpy())[0])
    np.testing.assert_allclose(scores[sub], [alpha * psi[1] + (1 - alpha) * 4 / 5, 0.0, 0.0, (1 - alpha) / 5])


def test_frequency_scores_hand_computed() -> None:
    log = tiny_log()
    q = make_queries(log, "object", "test")
    scores = FrequencyBaseline().score_batch(log, q, np.arange(len(q)))
    row = int(np.flatnonzero((q.frame.direction == "object").to_numpy())[0])
    np.testing.assert_allclose(scores[row], [0.0, 0.5, 0.5, 0.0])  # b twice, c twice among (a, r0) before t=5


@pytest.mark.parametrize("task", ["object", "relation", "type"])
def test_selection_ranks_equal_dense_evaluation(task: str) -> None:
    log = random_log(7)
    q = make_queries(log, task, "valid")
    pos = np.arange(len(q))
    for lam, alpha in [(0.0, 1.0), (0.5, 1.0), (0.1, 0.5), (1.0001, 0.99999), (0.02, 0.0)]:
        model = RecurrencyBaseline(lmbda=lam, alpha=alpha, max_alpha=1.0)
        dense = filtered_gold_rank(model.score_batch(log, q, pos), q, pos)
        parts = build_parts(model._cache.history(log, q), model._cache, q, pos, log.num_entities)
        psi = parts.psi(np.full(len(pos), lam))
        alphas = np.full(len(pos), alpha)
        np.testing.assert_array_equal(parts.ranks(parts.slot_scores(psi, alphas), alphas), dense)
        if alpha == 1.0:
            np.testing.assert_array_equal(parts.ranks_explicit_only(psi), dense)


MODELS: list[tuple[type[RecurrencyBaseline] | type[FrequencyBaseline], dict[str, float]]] = [
    (RecurrencyBaseline, {"lmbda": 0.1, "alpha": 0.9}), (RecurrencyBaseline, {"lmbda": 1.0001, "alpha": 0.99999}),
    (RecurrencyBaseline, {"lmbda": 0.0, "alpha": 0.0}), (RecurrencyBaseline, {"lmbda": 0.5, "alpha": 1.0, "max_alpha": 1.0}),
    (FrequencyBaseline, {}),
]


@pytest.mark.parametrize("task", ["object", "relation", "predicate", "type"])
def test_rank_batch_equals_dense_path(task: str) -> None:
    """The sparse fast path gives the same top-M, scores and filtered ranks as the dense rows."""
    log = random_log(12)
    roots = np.array([0, 1, 0])
    q = make_queries(log, task, "test", relation_roots=roots if task == "predicate" else None)
    for cls, kwargs in MODELS:
        model = cls(relation_roots=roots, **kwargs)  # type: ignore[arg-type]
        for m in (1, 5, q.num_candidates):
            fast = rank_candidates(model, log, q, m, batch_size=9)
            dense = rank_candidates(model, log, q, m, batch_size=9, dense=True)
            np.testing.assert_array_equal(fast.candidates, dense.candidates)
            np.testing.assert_array_equal(fast.scores, dense.scores)
            np.testing.assert_array_equal(fast.gold_rank_filtered, dense.gold_rank_filtered)


@pytest.mark.slow
def test_rank_batch_equals_dense_path_on_icews14(icews14: EventLog) -> None:
    q = make_queries(icews14, "object", "test").take(np.arange(3000, 3600))  # contiguous: few time cutoffs
    for cls, kwargs in (MODELS[0], MODELS[3], MODELS[4]):
        model = cls(**kwargs)  # type: ignore[arg-type]
        fast, dense = (rank_candidates(model, icews14, q, 20, dense=d) for d in (False, True))
        np.testing.assert_array_equal(fast.candidates, dense.candidates)
        np.testing.assert_array_equal(fast.gold_rank_filtered, dense.gold_rank_filtered)


def test_fit_selects_on_valid_and_reports() -> None:
    log = random_log(8)
    valid = make_queries(log, "object", "valid")
    model = RecurrencyBaseline()
    report = model.fit(log, make_queries(log, "object", "train"), valid)
    assert model.lmbda is not None and model.alpha is not None
    assert model.lmbda.shape == (2 * log.num_relations,) and report["n_valid_queries"] == len(valid)
    json.dumps(report)  # the pipeline stores it as JSON
    unseen = np.setdiff1d(np.arange(2 * log.num_relations), valid.frame["relation"].to_numpy())
    assert (model.lmbda[unseen] == 1.0001).all() and (model.alpha[unseen] == 0.99999).all()
    with pytest.raises(ConfigError, match="fitted for task"):
        model.score_batch(log, make_queries(log, "relation", "test"), np.arange(2))


def altered_after(log: EventLog, t0: float, seed: int = 0) -> EventLog:
    """A copy of ``log`` whose events at or after ``t0`` have shuffled objects and 30% fewer rows."""
    rng = np.random.default_rng(seed)
    split = log.split_of_rows()
    frame = log.frame.copy()
    late = frame["time"].to_numpy() >= t0
    frame.loc[late, "object"] = rng.permutation(frame.loc[late, "object"].to_numpy())
    keep = ~late | (rng.random(len(frame)) > 0.3)
    frame, split = frame[keep], split[keep]
    parts = {name: frame[split == i] for i, name in enumerate(("train", "valid", "test"))}
    return build_event_log(log.name, parts, log.entities.names, log.relations.names, log.time_spec)


@pytest.mark.slow
def test_no_leakage_on_real_icews14(icews14: EventLog) -> None:
    test = make_queries(icews14, "object", "test")
    times = np.unique(test.frame["time"].to_numpy())
    t0 = times[len(times) // 2]
    at_t0 = np.flatnonzero(test.frame["time"].to_numpy() == t0)[:200]
    later = np.flatnonzero(test.frame["time"].to_numpy() == times[-1])[:200]
    altered = altered_after(icews14, t0)
    assert altered.history_end(t0) == icews14.history_end(t0)
    rec = RecurrencyBaseline(lmbda=0.1, alpha=0.9)
    for model in (rec, FrequencyBaseline()):
        before = model.score_batch(icews14, test, at_t0)
        np.testing.assert_array_equal(model.score_batch(altered, test, at_t0), before)
        # the alteration is visible to later queries, so the check above is not vacuous
        assert not np.array_equal(model.score_batch(altered, test, later), model.score_batch(icews14, test, later))
        # the sparse fast path (rank_batch) sees the same history
        sub = test.take(at_t0)
        fast = rank_candidates(model, altered, sub, 10)
        ref = rank_candidates(model, icews14, sub, 10)
        np.testing.assert_array_equal(fast.candidates, ref.candidates)
        np.testing.assert_array_equal(fast.gold_rank_filtered, ref.gold_rank_filtered)
    # choosing hyperparameters on valid never looks at test events
    valid = make_queries(icews14, "object", "valid").sample(3000, seed=0)
    first, second = RecurrencyBaseline(), RecurrencyBaseline()
    first.fit(icews14, valid, valid)
    second.fit(altered_after(icews14, float(times[0])), valid, valid)
    np.testing.assert_array_equal(first.lmbda, second.lmbda)
    np.testing.assert_array_equal(first.alpha, second.alpha)


def test_save_load_round_trip_and_strict_failures(tmp_path) -> None:
    log = random_log(9)
    model = RecurrencyBaseline()
    model.fit(log, make_queries(log, "object", "train"), make_queries(log, "object", "valid"))
    path = tmp_path / "rec"
    model.save(path)
    loaded = load_base_model(path, log=log)
    assert isinstance(loaded, RecurrencyBaseline) and loaded.task == "object"
    np.testing.assert_array_equal(loaded.lmbda, model.lmbda)
    test = make_queries(log, "object", "test")
    pos = np.arange(len(test))
    np.testing.assert_array_equal(loaded.score_batch(log, test, pos), model.score_batch(log, test, pos))
    meta = json.loads((path / "checkpoint.json").read_text())
    assert meta["data_fingerprint"] == log.fingerprint() and meta["kind"] == "recurrency"
    with pytest.raises(ArtifactError, match="fingerprint"):
        RecurrencyBaseline.load(path, log=random_log(10))
    with pytest.raises(ArtifactError, match="frequency"):
        FrequencyBaseline.load(path)
    extra = tmp_path / "extra"
    save_checkpoint(extra, kind="recurrency", tensors={"lmbda": model.lmbda, "alpha": model.alpha, "x": model.alpha},
                    config=model.config(), fingerprint=log.fingerprint())
    with pytest.raises(ArtifactError, match="unexpected tensors"):
        RecurrencyBaseline.load(extra)
    missing = tmp_path / "missing"
    save_checkpoint(missing, kind="recurrency", tensors={"lmbda": model.lmbda}, config=model.config(), fingerprint=None)
    with pytest.raises(ArtifactError, match="missing tensors"):
        RecurrencyBaseline.load(missing)
    (path / "tensors.safetensors").write_bytes((path / "tensors.safetensors").read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ArtifactError, match="sha256"):
        RecurrencyBaseline.load(path)
    with pytest.raises(ArtifactError, match="not been fitted"):
        RecurrencyBaseline().save(tmp_path / "unfitted")


def test_checkpoint_torch_tensors_round_trip(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    from lamp.tpp.checkpoint import load_checkpoint

    save_checkpoint(tmp_path / "t", kind="net", tensors={"w": torch.arange(6.0).reshape(2, 3)}, config={"h": 3},
                    fingerprint="abc")
    ckpt = load_checkpoint(tmp_path / "t", kind="net", expected_tensors={"w"}, fingerprint="abc", framework="pt")
    assert torch.equal(ckpt.tensors["w"], torch.arange(6.0).reshape(2, 3)) and ckpt.config == {"h": 3}


def test_factory() -> None:
    assert {"recurrency", "frequency"} <= set(available_models())
    assert isinstance(build_base_model("recurrency", lmbda=0.1), RecurrencyBaseline)
    assert isinstance(build_base_model("frequency"), FrequencyBaseline)
    with pytest.raises(ConfigError, match="Valid choices are"):
        build_base_model("nope")
    with pytest.raises(ConfigError, match=r"Invalid option\(s\) \[.decay.\]"):
        build_base_model("recurrency", decay=3)
    with pytest.raises(ConfigError, match="alpha"):
        build_base_model("recurrency", alpha=2.0)


def test_factored_relation_object_ranks() -> None:
    log = random_log(11)
    q = make_queries(log, "relation_object", "test")
    model = FrequencyBaseline()
    table = rank_relation_object(model, log, q, 5, k_relations=2, k_objects=4)
    assert table.candidates.shape == (len(q), 5)
    pos = np.arange(len(q))
    rel, obj = model.relation_object_scores(log, q, pos)
    full = (rel[:, :, None] + obj[:, None, :]).reshape(len(q), -1)  # every (r, o) pair, id r * E + o
    r_top = np.argsort(-rel, axis=1, kind="stable")[:, :2]
    o_top = np.argsort(-obj, axis=1, kind="stable")[:, :4]
    for i in range(len(q)):
        in_set = (r_top[i][:, None] * log.num_entities + o_top[i][None, :]).ravel()
        target = int(q.frame["target"].to_numpy()[i])
        if target not in in_set:
            assert np.isnan(table.gold_rank_filtered[i])
            continue
        masked = np.full((1, full.shape[1]), -np.inf)
        masked[0, in_set] = full[i, in_set]
        ref = filtered_gold_rank(masked, q, np.array([i]))[0]
        assert table.gold_rank_filtered[i] == pytest.approx(ref)
        order = sorted(in_set.tolist(), key=lambda c: (-full[i, c], c))[:5]
        assert table.candidates[i].tolist() == order
    via_score = model.score(log, q, 5)  # BaseModel.score routes relation_object to the factored scorer
    assert via_score.candidates.shape[1] == 5


@pytest.mark.slow
def test_icews14_recurrency_matches_the_authors(icews14: EventLog) -> None:
    model = RecurrencyBaseline()
    model.fit(icews14, make_queries(icews14, "object", "valid"), make_queries(icews14, "object", "valid"))
    table = model.score(icews14, make_queries(icews14, "object", "test"), 10)
    mrr = float(np.mean(1.0 / table.gold_rank_filtered))
    assert abs(mrr - 0.3743) < 0.005, mrr  # nec-research/recurrency_baseline_tkg, REFERENCE_RESULTS.md
