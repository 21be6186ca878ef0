"""Fixtures of the ranker tests: the synthetic examples (see rank_synthetic.py) and one trained ranker."""

from __future__ import annotations

import pytest
from rank_synthetic import Synthetic, synthetic


@pytest.fixture(scope="session")
def synth() -> Synthetic:
    return synthetic()


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models run faster on one thread, and CI machines are shared: restore the setting after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def trained(synth: Synthetic):
    """A small ranker fitted once on the synthetic examples (first 2/3 by time), with its stop part."""
    import torch

    from lamp.rank import EnergyRanker, split_by_time

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    train, stop = split_by_time(synth.examples)
    ranker = EnergyRanker(synth.log.num_entities, synth.log.num_relations, dim=32, layers=1, heads=2,
                          max_evidence=8, lr=3e-3, device="cpu")
    report = ranker.fit(train, stop, epochs=8, patience=2, seed=0)
    torch.set_num_threads(before)
    return ranker, report, train, stop
