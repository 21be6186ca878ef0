"""Two copies of a log that differ from it only at or after a query time (for no-leakage tests)."""

from __future__ import annotations

import numpy as np

from lamp.data.eventlog import EventLog


def future_variants(log: EventLog, t_star: float, subjects: np.ndarray, seed: int = 0) -> tuple[EventLog, EventLog]:
    """(altered, truncated): every event at or after ``t_star`` rewritten at random (subjects drawn from
    ``subjects``, random objects and relations), and the log cut at ``t_star``. A model that sees only
    the past scores queries at ``t_star`` identically on both and on ``log``."""
    h = log.history_end(t_star)
    frame = log.frame.copy()
    rng = np.random.default_rng(seed)
    fut = np.arange(h, len(frame))
    frame.loc[fut, "subject"] = rng.choice(subjects, len(fut)).astype(np.int32)
    frame.loc[fut, "object"] = rng.integers(log.num_entities, size=len(fut)).astype(np.int32)
    frame.loc[fut, "relation"] = rng.integers(log.num_relations, size=len(fut)).astype(np.int32)
    altered = EventLog("altered", frame, log.entities, log.relations, log.time_spec, log.split_ends, {})
    truncated = EventLog("cut", log.frame.iloc[:h], log.entities, log.relations, log.time_spec,
                         (min(log.split_ends[0], h), min(log.split_ends[1], h), h), {})
    return altered, truncated
