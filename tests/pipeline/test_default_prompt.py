"""LLM abducers configured without a prompt get their dataset family's; a saved bundle keeps the prompt whole."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from lamp.abduce.prompts import load_prompt_spec
from lamp.errors import ConfigError
from lamp.pipeline.components import _abducer_kwargs
from lamp.pipeline.config import Component, conf_dir
from lamp.pipeline.predictor import _stored_abducer


@pytest.mark.parametrize(("dataset", "family"), [("icews14", "icews"), ("icews18", "icews"), ("gdelt", "gdelt"),
                                                 ("amazon-instruments", "amazon"), ("amazon-fashion", "amazon")])
def test_the_python_api_picks_the_dataset_familys_prompt(dataset: str, family: str) -> None:
    llm = _abducer_kwargs(Component("llm"), None, dataset)["_instance"]
    assert llm.prompt.name == family
    combined = _abducer_kwargs(Component("llm_rules", {"llm": {"num_causes": 1}}), None, dataset)
    assert combined["llm"].prompt.name == family and combined["llm"].num_causes == 1
    given = _abducer_kwargs(Component("llm", {"prompt": str(conf_dir() / "prompt" / "gdelt.yaml")}), None, dataset)
    assert given["_instance"].prompt.name == "gdelt"  # an explicit prompt always wins


def test_a_dataset_without_a_written_prompt_asks_for_one() -> None:
    with pytest.raises(ConfigError, match="Fix: give the LLM abducer a prompt"):
        _abducer_kwargs(Component("llm"), None, "my-sensor-log")


@pytest.mark.parametrize(("overrides", "family"), [([], "icews"), (["dataset=icews18"], "icews"),
                                                   (["dataset=gdelt"], "gdelt"), (["dataset=amazon"], "amazon"),
                                                   (["dataset=gdelt", "prompt=icews"], "icews")])
def test_the_hydra_app_picks_the_dataset_familys_prompt(overrides: list[str], family: str) -> None:
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    assert cfg.prompt.name == family and cfg.abducer.prompt.name == family


def test_a_bundle_stores_the_prompt_itself_not_a_path() -> None:
    ab = Component("llm", {"prompt": str(conf_dir() / "prompt" / "gdelt.yaml"), "num_causes": 1})
    built = _abducer_kwargs(ab, None, "gdelt")["_instance"]
    stored = _stored_abducer(ab, built)
    assert isinstance(stored["params"]["prompt"], dict) and stored["params"]["num_causes"] == 1
    # rebuilt with no dataset name and no prompt file: the same prompt
    again = _abducer_kwargs(Component("llm", stored["params"]), None, "")["_instance"]
    assert again.prompt == built.prompt == load_prompt_spec(conf_dir() / "prompt" / "gdelt.yaml")
