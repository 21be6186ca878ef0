"""rank_top_m: the whole ranking stage on the synthetic examples."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rank_synthetic import M, Synthetic

from lamp.rank import rank_top_m


def test_rank_top_m_reorders_test_with_both_orderings(synth: Synthetic) -> None:
    out = rank_top_m(synth.log, {"valid": synth.table, "test": synth.table},
                     {"valid": synth.evidences, "test": synth.evidences}, seed=0, epochs=4, patience=2,
                     dim=16, layers=1, heads=2, max_evidence=8, lr=3e-3, device="cpu")
    q = len(synth.table.queries)
    for order in (out.order, out.order_energy_only):
        assert order.shape == (q, M)
        assert (np.sort(order, axis=1) == np.arange(M)).all()  # a permutation of the top-M per query
    gold = synth.table.gold_position()
    new_rank = 1 + np.argmax(out.order_energy_only == gold[:, None], axis=1)
    assert new_rank.mean() < 2.0 < 1 + gold.mean()  # the base order is random: mean rank ~3
    info = out.info
    assert info["train_part"] + info["stop_part"] == info["valid_examples"] == q
    assert info["stop_mean_rank_energy"] < info["stop_mean_rank_base"]
    # the evidence decides the synthetic answers: another query's evidence makes the ranker worse
    assert info["stop_mean_rank_energy_shuffled"] > info["stop_mean_rank_energy"] + 0.3
    assert info["evidence_control"] == "uses evidence"
    assert info["test_mean_rank_energy_only"] == pytest.approx(new_rank[gold >= 0].mean())
    json.dumps(info)  # the pipeline writes it as JSON


def test_rank_top_m_falls_back_without_trainable_examples(synth: Synthetic) -> None:
    from dataclasses import replace

    table = replace(synth.table, candidates=synth.table.candidates + 1000)  # gold never in the top-M
    out = rank_top_m(synth.log, {"valid": table, "test": synth.table}, {"valid": [], "test": []}, seed=0)
    assert "fallback" in out.info and out.ranker is None
    assert (out.order == np.arange(M)).all()


def test_rank_top_m_names_a_bad_option(synth: Synthetic) -> None:
    import pytest

    from lamp.errors import ConfigError

    with pytest.raises(ConfigError, match="conf/ranker/energy.yaml"):
        rank_top_m(synth.log, {"valid": synth.table, "test": synth.table},
                   {"valid": synth.evidences, "test": synth.evidences}, name="energy", hidden=3)
