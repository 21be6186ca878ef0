"""What :meth:`lamp.Pipeline.predict` returns: the ranked candidates of one query, why, and how sure the
order is.

When the scores cannot tell candidates apart the result says so instead of presenting an arbitrary
order as a ranking (``Prediction.ranking`` and ``Prediction.ties``, also in :meth:`Prediction.explain`):

- ``"ranked"``: every candidate has its own score, and none left out of the top-M scores as the last kept;
- ``"tied"``: some do share a score: candidates tied in the final order are shown in base order (then
  lowest entity id), and which of the candidates tied at the top-M cut made it is arbitrary (lowest id);
- ``"arbitrary"``: the base model gives every kept candidate the score of candidates left out (e.g. no
  history at all): nothing singles the list out, it is not a forecast.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lamp.data.render import SEP
from lamp.types import CauseEvent, tie_groups_of

RANKINGS = ("ranked", "tied", "arbitrary")


@dataclass(frozen=True)
class EvidenceEvent:
    """A real past event that supports a candidate (found by the retriever)."""

    row: int
    date: str
    subject: str
    relation: str
    object: str
    score: float


@dataclass(frozen=True)
class CandidatePrediction:
    """One of the top-M candidates: where the base model and lamp put it, and why."""

    rank: int  # 1-based, after the ranker
    entity: str
    event: str  # the candidate event as text (render_event)
    base_rank: int  # 1-based, the base model's order
    base_score: float
    energy: float | None  # the ranker's energy (lower = more plausible); None without a ranker
    causes: tuple[CauseEvent, ...]
    evidence: tuple[EvidenceEvent, ...]


@dataclass(frozen=True)
class Ties:
    """Where the scores cannot tell candidates apart (all empty when they can)."""

    groups: tuple[tuple[int, ...], ...] = ()  # ranks sharing one final score (shown in base order)
    at_cut: tuple[int, ...] = ()  # ranks whose base score equals that of ``beyond_cut`` candidates left out
    beyond_cut: int = 0  # candidates outside the top-M scoring exactly as the last ones kept
    score_at_cut: float | None = None  # that base score

    @property
    def any(self) -> bool:
        return bool(self.groups or self.beyond_cut)


def tie_report(final: np.ndarray, base: np.ndarray, order: np.ndarray, all_base: np.ndarray) -> tuple[str, Ties]:
    """(ranking, ties) of one query: ``final`` [M] the scores that ordered the top-M (higher first),
    ``base`` [M] their base scores, ``order`` [M] the positions best first, ``all_base`` the base
    model's scores of every candidate (the top-M included)."""
    rank_of = np.empty(len(order), dtype=np.int64)
    rank_of[order] = np.arange(1, len(order) + 1)
    listed = tie_groups_of(final[order][None])[0]  # the order lists equal final scores next to each other
    groups = [tuple(int(r) for r in np.flatnonzero(listed == g) + 1) for g in np.unique(listed)
              if np.count_nonzero(listed == g) > 1]
    cut = float(base.min()) if len(base) else 0.0
    beyond = int(np.count_nonzero(all_base == cut)) - int(np.count_nonzero(base == cut)) if len(base) else 0
    at_cut = tuple(sorted(int(rank_of[p]) for p in np.flatnonzero(base == cut))) if beyond else ()
    ties = Ties(tuple(groups), at_cut, beyond, cut if beyond else None)
    if beyond and len(at_cut) == len(base):
        return "arbitrary", ties
    return ("tied" if ties.any else "ranked"), ties


@dataclass(frozen=True)
class Prediction:
    """The ranked candidates of one query, best first, with the history actually used."""

    subject: str
    relation: str
    time: float
    date: str
    candidates: tuple[CandidatePrediction, ...]
    history_events: int  # events strictly before the query time that it was answered from
    ignored_future: int = 0  # events of the history at or after the query time (not used)
    dropped_unseen_relation: int = 0  # events of a given ``history=`` table with relations unseen in training
    unseen_entities: tuple[str, ...] = ()  # entities unseen in training among those events (and the subject)
    ranker_used: bool = True
    ranking: str = "ranked"  # ranked | tied | arbitrary (see the module docstring)
    ties: Ties = field(default_factory=Ties)
    history_version: int | None = None  # the kept history's version it read; None for a given ``history=``

    def to_frame(self) -> pd.DataFrame:
        """One row per candidate (rank, entity, base rank and score, energy, causes and evidence as text)."""
        return pd.DataFrame([{
            "rank": c.rank, "entity": c.entity, "event": c.event, "base_rank": c.base_rank,
            "base_score": c.base_score, "energy": c.energy, "n_causes": len(c.causes),
            "causes": " || ".join(SEP.join((x.subject, x.relation, x.object)) for x in c.causes),
            "evidence": " || ".join(SEP.join((e.date, e.subject, e.relation, e.object)) for e in c.evidence),
        } for c in self.candidates])

    def note(self) -> str | None:
        """A sentence on what the scores cannot tell apart (None when the order is a ranking throughout)."""
        t = self.ties
        if self.ranking == "arbitrary":
            return (f"Not a forecast: the base model scores all {len(self.candidates)} candidates "
                    f"{t.score_at_cut:.3g}, as it does {t.beyond_cut} candidates left out (e.g. no history of this "
                    "subject and relation), so nothing singles them out; they are the lowest entity ids among them.")
        parts = []
        if t.groups:
            parts.append("tied in the final score (shown in base order): ranks "
                         + "; ".join(_ranks(g) for g in t.groups))
        if t.beyond_cut:
            one = len(t.at_cut) == 1
            parts.append(f"rank{'' if one else 's'} {_ranks(t.at_cut)} share{'s its' if one else ' their'} base score "
                         f"({t.score_at_cut:.3g}) with {t.beyond_cut} candidate{'s' if t.beyond_cut > 1 else ''} left out "
                         f"of the top-{len(self.candidates)}: which of them made the list is arbitrary (lowest entity "
                         "id first)")
        return ("Ties: " + "; ".join(parts) + ".") if parts else None

    def explain(self, top: int = 3) -> str:
        """A readable explanation of the first ``top`` candidates (and of any ties, first)."""
        lines = [f"Query: {SEP.join((self.date, self.subject, self.relation, '?'))}  "
                 f"({self.history_events} history events before it)"]
        note = self.note()
        if note:
            lines.append(note)
        for c in self.candidates[:top]:
            lines.append(f"{c.rank}. {c.entity}  (base rank {c.base_rank}, score {c.base_score:.3f}"
                         + (f", energy {c.energy:.3f})" if c.energy is not None else ")"))
            lines += [f"   cause: {SEP.join((x.subject, x.relation, x.object))}" for x in c.causes[:3]]
            lines += [f"   evidence: {SEP.join((e.date, e.subject, e.relation, e.object))}  ({e.score:.2f})"
                      for e in c.evidence[:3]]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The prediction as JSON-ready data (what ``lamp serve`` answers)."""
        out = asdict(self)
        out["ties"]["any"] = self.ties.any
        out["note"] = self.note()
        return _finite(out)


def _ranks(ranks: Sequence[int]) -> str:
    """``1, 3-5, 9``: ranks with runs joined."""
    runs: list[list[int]] = []
    for r in sorted(ranks):
        if runs and r == runs[-1][-1] + 1:
            runs[-1].append(r)
        else:
            runs.append([r])
    return ", ".join(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs)


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: such floats become None."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
