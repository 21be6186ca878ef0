"""Every conf/retriever and conf/ranker YAML builds its component (models load lazily: nothing heavy)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import yaml

from lamp.rank.ranker import EnergyRanker
from lamp.rank.stage import rank_top_m
from lamp.retrieval import RETRIEVERS, build_retriever

CONF = Path(__file__).resolve().parents[2] / "conf"


@pytest.mark.parametrize("kind", sorted(RETRIEVERS))
def test_every_retriever_has_a_config_that_builds(kind: str) -> None:
    config = yaml.safe_load((CONF / "retriever" / f"{kind}.yaml").read_text())
    assert config["name"] == kind
    retriever = build_retriever(kind, **config)
    assert retriever.name == kind


def test_ranker_configs() -> None:
    energy = yaml.safe_load((CONF / "ranker" / "energy.yaml").read_text())
    assert energy.pop("name") == "energy"
    stage_args = set(inspect.signature(rank_top_m).parameters)
    hparams = {k: v for k, v in energy.items() if k not in stage_args}
    ranker = EnergyRanker(10, 4, **hparams)
    assert ranker.hparams["max_evidence"] == energy["max_evidence"]
    assert yaml.safe_load((CONF / "ranker" / "none.yaml").read_text()) == {"name": "none"}
