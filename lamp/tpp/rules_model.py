"""``base:rules``: temporal rules (mined on train, thresholds chosen on valid) as a base model.

Scores every candidate of a query by aggregating the rules that fire for it (TLogic-style, see
:mod:`lamp.rules.applier`), plus a small documented fallback so candidates no rule reaches
do not all tie. Single-step setting: a query's history is every event strictly before its time,
earlier valid/test events included. Tasks: ``object`` (both directions through inverse relations)
and ``relation``.

>>> model = RulesModel()                                        # doctest: +SKIP
>>> report = model.fit(log, train_queries, valid_queries)      # mine on train, tune on valid
>>> table = model.score(log, test_queries, top_m=10)           # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lamp.components import make_settings, not_in_key
from lamp.data.eventlog import EventLog
from lamp.data.queries import QuerySet
from lamp.errors import ArtifactError, ConfigError
from lamp.rules.applier import ApplyParams, RuleApplier
from lamp.rules.miner import MiningConfig, mine_rules
from lamp.rules.ruleset import RuleSet
from lamp.rules.tuning import TuningGrid, select_params
from lamp.tpp.base import BaseModel

logger = logging.getLogger(__name__)

_COLUMNS = ("head", "body1", "body2", "rule_support", "body_support")


@dataclass(frozen=True)
class RulesModelSettings:
    """Options of ``base:rules``: what to mine (on train), how rules score candidates, and the grid that
    chooses those on valid (``tune``; ``tune=False`` keeps ``params`` as given)."""

    mining: MiningConfig = field(default_factory=MiningConfig)
    params: ApplyParams = field(default_factory=ApplyParams)
    tune: bool = True
    grid: TuningGrid = field(default_factory=TuningGrid)
    n_jobs: int = not_in_key(0)  # threads (0 = all cores)
    progress: bool | None = not_in_key(None)  # None: follow the stage (lamp.progress)

    def __post_init__(self) -> None:
        if not isinstance(self.mining, MiningConfig):
            object.__setattr__(self, "mining", MiningConfig(**_tuples(dict(self.mining))))
        if not isinstance(self.params, ApplyParams):
            object.__setattr__(self, "params", ApplyParams(**dict(self.params)))
        if not isinstance(self.grid, TuningGrid):
            object.__setattr__(self, "grid", _grid(dict(self.grid)))


class RulesModel(BaseModel):
    """Base model ``rules``. ``tune=False`` keeps ``params`` as given instead of choosing them on valid."""

    name = "rules"
    Settings = RulesModelSettings
    per_query = True  # a query's scores depend on it and the log only (lamp.parallel)

    def content_key(self) -> Any:
        """A rule set handed in at construction is part of what the model reads."""
        return None if self._given_rules is None else self._given_rules.content_hash()

    def __init__(self, settings: RulesModelSettings | Mapping[str, Any] | None = None, *,
                 rules: RuleSet | None = None, **overrides: Any) -> None:
        s = self.settings = make_settings(RulesModelSettings, settings, overrides, where="base model 'rules'")
        self.mining, self.params, self.tune, self.grid = s.mining, s.params, s.tune, s.grid
        self.rules = rules
        self._given_rules = rules
        self.n_jobs = s.n_jobs
        self.progress = s.progress
        self.report: dict[str, Any] = {}
        self._applier: RuleApplier | None = None

    def fit(self, log: EventLog, train: QuerySet, valid: QuerySet) -> dict[str, Any]:
        """Mine rules on the train split of ``log`` and choose :class:`ApplyParams` on ``valid``."""
        start = time.perf_counter()
        if self.rules is None:
            self.rules = mine_rules(log, self.mining)
        mined = time.perf_counter()
        applier = self.applier(log)
        rows: list[dict[str, Any]] = []
        if self.tune:
            self.params, rows = select_params(applier, valid, self.grid, progress=self.progress)
        self.report = {"params": asdict(self.params), "rules": self.rules.counts(),
                       "mining_seconds": round(mined - start, 3),
                       "tuning_seconds": round(time.perf_counter() - mined, 3), "tuning": rows}
        return self.report

    def applier(self, log: EventLog) -> RuleApplier:
        """The applier over ``log`` (built once per log)."""
        if self.rules is None:
            raise ConfigError("base:rules has no rules yet. Fix: call fit(log, train, valid) or load a saved model.")
        app = self._applier
        if app is None or len(app.log) != len(log) or app.log.fingerprint() != log.fingerprint():
            app = self._applier = RuleApplier(self.rules, log, n_jobs=self.n_jobs)
        return app

    def prepare(self, log: EventLog) -> None:
        """Build the applier for ``log`` now, e.g. once before the queries fan out in chunks."""
        self.applier(log)

    def score_batch(self, log: EventLog, queries: QuerySet, positions: np.ndarray) -> np.ndarray:
        """Rule score + ``fallback_weight`` x fallback, float32 ``[B, num_candidates]``."""
        from lamp.rules._rank_kernels import combine

        rule, fb = self.applier(log).score_queries(queries, positions, [self.params])
        out = np.empty(fb.shape, dtype=np.float32)
        combine(rule, 0, fb, float(self.params.fallback_weight), out)
        return out

    def save(self, path: Path) -> None:
        """A checkpoint folder: rule columns as safetensors, params/mining/provenance as JSON."""
        from lamp.tpp.checkpoint import save_checkpoint

        if self.rules is None:
            raise ArtifactError("This rules model has no rules, so there is nothing to save; call fit first.")
        config = {"num_relations": self.rules.num_relations, "provenance": self.rules.provenance,
                  "params": asdict(self.params), "mining": asdict(self.mining),
                  "report": {k: v for k, v in self.report.items() if k != "tuning"}}
        save_checkpoint(path, kind=self.name, tensors={c: getattr(self.rules, c) for c in _COLUMNS}, config=config,
                        fingerprint=self.rules.provenance.get("fingerprint"))

    @classmethod
    def load(cls, path: Path, log: EventLog | None = None) -> RulesModel:
        """Load strictly; with ``log``, the rules must have been mined on the same data."""
        from lamp.tpp.checkpoint import load_checkpoint

        ckpt = load_checkpoint(path, kind=cls.name, expected_tensors=set(_COLUMNS),
                               fingerprint=None if log is None else log.fingerprint())
        cfg = ckpt.config
        try:
            t = {c: np.asarray(ckpt.tensors[c]) for c in _COLUMNS}
            rules = RuleSet(int(cfg["num_relations"]), t["head"], t["body1"], t["body2"], t["rule_support"],
                            t["body_support"], dict(cfg["provenance"]))
            params = ApplyParams(**cfg["params"])
            mining = MiningConfig(**_tuples(cfg["mining"]))
        except (KeyError, TypeError) as exc:
            raise ArtifactError(f"{path}: the rules checkpoint config is incomplete ({exc}); refit the model.") from exc
        model = cls(mining=mining, params=params, tune=False, rules=rules)
        model.report = dict(cfg.get("report", {}))
        return model


def _tuples(d: dict[str, Any]) -> dict[str, Any]:
    """YAML/JSON give lists where the dataclasses keep tuples."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def _grid(d: dict[str, Any]) -> TuningGrid:
    """A :class:`TuningGrid` from plain config values (``base`` may be a dict of ApplyParams fields)."""
    d = _tuples(d)
    if isinstance(d.get("base"), dict):
        d["base"] = ApplyParams(**d["base"])
    return TuningGrid(**d)
