"""The training loop shared by the neural base models (lamp.tpp) and the energy ranker (lamp.rank).

What it does, and nothing more: seeding, one optimiser step per batch with optional gradient clipping,
an optional tqdm bar, one validation number per epoch, early stopping on that number, and restoring
the weights of the best epoch (kept in memory as a CPU copy, loaded back with ``strict=True``).
Validation is whatever the caller's ``evaluate`` computes; callers must compute it on VALID data
only, so the epoch selected here is never chosen on test.

>>> report = run_training(net, batches=lambda epoch: loader, loss_fn=lambda b: net.loss(b),
...                       evaluate=lambda: valid_mrr(net), config=TrainConfig(epochs=20))  # doctest: +SKIP
>>> report.best_epoch, report.curve[-1]                                                   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from lamp.errors import ConfigError
from lamp.progress import progress_bar

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser and stopping settings. ``patience``: epochs without a better valid score before stopping."""

    epochs: int = 10
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 3
    grad_clip: float | None = 1.0
    seed: int = 0
    progress: bool | None = None  # None: as the enclosing stage says (lamp.progress)
    higher_is_better: bool = True
    min_delta: float = 0.0  # an epoch must beat the best by more than this to count as better

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}. Set epochs to a positive integer.")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}. Use a small positive learning rate such as 1e-3.")
        if self.patience < 1:
            raise ConfigError(f"patience must be >= 1, got {self.patience}. Use e.g. patience=3.")


@dataclass(frozen=True)
class EpochRecord:
    """One epoch of the training curve."""

    epoch: int
    train_loss: float
    valid_score: float
    train_seconds: float
    valid_seconds: float
    improved: bool


@dataclass(frozen=True)
class TrainReport:
    """The training curve, the selected (best-on-valid) epoch and why training stopped."""

    curve: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = float("nan")
    stopped_early: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"best_epoch": self.best_epoch, "best_score": self.best_score, "stopped_early": self.stopped_early,
                "curve": [asdict(r) for r in self.curve]}


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, numpy and torch (CPU and CUDA); returns a torch generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def state_copy(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of the module's weights (to restore the best epoch later)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def run_training(module: torch.nn.Module, *, batches: Callable[[int], Iterable[Any]],
                 loss_fn: Callable[[Any], torch.Tensor], evaluate: Callable[[], float], config: TrainConfig,
                 optimizer: torch.optim.Optimizer | None = None, desc: str = "training") -> TrainReport:
    """Train ``module`` and leave it holding the weights of its best epoch on the validation score.

    ``batches(epoch)`` yields the epoch's batches (the caller shuffles them with its own seeded
    generator); ``loss_fn(batch)`` returns a scalar loss to minimise; ``evaluate()`` returns the
    validation score (higher is better unless ``config.higher_is_better`` is False). The module is
    in ``train()`` mode during the steps and in ``eval()`` mode, without gradients, during
    ``evaluate``. A non-finite loss raises instead of silently corrupting the weights.
    """
    opt = optimizer or torch.optim.Adam(module.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sign = 1.0 if config.higher_is_better else -1.0
    best_score, best_epoch, best_state = -math.inf, -1, state_copy(module)
    curve: list[EpochRecord] = []
    bad_epochs, stopped = 0, False
    for epoch in range(config.epochs):
        module.train()
        t0 = time.perf_counter()
        total, n_steps = 0.0, 0
        bar = progress_bar(batches(epoch), desc=f"{desc} epoch {epoch + 1}/{config.epochs}", unit="batch",
                           enabled=config.progress, leave=False)
        for batch in bar:
            loss = loss_fn(batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{desc}: the loss became {loss.item()} at epoch {epoch + 1}, step "
                                         f"{n_steps + 1}. Lower the learning rate (now {config.lr}) or enable grad_clip.")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                torch.nn.utils.clip_grad_norm_(module.parameters(), config.grad_clip)
            opt.step()
            total += float(loss.detach())
            n_steps += 1
            bar.note(loss=f"{total / n_steps:.4f}")
        t1 = time.perf_counter()
        module.eval()
        with torch.no_grad():
            score = float(evaluate())
        t2 = time.perf_counter()
        improved = math.isfinite(score) and sign * score > best_score + config.min_delta
        if improved:
            best_score, best_epoch, best_state, bad_epochs = sign * score, epoch, state_copy(module), 0
        else:
            bad_epochs += 1
        curve.append(EpochRecord(epoch, total / max(n_steps, 1), score, t1 - t0, t2 - t1, improved))
        logger.debug("%s epoch %d: train loss %.4f, valid %.4f%s", desc, epoch + 1, total / max(n_steps, 1), score,
                     " (best)" if improved else "")
        if bad_epochs >= config.patience:
            stopped = epoch + 1 < config.epochs
            break
    module.load_state_dict(best_state, strict=True)
    module.eval()
    return TrainReport(curve, best_epoch, sign * best_score if best_epoch >= 0 else float("nan"), stopped)
