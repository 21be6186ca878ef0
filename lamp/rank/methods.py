"""The ranking methods a run chooses with ``ranker=<name>`` (``lamp.rank.RANKERS``): each trains on the valid
queries' top-M and evidence, reorders the test top-M, and can save and load what it fitted.

- ``lightgbm``: LightGBM lambdarank over leak-free features of each candidate (base score and rank, history
  counts, the evidence found; :mod:`lamp.rank.features`), :func:`lamp.rank.rerank.rerank_top_m`.
- ``energy_features``: the energy ranker fed the same features (one shared entity embedding, listwise loss).
- ``energy``: the paper's energy ranker over the evidence sequence alone (:mod:`lamp.rank.stage`).

All choose the combination ``w`` of their score with the base score on the held-out last part of valid, ``inf``
(the base order, the ranker only breaking its ties) included, so none makes the base order worse there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from lamp.components import Configurable, make_settings, not_in_key
from lamp.data.eventlog import EventLog
from lamp.rank.rerank import FittedRanker, RerankOutcome, fit_reranker, rerank_top_m
from lamp.types import CandidateTable, Evidence


@dataclass(frozen=True)
class LightGBMSettings:
    """Options of ``ranker=lightgbm`` (defaults regularised for a few thousand queries; not tuned on any split)."""

    train_fraction: float = 2 / 3  # valid queries by time: this first part trains, the rest early-stops / picks w
    use_evidence: bool = True  # False: the history and base features only (the no-evidence control)
    num_leaves: int = 15
    learning_rate: float = 0.05
    n_estimators: int = 600
    min_data_in_leaf: int = 100
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    bagging_freq: int = 1
    lambda_l2: float = 10.0
    early_stopping: int = 50  # boosting rounds without a better held-out MAP@M
    refit: bool = True  # then boost again on every valid query, rounds scaled by the queries added
    num_threads: int = not_in_key(2)


@dataclass(frozen=True)
class EnergyFeaturesSettings:
    """Options of ``ranker=energy_features``: the energy network over each candidate's evidence events plus an
    MLP of its features; one shared entity embedding unless ``entity_embeddings`` (no memorising of entities)."""

    train_fraction: float = 2 / 3
    use_evidence: bool = True
    epochs: int = 8
    patience: int = 2
    dim: int = 32
    layers: int = 1
    heads: int = 2
    dropout: float = 0.1
    max_evidence: int = 16  # evidence events read per candidate (the most recent)
    lr: float = 2e-3
    weight_decay: float = 0.05
    batch_size: int = 64  # queries per step
    loss: str = "listnet"  # listnet (listwise over the true answers) | softmax | binary
    entity_embeddings: bool = False
    device: str = "auto"


class _FeatureRanking(Configurable):
    kind = "lightgbm"

    def __init__(self, settings: Any = None, **overrides: Any) -> None:
        self.settings = make_settings(type(self).Settings, settings, overrides, where=f"ranker {self.name!r}")

    def fit(self, log: EventLog, valid: CandidateTable, evidences: Sequence[Evidence], *, seed: int = 0,
            progress: bool = False) -> tuple[FittedRanker | None, dict[str, Any]]:
        """Fit on the valid queries (None: none had its gold in the top-M); apply with
        :func:`lamp.rank.rerank.apply_ranker`."""
        return fit_reranker(log, valid, evidences, ranker=self.kind, seed=seed, progress=progress,
                            **asdict(self.settings))

    def rank(self, log: EventLog, tables: Mapping[str, CandidateTable], evidences: Mapping[str, Sequence[Evidence]],
             *, seed: int = 0, progress: bool = False) -> RerankOutcome:
        return rerank_top_m(log, tables, evidences, ranker=self.kind, seed=seed, progress=progress,
                            **asdict(self.settings))

    @staticmethod
    def load_model(folder: str | os.PathLike[str]) -> FittedRanker:
        return FittedRanker.load(folder)


class LightGBMRanking(_FeatureRanking):
    """``ranker=lightgbm``."""

    name = "lightgbm"
    Settings = LightGBMSettings
    kind = "lightgbm"


class EnergyFeaturesRanking(_FeatureRanking):
    """``ranker=energy_features``."""

    name = "energy_features"
    Settings = EnergyFeaturesSettings
    kind = "energy"
