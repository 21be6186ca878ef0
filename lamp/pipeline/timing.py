"""Wall time and peak memory per stage; each stage labels the progress bars opened inside it."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from lamp import progress as _progress


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


@dataclass
class StageRecord:
    stage: str
    wall_time_s: float = 0.0
    peak_memory_mb: float = 0.0
    skipped: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class StageClock:
    """Times stages; ``progress`` is the default of the progress bars inside them (see :mod:`lamp.progress`)."""

    def __init__(self, progress: bool | None = None) -> None:
        self.records: list[StageRecord] = []
        self.progress = progress

    @contextmanager
    def stage(self, name: str) -> Iterator[StageRecord]:
        rec = StageRecord(name)
        start = time.perf_counter()
        try:
            with _progress.stage(name, self.progress):
                yield rec
        finally:
            rec.wall_time_s += time.perf_counter() - start
            rec.peak_memory_mb = peak_rss_mb()
            self.records.append(rec)

    def as_rows(self) -> list[dict[str, Any]]:
        return [{"stage": r.stage, "wall_time_s": round(r.wall_time_s, 3), "peak_memory_mb": round(r.peak_memory_mb, 1),
                 "skipped": r.skipped, **r.extra} for r in self.records]

    def total(self) -> float:
        return sum(r.wall_time_s for r in self.records)


def cost_summary(timings: list[dict[str, Any]], llm_usage: dict[str, Any], n_queries: int) -> dict[str, Any]:
    """A run's cost per query and the share of its wall time spent outside the LLM stages.

    ``timings``: the stage rows of :meth:`StageClock.as_rows` (LLM stages carry ``llm: True``);
    ``n_queries``: the queries the run abduced (valid + test). Wall times are the stages' own (process
    start-up and report rendering are not included). The share outside the LLM stages is ``None`` when no
    LLM stage ran in this run (no LLM, or its abduction was reused from an earlier run's artifacts).
    """
    total = sum(float(r["wall_time_s"]) for r in timings)
    ran = [r for r in timings if r.get("llm") and not r.get("skipped")]
    llm_s = sum(float(r["wall_time_s"]) for r in ran)
    n = max(int(n_queries), 1)
    tokens = int(llm_usage.get("prompt_tokens", 0)) + int(llm_usage.get("completion_tokens", 0))
    return {
        "queries": int(n_queries),
        "wall_time_s": round(float(total), 3),
        "llm_stage_s": round(float(llm_s), 3),
        "outside_llm_share": round((total - llm_s) / total, 4) if ran and total > 0 else None,
        "llm_calls_per_query": round(int(llm_usage.get("calls", 0)) / n, 3),
        "cache_hits_per_query": round(int(llm_usage.get("cache_hits", 0)) / n, 3),
        "tokens_per_query": round(tokens / n, 1),
        "llm_stage_s_per_query": round(llm_s / n, 3),
        "wall_time_s_per_query": round(total / n, 3),
    }


def human_duration(seconds: float) -> str:
    """``0.04 s``, ``12.3 s``, ``7 min 2 s``, ``1 h 5 min``."""
    s = float(seconds)
    if s < 59.95:
        return f"{s:.2g} s" if s < 1 else f"{s:.1f} s"
    whole = int(round(s))
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    minutes = int(round(s / 60))
    return f"{minutes // 60} h {minutes % 60} min"


def cost_line(cost: dict[str, Any]) -> str:
    """One readable line of :func:`cost_summary`."""
    share = cost["outside_llm_share"]
    outside = (f"{100 * share:.1f}% of it outside the LLM stages" if share is not None
               else "no LLM stage ran in this run")
    return (f"{cost['queries']} queries (valid + test) in {human_duration(cost['wall_time_s'])} of stage time, "
            f"{outside}; per query {cost['llm_calls_per_query']:.3g} LLM calls, {cost['cache_hits_per_query']:.3g} "
            f"cache hits, {cost['tokens_per_query']:,.0f} tokens, {cost['llm_stage_s_per_query']:.2f} s in the LLM "
            f"stages, {cost['wall_time_s_per_query']:.2f} s in all")
