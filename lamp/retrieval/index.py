"""A history index over a time-sorted :class:`EventLog`: "which events happened strictly before t?"

Answers without scanning the log:

- the allowed history of a time is a row prefix ``[0, history_end)`` (binary search on ``times``);
- a time window is a row range ``[start, history_end)`` (a second binary search);
- the events involving an entity are postings (rows of every event where it is subject or object,
  ascending, hence in time order), cut to a row range with two more binary searches.

The cutoff and the postings are those of :mod:`lamp.data.history`, the one history index.

It also numbers the distinct events-without-a-date ("triples": subject, relation, object and, for
logs that carry one, the text) so that texts and embeddings are computed once per triple, and renders
them with :func:`lamp.data.render.render_event` (the one event-to-text function) on demand.

>>> index = HistoryIndex.for_log(log)                               # doctest: +SKIP
>>> rows = index.entity_rows([obama, russia], index.history_end(t), limit=1000)   # doctest: +SKIP
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from lamp.data.eventlog import EventLog
from lamp.data.history import involvement, strictly_before
from lamp.data.render import render_event

_CACHE: dict[int, tuple[weakref.ref[EventLog], HistoryIndex]] = {}
_LOCK = threading.Lock()


def normalise_name(name: str) -> str:
    """Case-, underscore- and space-insensitive form of a name, to match LLM output to the vocabulary."""
    return " ".join(name.replace("_", " ").lower().split())


def _forgetter(key: int) -> Callable[[weakref.ref[EventLog]], None]:
    cache = _CACHE  # bound now: module globals may already be gone when a log dies at interpreter exit

    def forget(_ref: weakref.ref[EventLog]) -> None:
        cache.pop(key, None)

    return forget


class HistoryIndex:
    """Binary-search time cuts, per-entity postings and distinct-triple ids for one log."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.times = np.ascontiguousarray(log.times, dtype=np.float64)
        self.subjects = np.ascontiguousarray(log.subjects, dtype=np.int64)
        self.relations = np.ascontiguousarray(log.rels, dtype=np.int64)
        self.objects = np.ascontiguousarray(log.objects, dtype=np.int64)
        self.num_events = len(self.times)
        self.entities = involvement(log.edges())
        self.triple_of_row, self.triple_row = self._triples()
        self._texts: list[str | None] = [None] * self.num_triples
        self._names: dict[str, dict[str, int]] = {}

    @classmethod
    def for_log(cls, log: EventLog) -> HistoryIndex:
        """The index of ``log``, built once per log object and reused while the log lives."""
        with _LOCK:
            hit = _CACHE.get(id(log))
            if hit is not None and hit[0]() is log:
                return hit[1]
            index = cls(log)
            _CACHE[id(log)] = (weakref.ref(log, _forgetter(id(log))), index)
            return index

    # -- construction -------------------------------------------------------------------------
    def _triples(self) -> tuple[np.ndarray, np.ndarray]:
        """Triple id of every row, and one representative row (the first) of every triple."""
        texts = self.log.texts
        if texts is None:
            n_rel, n_obj = int(self.relations.max(initial=0)) + 1, int(self.objects.max(initial=0)) + 2
            key = (self.subjects * n_rel + self.relations) * n_obj + (self.objects + 1)
            raw: np.ndarray = np.asarray(pd.factorize(key, sort=False)[0])
        else:
            frame = pd.DataFrame({"s": self.subjects, "r": self.relations, "o": self.objects, "x": texts})
            raw = frame.groupby(["s", "r", "o", "x"], sort=False).ngroup().to_numpy()
        codes = np.asarray(raw, dtype=np.int64)
        _, first = np.unique(codes, return_index=True)  # codes are 0..U-1: first row of each
        return codes, first.astype(np.int64)

    # -- time cuts ----------------------------------------------------------------------------
    @property
    def num_triples(self) -> int:
        return len(self.triple_row)

    def history_end(self, t: float) -> int:
        """Number of events strictly before ``t``: rows ``[0, end)`` are the allowed history."""
        return int(strictly_before(self.times, t))

    def window_start(self, t: float, window: float | None) -> int:
        """First row at or after ``t - window`` (0 when there is no window)."""
        if window is None:
            return 0
        return int(strictly_before(self.times, t - window))

    # -- postings -----------------------------------------------------------------------------
    def entity_rows(self, entities: Iterable[int], end: int, *, start: int = 0, limit: int | None = None,
                    per_entity: int | None = None) -> np.ndarray:
        """Rows in ``[start, end)`` involving any of ``entities``, ascending.

        ``per_entity`` keeps each entity's most recent rows; ``limit`` then keeps the union's most recent.
        Each entity's postings are cut by binary search, so the cost grows with the answer, not the log.
        """
        return self.entities.union(list(entities), end, start=start, per_key=per_entity, limit=limit)

    def recent_rows(self, end: int, *, start: int = 0, limit: int | None = None) -> np.ndarray:
        """The last ``limit`` rows of ``[start, end)`` (every entity)."""
        lo = start if limit is None else max(start, end - limit)
        return np.arange(lo, max(lo, end), dtype=np.int64)

    # -- names and texts ----------------------------------------------------------------------
    def entity_id(self, name: str) -> int:
        """Vocabulary id of an entity name (exact, then normalised), or -1."""
        return self._lookup("entities", name)

    def relation_id(self, name: str) -> int:
        """Vocabulary id of a relation name (exact, then normalised), or -1."""
        return self._lookup("relations", name)

    def _lookup(self, kind: str, name: str) -> int:
        vocab = self.log.entities if kind == "entities" else self.log.relations
        exact = vocab.get(name)
        if exact >= 0 or not name:
            return exact
        table = self._names.get(kind)
        if table is None:
            table = {}
            for i, n in enumerate(vocab.names):
                table.setdefault(normalise_name(n), i)
            self._names[kind] = table
        return table.get(normalise_name(name), -1)

    def triple_texts(self, triples: Sequence[int] | np.ndarray) -> list[str]:
        """Dateless text of each triple id (rendered once, then memoised)."""
        out = []
        texts = self.log.texts
        for u in np.asarray(triples, dtype=np.int64).tolist():
            text = self._texts[u]
            if text is None:
                row = int(self.triple_row[u])
                extra = str(texts[row]) if texts is not None else None
                text = render_event(self.log, int(self.subjects[row]), int(self.relations[row]),
                                    int(self.objects[row]), None, text=extra, with_time=False)
                self._texts[u] = text
            out.append(text)
        return out
