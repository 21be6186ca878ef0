"""Every Hydra config composes, and converts to a valid PipelineConfig (a broken YAML fails CI)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from lamp.cli.convert import to_pipeline_config
from lamp.cli.schemas import register_schemas
from lamp.pipeline.config import PipelineConfig, conf_dir

register_schemas()  # the Settings dataclasses the YAML files extend (lamp run does this too)

CONF = conf_dir()
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
GROUP_OPTIONS = [(g, p.stem) for g in ("dataset", "task", "base_model", "abducer", "llm", "prompt", "retriever", "ranker")
                 for p in sorted((CONF / g).glob("*.yaml"))]


def _compose(overrides: list[str]) -> PipelineConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    return to_pipeline_config(cfg, run_dir="/tmp/unused")


def test_default_is_the_main_job() -> None:
    cfg = _compose([])
    assert cfg.dataset == "icews14" and cfg.top_m == 5 and cfg.n_test_queries == 200
    assert [a.name for a in cfg.abducers] == ["llm", "rules", "llm_rules"]
    assert cfg.llm is not None and cfg.llm["budget"]["max_calls"] == 300
    assert cfg.ranker is not None and cfg.ranker.name == "lightgbm" and cfg.retriever.name == "hybrid"
    assert cfg.base_model.name == "rules"  # the strongest base that fits the main job's time (issue 17)
    assert cfg.n_valid_queries is None and cfg.train_evidence == "rules"  # rankers learn from every valid query


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes(experiment: str) -> None:
    cfg = _compose([f"experiment={experiment}"])
    assert cfg.stages


@pytest.mark.parametrize(("group", "option"), GROUP_OPTIONS)
def test_group_option_composes(group: str, option: str) -> None:
    overrides = [f"{group}={option}"]
    if group == "dataset" and option == "custom":
        overrides.append("dataset.name=/some/folder")
    cfg = _compose(overrides)
    assert isinstance(cfg, PipelineConfig)


def test_llm_none_drops_llm_abducers() -> None:
    cfg = _compose(["llm=none"])
    assert cfg.llm is None
    assert [a.name for a in cfg.abducers] == ["rules"]
    assert [a.name for a in _compose(["llm=none", "abducer=pmi"]).abducers] == ["rules"]


def test_llm_rules_asks_the_same_llm_calls_as_the_llm_abducer() -> None:
    # the main job compares lamp[llm] and lamp[llm_rules] without paying twice: same LLM settings
    cfg = _compose([])
    by_name = {a.name: a.params for a in cfg.abducers}
    inner = dict(by_name["llm_rules"]["llm"])
    assert {k: v for k, v in by_name["llm"].items() if k != "name"} == inner


def test_sweep_values_compose() -> None:
    for m in (5, 10, 20):
        assert _compose([f"candidates.top_m={m}"]).top_m == m


def test_no_api_key_in_configs(tmp_path: Path) -> None:
    for path in CONF.rglob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        assert "sk-" not in text, f"{path} looks like it holds an API key"


def _resolver_options() -> list[tuple[str, str]]:
    from lamp.cli.schemas import resolvers

    return [(r.conf_group, name) for r in resolvers() for name in r.choices]


class _OfflineLM:
    """Stands in for an LLM backend where a component is only built, never run."""

    name, model_id, context_length = "offline", "offline-1", 4096

    def loglikelihood(self, context: str, continuation: str) -> float:
        return 0.0

    def count_tokens(self, text: str) -> int:
        return len(text.split())


@pytest.mark.parametrize(("group", "name"), _resolver_options())
def test_every_registered_component_has_a_config_that_builds_it(group: str, name: str) -> None:
    """The registry and conf/ agree, and the composed YAML (the Settings dataclass's defaults plus the file's
    overrides) builds the component, lazily (no model loads), with a cache key."""
    from omegaconf import OmegaConf

    from lamp.cli.schemas import resolvers

    resolver = next(r for r in resolvers() if r.conf_group == group)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        node = compose(config_name="config", overrides=[f"{group}={name}"])[group]
    options = OmegaConf.to_container(node, resolve=True)
    assert isinstance(options, dict) and options.pop("name") == name
    if getattr(resolver.lookup(name), "uses_llm", False):
        options["client"] = _OfflineLM()
    component = resolver.make(name, **options)
    assert component.name == name and len(component.cache_key()) == 16


@pytest.mark.parametrize("group", ["base_model", "abducer", "retriever", "ranker"])
def test_every_config_file_names_a_registered_component(group: str) -> None:
    from lamp.cli.schemas import resolvers

    resolver = next(r for r in resolvers() if r.conf_group == group)
    names = {p.stem for p in (CONF / group).glob("*.yaml")} - {"none"}
    assert names == set(resolver.choices)
