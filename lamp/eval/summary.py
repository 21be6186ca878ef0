"""What a run's reader needs first: which method did best on valid, and how it compares with the base
model on test, in one sentence with its paired-bootstrap interval.

The valid number of a method is the paper's metric, the mean rank of the gold among the top-M, on the
held-out last part of the valid queries (the part no ranker trained on; the ranker's ``stop`` part, which
also chose its weight). The base model's order is scored on the same queries. A method with no valid
number is never selected; :class:`ValidScore.note` says why it has none.

>>> scores = valid_scores(rows)                       # doctest: +SKIP
>>> best = select_on_valid(scores)                   # doctest: +SKIP
>>> headline(best, rows, tables)                      # doctest: +SKIP
'Best on valid: lamp[rules] (mean rank 1.76 vs 1.95 for the base, 21 held-out valid queries); on test ...'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lamp.eval.metrics import paired_difference
from lamp.types import CandidateTable


@dataclass(frozen=True)
class ValidScore:
    """A method's number on the held-out valid queries (``None``: it has none; ``note`` says why)."""

    method: str
    value: float | None
    n_queries: int | None
    note: str


@dataclass(frozen=True)
class Selection:
    """The method a report leads with, the base it is compared with, and how it was chosen."""

    method: str | None
    base: str | None
    valid: ValidScore | None
    base_valid: ValidScore | None
    how: str


def _num(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out


def one_direction(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The rows over all queries (direction ``both``), or of the only direction present."""
    both = [r for r in rows if r.get("direction") == "both"]
    if both:
        return both
    first = rows[0].get("direction") if rows else None
    return [r for r in rows if r.get("direction") == first]


def valid_scores(rows: Sequence[Mapping[str, Any]]) -> list[ValidScore]:
    """One :class:`ValidScore` per method of ``rows`` (one direction), in run order."""
    rows = one_direction(rows)
    ranked = [r for r in rows if _num(r.get("ranker_stop_mean_rank_combined")) is not None]
    ranked_ids = {id(r) for r in ranked}
    base_value = _num(ranked[0].get("ranker_stop_mean_rank_base")) if ranked else None
    n_stop = int(ranked[0]["ranker_stop_used"]) if ranked and "ranker_stop_used" in ranked[0] else None
    out = []
    for r in rows:
        method = str(r["method"])
        if method.startswith("base:"):
            note = ("the base model's order on the same held-out valid queries" if base_value is not None
                    else "no ranker ran, so no method was scored on valid")
            out.append(ValidScore(method, base_value, n_stop if base_value is not None else None, note))
        elif r.get("ranker_trained_on") and "no_ranker" not in method:
            # its valid number is the teacher's evidence's (train_evidence): not a measurement of this method
            out.append(ValidScore(method, None, None, f"its ranker learned from {r['ranker_trained_on']} test "
                                  "evidence: the method itself was not run on valid, so it is not a candidate "
                                  "for selection (its test row stands beside the base's)"))
        elif id(r) in ranked_ids:
            weight = r.get("ranker_weight")
            note = ("ranker trained on the earlier valid queries; it did not beat the base order on the held-out "
                    "ones, so it keeps the base order (w = inf)" if weight == "inf" else
                    f"ranker trained on the earlier valid queries; w = {_num(weight) or 0:.3g} chosen on the held-out ones")
            if r.get("ranker_evidence_control"):
                note += f"; evidence control: {r['ranker_evidence_control']}"
            out.append(ValidScore(method, _num(r["ranker_stop_mean_rank_combined"]), n_stop, note))
        elif r.get("ranker_fallback"):
            out.append(ValidScore(method, None, None, f"ranker not trained: {r['ranker_fallback']}"))
        elif "no_ranker" in method or "ranker_weight" not in r:
            out.append(ValidScore(method, None, None, "unlearned order (by its evidence's retrieval scores): nothing "
                                  "is fitted on valid, so it is not a candidate for selection"))
        else:
            out.append(ValidScore(method, None, None, "no valid number recorded"))
    return out


def select_on_valid(scores: Sequence[ValidScore]) -> Selection:
    """The method with the lowest valid mean rank; the base wins ties, then the earlier row.

    Without any valid number (no ranker ran) the first ``lamp[...]`` row is shown and ``how`` says so.
    """
    base = next((s for s in scores if s.method.startswith("base:")), None)
    scored = [s for s in scores if s.value is not None]
    if not scored:
        first = next((s for s in scores if s.method.startswith("lamp[")), None) or \
            next((s for s in scores if s is not base), None)
        how = ("no method has a valid number in this run (no ranker ran), so none was selected; shown: "
               f"{first.method if first else 'none'}, the run's first lamp row")
        return Selection(first.method if first else None, base.method if base else None, first, base, how)
    best = min(scored, key=lambda s: (s.value, s is not base, scores.index(s)))
    n = best.n_queries
    how = f"lowest mean rank of the gold in the top-M on the {n} held-out valid queries with the gold in the top-M"
    return Selection(best.method, base.method if base else None, best, base, how)


def _verdict(low: float, high: float, higher_is_better: bool) -> str:
    if low > 0 or high < 0:
        better = (low > 0) == higher_is_better
        return "better than the base" if better else "worse than the base"
    return "no clear difference from the base"


def compare_on_test(method: str, base: str, tables: Mapping[str, CandidateTable],
                    rows: Sequence[Mapping[str, Any]]) -> str:
    """``method`` against ``base`` on test: MRR (mean rank in the top-M where MRR is undefined), the
    paired difference and its 95% bootstrap interval over timestamps, and a verdict."""
    by_method = {str(r["method"]): r for r in one_direction(rows)}
    metric, name, higher = "mrr_filtered", "MRR", True
    if _num(by_method[method].get(metric)) is None or _num(by_method[base].get(metric)) is None:
        metric, name, higher = "mean_rank_top_m", "mean rank in the top-M", False
    res = paired_difference(tables[method], tables[base], metric)
    a, b = _num(by_method[method].get(metric)), _num(by_method[base].get(metric))
    if a is None or b is None or math.isnan(res.diff):
        return f"on test {name} is undefined for one of them"
    return (f"on test, {name} {a:.3f} vs {b:.3f}: {res.diff:+.3f} (95% CI {res.ci_low:+.3f} to {res.ci_high:+.3f}, "
            f"paired bootstrap over {res.n_queries} queries), {_verdict(res.ci_low, res.ci_high, higher)}")


def headline(selection: Selection, rows: Sequence[Mapping[str, Any]], tables: Mapping[str, CandidateTable]) -> str:
    """One sentence: the method chosen on valid against the base, on valid and on test."""
    base, best = selection.base, selection.method
    if base is None or best is None or best not in tables or base not in tables:
        return "No comparison with a base model: the run has no base or no other method."
    bv = selection.base_valid.value if selection.base_valid else None
    v = selection.valid.value if selection.valid else None
    if v is None:
        return f"Shown: {best} ({selection.how}); {compare_on_test(best, base, tables, rows)}."
    n = selection.valid.n_queries if selection.valid else None
    if best == base:
        scores = valid_scores(rows)
        runner = min((s for s in scores if s.value is not None and s.method != base),
                     key=lambda s: (s.value, scores.index(s)), default=None)
        if runner is None or runner.value is None:
            return f"Best on valid: {base} (mean rank {bv:.2f}, {n} held-out valid queries); no other method was scored."
        return (f"Best on valid: the base model {base} (mean rank {bv:.2f}; no method beat it, the closest is "
                f"{runner.method} at {runner.value:.2f}, {n} held-out valid queries); {runner.method} "
                f"{compare_on_test(runner.method, base, tables, rows)}.")
    tied = [s.method for s in valid_scores(rows) if s.value == v and s.method != best]
    tie = (f", tied with {_names(tied)}, the earlier row taken," if tied else "")
    return (f"Best on valid: {best} (mean rank {v:.2f}{tie} vs {bv:.2f} for the base, {n} held-out valid queries); "
            f"{compare_on_test(best, base, tables, rows)}.")


def _names(methods: Sequence[str], most: int = 3) -> str:
    shown = list(methods[:most]) + ([f"{len(methods) - most} more"] if len(methods) > most else [])
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]
