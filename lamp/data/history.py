"""The one history index of lamp: the events of a key (an entity, an (entity, relation) pair, ...)
strictly before a time. Leakage safety rests on the two rules implemented here and nowhere else:

- **the cutoff**: a query at time ``t`` may see an event iff the event's time is strictly less than
  ``t``; events at ``t`` itself are never visible, however many share it (on ICEWS most do).
  :func:`strictly_before` counts them in an ascending time array, so "rows ``[0, history_end)``" of
  a time-sorted log and "slots below the cutoff" of :class:`Postings` are the same set;
- **inverse edges**: an event ``(s, r, o, t)`` is also the edge ``(o, r + R, s, t)`` (subject
  queries are object queries on inverse relations). :meth:`Edges.build` adds them, once, for events
  that have an object.

:class:`Postings` groups entries by an integer key, time-ordered within a key (CSR over the flat code
``key * n_slots + slot``), so every query's visible entries are one contiguous range found by binary
search, with no loop over queries. The base models (lamp.tpp), the retrievers (lamp.retrieval),
the LLM abducer's constraints (lamp.abduce) and the rule engine (lamp.rules, which keeps its own
triple layout for its kernels) are views over these.

>>> edges = log.edges()                                  # doctest: +SKIP
>>> by_entity = involvement(edges)                       # rows of each entity's events
>>> by_entity.union([obama, russia], log.history_end(t), per_key=50)   # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def strictly_before(times: np.ndarray, t: float | np.ndarray) -> np.ndarray:
    """How many of the ascending ``times`` are strictly before ``t`` (elementwise for an array ``t``).

    For a time-sorted log this is the query's ``history_end``: rows ``[0, history_end)`` are exactly
    the events before ``t``. It is also the first row at or after ``t``.
    """
    return np.searchsorted(times, t, side="left")


@dataclass(frozen=True)
class Edges:
    """Events as directed edges ``src -rel-> dst`` (int64), with their time and log row.

    Rows ``[0, end)`` of the log in row order, then (with ``inverse``) the inverse edge
    ``(o, r + R, s)`` of every one of those events that has an object, in row order.
    """

    src: np.ndarray
    rel: np.ndarray
    dst: np.ndarray  # -1 where the event has no object
    time: np.ndarray  # float64
    row: np.ndarray
    num_relations: int  # R: inverse relations are R .. 2R-1
    num_rows: int  # rows of the whole log (the slots of row-keyed postings)

    @classmethod
    def build(cls, subjects: np.ndarray, relations: np.ndarray, objects: np.ndarray, times: np.ndarray,
              num_relations: int, *, end: int | None = None, inverse: bool = True) -> Edges:
        """The edges of rows ``[0, end)`` (all rows when ``end`` is None) of a time-sorted log's columns."""
        n = len(times)
        end = n if end is None else int(end)
        s, r, o = (np.asarray(a[:end], dtype=np.int64) for a in (subjects, relations, objects))
        t, rows = np.asarray(times[:end], dtype=np.float64), np.arange(end, dtype=np.int64)
        if inverse:
            has = o >= 0
            s, r, o = np.concatenate([s, o[has]]), np.concatenate([r, r[has] + num_relations]), np.concatenate([o, s[has]])
            t, rows = np.concatenate([t, t[has]]), np.concatenate([rows, rows[has]])
        return cls(s, r, o, t, rows, int(num_relations), n)

    def __len__(self) -> int:
        return len(self.src)

    @property
    def inverse(self) -> np.ndarray:
        """bool: which edges are inverse copies."""
        return self.rel >= self.num_relations


def key_ranges(comp: np.ndarray, n_slots: int, keys: np.ndarray, cutoffs: np.ndarray | int,
               starts: np.ndarray | int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per query, the positions in the ascending codes ``comp = key * n_slots + slot`` of its ``key``
    with ``starts <= slot < cutoffs`` (strictly before the cutoff): :meth:`Postings.ranges` on bare codes."""
    base = np.asarray(keys, dtype=np.int64) * n_slots
    return np.searchsorted(comp, base + starts, "left"), np.searchsorted(comp, base + cutoffs, "left")


def concat_ranges(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ranges ``[starts[i], ends[i])``: (owner i of each element, the element positions), flattened."""
    lengths = np.maximum(ends - starts, 0)
    total = int(lengths.sum())
    owner = np.repeat(np.arange(len(starts)), lengths)
    offsets = np.cumsum(lengths) - lengths
    return owner, np.repeat(starts - offsets, lengths) + np.arange(total)


@dataclass(frozen=True)
class Postings:
    """Entries grouped by an integer key, time-ordered within a key: ``comp = key * n_slots + slot``.

    A slot is a time position: a log row (cut with ``history_end``) or the index of a distinct time
    (cut with ``strictly_before(distinct_times, t)``); an entry is visible below a cutoff iff its slot is.
    Within a key, entries of the same slot keep the order they were given in.
    """

    comp: np.ndarray  # int64, ascending
    values: np.ndarray  # int64 value of each entry (e.g. the other entity, or a log row)
    slot: np.ndarray  # int64 slot of each entry
    n_slots: int

    @classmethod
    def build(cls, keys: np.ndarray, values: np.ndarray, slots: np.ndarray, n_slots: int) -> Postings:
        comp = np.asarray(keys, dtype=np.int64) * n_slots + slots
        order = np.argsort(comp, kind="stable")
        return cls(comp[order], np.asarray(values)[order].astype(np.int64), np.asarray(slots)[order], int(n_slots))

    @property
    def keys(self) -> np.ndarray:
        """The key of each entry (ascending)."""
        return self.comp // self.n_slots

    def ranges(self, keys: np.ndarray, cutoffs: np.ndarray | int, starts: np.ndarray | int = 0
               ) -> tuple[np.ndarray, np.ndarray]:
        """Per query, the entry range of ``key`` with ``starts <= slot < cutoffs`` (strictly before)."""
        return key_ranges(self.comp, self.n_slots, keys, cutoffs, starts)

    def last_k(self, keys: np.ndarray, cutoffs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The (up to) ``k`` most recent entries of each key below its cutoff.

        Returns ``idx [B, k]`` (entry positions, oldest first, left-aligned, -1 after the last real
        one) and ``n [B]`` (how many are real).
        """
        first, stop = self.ranges(keys, np.asarray(cutoffs, dtype=np.int64))
        n = np.minimum(stop - first, k)
        cols = np.arange(k)
        idx = (stop - n)[:, None] + cols[None, :]
        return np.where(cols[None, :] < n[:, None], idx, -1), n

    def union(self, keys: np.ndarray | list[int], cutoff: int, *, start: int = 0, per_key: int | None = None,
              limit: int | None = None) -> np.ndarray:
        """The values of the entries of any of ``keys`` with ``start <= slot < cutoff``, for postings whose
        values ascend within a key (log rows, as :func:`involvement`): distinct and ascending.

        ``per_key`` keeps each key's most recent entries; ``limit`` then keeps the union's last values.
        The cost grows with the answer, not with the index.
        """
        cap = min(x for x in (limit, per_key) if x is not None) if (limit or per_key) else None
        parts = []
        for key in {int(k) for k in keys if int(k) >= 0}:  # a few keys per call: a loop beats array set-up
            lo, hi = np.searchsorted(self.comp, [key * self.n_slots + start, key * self.n_slots + cutoff])
            if cap is not None:
                lo = max(lo, hi - cap)
            if hi > lo:
                parts.append(self.values[lo:hi])
        if not parts:
            return np.zeros(0, dtype=np.int64)
        values = parts[0] if len(parts) == 1 else np.unique(np.concatenate(parts))
        return values[-limit:] if limit is not None else values


def involvement(edges: Edges) -> Postings:
    """The log rows of each entity's events, as subject or object (a self-loop once), ascending.

    Keys are entities, slots and values are rows; build it from ``log.edges()`` (inverse edges).
    """
    keep = ~(edges.inverse & (edges.src == edges.dst))
    return Postings.build(edges.src[keep], edges.row[keep], edges.row[keep], edges.num_rows)
