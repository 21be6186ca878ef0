"""The whole audit of one base model on one task: the model's checks, the positive controls, the verdict.

>>> from lamp.tpp.leakage import audit_base_model
>>> result = audit_base_model(lambda: build_base_model("recurrency"), log, "object")   # doctest: +SKIP
>>> result.model_passes, result.controls_flagged                                        # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lamp.data.eventlog import EventLog
from lamp.data.queries import QuerySet, make_queries
from lamp.tpp.base import BaseModel
from lamp.tpp.leakage.checks import CheckRow, future_log_checks, query_set_checks, training_checks
from lamp.tpp.leakage.controls import FilterLeak, FitLeak, LeakyWrapper, SameTimeLeak, TargetLeak, TwinLeak

logger = logging.getLogger(__name__)

# each control, and the checks that must all flag it (a control no check flags means the audit is blind)
MUST_FLAG: dict[str, tuple[str, ...]] = {
    SameTimeLeak.kind: ("truncated", "random future", "answers in the future"),
    TwinLeak.kind: ("with its inverse twin in the batch (vs alone)",),
    TargetLeak.kind: ("targets replaced at random",),
    FilterLeak.kind: ("filter lists replaced at random",),
    FitLeak.kind: ("refit, test part random",),
}


@dataclass(frozen=True)
class AuditResult:
    """Every row, whether the model passed every check, and whether each control was flagged."""

    rows: list[CheckRow]
    n_queries: int
    n_timestamps: int
    model_passes: bool
    controls_flagged: dict[str, bool]
    mrr: float = float("nan")  # the model's filtered MRR on the audited queries (a real model, not a constant)

    @property
    def ok(self) -> bool:
        """The model passes and every control is flagged (an audit that cannot fail proves nothing)."""
        return self.model_passes and all(self.controls_flagged.values())


def verdict(rows: list[CheckRow], n_queries: int = 0, n_timestamps: int = 0, mrr: float = float("nan")) -> AuditResult:
    model_ok = all(r.identical for r in rows if r.subject == "model" and r.counts)
    flagged = {}
    for kind, checks in MUST_FLAG.items():
        mine = {r.check: r for r in rows if r.subject == kind and r.counts}
        if mine:
            flagged[kind] = all(c in mine and not mine[c].identical for c in checks)
    return AuditResult(rows, n_queries, n_timestamps, model_ok, flagged, mrr)


def sample_queries(test: QuerySet, timestamps: int, per_timestamp: int, seed: int) -> np.ndarray:
    """Positions of at most ``per_timestamp`` queries at each of ``timestamps`` seeded test timestamps."""
    times = test.frame["time"].to_numpy()
    distinct = np.unique(times)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(distinct, size=min(timestamps, len(distinct)), replace=False))
    return np.concatenate([np.flatnonzero(times == t)[:per_timestamp] for t in chosen]).astype(np.int64)


def audit_base_model(build: Callable[[], BaseModel], log: EventLog, task: str, *,
                     pinned: Callable[[], BaseModel] | None = None, directions: str = "both", top_m: int = 10,
                     timestamps: int = 30, per_timestamp: int = 40, n_alone: int = 200, seed: int = 0,
                     tolerance: float = 0.0, training: bool = True) -> AuditResult:
    """Fit ``build()`` on ``log`` (train, selection on valid) and run every check on sampled test queries,
    for the model and for each positive control wrapped around it.

    ``pinned``: builds the model with its choice on valid fixed (for the refit on random valid and test
    parts); ``tolerance``: the score difference allowed where batch shapes differ (float32 models).
    """
    sets = {s: make_queries(log, task, s, directions=directions) for s in ("train", "valid", "test")}
    model = build()
    model.fit(log, sets["train"], sets["valid"])
    test = sets["test"]
    pos = sample_queries(test, timestamps, per_timestamp, seed)
    sel = test.take(pos)
    ref = model.score(log, sel, top_m)
    logger.info("audit of %s (%s): %d queries at %d timestamps", model.name, task, len(sel),
                len(np.unique(sel.frame["time"])))
    rows = future_log_checks(model, log, sel, top_m, seed=seed)
    rows += query_set_checks(model, log, test, pos, top_m, seed=seed, n_alone=n_alone, tolerance=tolerance,
                             reference=ref)
    if training:
        rows += training_checks(build, ref, log, sel, top_m, pinned=pinned, directions=directions, seed=seed)
    controls: list[LeakyWrapper] = [SameTimeLeak(model), TargetLeak(model), FilterLeak(model)]
    controls += [TwinLeak(model)] if task == "object" and directions == "both" else []
    for control in controls:  # the future-log checks too: they show what the old audit could not see
        rows += future_log_checks(control, log, sel, top_m, subject=control.kind, seed=seed)
        if control.kind != SameTimeLeak.kind:
            rows += query_set_checks(control, log, test, pos, top_m, subject=control.kind, seed=seed,
                                     n_alone=min(n_alone, 50), tolerance=tolerance)
    if training:
        leak = FitLeak(model)
        leak.fit(log, sets["train"], sets["valid"])
        leak_ref = leak.score(log, sel, top_m)
        rows += future_log_checks(leak, log, sel, top_m, subject=FitLeak.kind, seed=seed)
        rows += training_checks(lambda: FitLeak(model), leak_ref, log, sel, top_m, directions=directions,
                                subject=FitLeak.kind, seed=seed)
    return verdict(rows, len(sel), len(np.unique(sel.frame["time"])), float(np.mean(1.0 / ref.gold_rank_filtered)))
