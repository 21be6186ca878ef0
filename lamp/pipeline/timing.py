"""Wall time and peak memory per stage."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


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
    def __init__(self) -> None:
        self.records: list[StageRecord] = []

    @contextmanager
    def stage(self, name: str) -> Iterator[StageRecord]:
        rec = StageRecord(name)
        start = time.perf_counter()
        try:
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
