"""The compared methods of a run: the base model, lamp with each abducer (with and without the
ranker) and the no-LLM retrieval ablations, all on the same queries, through the shared steps
(:mod:`lamp.pipeline.steps`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lamp.data.eventlog import EventLog
from lamp.errors import ConfigError
from lamp.eval.metrics import apply_reorder
from lamp.parallel import Executor
from lamp.pipeline import steps
from lamp.pipeline.artifacts import ArtifactStore
from lamp.pipeline.components import Components
from lamp.pipeline.config import PipelineConfig
from lamp.pipeline.stages import abduction_requests, abduction_summary, evidence_to_frame, no_ranker_order
from lamp.pipeline.timing import StageClock
from lamp.retrieval.pmi import PMIRescorer
from lamp.tpp.base import CandidateTable
from lamp.types import AbductionRequest, AbductionResult, CauseEvent, Evidence

logger = logging.getLogger(__name__)
SPLITS = ("valid", "test")


@dataclass
class MethodRun:
    method: str
    table: CandidateTable  # test queries, in this method's order
    abducer: str | None = None
    llm: str | None = None
    retriever: str | None = None
    evidence: pd.DataFrame | None = None
    extra_metrics: dict[str, Any] = field(default_factory=dict)
    causes: dict[tuple[int, int], list[CauseEvent]] = field(default_factory=dict)
    evidence_rows: dict[tuple[int, int], list[int]] = field(default_factory=dict)


@dataclass(frozen=True)
class BaseTables:
    """The base model's top-M tables of the run's valid and test queries, and their step keys."""

    tables: dict[str, CandidateTable]
    keys: dict[str, str | None]


def run_methods(cfg: PipelineConfig, store: ArtifactStore, clock: StageClock, log: EventLog, base: BaseTables,
                comps: Components) -> list[MethodRun]:
    tables = base.tables
    runs = [MethodRun(tables["test"].method, tables["test"])]
    requests = {s: abduction_requests(log, tables[s]) for s in SPLITS}
    for name, abducer in comps.abducers.items() if "abduce" in cfg.stages else []:
        teacher = cfg.train_evidence if comps.uses_llm(name) and cfg.train_evidence not in (None, "own") else None
        splits = ("test",) if teacher else SPLITS  # the LLM is asked about the test queries only
        results, keys = _abduce(store, clock, log, requests, base.keys, name, abducer, comps, splits)
        llm = comps.llm_id if comps.uses_llm(name) else None
        summary = {f"abduce_{k}": v for k, v in abduction_summary([r for s in splits for r in results[s]]).items()}
        if "retrieve" not in cfg.stages:
            continue
        evid, rkeys = _retrieve(store, clock, log, requests, results, keys, name, comps.retriever, splits,
                                comps.executor)
        if teacher:
            # the ranker learns from cheap evidence on every valid query and is applied to the LLM's on the test ones
            evid["valid"], rkeys["valid"] = _teacher_evidence(cfg, store, clock, log, requests, base.keys, comps,
                                                              teacher)
            summary["ranker_trained_on"] = f"lamp[{teacher}] evidence of the valid queries, applied to lamp[{name}]'s"
        runs += _rank_variants(cfg, store, clock, log, tables, evid, rkeys, comps, f"lamp[{name}]",
                               abducer=name, llm=llm, extra=summary, results=results["test"])
    if "retrieve" in cfg.stages:
        for ablation, retriever in comps.ablation_retrievers.items():
            empty = {s: [AbductionResult(r.query_id, r.candidate, ()) for r in requests[s]] for s in SPLITS}
            evid, rkeys = _retrieve(store, clock, log, requests, empty, base.keys, f"ablation:{ablation}", retriever,
                                    executor=comps.executor)
            runs += _rank_variants(cfg, store, clock, log, tables, evid, rkeys, comps, f"ablation:{ablation}",
                                   retriever=ablation, with_no_ranker=False)
    return runs


def _teacher_evidence(cfg: PipelineConfig, store: ArtifactStore, clock: StageClock, log: EventLog,
                      requests: dict[str, list[AbductionRequest]], parents: dict[str, str | None], comps: Components,
                      teacher: str) -> tuple[list[Evidence], str | None]:
    """The valid queries' evidence from the abducer ``teacher`` (the run's own, else one built with its defaults)."""
    abducer = comps.abducers.get(teacher)
    if abducer is None:
        from lamp.abduce.base import ABDUCERS, uses_llm

        if uses_llm(teacher):
            raise ConfigError(f"train_evidence={teacher!r} would ask the LLM about every valid query. Fix: a cheap "
                              "abducer (train_evidence=rules), or own.")
        abducer = ABDUCERS.make(teacher)
    results, keys = _abduce(store, clock, log, requests, parents, teacher, abducer, comps, ("valid",))
    evid, rkeys = _retrieve(store, clock, log, requests, results, keys, teacher, comps.retriever, ("valid",),
                            comps.executor)
    return evid["valid"], rkeys["valid"]


def _abduce(store: ArtifactStore, clock: StageClock, log: EventLog, requests: dict[str, list[AbductionRequest]],
            parents: dict[str, str | None], name: str, abducer: Any, comps: Components,
            splits: tuple[str, ...] = SPLITS) -> tuple[dict[str, list[AbductionResult]], dict[str, str | None]]:
    results: dict[str, list[AbductionResult]] = {}
    keys: dict[str, str | None] = {}
    # the abducer itself says whether it asks the LLM (a teacher built for train_evidence is not in comps.abducers)
    llm = bool(getattr(abducer, "uses_llm", False)) and comps.llm_client is not None
    with clock.stage(f"abduce[{name}]") as st:
        st.extra["llm"] = llm
        reused = 0
        for split in splits:  # valid first: the ranker needs it; LLM calls are cached one by one, so a killed run resumes
            out = steps.abduce(abducer, log, requests[split], parents[split], store=store,
                               usage=comps.usage_snapshot if llm else None, executor=comps.executor)
            results[split], keys[split] = out.results, out.key
            reused += out.reused
            comps.add_reused(out.reused_usage)
        st.skipped = reused == len(splits)
        st.extra["requests"] = sum(len(requests[s]) for s in splits)
    return results, keys


def _retrieve(store: ArtifactStore, clock: StageClock, log: EventLog, requests: dict[str, list[AbductionRequest]],
              results: dict[str, list[AbductionResult]], parents: dict[str, str | None], label: str, retriever: Any,
              splits: tuple[str, ...] = SPLITS, executor: Executor | None = None
              ) -> tuple[dict[str, list[Evidence]], dict[str, str | None]]:
    evid: dict[str, list[Evidence]] = {}
    keys: dict[str, str | None] = {}
    with clock.stage(f"retrieve[{label}]") as st:
        st.extra["llm"] = isinstance(retriever, PMIRescorer)  # PMI re-scoring calls the LLM
        reused = 0
        for split in splits:
            out = steps.retrieve(retriever, log, requests[split], results[split], parents[split], store=store,
                                 executor=executor)
            evid[split], keys[split] = out.evidence, out.key
            reused += out.reused
        st.skipped = reused == len(splits)
    return evid, keys


def _rank_variants(cfg: PipelineConfig, store: ArtifactStore, clock: StageClock, log: EventLog,
                   tables: dict[str, CandidateTable], evid: dict[str, list[Evidence]], keys: dict[str, str | None],
                   comps: Components, method: str, *, abducer: str | None = None, llm: str | None = None,
                   retriever: str | None = None, extra: dict[str, Any] | None = None,
                   results: list[AbductionResult] | None = None, with_no_ranker: bool = True) -> list[MethodRun]:
    retriever = retriever or cfg.retriever.name
    causes = {(r.query_id, r.candidate): list(r.causes) for r in results or []}
    ev_frame = evidence_to_frame(evid["test"], log, method, "test")
    ev_rows = {(e.query_id, e.candidate): e.event_indices.tolist() for e in evid["test"]}
    common: dict[str, Any] = {"abducer": abducer, "llm": llm, "retriever": retriever, "evidence": ev_frame,
                              "causes": causes, "evidence_rows": ev_rows}
    out = []
    if with_no_ranker or comps.ranker is None or "rank" not in cfg.stages:
        order, tie = no_ranker_order(tables["test"], evid["test"])
        name = f"{method[:-1]},no_ranker]" if method.endswith("]") and method.startswith("lamp[") else f"{method}"
        out.append(MethodRun(name, apply_reorder(tables["test"], order, name, tie_keys=tie),
                             extra_metrics=dict(extra or {}), **common))
    if comps.ranker is None or "rank" not in cfg.stages:
        return out
    with clock.stage(f"rank[{method}]") as st:
        ranked = steps.rank(comps.ranker, log, tables, evid, (keys["valid"], keys["test"]), seed=cfg.seed,
                            progress=cfg.progress, store=store)
        st.skipped = ranked.reused
    info = ranked.info
    metrics_extra = {**(extra or {}), **{f"ranker_{k}": v for k, v in info.items()
                                          if not isinstance(v, (list, dict)) and not k.startswith("_")}}
    # lamp[x] and lamp[x,no_ranker] share one evidence table (labelled lamp[x]): only the first carries it
    shared = {**common, "evidence": None} if out else common
    out.append(MethodRun(method, apply_reorder(tables["test"], np.asarray(ranked.order), method,
                                               tie_keys=ranked.tie_keys), extra_metrics=metrics_extra, **shared))
    return out
