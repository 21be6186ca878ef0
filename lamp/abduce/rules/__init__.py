"""The ``rules`` abducer (:class:`RulesAbducer`), an adapter over the rule engine in :mod:`lamp.rules`.

The engine's names are re-exported here for code written before the engine moved to ``lamp.rules``.
"""

from lamp.abduce.rules.abducer import RulesAbducer
from lamp.rules import (
    Application,
    ApplyParams,
    EdgeIndex,
    MiningConfig,
    RuleApplier,
    RuleSet,
    TuningGrid,
    build_index,
    evaluate_params,
    mine_rules,
    rank_metrics,
    select_params,
)

__all__ = [
    "Application", "ApplyParams", "EdgeIndex", "MiningConfig", "RuleApplier", "RuleSet", "RulesAbducer", "TuningGrid",
    "build_index", "evaluate_params", "mine_rules", "rank_metrics", "select_params",
]
