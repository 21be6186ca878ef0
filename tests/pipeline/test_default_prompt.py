"""LLM abducers configured without a prompt get their dataset family's; a saved abducer keeps the prompt whole."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from lamp.abduce.llm_abducer import LLMAbducer
from lamp.abduce.prompts import load_prompt_spec
from lamp.cli.schemas import register_schemas
from lamp.errors import ConfigError
from lamp.pipeline.components import build_abducer
from lamp.pipeline.config import Component, conf_dir

register_schemas()  # the Settings dataclasses the YAML files extend (lamp run does this too)


@pytest.mark.parametrize(("dataset", "family"), [("icews14", "icews"), ("icews18", "icews"), ("gdelt", "gdelt"),
                                                 ("amazon-instruments", "amazon"), ("amazon-fashion", "amazon")])
def test_the_python_api_picks_the_dataset_familys_prompt(dataset: str, family: str) -> None:
    llm = build_abducer(Component("llm"), None, dataset)
    assert llm.prompt.name == family  # type: ignore[attr-defined]
    combined = build_abducer(Component("llm_rules", {"llm": {"num_causes": 1}}), None, dataset)
    assert combined.llm.prompt.name == family and combined.llm.num_causes == 1  # type: ignore[attr-defined]
    given = build_abducer(Component("llm", {"prompt": str(conf_dir() / "prompt" / "gdelt.yaml")}), None, dataset)
    assert given.prompt.name == "gdelt"  # type: ignore[attr-defined]  # an explicit prompt always wins
    assert build_abducer(Component("llm", {"prompt": "gdelt"}), None, dataset).prompt.name == "gdelt"  # type: ignore[attr-defined]


def test_a_dataset_without_a_written_prompt_asks_for_one() -> None:
    with pytest.raises(ConfigError, match="Fix: give the LLM abducer a prompt"):
        build_abducer(Component("llm"), None, "my-sensor-log")


@pytest.mark.parametrize(("overrides", "family"), [([], "icews"), (["dataset=icews18"], "icews"),
                                                   (["dataset=gdelt"], "gdelt"), (["dataset=amazon"], "amazon"),
                                                   (["dataset=gdelt", "prompt=icews"], "icews")])
def test_the_hydra_app_picks_the_dataset_familys_prompt(overrides: list[str], family: str) -> None:
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    assert cfg.prompt.name == family and cfg.abducer.prompt.name == family


def test_a_saved_abducer_stores_the_prompt_itself_not_a_path(tmp_path) -> None:  # type: ignore[no-untyped-def]
    built = build_abducer(Component("llm", {"prompt": str(conf_dir() / "prompt" / "gdelt.yaml"), "num_causes": 1}),
                          None, "gdelt")
    built.save(tmp_path / "ab")  # type: ignore[attr-defined]
    assert "gdelt.yaml" not in (tmp_path / "ab" / "component.json").read_text()
    # loaded with no dataset name and no prompt file: the same prompt and settings
    again = LLMAbducer.load(tmp_path / "ab", client=None)
    assert again.prompt == built.prompt == load_prompt_spec(conf_dir() / "prompt" / "gdelt.yaml")  # type: ignore[attr-defined]
    assert again.num_causes == 1 and again.cache_key() == built.cache_key()  # type: ignore[attr-defined]
