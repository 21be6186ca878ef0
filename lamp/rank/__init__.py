"""Ranking: an energy model over (evidence, candidate) reorders the base model's top-M.

>>> from lamp.rank import EnergyRanker, build_examples, split_by_time, reorder
>>> examples = build_examples(log, valid_table, valid_evidence)            # doctest: +SKIP
>>> train, stop = split_by_time(examples)                                   # doctest: +SKIP
>>> ranker = EnergyRanker(log.num_entities, log.num_relations)              # doctest: +SKIP
>>> ranker.fit(train, stop, epochs=30, patience=5, seed=0)                  # doctest: +SKIP

Feature rankers over every valid query (issue 17): :func:`rerank_top_m` with ``ranker="lightgbm"``
(:class:`GBDTRanker`) or ``"energy"``, on :func:`build_features`.

torch is imported only when :class:`EnergyRanker`, :func:`rank_top_m` or the energy feature ranker is used.
"""

from __future__ import annotations

import importlib
from typing import Any

from lamp.components import Resolver
from lamp.rank.examples import RankExample, build_examples, shuffle_evidence, split_by_time

_LAZY = {
    "EnergyRanker": "lamp.rank.ranker", "reorder": "lamp.rank.ranker", "select_weight": "lamp.rank.ranker",
    "gold_ranks": "lamp.rank.ranker", "final_scores": "lamp.rank.ranker",
    "rank_top_m": "lamp.rank.stage", "RankOutcome": "lamp.rank.stage", "EnergyRankerStage": "lamp.rank.stage",
    "rerank_top_m": "lamp.rank.rerank", "RerankOutcome": "lamp.rank.rerank", "GBDTRanker": "lamp.rank.gbdt",
    "build_features": "lamp.rank.features", "Features": "lamp.rank.features",
    "candidate_scores": "lamp.rank.features",
}
# ranker=<name>; ranker=none (no learned ranker) is a run without this stage, not an entry here
RANKERS: Resolver[Any] = Resolver("ranker", {
    "lightgbm": "lamp.rank.methods:LightGBMRanking",
    "energy_features": "lamp.rank.methods:EnergyFeaturesRanking",
    "energy": "lamp.rank.stage:EnergyRankerStage",
}, conf_group="ranker")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lamp.rank' has no attribute {name!r}")


__all__ = ["RANKERS", "RankExample", "build_examples", "shuffle_evidence", "split_by_time", *_LAZY]
