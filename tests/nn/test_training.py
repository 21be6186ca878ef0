"""The shared training loop and device rule (lamp.nn)."""

from __future__ import annotations

import pytest
import torch

from lamp.errors import ConfigError
from lamp.nn import TrainConfig, resolve_device, run_training


def _tiny(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Linear(2, 1)


def test_early_stopping_restores_the_best_epoch() -> None:
    net = _tiny()
    scores = iter([0.5, 0.9, 0.7, 0.8, 0.95])  # best at epoch 1; two worse epochs stop at patience 2
    seen: dict[int, torch.Tensor] = {}
    x = torch.ones(4, 2)

    def evaluate() -> float:
        seen[len(seen)] = net.weight.detach().clone()
        return next(scores)

    report = run_training(net, batches=lambda epoch: [x], loss_fn=lambda b: net(b).pow(2).mean(),
                          evaluate=evaluate, config=TrainConfig(epochs=5, patience=2, lr=0.1))
    assert report.best_epoch == 1 and report.best_score == 0.9 and report.stopped_early
    assert len(report.curve) == 4 and [r.improved for r in report.curve] == [True, True, False, False]
    torch.testing.assert_close(net.weight, seen[1])  # the weights evaluated at the best epoch


def test_a_non_finite_loss_raises() -> None:
    net = _tiny()
    losses = iter([1.0, float("nan")])

    def loss_fn(batch: torch.Tensor) -> torch.Tensor:
        return net(batch).sum() * 0 + next(losses)

    with pytest.raises(FloatingPointError, match="epoch 2, step 1"):
        run_training(net, batches=lambda epoch: [torch.ones(1, 2)], loss_fn=loss_fn, evaluate=lambda: 0.0,
                     config=TrainConfig(epochs=3, patience=3))


def test_device_rule() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="Valid choices are: auto, cpu, cuda"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda:0")
