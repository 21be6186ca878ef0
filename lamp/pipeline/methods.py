"""The compared methods of a run: the base model, lamp with each abducer (with and without the
ranker) and the no-LLM retrieval ablations, all on the same queries."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lamp.data.eventlog import EventLog
from lamp.eval.metrics import apply_reorder
from lamp.pipeline.artifacts import ArtifactStore, stable_hash, write_json, write_parquet
from lamp.pipeline.components import Components
from lamp.pipeline.config import PipelineConfig
from lamp.pipeline.stages import (
    SplitQueries,
    abduction_requests,
    abduction_summary,
    evidence_to_frame,
    frame_to_evidence,
    load_abduction,
    no_ranker_order,
    save_abduction,
)
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


def run_methods(cfg: PipelineConfig, store: ArtifactStore, clock: StageClock, log: EventLog, queries: SplitQueries,
                tables: dict[str, CandidateTable], comps: Components, data_key: str) -> list[MethodRun]:
    runs = [MethodRun(tables["test"].method, tables["test"])]
    base_key = stable_hash(data_key, asdict(cfg.base_model), cfg.top_m)
    requests = {s: abduction_requests(log, tables[s]) for s in SPLITS}
    for name, abducer in comps.abducers.items() if "abduce" in cfg.stages else []:
        key = stable_hash(base_key, name, comps.abducer_configs[name], comps.llm_id if comps.uses_llm(name) else None)
        results = _abduce(cfg, store, clock, log, requests, name, abducer, key, comps)
        llm = comps.llm_id if comps.uses_llm(name) else None
        summary = {f"abduce_{k}": v for k, v in abduction_summary(results["test"] + results["valid"]).items()}
        if "retrieve" not in cfg.stages:
            continue
        evid = _retrieve(cfg, store, clock, log, requests, results, name, comps, key)
        runs += _rank_variants(cfg, store, clock, log, tables, evid, comps, f"lamp[{name}]", key,
                               abducer=name, llm=llm, extra=summary, results=results["test"])
    if "retrieve" in cfg.stages:
        for ablation in cfg.ablations:
            key = stable_hash(base_key, "ablation", ablation, comps.retriever_configs.get(ablation))
            empty = {s: [AbductionResult(r.query_id, r.candidate, ()) for r in requests[s]] for s in SPLITS}
            evid = _retrieve(cfg, store, clock, log, requests, empty, f"ablation:{ablation}", comps, key, ablation)
            runs += _rank_variants(cfg, store, clock, log, tables, evid, comps, f"ablation:{ablation}", key,
                                   retriever=ablation, with_no_ranker=False)
    return runs


def _abduce(cfg: PipelineConfig, store: ArtifactStore, clock: StageClock, log: EventLog,
            requests: dict[str, list[AbductionRequest]], name: str, abducer: Any, key: str,
            comps: Components) -> dict[str, list[AbductionResult]]:
    with clock.stage(f"abduce[{name}]") as st:
        st.extra["llm"] = comps.uses_llm(name)
        if store.exists("abduce", key):
            st.skipped = True
            comps.add_reused(store.info("abduce", key).get("llm_usage") or {})
            return {s: load_abduction(store.path("abduce", key) / s) for s in SPLITS}
        before = comps.usage_snapshot()
        # valid first: the ranker needs it; LLM calls are cached one by one, so a killed run resumes here
        results = {s: abducer.abduce(log, requests[s]) for s in SPLITS}
        paid = {k: v - before[k] for k, v in comps.usage_snapshot().items()} if comps.uses_llm(name) else {}
        info = {"abducer": name, **abduction_summary(results["test"]), "llm_usage": paid}
        with store.writing("abduce", key, info) as tmp:
            for s in SPLITS:
                (tmp / s).mkdir()
                save_abduction(results[s], tmp / s)
        st.extra.update({"requests": sum(len(r) for r in requests.values())})
        return results


def _retrieve(cfg: PipelineConfig, store: ArtifactStore, clock: StageClock, log: EventLog,
              requests: dict[str, list[AbductionRequest]], results: dict[str, list[AbductionResult]], label: str,
              comps: Components, key: str, ablation: str | None = None) -> dict[str, list[Evidence]]:
    retriever = comps.ablation_retrievers[ablation] if ablation else comps.retriever
    rkey = stable_hash(key, comps.retriever_configs.get(ablation or "main"))
    with clock.stage(f"retrieve[{label}]") as st:
        st.extra["llm"] = isinstance(retriever, PMIRescorer)  # PMI re-scoring calls the LLM
        if store.exists("retrieve", rkey):
            st.skipped = True
            frame = pd.read_parquet(store.path("retrieve", rkey) / "evidence.parquet")
            return {s: frame_to_evidence(frame[frame["split"] == s], requests[s]) for s in SPLITS}
        evid = {s: retriever.retrieve_many(log, requests[s], [r.causes for r in results[s]]) for s in SPLITS}
        for s in SPLITS:
            for req, ev in zip(requests[s], evid[s], strict=True):
                if ev.event_indices.size and int(ev.event_indices.max()) >= req.history_end:
                    from lamp.errors import LeakageError

                    raise LeakageError(f"retriever {retriever.name!r} returned an event at or after the query time "
                                       f"(query {req.query_id}); this is a bug in the retriever.")
        frame = pd.concat([evidence_to_frame(evid[s], log, label, s) for s in SPLITS], ignore_index=True)
        with store.writing("retrieve", rkey, {"method": label}) as tmp:
            write_parquet(frame, tmp / "evidence.parquet")
        return evid


def _rank_variants(cfg: PipelineConfig, store: ArtifactStore, clock: StageClock, log: EventLog,
                   tables: dict[str, CandidateTable], evid: dict[str, list[Evidence]], comps: Components, method: str,
                   key: str, *, abducer: str | None = None, llm: str | None = None, retriever: str | None = None,
                   extra: dict[str, Any] | None = None, results: list[AbductionResult] | None = None,
                   with_no_ranker: bool = True) -> list[MethodRun]:
    retriever = retriever or cfg.retriever.name
    causes = {(r.query_id, r.candidate): list(r.causes) for r in results or []}
    ev_frame = evidence_to_frame(evid["test"], log, method, "test")
    ev_rows = {(e.query_id, e.candidate): e.event_indices.tolist() for e in evid["test"]}
    common: dict[str, Any] = {"abducer": abducer, "llm": llm, "retriever": retriever, "evidence": ev_frame,
                              "causes": causes, "evidence_rows": ev_rows}
    out = []
    if with_no_ranker or cfg.ranker is None or "rank" not in cfg.stages:
        order, keys = no_ranker_order(tables["test"], evid["test"])
        name = f"{method[:-1]},no_ranker]" if method.endswith("]") and method.startswith("lamp[") else f"{method}"
        out.append(MethodRun(name, apply_reorder(tables["test"], order, name, tie_keys=keys),
                             extra_metrics=dict(extra or {}), **common))
    if cfg.ranker is None or "rank" not in cfg.stages:
        return out
    rkey = stable_hash(key, comps.retriever_configs.get("main"), comps.ranker_config)
    with clock.stage(f"rank[{method}]") as st:
        if store.exists("rank", rkey):
            st.skipped = True
            folder = store.path("rank", rkey)
            order = np.load(folder / "order.npy", allow_pickle=False)
            tie_keys = np.load(folder / "tie_keys.npy", allow_pickle=False) if (folder / "tie_keys.npy").is_file() else None
            info = store.info("rank", rkey)
        else:
            order, tie_keys, info = comps.rank(log, tables, evid, seed=cfg.seed, progress=cfg.progress)
            with store.writing("rank", rkey, info) as tmp:
                np.save(tmp / "order.npy", order)
                if tie_keys is not None:
                    np.save(tmp / "tie_keys.npy", tie_keys)
                write_json(info, tmp / "ranker.json")
    metrics_extra = {**(extra or {}), **{f"ranker_{k}": v for k, v in info.items() if not isinstance(v, (list, dict))}}
    # lamp[x] and lamp[x,no_ranker] share one evidence table (labelled lamp[x]): only the first carries it
    ranked = {**common, "evidence": None} if out else common
    out.append(MethodRun(method, apply_reorder(tables["test"], order, method, tie_keys=tie_keys),
                         extra_metrics=metrics_extra, **ranked))
    return out
