"""Build a run's components from its typed config (or take ready instances from the Python API)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lamp.data.eventlog import EventLog
from lamp.errors import ConfigError
from lamp.pipeline.config import Component, PipelineConfig, default_prompt
from lamp.tpp.base import BaseModel, CandidateTable
from lamp.types import Abducer, Evidence

logger = logging.getLogger(__name__)

LLM_ABDUCERS = ("llm", "llm_rules", "pmi")
USAGE_COUNTERS = ("calls", "cache_hits", "prompt_tokens", "completion_tokens", "failures", "wall_time_s")


@dataclass
class Components:
    base_model: BaseModel
    abducers: dict[str, Abducer]
    abducer_configs: dict[str, Any]
    retriever: Any
    ablation_retrievers: dict[str, Any]
    retriever_configs: dict[str, Any]
    ranker_config: dict[str, Any] | None
    llm_client: Any = None
    llm_id: str | None = None
    rank_outcomes: dict[str, Any] = field(default_factory=dict)
    reused_usage: dict[str, float] = field(default_factory=dict)  # LLM usage paid by earlier runs (reused artifacts)

    def uses_llm(self, abducer: str) -> bool:
        return abducer in LLM_ABDUCERS and self.llm_client is not None

    def llm_usage(self) -> dict[str, Any]:
        if self.llm_client is None:
            return {}
        usage = self.llm_client.usage.to_dict()
        usage["model"] = self.llm_id
        if self.reused_usage:
            # abduction artifacts reused from an earlier run: their calls are not paid again, but say what they cost
            usage["reused_from_artifacts"] = dict(self.reused_usage)
        return dict(usage)

    def usage_snapshot(self) -> dict[str, float]:
        """The client's running counters (subtract two snapshots for what one stage paid)."""
        if self.llm_client is None:
            return {}
        u = self.llm_client.usage
        return {k: getattr(u, k) for k in USAGE_COUNTERS}

    def add_reused(self, usage: Mapping[str, float]) -> None:
        for k in USAGE_COUNTERS:
            self.reused_usage[k] = self.reused_usage.get(k, 0) + usage.get(k, 0)

    def rank(self, log: EventLog, tables: dict[str, CandidateTable], evid: Mapping[str, Sequence[Evidence]], *,
             seed: int, progress: bool) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
        """Train the ranker on the valid queries; return the test order, its tie keys and what it learned."""
        from lamp.rank.stage import rank_top_m

        params = dict(self.ranker_config or {})
        outcome = rank_top_m(log, tables, dict(evid), seed=seed, progress=progress, **params)
        return outcome.order, outcome.tie_keys, dict(outcome.info)


def _abducer_kwargs(comp: Component, client: Any, dataset: str) -> dict[str, Any]:
    """Keyword arguments of an abducer; an LLM abducer without a prompt gets its dataset family's."""
    params = dict(comp.params)
    if comp.name in ("llm", "llm_rules"):
        from lamp.abduce.llm_abducer import LLMAbducer

        llm_params = dict(params if comp.name == "llm" else params.get("llm") or {})
        if llm_params.get("prompt") is None:
            llm_params["prompt"] = str(default_prompt(dataset))
        if comp.name == "llm":
            return {"_instance": LLMAbducer.from_config(client, llm_params)}
        params["llm"] = LLMAbducer.from_config(client, llm_params)
    if comp.name == "pmi":
        params["backend"] = getattr(client, "backend", client)
    return params


def build_llm_client(llm: dict[str, Any]) -> Any:
    from lamp.llm import build_client

    settings = dict(llm)
    kind = settings.pop("kind")
    return build_client(kind, **settings)


def build_components(cfg: PipelineConfig, log: EventLog, *, base_model: BaseModel | None = None,
                     abducers: dict[str, Abducer] | None = None, llm_client: Any = None,
                     retriever: Any = None) -> Components:
    """Every component of ``cfg``; instances passed in replace the ones the config names."""
    from lamp.abduce.base import build_abducer
    from lamp.retrieval import build_retriever
    from lamp.tpp.factory import build_base_model

    model = base_model or build_base_model(cfg.base_model.name, **cfg.base_model.params)
    rescore = cfg.retriever.params.get("rescore")
    if rescore not in (None, "none", "pmi"):
        raise ConfigError(f"Invalid retriever.rescore {rescore!r}. Valid choices are: none, pmi")
    needs_llm = (any(a.name in LLM_ABDUCERS for a in cfg.abducers) and not abducers) or rescore == "pmi"
    client = llm_client
    if needs_llm and client is None:
        if cfg.llm is None:
            raise ConfigError("abducer 'llm' needs an LLM, but llm=none. Fix: choose llm=local|openai|... "
                              "or use abducer=rules.")
        client = build_llm_client(cfg.llm)
    built: dict[str, Abducer] = dict(abducers or {})
    configs: dict[str, Any] = {name: type(a).__name__ for name, a in built.items()}
    if not abducers:
        for comp in cfg.abducers:
            kwargs = _abducer_kwargs(comp, client, log.name)
            built[comp.name] = kwargs.pop("_instance", None) or build_abducer(comp.name, **kwargs)
            configs[comp.name] = comp.params
    retriever_params = {k: v for k, v in cfg.retriever.params.items() if k not in ("rescore", "rescore_keep")}
    main_retriever = retriever or build_retriever(cfg.retriever.name, **retriever_params)
    if rescore == "pmi":
        from lamp.llm.likelihood import PMIScorer
        from lamp.retrieval.pmi import PMIRescorer

        main_retriever = PMIRescorer(main_retriever, PMIScorer(getattr(client, "backend", client)),
                                     keep=int(cfg.retriever.params.get("rescore_keep", 8)))
    ablations = {a: build_retriever(a, **_ablation_params(cfg, a)) for a in cfg.ablations}
    # keyed with the embedding cache's key too: it names the model and the resolved precision
    retriever_configs: dict[str, Any] = {"main": [cfg.retriever.name, cfg.retriever.params, _embedding_key(main_retriever)]}
    retriever_configs.update({a: [a, _ablation_params(cfg, a), _embedding_key(ablations[a])] for a in cfg.ablations})
    llm_id = None
    if client is not None:
        backend = getattr(client, "backend", client)
        llm_id = f"{getattr(backend, 'name', 'llm')}:{getattr(backend, 'model_id', '?')}"
    ranker = None if cfg.ranker is None else dict(cfg.ranker.params)
    return Components(model, built, configs, main_retriever, ablations, retriever_configs, ranker, client, llm_id)


def _embedding_key(retriever: Any) -> str | None:
    emb = getattr(retriever, "embeddings", None)
    return getattr(getattr(emb, "encoder", None), "key", None)


def _ablation_params(cfg: PipelineConfig, ablation: str) -> dict[str, Any]:
    """Ablations share the main retriever's evidence size (and embedding model) so they compare like
    with like; only the options an ablation accepts are passed."""
    import inspect

    from lamp.retrieval import RETRIEVERS

    module, cls = RETRIEVERS[ablation]
    klass = getattr(__import__(module, fromlist=[cls]), cls)
    accepted: set[str] = set()
    for k in klass.__mro__:
        init = k.__dict__.get("__init__")
        if init is not None:
            accepted |= {p.name for p in inspect.signature(init).parameters.values()
                         if p.kind is inspect.Parameter.KEYWORD_ONLY}
    # effect_similarity asks one query per candidate, so it keeps its own top_k (= max_evidence)
    shared = ("max_evidence", "max_pool", "window", "model", "device", "batch_size", "precision", "seed") + \
        (() if ablation == "effect_similarity" else ("top_k",))
    return {k: v for k, v in cfg.retriever.params.items() if k in shared and k in accepted}
