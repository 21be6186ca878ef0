"""Per-entity event sequences cut from an EventLog: strict-prefix look-ups and training windows.

Two things every sequence model in lamp.tpp needs:

- :class:`EntityEvents`: each entity's events in time order, with their log rows. Because the log is
  time-sorted and a query's ``history_end`` counts the events strictly before its time, "row <
  history_end" is exactly "strictly before the query time": :meth:`EntityEvents.last_k` can never
  return an event of the query's own timestamp, however many events share it (on ICEWS most do).
- :func:`build_windows`: fixed-length training windows over each entity's sequence for the grouped
  (strict-prefix) TPP likelihood. Events at the same time form a *group*; every event of group g is
  a target whose intensity is read from the state after the LAST event of group g-1, at the time
  gap between the two groups, so training sees the same kind of prefix as scoring.
- :class:`FeatureIndex` / :func:`make_kg_batch` (base:ke_anhp): directed entity histories, the
  (strict, relaxed) recurrency features of every (query, candidate) seen before the query time, and
  the tensors of one batch with each (entity, time) history gathered once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lamp.data.eventlog import EventLog
from lamp.data.history import Postings, concat_ranges, strictly_before


@dataclass(frozen=True)
class EntityEvents:
    """Events grouped by entity, time-ordered within an entity: a view of :class:`Postings` keyed by
    entity over log rows, with the columns sequence models read.

    ``directed=False``: an entity's sequence holds the events where it is the subject (type =
    relation). ``directed=True``: also those where it is the object, as inverse relations ``r + R``
    with the subject as the other entity (what KG models attend over).
    """

    postings: Postings  # key = entity, slot = log row, value = the entry's position in the edges
    row: np.ndarray  # int64 log row of each entry
    rel: np.ndarray  # int64 relation (r, or r + R for the object role)
    other: np.ndarray  # int64 other entity (-1 when the log has no objects)
    time: np.ndarray  # float64
    fingerprint: str

    @classmethod
    def build(cls, log: EventLog, *, end: int | None = None, directed: bool = False) -> EntityEvents:
        """Index rows ``[0, end)`` of ``log`` (all rows when ``end`` is None)."""
        edges = log.edges(end, inverse=directed)
        post = Postings.build(edges.src, np.arange(len(edges)), edges.row, len(log))
        e = post.values
        return cls(post, edges.row[e], edges.rel[e], edges.dst[e], edges.time[e], log.fingerprint())

    @property
    def n_rows(self) -> int:
        """Rows of the log the events were cut from."""
        return self.postings.n_slots

    @property
    def entity(self) -> np.ndarray:
        """int64 entity of each entry (ascending)."""
        return self.postings.keys

    def last_k(self, entities: np.ndarray, history_end: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The (up to) ``k`` most recent entries of each entity with row < its ``history_end``.

        Returns ``idx [B, k]`` (entry positions, oldest first, left-aligned, -1 after the last real
        one) and ``n [B]`` (how many are real). Rows >= history_end are never returned.
        """
        return self.postings.last_k(entities, history_end, k)


@dataclass(frozen=True)
class Windows:
    """Training windows (right-padded) and their grouped-likelihood targets.

    ``times`` are relative to each window's first event, in scaled units; ``dts[:, 0] = 0``.
    Targets ``(tgt_win, tgt_pos, tgt_type)``: an event whose intensity is read at position
    ``tgt_pos`` (the last event of the previous time group) after the gap ``gap[tgt_win, tgt_pos]``.
    ``gap > 0`` marks the positions whose following interval enters the integral term; each interval
    and each target belongs to exactly one window.
    """

    times: np.ndarray  # [W, L] float32
    dts: np.ndarray  # [W, L] float32
    types: np.ndarray  # [W, L] int64, padding = pad id
    lengths: np.ndarray  # [W] int64
    gap: np.ndarray  # [W, L] float32, 0 where no interval starts
    tgt_win: np.ndarray
    tgt_pos: np.ndarray
    tgt_type: np.ndarray

    def __len__(self) -> int:
        return len(self.lengths)


def mean_group_gap(events: EntityEvents) -> float:
    """Mean positive gap between consecutive time groups of the same entity (a time scale; 1.0 if none)."""
    ent = events.entity
    same = ent[1:] == ent[:-1]
    d = np.diff(events.time)[same]
    d = d[d > 0]
    return float(d.mean()) if d.size else 1.0


def build_windows(events: EntityEvents, num_types: int, length: int, overlap: int, time_scale: float) -> Windows:
    """Cut every entity's sequence into windows of ``length`` events overlapping by ``overlap``.

    Owned regions ``[k*(length-overlap) + overlap, (k+1)*(length-overlap) + overlap)`` (window 0
    from 0) partition the positions; a target or an interval starting at position p belongs to the
    window owning p, where at least ``overlap`` earlier events give it context.
    """
    if not 0 <= overlap < length:
        raise ValueError(f"overlap must be in [0, length), got overlap={overlap}, length={length}")
    stride = length - overlap
    ent = events.entity
    bounds = np.flatnonzero(np.diff(ent)) + 1
    starts, ends = np.concatenate([[0], bounds]), np.concatenate([bounds, [len(ent)]])
    wins: list[tuple[int, int]] = []  # (global start, count)
    tw, tp, tk, gw, gp, gv = [], [], [], [], [], []
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        t = events.time[a:b]
        n = b - a
        new_group = np.concatenate([[True], t[1:] > t[:-1]])
        gid = np.cumsum(new_group) - 1
        last_of = np.flatnonzero(np.concatenate([new_group[1:], [True]]))  # last index of each group
        k0 = len(wins)
        n_win = 1 if n <= length else 1 + int(np.ceil((n - length) / stride))
        wins.extend((a + w * stride, min(length, n - w * stride)) for w in range(n_win))
        # targets: events of groups >= 1, read at the last event of the previous group
        j = np.flatnonzero(gid >= 1)
        p = last_of[gid[j] - 1]
        w = np.maximum(0, (p - overlap) // stride)
        tw.append(k0 + w)
        tp.append(p - w * stride)
        tk.append(events.rel[a + j])
        # intervals: from the last event of each group to the first event of the next one
        pg = last_of[:-1]
        wg = np.maximum(0, (pg - overlap) // stride)
        gw.append(k0 + wg)
        gp.append(pg - wg * stride)
        gv.append((t[pg + 1] - t[pg]) / time_scale)
    W = len(wins)
    times = np.zeros((W, length), np.float32)
    dts = np.zeros((W, length), np.float32)
    types = np.full((W, length), num_types, np.int64)
    lengths = np.array([c for _, c in wins], dtype=np.int64)
    for i, (s, c) in enumerate(wins):
        tt = (events.time[s : s + c] - events.time[s]) / time_scale
        times[i, :c] = tt
        dts[i, 1:c] = np.diff(tt)
        types[i, :c] = events.rel[s : s + c]
    gap = np.zeros((W, length), np.float32)
    cat = np.concatenate
    if gw:
        gap[cat(gw), cat(gp)] = cat(gv)
    return Windows(times, dts, types, lengths, gap, cat(tw) if tw else np.zeros(0, np.int64),
                   cat(tp) if tp else np.zeros(0, np.int64), cat(tk) if tk else np.zeros(0, np.int64))


@dataclass(frozen=True)
class Prefixes:
    """The strict prefixes of a batch of queries, right-padded for easy-tpp models.

    ``last[b]`` is the position of the last real event (``-1``: no history); ``gap[b]`` the time
    from it to the query and ``offset[b]`` the query time relative to the window start (scaled).
    """

    times: np.ndarray
    dts: np.ndarray
    types: np.ndarray
    last: np.ndarray
    gap: np.ndarray
    offset: np.ndarray


def query_prefixes(events: EntityEvents, entities: np.ndarray, history_end: np.ndarray, query_times: np.ndarray,
                   length: int, num_types: int, time_scale: float) -> Prefixes:
    """The last ``length`` events of each query's entity strictly before its time (rows < history_end)."""
    idx, n = events.last_k(entities, history_end, length)
    real = idx >= 0
    safe = np.where(real, idx, 0)
    t_abs = np.where(real, events.time[safe], 0.0)
    t0 = t_abs[:, 0]
    times = np.where(real, (t_abs - t0[:, None]) / time_scale, 0.0).astype(np.float32)
    dts = np.zeros_like(times)
    dts[:, 1:] = np.where(real[:, 1:], times[:, 1:] - times[:, :-1], 0.0)
    types = np.where(real, events.rel[safe], num_types).astype(np.int64)
    last = n - 1
    t_last = t_abs[np.arange(len(n)), np.maximum(last, 0)]
    gap = np.where(n > 0, (query_times - t_last) / time_scale, 0.0).astype(np.float32)
    offset = np.where(n > 0, (query_times - t0) / time_scale, 0.0).astype(np.float32)
    return Prefixes(times, dts, types, last, gap, offset)


def root_logsumexp(log_scores: np.ndarray, roots: np.ndarray, n_roots: int) -> np.ndarray:
    """Log of summed intensities per root code: the intensity of "some relation of root c" at time t."""
    out = np.full((log_scores.shape[0], n_roots), -np.inf)
    for c in range(n_roots):
        members = np.flatnonzero(roots == c)
        if members.size:
            block = log_scores[:, members]
            m = block.max(axis=1, keepdims=True)
            out[:, c] = (m + np.log(np.exp(block - m).sum(axis=1, keepdims=True)))[:, 0]
    return np.where(np.isfinite(out), out, -1e30)


# -- knowledge-graph batches (base:ke_anhp) ------------------------------------------------------
N_STRICT, N_RELAXED = 5, 3


@dataclass(frozen=True)
class FeatureIndex:
    """Directed entity histories and (strict, relaxed) postings of rows [0, n_rows) for a KG task.

    ``task="object"``: strict key (s, r) over both directions (r + R for the object role), relaxed key
    s, value = the other entity. ``task="relation"``: strict key (s, o), relaxed key s, value = r.
    """

    task: str
    fingerprint: str
    n_rows: int
    num_entities: int
    num_relations: int
    num_values: int
    times: np.ndarray
    step: float
    strict: Postings
    relaxed: Postings
    events: EntityEvents
    max_relaxed: int

    @staticmethod
    def n_features(task: str) -> int:
        return N_STRICT + N_RELAXED

    @classmethod
    def build(cls, log: EventLog, task: str, *, end: int | None, max_relaxed: int) -> FeatureIndex:
        end = len(log) if end is None else int(end)
        e = log.edges(end, inverse=task == "object")
        R, E = log.num_relations, log.num_entities
        if task == "object":
            strict, relaxed, values, n_values = e.src * 2 * R + e.rel, e.src, e.dst, E
        else:
            strict, relaxed, values, n_values = e.src * E + e.dst, e.src, e.rel, R
        times = np.unique(e.time)
        tidx = strictly_before(times, e.time).astype(np.int64)
        step = float(log.time_spec.granularity) if log.time_spec.granularity > 0 else 1.0
        return cls(task, log.fingerprint(), end, E, R, n_values, times, step,
                   Postings.build(strict, values, tidx, len(times)), Postings.build(relaxed, values, tidx, len(times)),
                   EntityEvents.build(log.head(end), directed=True), max_relaxed)

    def train_examples(self, log: EventLog, end: int) -> dict[str, np.ndarray]:
        """One example per train event (object task: both directions), history = earlier train rows."""
        e = log.edges(end, inverse=self.task == "object")
        h = strictly_before(e.time[: end], e.time).astype(np.int64)  # the first ``end`` edges are rows 0..end-1
        none = np.full(len(e), -1, np.int64)
        if self.task == "object":
            return {"s": e.src, "r": e.rel, "o": none, "time": e.time, "history_end": h, "target": e.dst}
        return {"s": e.src, "r": none, "o": e.dst, "time": e.time, "history_end": h, "target": e.rel}

    def _entries(self, post: Postings, keys: np.ndarray, qtimes: np.ndarray, limit: int | None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per (query, value) seen under the key before the query: count, share and steps since last."""
        start, end = post.ranges(keys, strictly_before(self.times, qtimes).astype(np.int64))
        if limit:
            start = np.maximum(start, end - limit)
        owner, pos = concat_ranges(start, end)
        code = (owner * self.num_values + post.values[pos])[::-1]  # reversed: first hit = most recent
        uniq, first, count = np.unique(code, return_index=True, return_counts=True)
        last = pos[::-1][first]
        own, val = uniq // self.num_values, uniq % self.num_values
        total = np.maximum(end - start, 1)[own]
        delta = (qtimes[own] - self.times[post.slot[last]]) / self.step
        return own, val, count.astype(np.float64), count / total, delta

    def features(self, q: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sparse recurrency features: (owner query, candidate value, feature row [N_STRICT + N_RELAXED])."""
        if self.task == "object":
            strict = q["s"] * 2 * self.num_relations + q["r"]
        else:
            strict = q["s"] * self.num_entities + q["o"]
        own1, val1, c1, sh1, d1 = self._entries(self.strict, strict, q["time"], None)
        own2, val2, c2, sh2, d2 = self._entries(self.relaxed, q["s"], q["time"], self.max_relaxed)
        f = np.zeros((len(own1) + len(own2), N_STRICT + N_RELAXED), np.float32)
        f[: len(own1), :N_STRICT] = np.stack([np.log1p(c1), sh1, np.exp(-d1), np.exp(-d1 / 10), np.exp(-d1 / 100)], 1)
        f[len(own1) :, N_STRICT:] = np.stack([np.log1p(c2), sh2, np.exp(-d2 / 10)], 1)
        return np.concatenate([own1, own2]), np.concatenate([val1, val2]), f


@dataclass(frozen=True)
class KGBatch:
    """Tensors of one batch of KG queries: the queries, their unique (entity, time) histories, features."""

    s: torch.Tensor
    r: torch.Tensor
    o: torch.Tensor
    target: torch.Tensor | None
    pair_entity: torch.Tensor  # [U] entity of each unique (entity, time) pair
    pair_s: torch.Tensor  # [B] pair of the query's subject
    pair_o: torch.Tensor  # [B] pair of the query's object (relation task; else = pair_s)
    tok_other: torch.Tensor  # [U, K]
    tok_rel: torch.Tensor
    tok_dt: torch.Tensor  # steps from the history event to the query time (> 0)
    tok_mask: torch.Tensor  # True = real event
    feat_owner: torch.Tensor
    feat_value: torch.Tensor
    feat: torch.Tensor


def make_kg_batch(index: FeatureIndex, q: dict[str, np.ndarray], k: int, device: torch.device,
                  with_features: bool) -> KGBatch:
    """Build a batch from query arrays ``s, r, o, time, history_end`` (+ ``target`` when training)."""
    n = len(q["s"])
    relation = index.task == "relation"
    ents = np.concatenate([q["s"], q["o"]]) if relation else q["s"]
    when = np.concatenate([q["time"], q["time"]]) if relation else q["time"]
    hend = np.concatenate([q["history_end"], q["history_end"]]) if relation else q["history_end"]
    _, t_rank = np.unique(when, return_inverse=True)
    _, first, inverse = np.unique(ents.astype(np.int64) * len(when) + t_rank, return_index=True, return_inverse=True)
    idx, _ = index.events.last_k(ents[first], hend[first], k)
    real = idx >= 0
    safe = np.where(real, idx, 0)
    dt = np.where(real, (when[first][:, None] - index.events.time[safe]) / index.step, 0.0)
    if with_features:
        owner, value, feat = index.features(q)
    else:
        owner, value, feat = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 0), np.float32)

    def tens(a: np.ndarray, dtype: torch.dtype = torch.long) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=device)

    target = tens(q["target"]) if "target" in q else None
    return KGBatch(tens(q["s"]), tens(np.maximum(q["r"], 0)), tens(np.maximum(q["o"], 0)), target,
                   tens(ents[first]), tens(inverse[:n]), tens(inverse[n:] if relation else inverse[:n]),
                   tens(np.where(real, index.events.other[safe], 0)), tens(np.where(real, index.events.rel[safe], 0)),
                   tens(dt, torch.float32), tens(real, torch.bool), tens(owner), tens(value), tens(feat, torch.float32))
