"""The feature ranking stage: held-out measure, base-order fallback, evidence control, both rankers."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from rank_synthetic import Synthetic

from lamp.rank.model import collate
from lamp.rank.ranker import EnergyRanker
from lamp.rank.rerank import (
    combine,
    filtered_top_m_rr,
    rerank_top_m,
    select_combination,
    shuffled_evidence,
    true_cells,
)
from lamp.types import Evidence

pytest.importorskip("lightgbm")


def scored_evidence(synth: Synthetic, gold_score: float = 1.0, other: float = 0.3) -> list[Evidence]:
    """The synthetic evidence with retrieval scores that tell the gold (what a good abducer's would do)."""
    gold = dict(zip(synth.table.queries.frame["query_id"], synth.table.queries.frame["target"], strict=True))
    return [replace(e, scores=np.full(len(e.scores), gold_score if gold[e.query_id] == e.candidate else other,
                                      np.float32)) for e in synth.evidences]


def test_filtered_top_m_rr_skips_other_true_answers() -> None:
    final = np.array([[3.0, 2.0, 1.0], [3.0, 2.0, 2.0]])
    gold = np.array([2, 1])
    is_true = np.array([[True, False, True], [False, True, False]])
    np.testing.assert_allclose(filtered_top_m_rr(final, gold, is_true), [1 / 2, 1 / 2.5])
    assert np.isnan(filtered_top_m_rr(final, np.array([-1, 1]), is_true)[0])


def test_true_cells_hold_the_gold_and_the_filtered_answers(synth: Synthetic) -> None:
    t = synth.table
    cells = true_cells(t)
    gold = t.gold_position()
    assert cells[np.arange(len(gold)), gold].all()
    for i in range(len(gold)):
        assert set(t.candidates[i][cells[i]].tolist()) == set(t.queries.true_answers(i).tolist()) & set(
            t.candidates[i].tolist())


def test_selection_falls_back_to_the_base_order_when_the_ranker_hurts() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(300, 5))
    gold = base.argmax(axis=1)  # the base is always right
    is_true = np.zeros((300, 5), dtype=bool)
    is_true[np.arange(300), gold] = True
    w, table = select_combination(-base, base, gold, is_true, grid=[0.0, 0.5, math.inf])  # the ranker is wrong
    assert w == math.inf and table[math.inf] == 1.0 > table[0.5]
    w, _ = select_combination(-base, base, gold, is_true)  # the default grid: a large finite w recovers the base
    assert math.isfinite(w) and w > 1.0
    np.testing.assert_array_equal(np.argsort(-combine(-base, base, w), axis=1), np.argsort(-base, axis=1))
    w, table = select_combination(base * 2.0, np.zeros_like(base), gold, is_true)  # the ranker is right
    assert w == 0.0 and table[0.0] == 1.0


def test_shuffled_evidence_stays_in_the_past(synth: Synthetic) -> None:
    moved = shuffled_evidence(synth.table, synth.evidences, seed=0)
    ends = dict(zip(synth.table.queries.frame["query_id"], synth.table.queries.frame["history_end"], strict=True))
    assert len(moved) == synth.table.candidates.size
    assert all(int(e.event_indices.max(initial=-1)) < ends[e.query_id] for e in moved)
    same = sum(np.array_equal(a.event_indices, b.event_indices) for a, b in zip(moved, synth.evidences, strict=True))
    assert same < len(moved) // 10


def test_lightgbm_stage_learns_from_the_evidence_and_the_control_sees_it(synth: Synthetic) -> None:
    evid = scored_evidence(synth)
    tables = {"valid": synth.table, "test": synth.table}
    out = rerank_top_m(synth.log, tables, {"valid": evid, "test": evid}, ranker="lightgbm", num_threads=1,
                       n_estimators=60, min_data_in_leaf=10)
    info = out.info
    assert info["stop_top_m_mrr_combined"] > 0.9 > info["stop_top_m_mrr_base"] + 0.3
    assert info["evidence_control"].startswith("uses evidence"), info["evidence_control"]
    assert info["evidence_control_mrr_shuffled"] < info["evidence_control_mrr"] - 0.2
    assert info["train_used"] + info["stop_used"] == len(synth.table.queries)
    # then refit on every valid query that has a true answer, rounds scaled by the queries added
    assert info["refit_queries"] == info["train_queries"] + info["stop_queries"]
    assert info["refit_rounds"] == round(info["best_iteration"] * info["refit_queries"] / info["train_queries"])
    assert sorted(out.order[0].tolist()) == list(range(5)) and out.tie_keys.shape == out.order.shape
    gold = synth.table.gold_position()
    assert (out.order[:, 0] == gold).mean() > 0.9


def test_a_useless_ranker_never_makes_the_base_worse_on_held_out_queries(synth: Synthetic) -> None:
    rng = np.random.default_rng(3)
    gold = synth.table.gold_position()
    scores = rng.normal(size=synth.table.scores.shape).astype(np.float32)
    scores[np.arange(len(gold)), gold] += 1.5  # an informative base model
    table = replace(synth.table, scores=scores)
    noise = [replace(e, scores=rng.random(len(e.scores)).astype(np.float32)) for e in synth.evidences]
    out = rerank_top_m(synth.log, {"valid": table, "test": table}, {"valid": noise, "test": noise},
                       ranker="lightgbm", num_threads=1, n_estimators=40)
    assert out.info["stop_top_m_mrr_combined"] >= out.info["stop_top_m_mrr_base"]


def test_energy_stage_learns_the_evidence_with_features(synth: Synthetic) -> None:
    torch.set_num_threads(1)
    tables = {"valid": synth.table, "test": synth.table}
    out = rerank_top_m(synth.log, tables, {"valid": synth.evidences, "test": synth.evidences}, ranker="energy",
                       epochs=6, patience=2, max_evidence=8, device="cpu")
    info = out.info
    assert info["stop_top_m_mrr_combined"] > info["stop_top_m_mrr_base"] + 0.2
    assert info["evidence_control"].startswith("uses evidence"), info["evidence_control"]
    losses = [row["valid_loss"] for row in info["curve"]]
    assert losses[info["best_epoch"] - 1] == min(losses)


def test_listnet_loss_spreads_the_target_over_true_answers(synth: Synthetic) -> None:
    ex = synth.examples[:2]
    relevant = np.zeros((2, 5), dtype=bool)
    relevant[0, [ex[0].gold, (ex[0].gold + 1) % 5]] = True
    ex = [replace(e, relevant=relevant[i]) for i, e in enumerate(ex)]
    batch = collate(ex, 4)
    ranker = EnergyRanker(synth.log.num_entities, synth.log.num_relations, dim=8, layers=1, heads=1, loss="listnet",
                          device="cpu")
    energy = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0, 1.0]])
    logp = torch.log_softmax(-energy, dim=1)
    target = torch.zeros(2, 5)
    target[0, [ex[0].gold, (ex[0].gold + 1) % 5]] = 0.5
    target[1, ex[1].gold] = 1.0
    expected = -(target * logp).sum(dim=1).mean()
    assert torch.allclose(ranker._loss(energy, batch), expected)


def test_the_ranker_config_files_drive_the_stage(synth: Synthetic) -> None:
    """ranker=lightgbm / energy_features as the pipeline builds them (Settings from the registry) fit, reorder,
    and give the same order through fit + apply as through the one-call stage."""
    from lamp.rank import RANKERS
    from lamp.rank.rerank import apply_ranker

    evid = scored_evidence(synth)
    for name, kind in (("lightgbm", "lightgbm"), ("energy_features", "energy")):
        small = {"n_estimators": 20, "num_threads": 1} if name == "lightgbm" else {"epochs": 1, "device": "cpu"}
        method = RANKERS.make(name, **small)
        out = method.rank(synth.log, {"valid": synth.table, "test": synth.table}, {"valid": evid, "test": evid}, seed=0)
        assert out.info["ranker"] == kind and out.order.shape == synth.table.candidates.shape
        fitted, info = method.fit(synth.log, synth.table, evid, seed=0)
        assert info["ranker"] == kind
        order, _, _ = apply_ranker(fitted, synth.log, synth.table, evid)
        assert np.array_equal(order, out.order)
