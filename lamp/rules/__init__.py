"""The temporal rule engine (TLogic-style, exact support counts): mine rules from the train split, apply
them strictly before each query's time, tune the application on valid.

It serves two adapters: the base model ``base:rules`` (:mod:`lamp.tpp.rules_model`) and the abducer
``rules`` (:mod:`lamp.abduce.rules`); lamp.tpp and lamp.abduce import it, it imports neither.

>>> from lamp.rules import mine_rules, RuleApplier, RuleSet      # doctest: +SKIP
>>> rules = mine_rules(log)                      # train split, rule lengths 1 and 2
>>> rules.save("rules.json"); rules = RuleSet.load("rules.json", log)
"""

from lamp.rules.applier import Application, ApplyParams, RuleApplier
from lamp.rules.index import EdgeIndex, build_index
from lamp.rules.miner import MiningConfig, mine_rules
from lamp.rules.ruleset import RuleSet
from lamp.rules.tuning import TuningGrid, evaluate_params, rank_metrics, select_params

__all__ = [
    "Application", "ApplyParams", "EdgeIndex", "MiningConfig", "RuleApplier", "RuleSet", "TuningGrid",
    "build_index", "evaluate_params", "mine_rules", "rank_metrics", "select_params",
]
