"""Queries: one per target event with one field hidden, plus the sets for time-aware filtered metrics.

Tasks
-----
``object``          predict o of (s, r, ?, t); with ``directions="both"`` also s of (?, r, o, t) asked as
                    (o, r + R, ?, t) through inverse relations (``direction`` column: object | subject).
``relation``        predict r of (s, ?, o, t).
``predicate``       the same at the level of the 20 CAMEO root codes (the LAMP paper's "predicate").
``relation_object`` predict the pair (r, o) of (s, ?, ?, t); candidate id = r * num_entities + o.
``type``            sequence data: predict the event type (relation) of the next event of a subject.
``time``            sequence data: predict the time of the next event of a subject (evaluated by error).

In query space every query reads ``(subject, relation, object, time)`` with the hidden field set to
-1, and ``target`` holds the gold candidate id. ``candidate_event`` turns a candidate back into a
full event in the data's own orientation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from lamp.data.eventlog import EventLog
from lamp.data.history import strictly_before
from lamp.errors import ConfigError

TASKS = ("object", "relation", "predicate", "relation_object", "type", "time")


@dataclass(frozen=True)
class QuerySet:
    """A typed table of queries.

    ``frame`` columns: ``query_id`` (int, stable), ``event_index`` (row of the target event in the
    log), ``time``, ``subject``, ``relation``, ``object`` (query space, hidden field = -1),
    ``direction`` ("object" or "subject"), ``target`` (gold candidate id), ``history_end`` (events
    ``[0, history_end)`` of the log are strictly before the query time: the only ones any stage may see).
    ``filter_ptr``/``filter_ids``: CSR lists of every true candidate at the query's time step (gold
    included), for time-aware filtered ranks.
    """

    task: str
    split: str
    frame: pd.DataFrame
    num_candidates: int
    num_relations: int  # of the log, to undo inverse relations
    filter_ptr: np.ndarray
    filter_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.frame)

    def true_answers(self, i: int) -> np.ndarray:
        """Every true candidate (gold included) of query ``i`` at its time step."""
        return self.filter_ids[self.filter_ptr[i] : self.filter_ptr[i + 1]]

    def take(self, positions: np.ndarray) -> QuerySet:
        """A subset of queries (by position), keeping their filters."""
        positions = np.asarray(positions, dtype=np.int64)
        starts, ends = self.filter_ptr[positions], self.filter_ptr[positions + 1]
        lengths = ends - starts
        ptr = np.zeros(len(positions) + 1, dtype=np.int64)
        np.cumsum(lengths, out=ptr[1:])
        ids = np.concatenate([self.filter_ids[s:e] for s, e in zip(starts, ends, strict=True)]) if len(positions) else \
            np.zeros(0, dtype=self.filter_ids.dtype)
        return QuerySet(self.task, self.split, self.frame.iloc[positions].reset_index(drop=True),
                        self.num_candidates, self.num_relations, ptr, ids)

    def sample(self, n: int | None, seed: int = 0) -> QuerySet:
        """A seeded, fixed-size sample (kept in time order); ``None`` or ``n >= len`` keeps all."""
        if n is None or n >= len(self):
            return self
        rng = np.random.default_rng(seed)
        return self.take(np.sort(rng.choice(len(self), size=n, replace=False)))

    def candidate_event(self, i: int, candidate: int) -> tuple[int, int, int]:
        """(subject, relation, object) of candidate ``candidate`` for query ``i``, in the data's orientation."""
        row = self.frame.iloc[i]
        s, r, o = int(row["subject"]), int(row["relation"]), int(row["object"])
        return candidate_triple(self.task, s, r, o, candidate, self.num_relations, self._num_entities())

    def _num_entities(self) -> int:
        return self.num_candidates if self.task == "object" else int(self.frame.attrs.get("num_entities", 0))


def candidate_triple(task: str, s: int, r: int, o: int, candidate: int, num_relations: int,
                     num_entities: int) -> tuple[int, int, int]:
    """Fill the hidden field of a query-space triple with a candidate, in the data's orientation."""
    if task == "object":
        if r >= num_relations:  # inverse query (o, r^-1, ?) asks for the subject
            return candidate, r - num_relations, s
        return s, r, candidate
    if task in ("relation", "type", "predicate"):
        return s, candidate, o
    if task == "relation_object":
        return s, candidate // num_entities, candidate % num_entities
    raise ConfigError(f"task {task!r} has no candidate events")


def _csr(keys: pd.DataFrame, values: np.ndarray, query_keys: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """For each query key, every value sharing that key (a grouped lookup, as CSR arrays)."""
    cols = list(keys.columns)
    table = keys.assign(_v=values).drop_duplicates()
    table = table.sort_values(cols + ["_v"], kind="stable")
    grouped = table.groupby(cols, sort=False)["_v"]
    group_ids = grouped.ngroup().to_numpy()
    values_sorted = table["_v"].to_numpy()
    counts = np.bincount(group_ids)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    key_frame = table[cols].drop_duplicates().reset_index(drop=True)
    key_frame["_g"] = np.arange(len(key_frame))
    merged = query_keys.merge(key_frame, on=cols, how="left")
    g = merged["_g"].to_numpy()
    if np.isnan(g.astype(float)).any():
        raise RuntimeError("internal error: a query key has no filter group")
    g = g.astype(np.int64)
    lengths = counts[g]
    ptr = np.zeros(len(g) + 1, dtype=np.int64)
    np.cumsum(lengths, out=ptr[1:])
    idx = np.repeat(starts[g] - ptr[:-1], lengths) + np.arange(ptr[-1])
    return ptr, values_sorted[idx].astype(np.int64)


def make_queries(
    log: EventLog,
    task: str,
    split: str = "test",
    *,
    directions: str = "both",
    relation_roots: np.ndarray | None = None,
) -> QuerySet:
    """Build the queries of ``split`` for ``task``.

    ``directions`` (object task): "object" (the paper's single direction), "subject" or "both".
    ``relation_roots`` (predicate task): root index per relation; defaults to the CAMEO mapping.
    Filters are computed over the whole log (every split), as the time-aware filter demands.
    """
    if task not in TASKS:
        raise ConfigError(f"Unknown task: {task!r}. Valid choices are: {', '.join(TASKS)}")
    start, end = log.split_range(split)
    f = log.frame
    t_all, s_all, r_all, o_all = f["time"].to_numpy(), f["subject"].to_numpy(), f["relation"].to_numpy(), f["object"].to_numpy()
    rows = np.arange(start, end)
    R, E = log.num_relations, log.num_entities
    needs_obj = task in ("object", "relation", "predicate", "relation_object")
    if needs_obj and not log.has_objects:
        raise ConfigError(f"task {task!r} needs events with objects, but {log.name!r} has none; use task=type or time.")
    parts = []
    if task == "object":
        if directions not in ("object", "subject", "both"):
            raise ConfigError(f"directions must be object, subject or both, got {directions!r}")
        edges = log.edges()  # true answers of both directions: (s, r) -> o and (o, r + R) -> s
        full = pd.DataFrame({"s": edges.src.astype(s_all.dtype), "r": edges.rel.astype(r_all.dtype), "t": edges.time})
        values = edges.dst.astype(o_all.dtype)  # the log's own (narrow) dtypes: faster grouping, less memory
        del edges
        if directions in ("object", "both"):
            parts.append(pd.DataFrame({"event_index": rows, "subject": s_all[rows], "relation": r_all[rows],
                                       "object": -1, "target": o_all[rows], "direction": "object"}))
        if directions in ("subject", "both"):
            parts.append(pd.DataFrame({"event_index": rows, "subject": o_all[rows], "relation": r_all[rows] + R,
                                       "object": -1, "target": s_all[rows], "direction": "subject"}))
        key_cols = {"s": "subject", "r": "relation"}
        n_cand = E
    elif task in ("relation", "predicate"):
        rel = r_all if task == "relation" else _roots(log, relation_roots)[r_all]
        full = pd.DataFrame({"s": s_all, "o": o_all, "t": t_all})
        values = rel
        parts.append(pd.DataFrame({"event_index": rows, "subject": s_all[rows], "relation": -1,
                                   "object": o_all[rows], "target": rel[rows], "direction": "object"}))
        key_cols = {"s": "subject", "o": "object"}
        n_cand = R if task == "relation" else int(_roots(log, relation_roots).max()) + 1
    elif task == "relation_object":
        full = pd.DataFrame({"s": s_all, "t": t_all})
        values = r_all.astype(np.int64) * E + o_all
        parts.append(pd.DataFrame({"event_index": rows, "subject": s_all[rows], "relation": -1, "object": -1,
                                   "target": values[rows], "direction": "object"}))
        key_cols = {"s": "subject"}
        n_cand = R * E
    else:  # type / time over sequences: subject = sequence (user), relation = type
        full = pd.DataFrame({"s": s_all, "t": t_all})
        values = r_all
        parts.append(pd.DataFrame({"event_index": rows, "subject": s_all[rows], "relation": -1,
                                   "object": o_all[rows], "target": r_all[rows] if task == "type" else -1,
                                   "direction": "object"}))
        key_cols = {"s": "subject"}
        n_cand = R if task == "type" else 0
    frame = pd.concat(parts, ignore_index=True)
    frame["time"] = t_all[frame["event_index"].to_numpy()]
    frame = frame.sort_values(["time", "event_index", "direction"], kind="stable").reset_index(drop=True)
    frame.insert(0, "query_id", np.arange(len(frame), dtype=np.int64))
    frame["history_end"] = strictly_before(t_all, frame["time"].to_numpy())
    frame = frame[["query_id", "event_index", "time", "subject", "relation", "object", "direction", "target", "history_end"]]
    frame.attrs["num_entities"] = E
    if task == "time":
        ptr, ids = np.zeros(len(frame) + 1, dtype=np.int64), np.zeros(0, dtype=np.int64)
    else:
        qkeys = pd.DataFrame({k: frame[v].to_numpy() for k, v in key_cols.items()})
        qkeys["t"] = frame["time"].to_numpy()
        # a filter key holds its time, so only the events inside the split's time range can match: grouping the
        # whole log for every split made the cost grow with the log, not with the split
        t = full["t"].to_numpy()
        inside = (t >= qkeys["t"].min()) & (t <= qkeys["t"].max()) if len(qkeys) else np.zeros(len(t), dtype=bool)
        if not inside.all():
            full, values = full[inside].reset_index(drop=True), np.asarray(values)[inside]
        ptr, ids = _csr(full, values, qkeys)
    return QuerySet(task, split, frame, n_cand, R, ptr, ids)


def _roots(log: EventLog, relation_roots: np.ndarray | None) -> np.ndarray:
    if relation_roots is not None:
        return np.asarray(relation_roots)
    roots = log.meta.get("relation_root")
    if roots is None:
        from lamp.data.cameo import attach_cameo

        roots = attach_cameo(log).meta["relation_root"]
    arr = np.asarray([-1 if r is None else r for r in roots], dtype=np.int64)
    missing = np.flatnonzero(arr < 0)
    if missing.size:
        names = [log.relations.name(int(i)) for i in missing[:5]]
        raise ConfigError(f"task 'predicate' needs a CAMEO root for every relation, but {missing.size} have none "
                          f"(e.g. {names}). Fix: extend lamp.data.cameo.NAME_FIXES or pass relation_roots.")
    return arr
