"""Logs and query sets that differ from the real ones only where a model must not look.

- :func:`future_logs`: equal to a log strictly before a time ``t`` and different from ``t`` on (cut,
  rewritten at random, filled with the answers of the queries at ``t``): a model that reads only the
  past scores queries at ``t`` identically on all of them.
- :func:`randomised_from`: every row from a given row on rewritten at random (e.g. the valid and test
  parts, for a model refitted on it: its fit may not learn from them).
- :func:`hidden_targets` / :func:`hidden_filters`: the same queries with random targets or random
  filter lists: a model's candidates and scores must not depend on them (only the metrics may).
- :func:`twins`: the inverse-direction twin of each object-task query (same event, the other side asked).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from lamp.data.eventlog import EventLog
from lamp.data.queries import QuerySet


def _rewrite(log: EventLog, rows: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """The log's frame with ``rows`` given random subjects, relations and (where the log has them) objects."""
    frame = log.frame.copy()
    cols = [("subject", log.num_entities), ("relation", log.num_relations)]
    cols += [("object", log.num_entities)] if log.has_objects else []
    for col, hi in cols:
        frame.loc[rows, col] = rng.integers(hi, size=len(rows)).astype(frame[col].to_numpy().dtype)
    return frame


def _log(name: str, frame: pd.DataFrame, like: EventLog, split_ends: tuple[int, int, int] | None = None) -> EventLog:
    # a fresh meta: the fingerprint is cached there and must be recomputed for the new content
    return EventLog(name, frame, like.entities, like.relations, like.time_spec, split_ends or like.split_ends, {})


def future_logs(log: EventLog, t: float, gold_rows: np.ndarray, seed: int) -> dict[str, EventLog]:
    """Logs equal to ``log`` strictly before ``t`` and different from ``t`` on.

    ``truncated``: only the events before ``t``; ``random future``: every event at/after ``t`` rewritten at
    random; ``answers in the future``: every event at/after ``t`` replaced by copies of the events
    ``gold_rows`` (the targets of the queries at ``t``: the most useful possible leak).
    """
    h = log.history_end(t)
    rng = np.random.default_rng(seed)
    fut = np.arange(h, len(log))
    gold = log.frame.iloc[np.asarray(gold_rows, dtype=np.int64)]
    answers = log.frame.copy()
    pick = rng.integers(len(gold), size=len(fut))
    for col in ("subject", "relation", "object"):
        answers.loc[fut, col] = gold[col].to_numpy()[pick]
    cut = (min(log.split_ends[0], h), min(log.split_ends[1], h), h)
    return {"truncated": _log("audit-cut", log.frame.iloc[:h].copy(), log, cut),
            "random future": _log("audit-random", _rewrite(log, fut, rng), log),
            "answers in the future": _log("audit-answers", answers, log)}


def randomised_from(log: EventLog, start: int, seed: int) -> EventLog:
    """``log`` with every row from ``start`` on rewritten at random (times and split boundaries kept)."""
    rows = np.arange(start, len(log))
    return _log(f"audit-random-from-{start}", _rewrite(log, rows, np.random.default_rng(seed)), log)


def hidden_targets(queries: QuerySet, seed: int) -> QuerySet:
    """The same queries with every target replaced by a random candidate (filters unchanged)."""
    rng = np.random.default_rng(seed)
    frame = queries.frame.copy()
    frame["target"] = rng.integers(queries.num_candidates, size=len(frame))
    return replace(queries, frame=frame)


def hidden_filters(queries: QuerySet, seed: int) -> QuerySet:
    """The same queries with every filter list replaced by one random candidate (targets unchanged)."""
    rng = np.random.default_rng(seed)
    return replace(queries, filter_ptr=np.arange(len(queries) + 1, dtype=np.int64),
                   filter_ids=rng.integers(queries.num_candidates, size=len(queries)).astype(np.int64))


def twins(queries: QuerySet) -> np.ndarray:
    """Position of each query's inverse-direction twin in ``queries`` (same event, the other direction;
    object task with both directions), -1 where it has none."""
    f = queries.frame
    if queries.task != "object":
        return np.full(len(f), -1, dtype=np.int64)
    key = pd.DataFrame({"event_index": f["event_index"], "direction": f["direction"], "pos": np.arange(len(f))})
    other = key.assign(direction=np.where(key["direction"] == "object", "subject", "object"))
    merged = other.merge(key, on=["event_index", "direction"], how="left", suffixes=("", "_twin"))
    return merged["pos_twin"].fillna(-1).to_numpy().astype(np.int64)
