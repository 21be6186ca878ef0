"""The pipeline's steps, shared by both drivers (:func:`lamp.pipeline.run.run_pipeline` and
:class:`lamp.Pipeline`): fit and score the base model, abduce, retrieve, rank.

Each step takes its component, its inputs and, optionally, an :class:`ArtifactStore` and the key of the
step it follows. Its own key is ``hash(step, step version, parent key, component.cache_key(), inputs)``,
so changing one setting of one component reruns exactly that step and the ones after it. A component
that cannot describe itself (no ``cache_key``) is run but never cached. Leakage checks live here, so
both drivers get them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lamp import parallel
from lamp.components import stable_hash
from lamp.data.eventlog import EventLog
from lamp.data.queries import QuerySet
from lamp.errors import LeakageError
from lamp.pipeline.artifacts import ArtifactStore, write_json, write_parquet
from lamp.pipeline.stages import (
    evidence_to_frame,
    frame_to_evidence,
    load_abduction,
    load_table,
    save_abduction,
    save_table,
)
from lamp.tpp.base import BaseModel, CandidateTable
from lamp.types import AbductionRequest, AbductionResult, Evidence

logger = logging.getLogger(__name__)

# Bump a step's version when what it writes, or what its output means, changes: older artifacts stop matching.
STEP_VERSIONS = {"fit": 1, "score": 1, "abduce": 2, "retrieve": 1, "rank": 3}


def component_key(component: Any) -> str | None:
    """``component.cache_key()``, or None (and a log line) for a component that cannot describe itself."""
    fn = getattr(component, "cache_key", None)
    if not callable(fn):
        logger.info("%s has no cache_key(): its step runs every time and is not cached", type(component).__name__)
        return None
    return str(fn())


def step_key(step: str, parent: str | None, component: Any, *extra: Any) -> str | None:
    """The key of ``step`` for ``component`` after the step keyed ``parent`` (None: not cacheable)."""
    own = component_key(component)
    if own is None or (parent is None and step != "fit"):
        return None
    return stable_hash(step, STEP_VERSIONS[step], parent, own, *extra)


def queries_key(queries: QuerySet) -> str:
    """What identifies a query sample: its task, split and every row."""
    f = queries.frame
    cols = ["query_id", "time", "subject", "relation", "object", "target", "history_end"]
    return stable_hash(queries.task, queries.split, int(pd.util.hash_pandas_object(f[cols], index=False).sum()))


# -- base model ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FittedBase:
    model: BaseModel
    report: dict[str, Any]
    key: str | None  # the fit step's key (None: not cached)
    reused: bool = False


def fit_base(model: BaseModel, log: EventLog, train: QuerySet, valid: QuerySet, *,
             store: ArtifactStore | None = None) -> FittedBase:
    """Fit ``model`` on the train events (choosing what it chooses on ``valid``); a fitted checkpoint
    in ``store`` under the same key is loaded instead of fitting again."""
    key = step_key("fit", None, model, log.fingerprint(), queries_key(train), queries_key(valid))
    if store is not None and key is not None and store.exists("fit", key):
        from lamp.tpp.factory import load_base_model

        info = store.info("fit", key)
        loaded = load_base_model(store.path("fit", key) / "model", log=log)
        return FittedBase(loaded, dict(info.get("report") or {}), key, reused=True)
    report = model.fit(log, train, valid)
    if store is not None and key is not None and _can_save(model):
        with store.writing("fit", key, {"method": f"base:{model.name}", "report": report}) as tmp:
            model.save(tmp / "model")
    return FittedBase(model, report, key)


def _can_save(model: BaseModel) -> bool:
    return type(model).save is not BaseModel.save and callable(getattr(type(model), "load", None))


def score_base(fitted: FittedBase, log: EventLog, queries: QuerySet, top_m: int, *,
               store: ArtifactStore | None = None, progress: bool = False,
               executor: parallel.Executor | None = None) -> CandidateTable:
    """The base model's top-``top_m`` candidates of ``queries`` (and the gold's filtered rank); on ``executor``
    in chunks of queries where the model allows it (:mod:`lamp.parallel`)."""
    method = f"base:{fitted.model.name}"
    key = None if fitted.key is None else stable_hash("score", STEP_VERSIONS["score"], fitted.key,
                                                      queries_key(queries), top_m)
    if store is not None and key is not None and store.exists("score", key):
        return load_table(store.path("score", key) / "table.npz", method, queries, top_m)
    table = parallel.score(executor, fitted.model, log, queries, top_m, progress=progress)
    if store is not None and key is not None:
        with store.writing("score", key, {"method": method, "split": queries.split}) as tmp:
            save_table(table, tmp / "table.npz")
    return table


def table_key(fitted: FittedBase, queries: QuerySet, top_m: int) -> str | None:
    """The key the score step gives ``queries``' table (the parent key of the steps that follow)."""
    return None if fitted.key is None else stable_hash("score", STEP_VERSIONS["score"], fitted.key,
                                                       queries_key(queries), top_m)


# -- abduction -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Abduced:
    results: list[AbductionResult]
    key: str | None
    llm_usage: dict[str, float]  # what the step paid (0 when reused)
    reused_usage: dict[str, float]  # what an earlier run paid for a reused artifact
    reused: bool = False


def abduce(abducer: Any, log: EventLog, requests: Sequence[AbductionRequest], parent: str | None, *,
           store: ArtifactStore | None = None, usage: Callable[[], Mapping[str, float]] | None = None,
           executor: parallel.Executor | None = None) -> Abduced:
    """Causes for every request. Results that carry an error (an LLM failure, a call skipped by the
    budget) are returned but never stored: a rerun asks for them again (the LLM cache keeps every call
    that succeeded, so nothing is paid twice)."""
    key = step_key("abduce", parent, abducer)
    if store is not None and key is not None and store.exists("abduce", key):
        info = store.info("abduce", key)
        return Abduced(load_abduction(store.path("abduce", key)), key, {}, dict(info.get("llm_usage") or {}), True)
    before = dict(usage()) if usage else {}
    results = parallel.abduce(executor, abducer, log, requests)
    paid = {k: float(v) - float(before.get(k, 0)) for k, v in usage().items()} if usage else {}
    failed = sum(1 for r in results if r.error)
    if store is not None and key is not None:
        if failed:
            logger.warning("abduce[%s]: %d of %d answers failed or were skipped by the budget; this step is not "
                           "cached, so a rerun asks for them again (calls that succeeded come from the LLM cache)",
                           getattr(abducer, "name", "?"), failed, len(results))
        else:
            with store.writing("abduce", key, {"abducer": getattr(abducer, "name", "?"), "llm_usage": paid}) as tmp:
                save_abduction(results, tmp)
    return Abduced(results, key, paid, {})


# -- retrieval -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Retrieved:
    evidence: list[Evidence]
    key: str | None
    reused: bool = False


def retrieve(retriever: Any, log: EventLog, requests: Sequence[AbductionRequest],
             results: Sequence[AbductionResult], parent: str | None, *,
             store: ArtifactStore | None = None, executor: parallel.Executor | None = None) -> Retrieved:
    """Real earlier events for every request's causes; an event at or after a query's time is a
    :class:`LeakageError` (a bug in the retriever), whatever the driver."""
    key = step_key("retrieve", parent, retriever)
    if store is not None and key is not None and store.exists("retrieve", key):
        frame = pd.read_parquet(store.path("retrieve", key) / "evidence.parquet")
        return Retrieved(frame_to_evidence(frame, requests), key, True)
    evidence = parallel.retrieve(executor, retriever, log, requests, [r.causes for r in results])
    check_evidence(retriever, requests, evidence)
    if store is not None and key is not None:
        with store.writing("retrieve", key, {"retriever": getattr(retriever, "name", "?")}) as tmp:
            write_parquet(evidence_to_frame(evidence, log, getattr(retriever, "name", "?"), ""),
                          tmp / "evidence.parquet")
    return Retrieved(evidence, key)


def check_evidence(retriever: Any, requests: Sequence[AbductionRequest], evidence: Sequence[Evidence]) -> None:
    for req, ev in zip(requests, evidence, strict=True):
        if ev.event_indices.size and int(ev.event_indices.max()) >= req.history_end:
            raise LeakageError(f"retriever {getattr(retriever, 'name', '?')!r} returned an event at or after the query "
                               f"time (query {req.query_id}); this is a bug in the retriever.")


# -- ranking ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ranked:
    """The ranker's order of the ``test`` table, its tie keys, what it learned, and the fitted model (None
    when no valid query could train it: the base order is kept)."""

    order: np.ndarray
    tie_keys: np.ndarray
    info: dict[str, Any]
    model: Any
    key: str | None
    reused: bool = False


def fit_ranker(ranker: Any, log: EventLog, valid: CandidateTable, evidence: Sequence[Evidence], parent: str | None,
               *, seed: int, progress: bool = False, store: ArtifactStore | None = None
               ) -> tuple[Any, dict[str, Any], str | None, bool]:
    """(fitted model or None, info, key, reused): ``ranker`` trained on the valid queries and their evidence.
    Keyed by the valid evidence only, so methods whose rankers learn from the same evidence share one fit."""
    key = step_key("rank", parent, ranker, seed)
    if store is not None and key is not None and store.exists("rank", key):
        folder = store.path("rank", key)
        model = ranker.load_model(folder / "ranker") if (folder / "ranker").is_dir() else None
        return model, store.info("rank", key), key, True
    model, info = ranker.fit(log, valid, evidence, seed=seed, progress=progress)
    if store is not None and key is not None:
        with store.writing("rank", key, info) as tmp:
            write_json(info, tmp / "ranker.json")
            if model is not None:
                model.save(tmp / "ranker")
    return model, info, key, False


def rank(ranker: Any, log: EventLog, tables: Mapping[str, CandidateTable], evidence: Mapping[str, Sequence[Evidence]],
         parents: Sequence[str | None], *, seed: int, progress: bool = False,
         store: ArtifactStore | None = None) -> Ranked:
    """Train ``ranker`` on the valid table's queries (or reuse its fit) and order the test table's top-M."""
    from lamp.rank.rerank import apply_ranker

    model, info, key, reused = fit_ranker(ranker, log, tables["valid"], evidence["valid"], parents[0], seed=seed,
                                          progress=progress, store=store)
    test = tables["test"]
    if model is None:
        m = test.candidates.shape[1]
        order = np.broadcast_to(np.arange(m), test.candidates.shape).copy()
        return Ranked(order, test.scores.astype(np.float64), info, None, key, reused)
    order, tie_keys, _ = apply_ranker(model, log, test, evidence["test"])
    return Ranked(order, tie_keys, info, model, key, reused)
