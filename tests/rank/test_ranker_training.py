"""EnergyRanker.fit trains through the shared loop (lamp.nn.run_training), so it gained its checks."""

from __future__ import annotations

import pytest
from rank_synthetic import Synthetic

from lamp.rank import EnergyRanker, split_by_time


def test_a_non_finite_ranker_loss_raises(synth: Synthetic, monkeypatch: pytest.MonkeyPatch) -> None:
    train, stop = split_by_time(synth.examples)
    ranker = EnergyRanker(synth.log.num_entities, synth.log.num_relations, dim=16, layers=1, heads=2,
                          max_evidence=4, device="cpu")
    real = ranker._loss
    monkeypatch.setattr(ranker, "_loss", lambda energy, batch: real(energy, batch) * float("inf"))
    with pytest.raises(FloatingPointError, match="ranker: the loss became inf at epoch 1, step 1"):
        ranker.fit(train, stop, epochs=2, seed=0)
