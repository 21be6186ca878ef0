"""``llm_rules``: rules propose causes, the LLM adds its own (union) or re-orders the rules' causes.

Written against the :class:`~lamp.types.Abducer` protocol only, so any two abducers combine.

- ``mode="union"``: the rules' causes in their order, then the LLM's causes that are not already
  there. A cause both propose (same subject, relation and object: ids when both carry them, else
  names compared without case or underscores) appears once, tagged ``source="llm+rules"`` and
  keeping the real event of the rules. Every other cause keeps its own source tag.
- ``mode="rerank"``: only the rules' causes, re-ordered by how well the LLM's causes match them:
  first those matching an LLM cause on subject, relation and object, then on the relation and one
  entity, then on both entities; within a level by the LLM's order; the rest keep the rules' order.

LLM parse failures, dropped future causes and errors are carried over (an LLM error is reported
as ``"llm: ..."`` on the result, its rules causes still returned).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from lamp.data.eventlog import EventLog
from lamp.errors import ConfigError
from lamp.types import Abducer, AbductionRequest, AbductionResult, CauseEvent

MODES = ("union", "rerank")


class LLMRulesAbducer:
    """Combine a rules abducer and an LLM abducer (any two :class:`Abducer`)."""

    name = "llm_rules"

    def __init__(self, llm: Abducer, rules: Abducer, *, mode: str = "union", max_causes: int | None = None) -> None:
        if mode not in MODES:
            raise ConfigError(f"Unknown llm_rules mode {mode!r}. Valid choices are: {', '.join(MODES)}")
        self.llm, self.rules, self.mode, self.max_causes = llm, rules, mode, max_causes

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"mode": self.mode, "max_causes": self.max_causes}
        for part in ("llm", "rules"):
            fn = getattr(getattr(self, part), "config", None)
            cfg[part] = fn() if callable(fn) else getattr(getattr(self, part), "name", part)
        return cfg

    def abduce(self, log: EventLog, requests: Sequence[AbductionRequest]) -> list[AbductionResult]:
        from_rules = self.rules.abduce(log, requests)
        from_llm = self.llm.abduce(log, requests)
        if len(from_rules) != len(requests) or len(from_llm) != len(requests):
            raise ConfigError(f"an abducer returned {len(from_rules)} (rules) / {len(from_llm)} (llm) results for "
                              f"{len(requests)} requests; each must return one result per request, in order.")
        return [self._merge(r, m) for r, m in zip(from_rules, from_llm, strict=True)]

    def _merge(self, rules: AbductionResult, llm: AbductionResult) -> AbductionResult:
        causes = union(rules.causes, llm.causes) if self.mode == "union" else rerank(rules.causes, llm.causes)
        if self.max_causes is not None:
            causes = causes[: self.max_causes]
        errors = [f"{name}: {res.error}" for name, res in (("rules", rules), ("llm", llm)) if res.error]
        return AbductionResult(rules.query_id, rules.candidate, causes, llm.raw_text,
                               rules.parse_failures + llm.parse_failures, rules.dropped_future + llm.dropped_future,
                               "; ".join(errors) or None)


def _norm(text: str) -> str:
    return " ".join(str(text).replace("_", " ").lower().split())


def _key(c: CauseEvent) -> tuple[Any, ...]:
    if c.subject_id >= 0 and c.relation_id >= 0:
        return ("id", c.subject_id, c.relation_id, c.object_id)
    return ("name", _norm(c.subject), _norm(c.relation), _norm(c.object))


def _same(a: CauseEvent, b: CauseEvent) -> bool:
    if _key(a)[0] == _key(b)[0] == "id":
        return _key(a) == _key(b)
    return (_norm(a.subject), _norm(a.relation), _norm(a.object)) == (_norm(b.subject), _norm(b.relation), _norm(b.object))


def union(rules: Sequence[CauseEvent], llm: Sequence[CauseEvent]) -> tuple[CauseEvent, ...]:
    """Rules' causes, then the LLM's new ones; shared causes tagged ``llm+rules`` (module docstring)."""
    out = list(rules)
    n_rules = len(out)
    for c in llm:
        hit = next((i for i, r in enumerate(out) if _same(r, c)), None)
        if hit is None:
            out.append(c)
        elif hit < n_rules and "llm" not in out[hit].source.split("+"):
            out[hit] = replace(out[hit], source=f"llm+{out[hit].source or 'rules'}")
        # else: the LLM repeated itself; the duplicate is dropped
    return tuple(out)


def match_level(rule: CauseEvent, llm: CauseEvent) -> int:
    """3: same triple; 2: same relation and one same entity; 1: same two entities; 0: otherwise."""
    if _same(rule, llm):
        return 3
    rs, ro, rr = _norm(rule.subject), _norm(rule.object), _norm(rule.relation)
    ls, lo, lr = _norm(llm.subject), _norm(llm.object), _norm(llm.relation)
    if rr == lr and (rs == ls or ro == lo):
        return 2
    return 1 if {rs, ro} == {ls, lo} else 0


def rerank(rules: Sequence[CauseEvent], llm: Sequence[CauseEvent]) -> tuple[CauseEvent, ...]:
    """The rules' causes ordered by their best match with the LLM's causes (module docstring)."""
    def sort_key(item: tuple[int, CauseEvent]) -> tuple[int, int, int]:
        pos, cause = item
        best_level, best_rank = 0, len(llm)
        for rank, other in enumerate(llm):
            level = match_level(cause, other)
            if level > best_level:
                best_level, best_rank = level, rank
        return (-best_level, best_rank, pos)

    return tuple(c for _, c in sorted(enumerate(rules), key=sort_key))
