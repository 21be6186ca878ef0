"""Temporal logical rules mined from the train split (TLogic-style, with exact support counts).

>>> from lamp.abduce.rules import mine_rules, RuleApplier, RulesAbducer      # doctest: +SKIP
>>> rules = mine_rules(log)                      # train split, rule lengths 1 and 2
>>> rules.save("rules.json"); rules = RuleSet.load("rules.json", log)
"""

from lamp.abduce.rules.abducer import RulesAbducer
from lamp.abduce.rules.applier import Application, ApplyParams, RuleApplier
from lamp.abduce.rules.index import EdgeIndex, build_index
from lamp.abduce.rules.miner import MiningConfig, mine_rules
from lamp.abduce.rules.ruleset import RuleSet
from lamp.abduce.rules.tuning import TuningGrid, evaluate_params, rank_metrics, select_params

__all__ = [
    "Application", "ApplyParams", "EdgeIndex", "MiningConfig", "RuleApplier", "RuleSet", "RulesAbducer", "TuningGrid",
    "build_index", "evaluate_params", "mine_rules", "rank_metrics", "select_params",
]
