"""The ranking stage in one call: train on the valid queries (split by time), reorder the test top-M.

>>> out = rank_top_m(log, {"valid": valid_table, "test": test_table},
...                  {"valid": valid_evidence, "test": test_evidence}, seed=0)     # doctest: +SKIP
>>> out.order          # [test queries, M] positions in the base top-M, best first   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from lamp.components import Configurable, make_settings
from lamp.data.eventlog import EventLog
from lamp.errors import ConfigError
from lamp.rank.examples import RankExample, build_examples, shuffle_evidence, split_by_time
from lamp.rank.ranker import EnergyRanker, final_scores, gold_ranks, reorder, select_weight, weight_to_json
from lamp.types import CandidateTable, Evidence

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RankOutcome:
    """Both orderings of the test top-M and what the stage learned (``info`` is JSON-serialisable)."""

    order: np.ndarray  # [Q, M] by -energy + w * base_score, w chosen on the stop part (0 if not combining)
    order_energy_only: np.ndarray  # [Q, M] by -energy alone
    energies: np.ndarray  # [Q, M]
    info: dict[str, Any]
    ranker: EnergyRanker | None
    tie_keys: np.ndarray | None = None  # [Q, M] the sort key of ``order`` (equal = tied); see eval.apply_reorder


def _mean_rank(examples: Sequence[RankExample], energies: np.ndarray) -> float | None:
    keep = [i for i, e in enumerate(examples) if e.gold >= 0]
    if not keep:
        return None
    return float(gold_ranks(energies[keep], np.array([examples[i].gold for i in keep])).mean())


def _evidence_control(stop: Sequence[RankExample], energy: np.ndarray, shuffled: Sequence[RankExample],
                      shuffled_energy: np.ndarray) -> dict[str, Any]:
    keep = [i for i, e in enumerate(stop) if e.gold >= 0]
    if len(keep) < 2:
        return {"stop_mean_rank_energy_shuffled": None, "evidence_control": "no measurable use: too few stop queries"}
    gold = np.array([stop[i].gold for i in keep])
    diff = gold_ranks(shuffled_energy[keep], gold) - gold_ranks(energy[keep], gold)
    se = float(diff.std(ddof=1) / np.sqrt(len(diff)))
    verdict = "uses evidence" if diff.mean() > 2 * se and diff.mean() > 0 else \
        f"no measurable use of the evidence (paired rank difference {diff.mean():+.2f} +- {se:.2f}, {len(diff)} queries)"
    return {"stop_mean_rank_energy_shuffled": float(gold_ranks(shuffled_energy[keep], gold).mean()),
            "evidence_control_rank_diff": float(diff.mean()), "evidence_control_se": se, "evidence_control": verdict}


@dataclass(frozen=True)
class EnergyRankerSettings:
    """Options of ``ranker=energy``: how the valid queries train it (the first ``train_fraction`` by time
    trains, the rest early-stops it and chooses ``w`` in ``-energy + w * base_score`` when ``combine_base``;
    ``w = inf``, the base order with the energy breaking ties, is chosen when no finite ``w`` does better
    there) and the energy network's architecture (:class:`~lamp.rank.ranker.EnergyRanker`)."""

    epochs: int = 30
    patience: int = 5
    combine_base: bool = True
    train_fraction: float = 2 / 3
    loss: str = "softmax"  # softmax over the M candidates (true vs others) | binary
    dim: int = 64
    layers: int = 2
    heads: int = 4
    dropout: float = 0.1
    time_features: int = 8
    max_evidence: int = 32  # L: evidence events read per candidate (the most recent)
    lr: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = 32  # queries per step
    device: str = "auto"


class EnergyRankerStage(Configurable):
    """``ranker=energy``: fits an :class:`EnergyRanker` on the valid queries and reorders the test top-M."""

    name = "energy"
    Settings = EnergyRankerSettings

    def __init__(self, settings: EnergyRankerSettings | Mapping[str, Any] | None = None, **overrides: Any) -> None:
        self.settings = make_settings(EnergyRankerSettings, settings, overrides, where="ranker 'energy'")

    def rank(self, log: EventLog, tables: dict[str, CandidateTable], evidences: dict[str, Sequence[Evidence]], *,
             seed: int = 0, progress: bool = False) -> RankOutcome:
        return rank_top_m(log, tables, evidences, seed=seed, progress=progress, **asdict(self.settings))

    def fit(self, log: EventLog, valid: CandidateTable, evidences: Sequence[Evidence], *, seed: int = 0,
            progress: bool = False) -> tuple[EnergyRanker | None, dict[str, Any]]:
        """Fit on the valid queries alone (the numbers of the held-out part are in ``info``)."""
        out = rank_top_m(log, {"valid": valid, "test": valid}, {"valid": evidences, "test": evidences}, seed=seed,
                         progress=progress, **asdict(self.settings))
        return out.ranker, {k: v for k, v in out.info.items() if not k.startswith("test_")}

    @staticmethod
    def load_model(folder: str | os.PathLike[str]) -> EnergyRanker:
        return EnergyRanker.load(str(folder))


def rank_top_m(log: EventLog, tables: dict[str, CandidateTable], evidences: dict[str, Sequence[Evidence]], *,
               seed: int = 0, progress: bool = False, epochs: int = 30, patience: int = 5,
               train_fraction: float = 2 / 3, combine_base: bool = True, **hparams: Any) -> RankOutcome:
    """Fit an :class:`EnergyRanker` on the valid queries and reorder the test queries.

    The valid examples are divided by time: the first ``train_fraction`` trains, the rest early-stops
    and chooses ``w`` (when ``combine_base``). The test examples are only scored. When no training
    example has its gold in the top-M the base order is kept (``info["fallback"]`` says why).
    """
    valid = build_examples(log, tables["valid"], evidences["valid"])
    test = build_examples(log, tables["test"], evidences["test"])
    train, stop = split_by_time(valid, train_fraction)
    m = tables["test"].candidates.shape[1]
    identity = np.broadcast_to(np.arange(m), (len(test), m)).copy()
    info: dict[str, Any] = {"valid_examples": len(valid), "train_part": len(train), "stop_part": len(stop),
                            "test_examples": len(test), "combine_base": combine_base}
    if not any(e.gold >= 0 for e in train):
        logger.warning("ranker: none of the %d training examples has its gold in the top-%d; keeping the base order",
                       len(train), m)
        info["fallback"] = "no training example with its gold in the top-M; base order kept"
        base_scores = tables["test"].scores.astype(np.float64)  # base order kept: its ties too
        return RankOutcome(identity, identity, np.zeros((len(test), m), np.float32), info, None, base_scores)
    hparams.pop("name", None)  # a conf/ranker file's name key
    try:
        ranker = EnergyRanker(log.num_entities, log.num_relations, **hparams)
    except TypeError as exc:
        raise ConfigError(f"ranker 'energy' got invalid arguments {sorted(hparams)}: {exc}. Fix: see "
                          "conf/ranker/energy.yaml for its options.") from exc
    start = time.perf_counter()
    report = ranker.fit(train, stop, epochs=epochs, patience=patience, seed=seed, progress=progress)
    info["train_seconds"] = time.perf_counter() - start
    stop_energy = ranker.score(stop)
    weight, table = select_weight(stop, stop_energy) if combine_base else (0.0, {})
    ranker.weight = weight
    # the base order as energy, its ties at their average rank (not the listing's lower id first)
    base_energy = -np.stack([e.base_scores for e in stop]) if stop else np.zeros((0, m), np.float32)
    info.update({k: report[k] for k in ("best_epoch", "epochs_run", "skipped_train", "skipped_valid", "curve")})
    info.update({"train_used": report["train_examples"], "stop_used": report["valid_examples"]})
    info.update({"weight": weight_to_json(weight), "weight_grid": {str(k): v for k, v in table.items()},
                 "stop_mean_rank_base": _mean_rank(stop, base_energy),
                 "stop_mean_rank_energy": _mean_rank(stop, stop_energy),
                 "stop_mean_rank_combined": _mean_rank(stop, -final_scores(stop, stop_energy, weight))})
    # The control of the issue: the stop part again with each query given another query's evidence.
    # A ranker that uses the evidence gets worse; the verdict needs the paired rank difference to exceed
    # twice its standard error over the stop queries (a few dozen queries rarely show it).
    shuffled = shuffle_evidence(stop, seed=seed + 1)
    info.update(_evidence_control(stop, stop_energy, shuffled, ranker.score(shuffled) if shuffled else stop_energy))
    if info["evidence_control"].startswith("no measurable"):
        logger.debug("ranker: %s (stop-part mean rank %.3f, with another query's evidence %.3f)",
                       info["evidence_control"], info["stop_mean_rank_energy"] or float("nan"),
                       info["stop_mean_rank_energy_shuffled"] or float("nan"))
    energies = ranker.score(test)
    # Both test orderings, as the paper's metric (the combined one is what the run reports as the method)
    info["test_mean_rank_energy_only"] = _mean_rank(test, energies)
    info["test_mean_rank_combined"] = _mean_rank(test, -final_scores(test, energies, weight))
    return RankOutcome(reorder(test, energies, weight), reorder(test, energies, 0.0), energies, info, ranker,
                       final_scores(test, energies, weight))
