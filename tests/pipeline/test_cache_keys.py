"""Every component describes itself: complete cache keys, exactly the changed step reruns, and both drivers
(``lamp.run`` / ``lamp run`` and ``lamp.Pipeline``) give the same numbers, on real ICEWS14.

Each run is small (a few queries, M=3, rules abduction, fuzzy retrieval, a 1-epoch ranker); what is checked
is which steps a run reuses from the shared artifact store and which it computes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import lamp
from lamp.data.eventlog import EventLog
from lamp.llm import Budget, LLMCache, LLMClient
from lamp.llm.types import LLMRequest, LLMResponse
from lamp.pipeline.config import conf_dir
from lamp.tpp.recurrency import RecurrencyBaseline

pytestmark = [pytest.mark.slow]

SMALL: dict[str, Any] = {"dataset": "icews14", "top_m": 3, "n_test_queries": 6, "n_valid_queries": 24,
                         "abducers": ["rules"], "retriever": {"name": "fuzzy", "top_k": 3},
                         "ablations": (), "ranker": {"name": "energy", "epochs": 1}}


class EmptyAnswers:
    """An LLM backend that answers every call with an empty JSON object (enough to run the abduce step)."""

    name = "scripted"
    model_id = "empty-1"
    context_length = 32_000

    def generate(self, requests: Sequence[LLMRequest]) -> list[LLMResponse]:
        return [LLMResponse("{}", 10, 2, False, 0.0) for _ in requests]

    def count_tokens(self, text: str) -> int:
        return len(text.split())


def _computed(result: Any) -> set[str]:
    """The stages a run computed (not reused from the artifact store)."""
    return {t["stage"] for t in result.timings if not t["skipped"] and t["stage"] not in ("data", "eval")}


def _run(tmp: Path, name: str, **over: Any) -> Any:
    kw = {**SMALL, **over}
    return lamp.run(**kw, run_dir=str(tmp / name), artifacts_dir=str(tmp / "artifacts"))


def _mrr(result: Any, method: str) -> float:
    return next(r["mrr_filtered"] for r in result.metrics if r["method"] == method and r["direction"] == "object")


def test_two_differently_configured_instances_get_two_results(tmp_path: Path) -> None:
    # at 0a921c2 both runs read MRR .1621: the second instance got the first one's artifact
    plain = _run(tmp_path, "a", base_model=RecurrencyBaseline(lmbda=0.0, alpha=0.0), n_test_queries=60)
    other = _run(tmp_path, "b", base_model=RecurrencyBaseline(lmbda=1.0, alpha=0.99), n_test_queries=60)
    assert "base" in _computed(other)
    assert _mrr(plain, "base:recurrency") != _mrr(other, "base:recurrency")
    again = _run(tmp_path, "c", base_model=RecurrencyBaseline(lmbda=1.0, alpha=0.99), n_test_queries=60)
    assert "base" not in _computed(again) and _mrr(again, "base:recurrency") == _mrr(other, "base:recurrency")


def test_changing_one_setting_reruns_exactly_that_step_and_the_ones_after_it(tmp_path: Path) -> None:
    first = _run(tmp_path, "first")
    assert _computed(first) == {"base", "abduce[rules]", "retrieve[rules]", "rank[lamp[rules]]"}
    assert _computed(_run(tmp_path, "same")) == set()
    cases = {
        "base": {"base_model": {"name": "recurrency", "lmbda": 0.1}},
        "abduce[rules]": {"abducers": [{"name": "rules", "max_causes": 4}]},
        "retrieve[rules]": {"retriever": {"name": "fuzzy", "top_k": 2}},
        "rank[lamp[rules]]": {"ranker": {"name": "energy", "epochs": 1, "dim": 32}},
    }
    order = ["base", "abduce[rules]", "retrieve[rules]", "rank[lamp[rules]]"]
    for step, change in cases.items():
        computed = _computed(_run(tmp_path, f"change-{step}", **change))
        assert computed == set(order[order.index(step):]), (step, computed)
    # a setting that changes no output (a progress bar, thread counts) reruns nothing
    assert _computed(_run(tmp_path, "threads", abducers=[{"name": "rules", "n_jobs": 1}])) == set()


def test_the_prompt_text_is_part_of_the_abduction_key(tmp_path: Path) -> None:
    prompt = tmp_path / "icews_copy.yaml"
    shutil.copy(conf_dir() / "prompt" / "icews.yaml", prompt)
    client = LLMClient(EmptyAnswers(), LLMCache(tmp_path / "llm.sqlite"))
    llm_run = {"abducers": [{"name": "llm", "prompt": str(prompt), "n_shots": 0}], "llm": client}
    assert "abduce[llm]" in _computed(_run(tmp_path, "p1", **llm_run))
    assert _computed(_run(tmp_path, "p2", **llm_run)) == set()
    prompt.write_text(prompt.read_text().replace("Prefer events involving the same actors.",
                                                 "Prefer events involving the same actors, and recent ones.", 1))
    assert _computed(_run(tmp_path, "p3", **llm_run)) == {"abduce[llm]", "retrieve[llm]", "rank[lamp[llm]]"}


def test_answers_that_failed_are_never_cached_as_answers(tmp_path: Path) -> None:
    # a budget of 2 calls for 30 queries (one batched call each): the rest are skipped by the budget
    tight = LLMClient(EmptyAnswers(), LLMCache(tmp_path / "llm.sqlite"), Budget(max_calls=2))
    abducers = [{"name": "llm", "prompt": "icews", "n_shots": 0}]
    _run(tmp_path, "budget", abducers=abducers, llm=tight)
    assert tight.usage.calls == 2 and tight.usage.budget_stopped
    assert not list((tmp_path / "artifacts").glob("abduce/*/_done.json"))  # no answers cached as "no causes"
    full = LLMClient(EmptyAnswers(), LLMCache(tmp_path / "llm.sqlite"))
    assert "abduce[llm]" in _computed(_run(tmp_path, "again", abducers=abducers, llm=full))
    assert full.usage.cache_hits == 2 and full.usage.calls == 28  # the paid calls are not paid again
    assert len(list((tmp_path / "artifacts").glob("abduce/*/_done.json"))) == 2  # valid and test, now complete


def test_the_python_api_and_the_cli_give_identical_metrics(tmp_path: Path) -> None:
    api = _run(tmp_path, "api")
    cli = [sys.executable, "-m", "lamp.cli.main", "run", "experiment=rules_only", "dataset=icews14",
           "candidates.top_m=3", "queries.n_test=6", "queries.n_valid=24", "retriever=fuzzy", "retriever.top_k=3",
           "ablations=[]", "base_model=recurrency", "ranker=energy", "ranker.epochs=1", "progress=false",
           f"hydra.run.dir={tmp_path / 'cli'}",
           f"artifacts_dir={tmp_path / 'cli-artifacts'}"]
    out = subprocess.run(cli, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    cli_rows = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    keys = ("method", "direction", "mrr_filtered", "mean_rank_top_m", "hits_at_1", "hits_at_3", "hits_at_10")
    assert [{k: r[k] for k in keys} for r in cli_rows] == [{k: r[k] for k in keys} for r in api.metrics]


def test_a_fitted_pipeline_predicts_what_the_run_ranked(tmp_path: Path, icews14: EventLog) -> None:
    result = _run(tmp_path, "run")
    pipe = lamp.Pipeline.fit(icews14, abducer="rules", retriever={"name": "fuzzy", "top_k": 3},
                             ranker={"name": "energy", "epochs": 1}, top_m=3, n_valid_queries=24,
                             artifacts_dir=str(tmp_path / "pipe-artifacts"))  # its own store: nothing reused
    preds = pd.read_parquet(result.run_dir / "predictions.parquet")
    queries = next(m for m in result.methods if m.method == "lamp[rules]").table.queries.frame
    for _, q in queries.iterrows():
        ranked = preds[(preds["method"] == "lamp[rules]") & (preds["query_id"] == q["query_id"])]
        # the kept history (the whole log): predict reads only the events strictly before the query time
        pred = pipe.predict(icews14.entities.name(int(q["subject"])), icews14.relations.name(int(q["relation"])),
                            float(q["time"]))
        assert [c.entity for c in pred.candidates] == [icews14.entities.name(int(c)) for c in ranked["candidate"]]


def test_an_abducer_that_needs_an_llm_gets_the_default_one(tmp_path: Path) -> None:
    # lamp.run(abducers=["pmi"]) used to get no LLM and fail: whether an abducer needs one is its class's flag
    result = lamp.run(dataset="icews14", abducers=["pmi"], stages=["data"], run_dir=str(tmp_path / "r"),
                      artifacts_dir=str(tmp_path / "a"))
    assert result.config["llm"]["kind"] == "local" and result.config["llm"]["budget"]["max_calls"] == 300
