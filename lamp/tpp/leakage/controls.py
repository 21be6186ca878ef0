"""Positive controls: deliberately leaky wrappers of a fitted base model, one per kind of leak.

An audit that never fails proves nothing; each wrapper below plants exactly one kind of leak on top
of a real model's scores (a bonus of ``BONUS`` to the candidates the leak points at), and the audit
must flag it with the check written for that kind:

- :class:`SameTimeLeak` reads the log AT the query's time (the events it is asked to predict);
- :class:`TwinLeak` reads the other queries of its batch: the inverse-direction twin of an object
  query, scored in the same batch, has the answer as its subject;
- :class:`TargetLeak` reads the queries' ``target`` column;
- :class:`FilterLeak` reads the queries' filter lists (every true answer at the time step);
- :class:`FitLeak` reads the whole log when fitted (its memory absorbs the valid and test periods, the
  defect of the LAMP paper's published code); at scoring time it reads no log at all, so only a
  check that refits on another log can see it.

Each scores through the dense path of :func:`lamp.tpp.base.rank_candidates` (``score_batch``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lamp.data.eventlog import EventLog
from lamp.data.queries import QuerySet
from lamp.tpp.base import BaseModel

BONUS = 5.0


class LeakyWrapper(BaseModel):
    """A fitted ``model``'s scores plus :meth:`bonus` (set to ``BONUS`` on the cells it returns)."""

    kind = "leak"

    def __init__(self, model: BaseModel) -> None:
        self.model = model
        self.name = f"{self.kind}({model.name})"

    def score_batch(self, log: EventLog, queries: QuerySet, positions: np.ndarray) -> np.ndarray:
        positions = np.asarray(positions, dtype=np.int64)
        scores = np.array(self.model.score_batch(log, queries, positions), dtype=np.float64)
        rows, cols = self.bonus(log, queries, positions)
        scores[rows, cols] += BONUS
        return scores

    def bonus(self, log: EventLog, queries: QuerySet, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row in the batch, candidate) cells that get the bonus."""
        raise NotImplementedError

    def fit(self, log: EventLog, train: QuerySet, valid: QuerySet) -> dict[str, Any]:
        return {}


def _cells(parts: list[tuple[int, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    rows = [np.full(len(c), i, dtype=np.int64) for i, c in parts]
    cols = [np.asarray(c, dtype=np.int64) for _, c in parts]
    empty = np.zeros(0, dtype=np.int64)
    return (np.concatenate(rows) if rows else empty), (np.concatenate(cols) if cols else empty)


def _fields(queries: QuerySet, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """time, subject, relation, object (query space) of the queries at ``positions``."""
    f = queries.frame
    return (f["time"].to_numpy()[positions], *(f[c].to_numpy()[positions].astype(np.int64)
                                                for c in ("subject", "relation", "object")))


def _answers(log: EventLog, task: str, s: int, r: int, o: int, mask: np.ndarray) -> np.ndarray:
    """The values a query (s, r, o) in query space asks for, among the log rows in ``mask``."""
    R = log.num_relations
    if task == "object":
        if r < R:
            return log.objects[mask & (log.subjects == s) & (log.rels == r)]
        return log.subjects[mask & (log.objects == s) & (log.rels == r - R)]
    if task == "relation":
        return log.rels[mask & (log.subjects == s) & (log.objects == o)]
    return log.rels[mask & (log.subjects == s)]  # type: the sequence's own next type


class SameTimeLeak(LeakyWrapper):
    """Bonus for candidates whose event occurs AT the query's own time in the log it is given."""

    kind = "same-time leak"

    def bonus(self, log: EventLog, queries: QuerySet, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t, s, r, o = _fields(queries, positions)
        return _cells([(i, _answers(log, queries.task, int(s[i]), int(r[i]), int(o[i]), log.times == t[i]))
                       for i in range(len(positions))])


class TwinLeak(LeakyWrapper):
    """Bonus for the subjects of the batch's other queries at the same time with the inverse relation:
    an object query's twin (o, r^-1, ?, t) carries the answer o in plain sight."""

    kind = "twin leak"

    def bonus(self, log: EventLog, queries: QuerySet, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if queries.task != "object":
            return _cells([])
        R = queries.num_relations
        t, s, r, _ = _fields(queries, positions)
        inverse = np.where(r < R, r + R, r - R)
        return _cells([(i, s[(t == t[i]) & (r == inverse[i])]) for i in range(len(positions))])


class TargetLeak(LeakyWrapper):
    """Bonus for each query's ``target``."""

    kind = "target leak"

    def bonus(self, log: EventLog, queries: QuerySet, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.arange(len(positions)), queries.frame["target"].to_numpy()[positions].astype(np.int64)


class FilterLeak(LeakyWrapper):
    """Bonus for every candidate in each query's filter list (the true answers at its time step)."""

    kind = "filter leak"

    def bonus(self, log: EventLog, queries: QuerySet, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _cells([(i, queries.true_answers(int(p))) for i, p in enumerate(positions.tolist())])


class FitLeak(LeakyWrapper):
    """Memorises, when fitted, what every row of the log answers (valid and test included) and gives
    those answers the bonus; the wrapped model stays as it was fitted (the control's fit only memorises)."""

    kind = "fit leak"

    def __init__(self, model: BaseModel) -> None:
        super().__init__(model)
        self.memory: dict[tuple[str, int, int, int], set[int]] = {}

    def fit(self, log: EventLog, train: QuerySet, valid: QuerySet) -> dict[str, Any]:
        self.memory = {}
        R = log.num_relations
        for s, r, o in zip(log.subjects.tolist(), log.rels.tolist(), log.objects.tolist(), strict=True):
            for key, value in ((("object", s, r, -1), o), (("object", o, r + R, -1), s), (("relation", s, -1, o), r),
                               (("type", s, -1, -1), r)):
                self.memory.setdefault(key, set()).add(value)
        return {"memorised_keys": len(self.memory)}

    def bonus(self, log: EventLog, queries: QuerySet, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        task = queries.task
        _, s, r, o = (a.tolist() for a in _fields(queries, positions))
        keys = [(task, s[i], r[i], -1) if task == "object" else (task, s[i], -1, o[i] if task == "relation" else -1)
                for i in range(len(positions))]
        return _cells([(i, np.fromiter(self.memory.get(k, ()), dtype=np.int64)) for i, k in enumerate(keys)])
