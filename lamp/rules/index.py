"""A compact temporal index over the events of a log, with inverse edges, for mining and applying rules.

A view of the log's edges (:meth:`lamp.data.eventlog.EventLog.edges`: every event ``(s, r, o, t)``
as ``(s, r, o)`` and ``(o, r + R, s)``) in the layout the numba kernels read; they cut each triple's
times with ``lower_bound(times, t)``, the cutoff of :func:`lamp.data.history.strictly_before`. Distinct
``(src, rel, dst)`` triples are sorted by ``(src, rel, dst)``; each owns a time-sorted slice of
``times``/``rows`` (``rows``: the event's row in the log). Pairs ``(src, dst)`` list their triples by
latest time first, which lets the miner stop early. No dense ``entities x relations`` array is built.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lamp.data.eventlog import EventLog


@dataclass(frozen=True)
class EdgeIndex:
    """Triples, their time lists and the pair lists; see the module docstring."""

    num_entities: int
    num_relations: int  # R (query space has 2R relations)
    end: int  # the index holds log rows [0, end)
    tri_src: np.ndarray  # int64 [T] sorted by (src, rel, dst)
    tri_rel: np.ndarray  # int64 [T]
    tri_dst: np.ndarray  # int64 [T]
    tri_ptr: np.ndarray  # int64 [T+1] slice of times/rows
    times: np.ndarray  # float64 [2N] ascending within a triple
    rows: np.ndarray  # int64 [2N] log row of each edge
    src_ptr: np.ndarray  # int64 [E+1] triples of a source entity
    pair_dst: np.ndarray  # int64 [P] pairs sorted by (src, dst)
    pair_ptr: np.ndarray  # int64 [P+1] slice of pair_tri
    pair_tri: np.ndarray  # int64 [T] triples of each pair, latest last-time first
    psrc_ptr: np.ndarray  # int64 [E+1] pairs of a source entity
    start: int = 0  # the index holds log rows [start, end)

    @property
    def num_triples(self) -> int:
        return len(self.tri_src)

    @property
    def last_time(self) -> np.ndarray:
        """float64 [T]: the latest time of each triple."""
        return self.times[self.tri_ptr[1:] - 1]

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The arrays the numba kernels take, in their argument order."""
        return (self.tri_src, self.tri_rel, self.tri_dst, self.tri_ptr, self.times, self.src_ptr,
                self.pair_dst, self.pair_ptr, self.pair_tri, self.psrc_ptr)


def build_index(log: EventLog, end: int | None = None, *, start: int = 0) -> EdgeIndex:
    """Index log rows ``[start, end)`` (default: all rows). Rows must be time-sorted, as an EventLog is."""
    end, first = len(log) if end is None else int(end), int(start)
    R, E = log.num_relations, log.num_entities
    e = log.edges(end)
    cols: tuple[np.ndarray, ...] = (e.src, e.rel, e.dst, e.time, e.row)
    keep = (e.dst >= 0) & (e.row >= first)  # sequence data (object == -1) has no edges
    if not keep.all():
        cols = tuple(c[keep] for c in cols)
    src, rel, dst, tt, rr = cols
    del e, cols
    order = np.lexsort((rr, tt, dst, rel, src))
    src, rel, dst, tt, rr = src[order], rel[order], dst[order], tt[order], rr[order]
    key = (src * (2 * R) + rel) * E + dst
    new = np.ones(len(key), dtype=bool)
    new[1:] = key[1:] != key[:-1]
    heads = np.flatnonzero(new)
    tri_ptr = np.append(heads, len(key)).astype(np.int64)
    tri_src, tri_rel, tri_dst = src[heads], rel[heads], dst[heads]
    src_ptr = np.searchsorted(tri_src, np.arange(E + 1)).astype(np.int64)
    last = tt[tri_ptr[1:] - 1] if len(heads) else np.zeros(0)
    pkey = tri_src * E + tri_dst
    porder = np.lexsort((-last, pkey))
    pk = pkey[porder]
    pnew = np.ones(len(pk), dtype=bool)
    pnew[1:] = pk[1:] != pk[:-1]
    pstart = np.flatnonzero(pnew)
    pair_src = tri_src[porder][pstart]
    return EdgeIndex(
        E, R, end, tri_src, tri_rel, tri_dst, tri_ptr, tt, rr, src_ptr,
        tri_dst[porder][pstart], np.append(pstart, len(pk)).astype(np.int64), porder.astype(np.int64),
        np.searchsorted(pair_src, np.arange(E + 1)).astype(np.int64), first,
    )
