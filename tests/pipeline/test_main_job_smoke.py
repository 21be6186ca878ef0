"""Smoke runs of the README's main job on a handful of queries: real data, the real local LLM,
the real embedding model, the rules abducer, the ranker; then a rerun that pays for nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from lamp.cli.main import main

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def _module_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lamp-cache")


@pytest.fixture(autouse=True)
def _own_cache(_module_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # artifacts and the LLM cache live under LAMP_CACHE_DIR, shared by this module's runs so the
    # LLM run reuses the base model, mined rules and ablations of the rules-only run
    monkeypatch.setenv("LAMP_CACHE_DIR", str(_module_cache))


def _run(tmp_path: Path, name: str, *overrides: str) -> Path:
    run_dir = tmp_path / name
    code = main(["run", "experiment=smoke", f"hydra.run.dir={run_dir}", *overrides])
    assert code == 0
    return run_dir


def _methods(run_dir: Path) -> set[str]:
    return {r["method"] for r in json.loads((run_dir / "metrics.json").read_text())}


def test_rules_only_pipeline_writes_every_output(data_dir: Path, tmp_path: Path) -> None:
    run_dir = _run(tmp_path, "rules", "llm=none", "retriever=fuzzy")
    for name in ("metrics.json", "predictions.parquet", "evidence.parquet", "llm_usage.json", "timings.json",
                 "cost.json", "report.md", "report.html"):
        assert (run_dir / name).is_file(), name
    assert json.loads((run_dir / "cost.json").read_text())["outside_llm_share"] is None  # no LLM in this run
    assert _methods(run_dir) >= {"base:rules", "lamp[rules]", "lamp[rules,no_ranker]", "ablation:random",
                                 "ablation:recent", "ablation:effect_similarity"}
    rows = json.loads((run_dir / "metrics.json").read_text())
    assert all(r["n_queries"] > 0 and r["tie_rule"] == "average" for r in rows)
    # the report names the valid queries the ranker learned from (gold in the top-M), not the sample size
    ranked = next(r for r in rows if r["method"] == "lamp[rules]")
    assert ranked["ranker_train_used"] + ranked["ranker_skipped_train"] == ranked["ranker_train_part"]
    assert (f"trained on {ranked['ranker_train_used']} valid queries and early-stopped on "
            f"{ranked['ranker_stop_used']}") in (run_dir / "report.md").read_text()
    evidence = pd.read_parquet(run_dir / "evidence.parquet")
    assert len(evidence) > 0
    assert not evidence.duplicated(["method", "split", "query_id", "candidate", "position"]).any()
    assert (evidence["event_time"] < evidence["query_time"]).all()  # nothing at or after the query time
    preds = pd.read_parquet(run_dir / "predictions.parquet")
    assert set(preds["method"]) == _methods(run_dir)


def test_report_of_a_run_leads_with_the_choice_on_valid_and_renders_in_chromium(
        data_dir: Path, tmp_path: Path, chromium_render: Any) -> None:
    run_dir = _run(tmp_path, "html", "llm=none", "retriever=fuzzy")  # the rules-only run again: stages reused
    report = (run_dir / "report.md").read_text()
    assert report.splitlines()[2].startswith(("**Best on valid: ", "**Shown: "))  # right below the title
    assert "paired bootstrap" in report.splitlines()[2]
    explained = report[report.index("## Explanations"):]
    assert "### lamp[rules]" in explained and re.search(r"base #\d( → #\d, (up|down) \d|, unchanged)", explained)
    page = (run_dir / "report.html").read_text()
    seen = chromium_render(run_dir / "report.html")
    assert seen["headings"][0].startswith("lamp run: icews14") and "Explanations" in seen["headings"]
    assert len(seen["tables"]) == page.count("<table>") >= 3  # results, selection on valid, timings
    assert all(t["rows"] > 1 and t["cells"] > 1 and t["height"] > 0 for t in seen["tables"])
    assert len(seen["images"]) == 2 and all(i["width"] > 0 and i["shown"] > 0 for i in seen["images"])
    assert seen["resources"] == []  # every plot inline: nothing fetched


@pytest.mark.real_llm
def test_main_job_smoke_with_local_llm_then_free_rerun(data_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (bash .ci/setup builds it)")
    first = _run(tmp_path, "first", "abducer.mode=batched")
    assert {"lamp[llm]", "lamp[rules]", "base:rules"} <= _methods(first)
    usage = json.loads((first / "llm_usage.json").read_text())
    assert usage["calls"] > 0 and usage["calls"] <= 12
    cost = json.loads((first / "cost.json").read_text())
    assert 0 < cost["outside_llm_share"] < 1 and cost["llm_stage_s"] > 0
    assert cost["llm_calls_per_query"] == pytest.approx(usage["calls"] / cost["queries"], abs=1e-3)
    assert "outside the LLM stages" in (first / "report.md").read_text()
    second = _run(tmp_path, "second", "abducer.mode=batched")
    usage2 = json.loads((second / "llm_usage.json").read_text())
    assert usage2["calls"] == 0  # every stage and every LLM call reused
    reused = usage2["reused_from_artifacts"]  # ... and the report still says what the reused abduction cost
    assert reused["calls"] == usage["calls"] and reused["prompt_tokens"] == usage["prompt_tokens"]
    timings = json.loads((second / "timings.json").read_text())
    assert all(t["skipped"] for t in timings if t["stage"].startswith(("base", "abduce", "retrieve", "rank")))
    assert json.loads((second / "cost.json").read_text())["outside_llm_share"] is None  # its LLM stage was reused
    assert json.loads((first / "metrics.json").read_text()) == json.loads((second / "metrics.json").read_text())


@pytest.mark.real_llm
def test_pmi_abducer_and_pmi_rescored_retrieval_end_to_end(data_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (bash .ci/setup builds it)")
    run_dir = tmp_path / "pmi"
    code = main(["run", "abducer=pmi", "extra_abducers=[]", "ablations=[]", "queries.n_test=2", "queries.n_valid=4",
                 "candidates.top_m=3", "retriever=fuzzy", "retriever.max_evidence=3",
                 "+retriever.rescore=pmi", "+retriever.rescore_keep=2", "abducer.candidates=2", "abducer.max_causes=2",
                 "progress=false",
                 "n_explanations=1", f"hydra.run.dir={run_dir}"])
    assert code == 0
    assert {"lamp[pmi]", "lamp[pmi,no_ranker]", "base:rules"} <= _methods(run_dir)
    evidence = pd.read_parquet(run_dir / "evidence.parquet")
    assert len(evidence) and (evidence.groupby(["method", "query_id", "candidate"]).size() <= 2).all()  # rescore_keep
    assert (evidence["event_time"] < evidence["query_time"]).all()
    timings = {t["stage"]: t for t in json.loads((run_dir / "timings.json").read_text())}
    assert timings["abduce[pmi]"]["llm"] and timings["retrieve[pmi]"]["llm"]  # PMI re-scoring calls the LLM too


def test_python_api_without_hydra(data_dir: Path, tmp_path: Path, _module_cache: Path) -> None:
    import lamp

    result = lamp.run(dataset="icews14", abducers=[], retriever="fuzzy", ablations=["recent"], top_m=3,
                      n_test_queries=6, n_valid_queries=9, ranker={"name": "energy", "epochs": 2},
                      run_dir=str(tmp_path / "api"), artifacts_dir=str(_module_cache / "artifacts"))
    methods = {r["method"] for r in result.metrics}
    assert methods == {"base:recurrency", "ablation:recent"}
    both = [r for r in result.metrics if r["direction"] == "both"]
    assert all(r["n_queries"] == 6 and r["split"] == "test" and r["top_m"] == 3 for r in both)
    assert (tmp_path / "api" / "report.md").read_text().startswith("# lamp run: icews14")
    assert result.cost["queries"] == 15 and result.cost["outside_llm_share"] is None
