"""The keyed histories of the heuristic baselines (``base:frequency``, ``base:recurrency``).

Every task is read as "a key asks for a value": the object task asks (s, r) -> o (with the inverse
edge (o, r + R) -> s of every event, so subject queries are object queries on inverse relations),
the relation task (s, o) -> r, the predicate task (s, o) -> CAMEO root of r, the type task s -> r.
A *strict* key is the whole query, a *relaxed* key drops one field (the object task keeps r, the
relation/predicate tasks keep s, the type task keeps nothing). Both are :class:`~lamp.data.history.Postings`
over the distinct event times, so the events a query may see (strictly before its time) are one
contiguous range: no Python loop over queries and no dense [queries x candidates] matrix beyond one batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

from lamp.data.eventlog import EventLog
from lamp.data.history import Postings, concat_ranges, key_ranges, strictly_before
from lamp.data.queries import QuerySet
from lamp.errors import ConfigError

HEURISTIC_TASKS = ("object", "relation", "predicate", "type")


@dataclass(frozen=True)
class TaskHistory:
    """Strict and relaxed postings of one task over one EventLog, plus (relaxed key, value) pair counts."""

    task: str
    fingerprint: str
    times: np.ndarray  # distinct event times, ascending
    step: float  # one time step of the dataset (decay is per step)
    num_values: int
    num_relaxed: int
    strict: Postings
    relaxed: Postings
    pair_keys: np.ndarray  # distinct relaxed_key * num_values + value, ascending
    pair_comp: np.ndarray  # pair index * n_times + tidx of every event, ascending (codes of Postings without values)

    def cutoffs(self, query_times: np.ndarray) -> np.ndarray:
        """Time index of each query: events with ``slot < cutoff`` are strictly before it."""
        return strictly_before(self.times, query_times).astype(np.int64)

    def pair_counts(self, cutoff: int, pairs: np.ndarray | None = None) -> np.ndarray:
        """Count of every (relaxed key, value) pair (or of the ``pairs``, indices into ``pair_keys``)
        strictly before time index ``cutoff``."""
        ids = np.arange(len(self.pair_keys)) if pairs is None else pairs
        start, end = key_ranges(self.pair_comp, len(self.times), ids, cutoff)
        return end - start

    def pair_range(self, relaxed_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The slice of ``pair_keys`` holding each relaxed key's pairs."""
        base = relaxed_keys.astype(np.int64) * self.num_values
        return np.searchsorted(self.pair_keys, base, "left"), np.searchsorted(self.pair_keys, base + self.num_values)


def relation_roots(log: EventLog, explicit: np.ndarray | None = None) -> np.ndarray:
    """Root (predicate) index of every relation: ``explicit``, else the log's metadata, else CAMEO."""
    if explicit is not None:
        return np.asarray(explicit, dtype=np.int64)
    roots = log.meta.get("relation_root")
    if roots is None:
        from lamp.data.cameo import attach_cameo  # written by the data package; imported only when needed

        roots = attach_cameo(log).meta["relation_root"]
    return np.asarray(roots, dtype=np.int64)


def build_history(log: EventLog, task: str, roots: np.ndarray | None = None) -> TaskHistory:
    """Index ``log`` for ``task`` (see the module docstring for the keys)."""
    if task not in HEURISTIC_TASKS:
        raise ConfigError(f"The heuristic baselines score tasks {', '.join(HEURISTIC_TASKS)}; got task={task!r}. "
                          "Use relation_object through lamp.tpp.factored, or a neural model for time.")
    edges = log.edges(inverse=task == "object")
    t, s, r, o = edges.time, edges.src, edges.rel, edges.dst
    del edges  # its row column is not needed here: free it before the postings are sorted
    n_ent, n_rel = log.num_entities, log.num_relations
    if task == "object":
        strict, relaxed, values, n_values, n_relaxed = s * 2 * n_rel + r, r, o, n_ent, 2 * n_rel
    elif task in ("relation", "predicate"):
        values = r if task == "relation" else relation_roots(log, roots)[r]
        n_values = n_rel if task == "relation" else int(relation_roots(log, roots).max()) + 1
        strict, relaxed, n_relaxed = s * n_ent + o, s, n_ent
    else:  # type: a sequence's own history, and the global type frequencies
        strict, relaxed, values, n_values, n_relaxed = s, np.zeros_like(s), r, n_rel, 1
    keep = values >= 0  # e.g. relations without a CAMEO root cannot be predicate candidates
    if not keep.all():
        t, strict, relaxed, values = t[keep], strict[keep], relaxed[keep], values[keep]
    times = np.unique(t)
    tidx = strictly_before(times, t).astype(np.int64)
    step = float(log.time_spec.granularity) if log.time_spec.granularity > 0 else 1.0
    pair = relaxed * n_values + values
    pair_keys, pair_idx = np.unique(pair, return_inverse=True)
    n = len(times)
    return TaskHistory(task, log.fingerprint(), times, step, n_values, n_relaxed, Postings.build(strict, values, tidx, n),
                       Postings.build(relaxed, values, tidx, n), pair_keys, np.sort(pair_idx.astype(np.int64) * n + tidx))


def query_keys(queries: QuerySet, positions: np.ndarray, num_entities: int) -> tuple[np.ndarray, np.ndarray]:
    """Strict and relaxed keys of the given queries, matching :func:`build_history`."""
    f = queries.frame
    s = f["subject"].to_numpy()[positions].astype(np.int64)
    r = f["relation"].to_numpy()[positions].astype(np.int64)
    o = f["object"].to_numpy()[positions].astype(np.int64)
    if queries.task == "object":
        return s * 2 * queries.num_relations + r, r
    if queries.task in ("relation", "predicate"):
        return s * num_entities + o, s
    return s, np.zeros_like(s)


class HistoryCache:
    """The TaskHistory of the last log (by fingerprint) per task, and recent per-cutoff xi matrices."""

    def __init__(self, roots: np.ndarray | None = None, max_cutoffs: int = 8) -> None:
        self.roots = roots
        self.max_cutoffs = max_cutoffs
        self._hist: dict[str, TaskHistory] = {}
        self._counts: dict[tuple[str, str, int], np.ndarray] = {}
        self._xi: dict[tuple[str, str, int], sparse.csr_matrix] = {}
        self._xi_dense: dict[tuple[str, str, int, int | None], np.ndarray] = {}
        self._other: dict[tuple[str, str, str, int], Any] = {}
        self._segments: dict[tuple[str, str, int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        """A copy (another process, a Ray task) starts with an empty cache: what it holds is rebuilt on use."""
        return {"roots": self.roots, "max_cutoffs": self.max_cutoffs}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["roots"], state["max_cutoffs"])  # type: ignore[misc]

    def history(self, log: EventLog, queries: QuerySet) -> TaskHistory:
        hist = self._hist.get(queries.task)
        if hist is None or hist.fingerprint != log.fingerprint():
            hist = build_history(log, queries.task, self.roots)
            self._hist[queries.task] = hist
            self._counts.clear()
            self._xi.clear()
            self._xi_dense.clear()
            self._other.clear()
            self._segments.clear()
        if hist.num_values != queries.num_candidates:
            raise ConfigError(f"The queries have {queries.num_candidates} candidates but the history of "
                              f"{log.name!r} for task {queries.task!r} has {hist.num_values} values; build the "
                              "queries from the same log (and the same relation_roots for predicate).")
        return hist

    def _remember(self, store: dict[Any, Any], key: Any, value: Any, limit: int | None = None) -> Any:
        with self._lock:  # scoring may run in threads
            while store and len(store) >= (limit or self.max_cutoffs):
                store.pop(next(iter(store)))
            store[key] = value
        return value

    def per_cutoff(self, name: str, hist: TaskHistory, cutoff: int, build: Callable[[], Any]) -> Any:
        """A derived per-cutoff structure ``name``, built once by ``build()`` and kept for recent cutoffs."""
        key = (name, hist.task, hist.fingerprint, int(cutoff))
        value = self._other.get(key)
        return value if value is not None else self._remember(self._other, key, build(), limit=2 * self.max_cutoffs)

    def key_groups(self, hist: TaskHistory, cutoff: int, keys: np.ndarray,
                   build: Callable[[np.ndarray, np.ndarray], Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The sorted (value, count) segments of the relaxed ``keys`` (ascending) before ``cutoff``:
        ``(values, counts, key_start)`` of a :class:`~lamp.tpp.sparse_ranks.GroupCounts` whose other keys are
        empty. ``build(counts, pairs)`` makes the GroupCounts of the keys not seen yet; each key's segment is
        kept for recent (cutoff, key)s, so the query batches that share a cutoff share the work."""
        head = (hist.task, hist.fingerprint, int(cutoff))
        missing = np.asarray([k for k in keys.tolist() if (*head, k) not in self._segments], dtype=np.int64)
        if len(missing):
            lo, hi = hist.pair_range(missing)
            pairs = concat_ranges(lo, hi)[1]
            fresh = build(hist.pair_counts(int(cutoff), pairs), pairs)
            for k in missing.tolist():
                a, b = fresh.key_start[k], fresh.key_start[k + 1]
                self._remember(self._segments, (*head, k), (fresh.values[a:b], fresh.counts[a:b]), limit=4096)
        parts = [self._segments.get((*head, k)) for k in keys.tolist()]
        if any(p is None for p in parts):  # evicted by another thread meanwhile: build these keys in one go
            lo, hi = hist.pair_range(keys)
            pairs = concat_ranges(lo, hi)[1]
            whole = build(hist.pair_counts(int(cutoff), pairs), pairs)
            return whole.values, whole.counts, whole.key_start
        sizes = np.zeros(hist.num_relaxed, dtype=np.int64)
        sizes[keys] = [len(p[0]) for p in parts]  # type: ignore[index]
        key_start = np.zeros(hist.num_relaxed + 1, dtype=np.int64)
        np.cumsum(sizes, out=key_start[1:])
        values = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, dtype=np.int64)  # type: ignore[index]
        counts = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, dtype=np.int64)  # type: ignore[index]
        return values, counts, key_start

    def xi_dense(self, hist: TaskHistory, cutoff: int, key_scale: np.ndarray | None = None) -> np.ndarray:
        """:meth:`xi_matrix` as a dense array, rows scaled by ``key_scale`` (the 2 most recent are kept)."""
        token = None if key_scale is None else hash(np.ascontiguousarray(key_scale, dtype=np.float64).tobytes())
        key = (hist.task, hist.fingerprint, int(cutoff), token)
        table = self._xi_dense.get(key)
        if table is None:
            table = self.xi_matrix(hist, cutoff).toarray()
            if key_scale is not None:
                table *= np.asarray(key_scale, dtype=np.float64)[:, None]
            table = self._remember(self._xi_dense, key, table, limit=2)
        return table

    def pair_counts(self, hist: TaskHistory, cutoff: int) -> np.ndarray:
        key = (hist.task, hist.fingerprint, int(cutoff))
        counts = self._counts.get(key)
        return counts if counts is not None else self._remember(self._counts, key, hist.pair_counts(int(cutoff)))

    def xi_matrix(self, hist: TaskHistory, cutoff: int) -> sparse.csr_matrix:
        """[relaxed keys, values] CSR of ``count(key, value) / count(key)`` strictly before ``cutoff``."""
        key = (hist.task, hist.fingerprint, int(cutoff))
        mat = self._xi.get(key)
        if mat is not None:
            return mat
        counts = self.pair_counts(hist, cutoff)
        keep = counts > 0
        rows, cols = hist.pair_keys[keep] // hist.num_values, hist.pair_keys[keep] % hist.num_values
        c = counts[keep].astype(np.float64)
        total = np.bincount(rows, weights=c, minlength=hist.num_relaxed)
        indptr = np.zeros(hist.num_relaxed + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=hist.num_relaxed), out=indptr[1:])
        mat = sparse.csr_matrix((c / total[rows], cols, indptr), shape=(hist.num_relaxed, hist.num_values))
        return self._remember(self._xi, key, mat)


def sum_by_cell(owner: np.ndarray, values: np.ndarray, weights: np.ndarray, n_values: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Distinct flat cells ``owner * n_values + value`` and their weight sums (added in entry order)."""
    uniq, inv = np.unique(owner * n_values + values, return_inverse=True)
    return uniq, np.bincount(inv, weights=weights, minlength=len(uniq))


