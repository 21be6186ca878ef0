"""The audit's checks: score the same queries under a change a leak-free model cannot see, and compare.

Three families, each a list of :class:`CheckRow` (one per change):

- ``future log`` (:func:`future_log_checks`): per query timestamp t, logs equal before t and different
  from t on (:func:`~lamp.tpp.leakage.variants.future_logs`);
- ``query set`` (:func:`query_set_checks`): each query scored alone, in a batch with its inverse-direction
  twin, in shuffled batches of another size, and with its target or filter list replaced;
- ``training`` (:func:`training_checks`): the model refitted on a log whose test part (or, with model
  selection pinned, whose valid and test parts) is random, scored on the real queries and log.

A row compares two candidate tables query by query: the share with the identical top-M (candidates and
order), the share with the identical filtered gold rank (where the change keeps targets and filters),
and the largest absolute score difference, which must not exceed the row's tolerance (0 where the batch
shapes are the same; a float32 model may move in the last digits when they are not).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from lamp.data.eventlog import EventLog
from lamp.data.queries import QuerySet, make_queries
from lamp.tpp.base import BaseModel, CandidateTable
from lamp.tpp.leakage.variants import future_logs, hidden_filters, hidden_targets, randomised_from, twins


class Scorer(Protocol):
    name: str

    def score(self, log: EventLog, queries: QuerySet, top_m: int, *, batch_size: int = 256, progress: bool = False,
              n_jobs: int | None = None) -> CandidateTable: ...


@dataclass(frozen=True)
class CheckRow:
    """One change, scored: ``subject`` is "model", a control's kind, or "info" (a reference, not a check)."""

    family: str
    check: str
    subject: str
    n_queries: int
    same_top_m: float
    same_gold_rank: float | None  # None: the change alters targets or filters, so ranks are not comparable
    max_abs_score_diff: float
    tolerance: float = 0.0  # largest score difference allowed
    min_same: float = 1.0  # smallest share of identical top-Ms / gold ranks allowed (< 1 only for refit noise)
    counts: bool = True  # False: a reference row (e.g. how much two fits on the same data differ), not a check

    @property
    def identical(self) -> bool:
        """Within tolerance: what a model that cannot see the change must give."""
        return (self.same_top_m >= self.min_same and (self.same_gold_rank is None or self.same_gold_rank >= self.min_same)
                and self.max_abs_score_diff <= self.tolerance)


def compare(a: CandidateTable, b: CandidateTable, ranks: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per query: identical top-M, identical filtered gold rank, largest absolute score difference."""
    same_top = np.all(a.candidates == b.candidates, axis=1)
    same_rank = a.gold_rank_filtered == b.gold_rank_filtered if ranks else np.ones(len(same_top), dtype=bool)
    diff = np.max(np.abs(a.scores.astype(np.float64) - b.scores.astype(np.float64)), axis=1, initial=0.0)
    return same_top, same_rank, diff


def row(family: str, check: str, subject: str, parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], *,
        ranks: bool = True, tolerance: float = 0.0, min_same: float = 1.0, counts: bool = True) -> CheckRow:
    """A :class:`CheckRow` over the per-query comparisons ``parts`` (from :func:`compare`)."""
    top, rank, diff = (np.concatenate([p[k] for p in parts]) for k in range(3))
    return CheckRow(family, check, subject, len(top), float(top.mean()) if len(top) else 1.0,
                    (float(rank.mean()) if len(rank) else 1.0) if ranks else None,
                    float(diff.max(initial=0.0)), tolerance, min_same, counts)


def subset(table: CandidateTable, idx: np.ndarray, queries: QuerySet) -> CandidateTable:
    """Rows ``idx`` of ``table``, as a table over ``queries`` (the same queries, taken)."""
    return CandidateTable(table.method, queries, table.top_m, table.candidates[idx], table.scores[idx],
                          table.gold_rank_filtered[idx])


def future_log_checks(scorer: Scorer, log: EventLog, queries: QuerySet, top_m: int, *, subject: str = "model",
                      seed: int = 0) -> list[CheckRow]:
    """Per timestamp t of ``queries``: its queries scored on logs that differ from the real one only at/after t.

    Both sides score the same batch (the queries of t) and differ only in the log, so the scores must be
    identical (tolerance 0): a float32 model whose numbers move with the batch shape (KE-ANHP on some CPUs)
    cannot hide a leak in that noise, nor fail for it.
    """
    times = queries.frame["time"].to_numpy()
    parts: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    for i, t in enumerate(np.unique(times).tolist()):
        sub = queries.take(np.flatnonzero(times == t))
        real = scorer.score(log, sub, top_m)
        gold_rows = sub.frame["event_index"].to_numpy()
        for name, variant in future_logs(log, t, gold_rows, seed + i).items():
            parts.setdefault(name, []).append(compare(real, scorer.score(variant, sub, top_m)))
    return [row("future log", name, subject, p) for name, p in parts.items()]


def query_set_checks(scorer: Scorer, log: EventLog, queries: QuerySet, positions: np.ndarray, top_m: int, *,
                     subject: str = "model", seed: int = 0, n_alone: int = 200, tolerance: float = 0.0,
                     reference: CandidateTable | None = None) -> list[CheckRow]:
    """The queries ``queries.take(positions)`` scored alone, with their twins, in shuffled batches of 7 and
    with targets / filter lists replaced; ``queries`` is the whole split (where the twins are found).

    Each is compared with the run's own batches (``reference``), except the twin batch, compared with the
    query alone: whether or not the run's batches held the twins, a leak through them shows there.
    """
    positions = np.asarray(positions, dtype=np.int64)
    sel = queries.take(positions)
    ref = reference if reference is not None else scorer.score(log, sel, top_m)
    rng = np.random.default_rng(seed)
    some = np.sort(rng.choice(len(sel), size=min(n_alone, len(sel)), replace=False))
    out = []
    alone = {i: scorer.score(log, sel.take(np.array([i])), top_m, batch_size=1) for i in some.tolist()}
    out.append(row("query set", "each query scored alone", subject,
                   [compare(subset(ref, np.array([i]), t.queries), t) for i, t in alone.items()], tolerance=tolerance))
    # a query alone sees no other query: with its twin in the batch it must score the same
    twin_of = twins(queries)[positions]
    paired = [compare(t, subset(scorer.score(log, queries.take(np.array([positions[i], twin_of[i]])), top_m),
                                np.array([0]), t.queries))
              for i, t in alone.items() if twin_of[i] >= 0]
    if paired:
        out.append(row("query set", "with its inverse twin in the batch (vs alone)", subject, paired,
                       tolerance=tolerance))
    perm = rng.permutation(len(sel))
    shuffled = scorer.score(log, sel.take(perm), top_m, batch_size=7)
    back = np.argsort(perm)
    out.append(row("query set", "shuffled into batches of 7", subject,
                   [compare(ref, subset(shuffled, back, sel))], tolerance=tolerance))
    for name, variant in (("targets replaced at random", hidden_targets(sel, seed + 1)),
                          ("filter lists replaced at random", hidden_filters(sel, seed + 2))):
        out.append(row("query set", name, subject, [compare(ref, scorer.score(log, variant, top_m), ranks=False)],
                       ranks=False))
    return out


def fit_and_score(model: BaseModel, fit_log: EventLog, log: EventLog, queries: QuerySet, top_m: int,
                  directions: str = "both") -> CandidateTable:
    """``model`` fitted on ``fit_log`` (its own train and valid queries), then scored on ``queries`` over ``log``."""
    sets = {s: make_queries(fit_log, queries.task, s, directions=directions) for s in ("train", "valid")}
    model.fit(fit_log, sets["train"], sets["valid"])
    return model.score(log, queries, top_m)


def training_checks(build: Callable[[], BaseModel], reference: CandidateTable, log: EventLog, queries: QuerySet,
                    top_m: int, *, pinned: Callable[[], BaseModel] | None = None, directions: str = "both",
                    subject: str = "model", seed: int = 0) -> list[CheckRow]:
    """Refit with ``build()`` on changed logs and score ``queries`` on the real ``log``; compare with ``reference``
    (the scores of ``build()`` fitted on ``log``).

    - "refit on the same log": how far two fits on the same data differ (0 when fitting is deterministic):
      the tolerance of the other rows (seed noise; the batches are the same on both sides);
    - "refit, test part random": every test row rewritten; fit must not read it (nor may selection on valid);
    - "refit with selection pinned, valid and test parts random" (with ``pinned``, a ``build`` whose choice
      on valid is fixed): what fit learns must come from the train rows alone.
    """
    again = compare(reference, fit_and_score(build(), log, log, queries, top_m, directions))
    noise = row("training", "refit on the same log (determinism; reference)", subject, [again], counts=False)
    # the same batches score both sides: beyond the noise of refitting on the same data (none when fitting is
    # deterministic) nothing may move
    tol = noise.max_abs_score_diff
    least = min(noise.same_top_m, noise.same_gold_rank if noise.same_gold_rank is not None else 1.0)
    test_random = randomised_from(log, log.split_ends[1], seed)
    out = [noise, row("training", "refit, test part random", subject,
                      [compare(reference, fit_and_score(build(), test_random, log, queries, top_m, directions))],
                      tolerance=tol, min_same=least)]
    if pinned is not None:  # ``pinned is build``: the model has nothing to choose on valid (reuse its scores)
        ref_pinned = reference if pinned is build else fit_and_score(pinned(), log, log, queries, top_m, directions)
        valid_random = randomised_from(log, log.split_ends[0], seed + 1)
        out.append(row("training", "refit with selection pinned, valid and test parts random", subject,
                       [compare(ref_pinned, fit_and_score(pinned(), valid_random, log, queries, top_m, directions))],
                       tolerance=tol, min_same=least))
    return out
