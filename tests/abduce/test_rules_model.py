"""``base:rules`` (lamp.tpp.rules_model.RulesModel) on a synthetic log: fit, score, save/load, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_rules_synth import random_log

from lamp.data.queries import make_queries
from lamp.errors import ArtifactError, ConfigError, LeakageError
from lamp.rules import ApplyParams, RuleApplier, TuningGrid, evaluate_params, mine_rules
from lamp.tpp.base import filtered_gold_rank, rank_candidates
from lamp.tpp.rules_model import RulesModel

SMALL = TuningGrid(decay=(0.1, 0.3), mix=(0.5, None), aggregation=("noisy_or",), stop_at=(0, 5), min_support=(1, 2),
                   min_confidence=(0.0,), max_length2=(0, 10), fallback_weight=(0.0, 1e-3))


def test_fit_score_save_load(tmp_path: Path) -> None:
    log = random_log(7, n_ent=9, n_events=160, t_max=30)
    train, valid, test = (make_queries(log, "object", s, directions="both") for s in ("train", "valid", "test"))
    model = RulesModel(mining={"min_support": 1, "min_confidence": 0.0}, grid=SMALL)
    report = model.fit(log, train, valid)
    assert report["rules"]["rules"] > 0 and len(report["tuning"]) == 8 + 4 * 2
    chosen = max((r for r in report["tuning"] if r["stage"] == 2), key=lambda r: r["mrr"])
    assert chosen["decay"] == model.params.decay and chosen["fallback_weight"] == model.params.fallback_weight
    valid_ranks = evaluate_params(model.applier(log), valid, [model.params])[0, 0]
    assert chosen["mrr"] == pytest.approx((1.0 / valid_ranks).mean())
    table = model.score(log, test, top_m=3)
    ranks = filtered_gold_rank(model.score_batch(log, test, np.arange(len(test))).astype(np.float32), test,
                               np.arange(len(test)))
    np.testing.assert_allclose(table.gold_rank_filtered, ranks)
    np.testing.assert_allclose(evaluate_params(model.applier(log), test, [model.params])[0, 0], ranks)
    model.save(tmp_path / "ckpt")
    back = RulesModel.load(tmp_path / "ckpt", log)
    assert back.params == model.params and len(back.rules) == len(model.rules)  # type: ignore[arg-type]
    np.testing.assert_array_equal(back.score_batch(log, test, np.arange(len(test))),
                                  model.score_batch(log, test, np.arange(len(test))))
    with pytest.raises(ArtifactError):
        RulesModel.load(tmp_path / "ckpt", random_log(8))


def test_relation_task_and_unsupported_tasks() -> None:
    log = random_log(9, n_events=120)
    rules = mine_rules(log)
    model = RulesModel(rules=rules, params=ApplyParams(min_support=1, min_confidence=0.0), tune=False)
    test = make_queries(log, "relation", "test")
    table = rank_candidates(model, log, test, 2)
    assert table.candidates.shape == (len(test), 2) and (table.gold_rank_filtered >= 1).all()
    with pytest.raises(ConfigError, match="task=object or task=relation"):
        model.score_batch(log, make_queries(log, "relation_object", "test"), np.arange(1))
    with pytest.raises(ConfigError, match="no rules yet"):
        RulesModel().score_batch(log, test, np.arange(1))


def test_train_queries_raise_leakage_error() -> None:
    log = random_log(10)
    app = RuleApplier(mine_rules(log), log)
    train = make_queries(log, "object", "train")
    with pytest.raises(LeakageError, match="MiningConfig\\(end=...\\)"):
        app.score_queries(train, np.arange(len(train)), [ApplyParams()])
