"""EnergyRanker: train the energy network on ranker examples, score, reorder, save and load.

>>> ranker = EnergyRanker(log.num_entities, log.num_relations, dim=64)     # doctest: +SKIP
>>> curve = ranker.fit(train, stop, epochs=30, patience=5, seed=0)         # doctest: +SKIP
>>> energies = ranker.score(test)                                           # doctest: +SKIP
>>> order = reorder(test, energies, w=select_weight(stop, ranker.score(stop)))   # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lamp.errors import ArtifactError, ConfigError
from lamp.nn import TrainConfig, resolve_device, run_training
from lamp.rank.examples import RankExample
from lamp.rank.model import Batch, EnergyNet, collate, take

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
LOSSES = ("softmax", "binary", "listnet")
_ARCH = ("dim", "layers", "heads", "dropout", "time_features", "num_features", "entity_embeddings")


class EnergyRanker:
    """Learned energy over (evidence, candidate); lower energy = more plausible candidate.

    Architecture: ``dim``, ``layers``, ``heads``, ``dropout``, ``time_features`` (see
    :class:`~lamp.rank.model.EnergyNet`); training: ``max_evidence`` (L, events per candidate, the most
    recent kept), ``lr``, ``weight_decay``, ``batch_size`` (queries per step), ``loss`` (``softmax``
    over the M candidates of a query, the gold vs the others; ``listnet``: the same softmax against a
    target spread evenly over every true answer at the query's time step (the gold and the ones the
    time-aware filter removes), so a true answer ranked above the gold is not punished; or ``binary``:
    each candidate true/false); ``num_features``: width of the examples' ranking features (0: none),
    standardised with the training examples' mean and spread; ``entity_embeddings``: False shares one
    embedding between all entities (no memorising of entities); ``device``: ``auto`` (GPU when
    present), ``cpu`` or ``cuda``.
    """

    def __init__(self, num_entities: int, num_relations: int, *, dim: int = 64, layers: int = 2, heads: int = 4,
                 dropout: float = 0.1, time_features: int = 8, max_evidence: int = 32, lr: float = 1e-3,
                 weight_decay: float = 0.01, batch_size: int = 32, loss: str = "softmax", num_features: int = 0,
                 entity_embeddings: bool = True, device: str = "auto") -> None:
        if loss not in LOSSES:
            raise ConfigError(f"Invalid ranker loss: {loss!r}. Valid choices are: {', '.join(LOSSES)}")
        if dim % heads:
            raise ConfigError(f"ranker dim ({dim}) must be a multiple of heads ({heads}).")
        self.num_entities, self.num_relations = int(num_entities), int(num_relations)
        self.hparams: dict[str, Any] = {"dim": dim, "layers": layers, "heads": heads, "dropout": dropout,
                                        "time_features": time_features, "max_evidence": max_evidence, "lr": lr,
                                        "weight_decay": weight_decay, "batch_size": batch_size, "loss": loss,
                                        "num_features": int(num_features), "entity_embeddings": bool(entity_embeddings)}
        self.device = resolve_device(device)
        self.net = self._new_net()
        self.weight = 0.0  # w in  final = -energy + w * base_score, inf: base order (set by select_weight's caller)
        self.skipped: dict[str, int] = {}

    # -- training -----------------------------------------------------------------------------------
    def fit(self, train_examples: Sequence[RankExample], valid_examples: Sequence[RankExample], *, epochs: int = 30,
            patience: int = 5, seed: int = 0, progress: bool = False) -> dict[str, Any]:
        """Train on ``train_examples``; keep the epoch with the lowest loss on ``valid_examples``.

        Training starts from fresh weights drawn from ``seed`` (the global torch RNG is left untouched).
        Examples whose gold is not in the top-M cannot train a softmax over the top-M: they are skipped
        and counted (``skipped_train``, ``skipped_valid`` in the result). Returns the training curve.
        """
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(seed)
            self.net = self._new_net()  # fit starts from scratch: the result depends on the seed only
            return self._fit(train_examples, valid_examples, epochs=epochs, patience=patience, seed=seed,
                             progress=progress)

    def _new_net(self) -> EnergyNet:
        return EnergyNet(self.num_entities, self.num_relations, **{k: self.hparams[k] for k in _ARCH}).to(self.device)

    def _fit(self, train_examples: Sequence[RankExample], valid_examples: Sequence[RankExample], *, epochs: int,
             patience: int, seed: int, progress: bool) -> dict[str, Any]:
        rng = np.random.default_rng(seed)
        train = [e for e in train_examples if e.gold >= 0]
        valid = [e for e in valid_examples if e.gold >= 0]
        self.skipped = {"skipped_train": len(train_examples) - len(train),
                        "skipped_valid": len(valid_examples) - len(valid)}
        if not train:
            raise ConfigError(f"no training example has its gold answer in the top-M ({len(train_examples)} given); "
                              "the ranker cannot learn. Fix: more valid queries, a larger top_m, or ranker=none.")
        tb, vb = collate(train, self.hparams["max_evidence"]), collate(valid, self.hparams["max_evidence"])
        self._standardise(tb)
        opt = torch.optim.AdamW(self.net.parameters(), lr=self.hparams["lr"],
                                weight_decay=self.hparams["weight_decay"])
        bs = int(self.hparams["batch_size"])
        rows: list[dict[str, float]] = []
        total = [0.0]  # this epoch's example-weighted loss sum

        def batches(epoch: int) -> Iterator[Batch]:
            perm, total[0] = rng.permutation(len(train)), 0.0
            return (take(tb, perm[lo : lo + bs]) for lo in range(0, len(train), bs))

        def loss_fn(part: Batch) -> torch.Tensor:
            loss = self._loss(self._energies(part), part)
            total[0] += float(loss.detach()) * len(part.gold_B)
            return loss

        def evaluate() -> float:  # selection on the held-out examples; on the train loss when there are none
            rows.append({"epoch": float(len(rows) + 1), "train_loss": total[0] / len(train),
                         **(self._evaluate(vb) if valid else {})})
            return rows[-1].get("valid_loss", rows[-1]["train_loss"])

        config = TrainConfig(epochs=epochs, lr=self.hparams["lr"], weight_decay=self.hparams["weight_decay"],
                             patience=patience if valid else epochs, grad_clip=1.0, seed=seed,
                             progress=progress, higher_is_better=False, min_delta=1e-6)
        report = run_training(self.net, batches=batches, loss_fn=loss_fn, evaluate=evaluate, config=config,
                              optimizer=opt, desc="ranker")
        curve = [{**row, "seconds": rec.train_seconds} for row, rec in zip(rows, report.curve, strict=True)]
        return {"curve": curve, "best_epoch": report.best_epoch + 1, "epochs_run": len(curve),
                "train_examples": len(train), "valid_examples": len(valid), **self.skipped}

    def _standardise(self, batch: Batch) -> None:
        """Feature mean and spread of the training examples, kept in the network (saved with it)."""
        n_feat = self.hparams["num_features"]
        if batch.feat_BMF.shape[2] != n_feat:
            raise ConfigError(f"the ranker was built for {n_feat} features but the examples have "
                              f"{batch.feat_BMF.shape[2]}. Fix: EnergyRanker(..., num_features={batch.feat_BMF.shape[2]}).")
        if n_feat:
            flat = batch.feat_BMF.reshape(-1, n_feat).astype(np.float64)
            self.net.feat_mean.copy_(torch.as_tensor(flat.mean(axis=0), dtype=torch.float32))
            self.net.feat_std.copy_(torch.as_tensor(np.maximum(flat.std(axis=0), 1e-6), dtype=torch.float32))

    def _energies(self, batch: Batch) -> torch.Tensor:
        b, m, t = batch.pad_BMT.shape
        dev = self.device
        feat = torch.as_tensor(batch.feat_BMF.reshape(b * m, -1), device=dev) if self.hparams["num_features"] else None
        out = self.net(torch.as_tensor(batch.ids_BMT3.reshape(b * m, t, 3), device=dev),
                       torch.as_tensor(batch.logdt_BMT.reshape(b * m, t), device=dev),
                       torch.as_tensor(batch.match_BMT5.reshape(b * m, t, -1), device=dev),
                       torch.as_tensor(batch.pad_BMT.reshape(b * m, t), device=dev), feat)
        return out.view(b, m)

    def _loss(self, energy_BM: torch.Tensor, batch: Batch) -> torch.Tensor:
        gold = torch.as_tensor(batch.gold_B, device=self.device)
        if self.hparams["loss"] == "softmax":
            return torch.nn.functional.cross_entropy(-energy_BM, gold)
        if self.hparams["loss"] == "listnet":
            target = torch.as_tensor(batch.relevant_BM, device=self.device).float()
            target = target / target.sum(dim=1, keepdim=True).clamp(min=1.0)
            return -(target * torch.log_softmax(-energy_BM, dim=1)).sum(dim=1).mean()
        target = torch.nn.functional.one_hot(gold, energy_BM.shape[1]).float()
        return torch.nn.functional.binary_cross_entropy_with_logits(-energy_BM, target)

    @torch.no_grad()
    def _evaluate(self, batch: Batch) -> dict[str, float]:
        self.net.eval()
        energy = torch.cat([self._energies(take(batch, np.arange(lo, min(lo + 256, len(batch.gold_B)))))
                            for lo in range(0, len(batch.gold_B), 256)])
        loss = float(self._loss(energy, batch))
        ranks = gold_ranks(energy.cpu().numpy(), batch.gold_B)
        return {"valid_loss": loss, "valid_mean_rank": float(ranks.mean()), "valid_acc": float((ranks == 1).mean())}

    # -- inference ----------------------------------------------------------------------------------
    @torch.no_grad()
    def score(self, examples: Sequence[RankExample], *, batch_size: int = 256) -> np.ndarray:
        """Energies ``[len(examples), M]`` (float32; lower = more plausible)."""
        self.net.eval()
        out = []
        for lo in range(0, len(examples), batch_size):
            batch = collate(examples[lo : lo + batch_size], self.hparams["max_evidence"])
            out.append(self._energies(batch).cpu().numpy())
        m = examples[0].num_candidates if examples else 0
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, m), dtype=np.float32)

    # -- persistence --------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        """``ranker.safetensors`` (weights) and ``ranker.json`` (config) in ``folder``."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        save_file(state, str(folder / "ranker.safetensors"))
        config = {"format_version": FORMAT_VERSION, "kind": "energy", "num_entities": self.num_entities,
                  "num_relations": self.num_relations, "hparams": self.hparams,
                  "weight": weight_to_json(self.weight)}
        (folder / "ranker.json").write_text(json.dumps(config, indent=2, sort_keys=True))

    @classmethod
    def load(cls, folder: str | Path, *, device: str = "auto") -> EnergyRanker:
        """Load what :meth:`save` wrote; every tensor must match the config exactly (strict)."""
        from safetensors.torch import load_file

        folder = Path(folder)
        try:
            config = json.loads((folder / "ranker.json").read_text())
            state = load_file(str(folder / "ranker.safetensors"))
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"could not read a saved ranker from {folder}: {exc}. Expected ranker.json and "
                                "ranker.safetensors written by EnergyRanker.save. Fix: retrain the ranker.") from exc
        if config.get("format_version") != FORMAT_VERSION or config.get("kind") != "energy":
            raise ArtifactError(f"{folder / 'ranker.json'} has format {config.get('format_version')!r} / kind "
                                f"{config.get('kind')!r}; expected {FORMAT_VERSION} / 'energy'. Fix: retrain.")
        ranker = cls(config["num_entities"], config["num_relations"], device=device, **config["hparams"])
        try:
            ranker.net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ArtifactError(f"the weights in {folder} do not match their config: {exc}. Fix: retrain.") from exc
        ranker.weight = float(config.get("weight", 0.0))
        return ranker


def gold_ranks(energies: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """1-based rank of the gold among the M candidates by energy (ties: average rank); gold >= 0 only."""
    rows = np.arange(len(gold))
    g = energies[rows, gold][:, None]
    return 1.0 + (energies < g).sum(axis=1) + ((energies == g).sum(axis=1) - 1) / 2.0


def final_scores(examples: Sequence[RankExample], energies: np.ndarray, w: float = 0.0) -> np.ndarray:
    """``-energy + w * base_score`` per candidate (higher = better).

    ``w = inf`` is the base model's own order with the energy only breaking its ties: what
    :func:`select_weight` picks when every finite ``w`` orders the held-out valid queries worse.
    """
    base = (np.stack([e.base_scores for e in examples]) if examples else np.zeros_like(energies)).astype(np.float64)
    if math.isinf(w) and w > 0:
        return base_then(base, -energies.astype(np.float64))
    return -energies.astype(np.float64) + float(w) * base


def base_then(base: np.ndarray, tie: np.ndarray) -> np.ndarray:
    """Scores ``[n, M]`` that order each row by ``base`` and, within equal ``base``, by ``tie``.

    The dense rank of ``base`` within its row (0, 1, ...) plus ``tie`` squeezed into [0, 0.5]: candidates
    equal in both stay equal (tied), and no ``tie`` can lift a candidate over a higher ``base``.
    """
    levels = np.empty_like(base, dtype=np.float64)
    for i in range(len(base)):
        levels[i] = np.unique(base[i], return_inverse=True)[1]
    lo = tie.min(axis=1, keepdims=True) if tie.size else np.zeros((len(tie), 1))
    span = (tie.max(axis=1, keepdims=True) - lo) if tie.size else np.zeros((len(tie), 1))
    squeezed = np.where(span > 0, 0.5 * (tie - lo) / np.where(span > 0, span, 1.0), 0.0)
    return levels + squeezed


def weight_to_json(w: float) -> float | str:
    """``w`` for a JSON file: a number, or ``"inf"`` for the base order (JSON has no infinity)."""
    return w if math.isfinite(w) else "inf"


def reorder(examples: Sequence[RankExample], energies: np.ndarray, w: float = 0.0) -> np.ndarray:
    """New order per query: ``[n, M]`` positions in the base top-M, best first (ties: base order)."""
    final = final_scores(examples, energies, w)
    pos = np.broadcast_to(np.arange(final.shape[1]), final.shape)
    return np.lexsort((pos, -final), axis=1)


def select_weight(examples: Sequence[RankExample], energies: np.ndarray,
                  grid: Sequence[float] | None = None) -> tuple[float, dict[float, float]]:
    """The ``w`` minimising the gold's mean rank on ``examples`` (gold in the top-M only; ties: smaller w).

    Default grid: 0, multiples (0.1 .. 100) of the ratio of within-query spreads of energy and base
    score, so the grid adapts to each base model's scale, and ``inf`` (the base order, the energy only
    breaking ties; chosen only when it beats every finite ``w``, so a ranker that does not help on the
    held-out queries cannot make the base model worse through its combination). Returns (w, {w: mean rank}).
    """
    keep = [i for i, e in enumerate(examples) if e.gold >= 0]
    if not keep:
        return 0.0, {}
    ex = [examples[i] for i in keep]
    en = energies[keep]
    base = np.stack([e.base_scores for e in ex]).astype(np.float64)
    if grid is None:
        ratio = float(np.std(en, axis=1).mean()) / max(float(np.std(base, axis=1).mean()), 1e-12)
        grid = [0.0] + [ratio * f for f in (0.1, 0.3, 1.0, 3.0, 10.0, 100.0)] + [math.inf]
    gold = np.array([e.gold for e in ex])
    table = {float(w): float(gold_ranks(-final_scores(ex, en, w), gold).mean()) for w in grid}
    best = min(table, key=lambda w: (table[w], abs(w)))
    return best, table
