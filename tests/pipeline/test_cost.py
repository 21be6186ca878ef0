"""The run's cost summary: per-query LLM cost and the share of wall time outside the LLM stages."""

from __future__ import annotations

import pytest

from lamp.pipeline.timing import cost_line, cost_summary

TIMINGS = [
    {"stage": "data", "wall_time_s": 1.0, "skipped": False},
    {"stage": "abduce[llm]", "wall_time_s": 90.0, "skipped": False, "llm": True},
    {"stage": "abduce[rules]", "wall_time_s": 3.0, "skipped": False, "llm": False},
    {"stage": "retrieve[llm]", "wall_time_s": 6.0, "skipped": False, "llm": False},
]
USAGE = {"calls": 40, "cache_hits": 10, "prompt_tokens": 8000, "completion_tokens": 2000}


def test_share_outside_the_llm_stages_and_per_query_costs() -> None:
    cost = cost_summary(TIMINGS, USAGE, n_queries=50)
    assert cost["wall_time_s"] == 100.0 and cost["llm_stage_s"] == 90.0
    assert cost["outside_llm_share"] == pytest.approx(0.10)  # (1 + 3 + 6) / 100
    assert cost["llm_calls_per_query"] == 0.8 and cost["cache_hits_per_query"] == 0.2
    assert cost["tokens_per_query"] == 200.0  # (8000 + 2000) / 50
    assert cost["llm_stage_s_per_query"] == 1.8 and cost["wall_time_s_per_query"] == 2.0
    assert "10.0% of it outside the LLM stages" in cost_line(cost)


def test_no_share_when_the_llm_stage_was_reused_or_absent() -> None:
    reused = [dict(t, skipped=t["stage"] == "abduce[llm]", wall_time_s=0.01 if t["stage"] == "abduce[llm]" else
                   t["wall_time_s"]) for t in TIMINGS]
    assert cost_summary(reused, {"calls": 0}, n_queries=50)["outside_llm_share"] is None
    no_llm = [t for t in TIMINGS if not t.get("llm")]
    cost = cost_summary(no_llm, {}, n_queries=0)  # no queries: no division by zero
    assert cost["outside_llm_share"] is None and cost["llm_calls_per_query"] == 0
    assert "no LLM stage ran in this run" in cost_line(cost)
