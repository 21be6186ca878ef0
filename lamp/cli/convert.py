"""DictConfig -> typed PipelineConfig. DictConfig goes no further than lamp/cli/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lamp.errors import ConfigError
from lamp.pipeline.config import Component, PipelineConfig


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def _component(node: Any, key: str = "name") -> Component | None:
    data = dict(_plain(node) or {})
    name = data.pop(key, None) or data.pop("kind", None)
    if name in (None, "none"):
        return None
    return Component(str(name), data)


def _extra_abducer(cfg: DictConfig, name: str) -> Component:
    """An extra abducer from ``abducers.<name>`` (composed by Hydra from conf/abducer/<name>.yaml)."""
    node = (cfg.get("abducers") or {}).get(name)
    if node is None:
        valid = sorted((cfg.get("abducers") or {}).keys())
        raise ConfigError(f"Invalid extra_abducers entry: {name!r}. Valid choices are: {', '.join(valid)}")
    comp = _component(node)
    assert comp is not None
    return comp


def to_pipeline_config(cfg: DictConfig, *, run_dir: str | Path) -> PipelineConfig:
    """Build the typed config of one run from the composed Hydra config."""
    main = _component(cfg.abducer)
    abducers = [main] if main else []
    for name in cfg.get("extra_abducers") or []:
        if name not in [a.name for a in abducers]:
            abducers.append(_extra_abducer(cfg, str(name)))
    llm = _plain(cfg.get("llm"))
    if not llm or llm.get("kind") in (None, "none"):
        llm = None
        from lamp.abduce.base import uses_llm

        abducers = [a for a in abducers if not uses_llm(a.name)]
    base = _component(cfg.base_model)
    retriever = _component(cfg.retriever)
    if base is None or retriever is None:
        raise ConfigError("base_model and retriever must name a component (base_model=recurrency, retriever=hybrid)")
    return PipelineConfig(
        dataset=str(cfg.dataset.name),
        data_dir=cfg.dataset.get("data_dir"),
        dataset_format=cfg.dataset.get("format"),
        task=str(cfg.task.name),
        directions=str(cfg.task.get("directions", "object")),
        top_m=int(cfg.candidates.top_m),
        n_test_queries=cfg.queries.n_test,
        n_valid_queries=cfg.queries.n_valid,
        seed=int(cfg.queries.seed),
        base_model=base,
        abducers=tuple(abducers),
        llm=llm,
        retriever=retriever,
        ablations=tuple(cfg.get("ablations") or ()),
        ranker=_component(cfg.ranker),
        train_evidence=str(cfg.get("train_evidence", "own")),
        stages=tuple(cfg.stages),
        artifacts_dir=str(cfg.artifacts_dir),
        run_dir=str(run_dir),
        progress=bool(cfg.progress),
        n_explanations=int(cfg.get("n_explanations", 3)),
        executor=_plain(cfg.get("executor")) or "local",
    )
