"""Build a run's components from its typed config (or take ready instances from the Python API).

Every component is made by its interface's resolver (:mod:`lamp.components`); whether an abducer needs
the LLM is its class's ``uses_llm`` flag, never a list of names.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lamp.abduce.base import ABDUCERS, uses_llm
from lamp.data.eventlog import EventLog
from lamp.errors import ConfigError
from lamp.llm.types import describe_llm
from lamp.parallel import Executor, make_executor
from lamp.pipeline.config import Component, PipelineConfig
from lamp.rank import RANKERS
from lamp.retrieval import RETRIEVERS
from lamp.tpp.base import BaseModel
from lamp.tpp.factory import BASE_MODELS
from lamp.types import Abducer

logger = logging.getLogger(__name__)

USAGE_COUNTERS = ("calls", "cache_hits", "prompt_tokens", "completion_tokens", "failures", "wall_time_s")
RESCORE = ("none", "pmi")


@dataclass
class Components:
    """The built components of a run."""

    base_model: BaseModel
    abducers: dict[str, Abducer]
    retriever: Any
    ablation_retrievers: dict[str, Any]
    ranker: Any | None  # a ranking method (lamp.rank.RANKERS), or None: no learned ranker
    llm_client: Any = None
    executor: Executor = field(default_factory=Executor)  # where the per-query stages run (lamp.parallel)
    reused_usage: dict[str, float] = field(default_factory=dict)  # LLM usage paid by earlier runs (reused artifacts)

    @property
    def llm_id(self) -> str | None:
        if self.llm_client is None:
            return None
        d = describe_llm(self.llm_client)
        return f"{d['backend']}:{d['model_id']}"

    def uses_llm(self, abducer: str) -> bool:
        return bool(getattr(self.abducers[abducer], "uses_llm", False)) and self.llm_client is not None

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


def build_llm_client(llm: Mapping[str, Any]) -> Any:
    """An LLM client from a conf/llm group as a plain dict (``kind`` + backend and client options)."""
    from lamp.llm import build_client

    settings = dict(llm)
    kind = settings.pop("kind")
    return build_client(kind, **settings)


def build_abducer(comp: Component, client: Any, dataset: str) -> Abducer:
    """One abducer of a run; an LLM abducer gets the run's client and, without a prompt, its dataset's."""
    kwargs = dict(comp.params)
    if uses_llm(comp.name):
        kwargs["client"] = client
    abducer = ABDUCERS.make(comp.name, **kwargs)
    for_dataset = getattr(abducer, "for_dataset", None)
    if callable(for_dataset):
        for_dataset(dataset)
    return abducer


def build_components(cfg: PipelineConfig, log: EventLog, *, base_model: BaseModel | None = None,
                     abducers: dict[str, Abducer] | None = None, llm_client: Any = None,
                     retriever: Any = None) -> Components:
    """Every component of ``cfg``; instances passed in replace the ones the config names."""
    model = base_model or BASE_MODELS.make(cfg.base_model.name, **cfg.base_model.params)
    rescore = cfg.retriever.params.get("rescore") or "none"
    if rescore not in RESCORE:
        raise ConfigError(f"Invalid retriever.rescore {rescore!r}. Valid choices are: {', '.join(RESCORE)}")
    needs_llm = (not abducers and any(uses_llm(a.name) for a in cfg.abducers)) or rescore == "pmi"
    client = llm_client
    if needs_llm and client is None:
        if cfg.llm is None:
            names = [a.name for a in cfg.abducers if uses_llm(a.name)] or ["retriever.rescore=pmi"]
            raise ConfigError(f"{', '.join(names)} needs an LLM, but llm=none. Fix: choose llm=local|openai|... "
                              "or use abducer=rules.")
        client = build_llm_client(cfg.llm)
    built: dict[str, Abducer] = dict(abducers or {})
    if not abducers:
        for comp in cfg.abducers:
            built[comp.name] = build_abducer(comp, client, log.name)
    main_retriever = retriever or RETRIEVERS.make(cfg.retriever.name, **_retriever_params(cfg.retriever))
    if rescore == "pmi":
        from lamp.llm.likelihood import PMIScorer
        from lamp.retrieval.pmi import PMIRescorer

        main_retriever = PMIRescorer(main_retriever, PMIScorer(getattr(client, "backend", client)),
                                     keep=int(cfg.retriever.params.get("rescore_keep", 8)))
    ablations = {a: RETRIEVERS.make(a, **_ablation_params(cfg, a)) for a in cfg.ablations}
    ranker = None if cfg.ranker is None else RANKERS.make(cfg.ranker.name, **cfg.ranker.params)
    return Components(model, built, main_retriever, ablations, ranker, client, executor=make_executor(cfg.executor))


def _retriever_params(comp: Component) -> dict[str, Any]:
    return {k: v for k, v in comp.params.items() if k not in ("rescore", "rescore_keep")}


def _ablation_params(cfg: PipelineConfig, ablation: str) -> dict[str, Any]:
    """Ablations share the main retriever's evidence size (and embedding model) so they compare like
    with like; only the options an ablation's Settings has are passed."""
    accepted = {f.name for f in dataclasses.fields(RETRIEVERS.settings_class(ablation))}
    # effect_similarity asks one query per candidate, so it keeps its own top_k (= max_evidence)
    shared = ("max_evidence", "max_pool", "window", "model", "device", "batch_size", "precision", "seed") + \
        (() if ablation == "effect_similarity" else ("top_k",))
    return {k: v for k, v in cfg.retriever.params.items() if k in shared and k in accepted}
