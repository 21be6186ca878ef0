"""The report's explanations: for a few test queries, each candidate's move (base rank -> lamp rank),
the causes its abducer proposed and the real past events the retriever found (the ranker's evidence).

Methods whose causes explain themselves (mined rules carry the rule, its confidence and the matched
events) come before those that do not (an LLM's bare cause events), each group with the method chosen on
valid first. A cause an LLM gave every candidate of a query alike is shown once, above the candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lamp.data.eventlog import EventLog
from lamp.data.render import render_event, render_row
from lamp.pipeline.methods import MethodRun
from lamp.types import CauseEvent

SHOWN_CANDIDATES = 3  # lamp's top candidates per query, plus those the ranker moved and the gold answer
MAX_SHOWN = 6
SHOWN_CAUSES = 2
SHOWN_EVIDENCE = 3


def explained_methods(methods: Sequence[MethodRun], lead: str | None) -> list[MethodRun]:
    """The lamp rows to explain, in order: rows with readable causes, then the rest, ``lead`` first in each.
    A ``no_ranker`` row is explained only when the run has no ranked row for its abducer."""
    lamp = [m for m in methods if m.method.startswith("lamp[") and m.causes]
    ranked = {m.method for m in lamp if "no_ranker" not in m.method}
    lamp = [m for m in lamp if "no_ranker" not in m.method or m.method.replace(",no_ranker", "") not in ranked]

    def readable(m: MethodRun) -> bool:
        return any(c.explanation for causes in m.causes.values() for c in causes)

    order = {id(m): k for k, m in enumerate(methods)}
    return sorted(lamp, key=lambda m: (not readable(m), m.method != lead, order[id(m)]))


def pick_queries(method: MethodRun, base: MethodRun, n: int) -> list[int]:
    """The first ``n`` test queries (sample order) whose top-M order ``method`` changed, then unchanged ones."""
    moved = (method.table.candidates != base.table.candidates).any(axis=1)
    order = np.concatenate([np.flatnonzero(moved), np.flatnonzero(~moved)])
    return [int(i) for i in order[:n]]


def _move(base_pos: int, pos: int) -> str:
    if base_pos == pos:
        return f"base #{base_pos + 1}, unchanged"
    arrow = "up" if pos < base_pos else "down"
    return f"base #{base_pos + 1} → #{pos + 1}, {arrow} {abs(base_pos - pos)}"


def _cause_lines(causes: Sequence[CauseEvent]) -> list[str]:
    """The first causes, one line each; causes explained by the same text (one rule matched by several
    events) are shown once."""
    out: list[str] = []
    seen: set[str] = set()
    for c in causes:
        if len(out) >= SHOWN_CAUSES:
            break
        if c.explanation:
            if c.explanation not in seen:
                seen.add(c.explanation)
                out.append(f"  - why: {c.explanation}")
        else:
            out.append(f"  - cause ({c.source or 'abducer'}): `{c.subject} | {c.relation} | {c.object}`")
    return out


def _causes_key(causes: Sequence[CauseEvent]) -> tuple[tuple[str, str, str], ...]:
    return tuple((c.subject, c.relation, c.object) for c in causes[:SHOWN_CAUSES])


def explain_query(log: EventLog, method: MethodRun, base: MethodRun, i: int) -> list[str]:
    """Markdown lines for test query ``i`` of ``method``."""
    q = method.table.queries
    row = q.frame.iloc[i]
    qid, time = int(row["query_id"]), float(row["time"])
    target = int(row["target"])
    cands = [int(c) for c in method.table.candidates[i]]
    base_pos = {int(c): p for p, c in enumerate(base.table.candidates[i])}
    moved = {p for p, c in enumerate(cands) if base_pos.get(c, p) != p}
    wanted = set(range(min(SHOWN_CANDIDATES, len(cands)))) | moved | ({cands.index(target)} if target in cands else set())
    shown = sorted(wanted)[:MAX_SHOWN]
    gold = render_event(log, *q.candidate_event(i, target), time)
    lines = [f"**Query {qid}**: gold `{gold}`" + ("" if target in cands else " (not in the base model's top-M)"), ""]
    keys = {_causes_key(method.causes.get((qid, c), [])) for c in cands}
    shared = len(keys) == 1 and next(iter(keys)) != ()
    if shared:
        first = method.causes.get((qid, cands[0]), [])
        lines.append("The abducer proposed the same cause(s) for every candidate: "
                     + "; ".join(f"`{c.subject} | {c.relation} | {c.object}`" for c in first[:SHOWN_CAUSES]))
        lines.append("")
    for pos in shown:
        cand = cands[pos]
        mark = " **(gold)**" if cand == target else ""
        event = render_event(log, *q.candidate_event(i, cand), time)
        evidence = method.evidence_rows.get((qid, cand), [])
        lines.append(f"- **#{pos + 1}** `{event}`{mark}: {_move(base_pos.get(cand, pos), pos)}; "
                     f"{len(evidence)} evidence event{'s' if len(evidence) != 1 else ''}")
        if not shared:
            lines += _cause_lines(method.causes.get((qid, cand), []))
        lines += [f"  - evidence: `{render_row(log, int(idx))}`" for idx in evidence[-SHOWN_EVIDENCE:]]
    if len(wanted) > len(shown):
        lines.append(f"- ... {len(wanted) - len(shown)} more moved candidates (all in `predictions.parquet`)")
    lines.append("")
    return lines


def explanations(log: EventLog, methods: Sequence[MethodRun], lead: str | None, n_queries: int) -> list[str]:
    """The report's explanations section (empty without a lamp row or with ``n_queries <= 0``)."""
    base = next((m for m in methods if m.method.startswith("base:")), None)
    chosen = explained_methods(methods, lead)
    if base is None or not chosen or n_queries <= 0:
        return []
    lines: list[Any] = [
        "## Explanations", "",
        f"For up to {n_queries} test queries, the first of the sample whose top-M order the method changed (then "
        "unchanged ones): lamp's top candidates and those it moved, each with its move from the base model's "
        "order, the causes the abducer proposed and the latest of the real past events the retriever found for them, which are "
        "what the ranker scored.", ""]
    for m in chosen:
        lines += [f"### {m.method}" + (" (chosen on valid)" if m.method == lead else ""), ""]
        for i in pick_queries(m, base, n_queries):
            lines += explain_query(log, m, base, i)
    return lines
