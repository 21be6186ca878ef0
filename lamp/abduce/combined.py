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

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lamp.abduce.llm_abducer import LLMAbducer, LLMAbducerSettings
from lamp.abduce.rules.abducer import RulesAbducer, RulesAbducerSettings
from lamp.components import Configurable, cache_key_of, load_settings, make_settings, save_settings
from lamp.data.eventlog import EventLog
from lamp.errors import ConfigError
from lamp.types import AbductionRequest, AbductionResult, CauseEvent

MODES = ("union", "rerank")


@dataclass(frozen=True)
class LLMRulesSettings:
    """Options of ``llm_rules``: how the two parts combine, and each part's own settings."""

    mode: str = "union"  # union | rerank
    max_causes: int | None = None  # cap on the merged list (None = no cap)
    llm: LLMAbducerSettings = field(default_factory=LLMAbducerSettings)
    rules: RulesAbducerSettings = field(default_factory=RulesAbducerSettings)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"Unknown llm_rules mode {self.mode!r}. Valid choices are: {', '.join(MODES)}")
        if not isinstance(self.llm, LLMAbducerSettings):
            object.__setattr__(self, "llm", make_settings(LLMAbducerSettings, dict(self.llm), {},
                                                          where="abducer 'llm_rules' part 'llm'"))
        if not isinstance(self.rules, RulesAbducerSettings):
            object.__setattr__(self, "rules", make_settings(RulesAbducerSettings, dict(self.rules), {},
                                                            where="abducer 'llm_rules' part 'rules'"))


class LLMRulesAbducer(Configurable):
    """Combine a rules abducer and an LLM abducer (ready instances, or built from the settings' parts with
    ``client``)."""

    name = "llm_rules"
    Settings = LLMRulesSettings
    uses_llm = True

    def __init__(self, llm: Any = None, rules: Any = None, settings: LLMRulesSettings | Mapping[str, Any] | None = None,
                 *, client: Any = None, **overrides: Any) -> None:
        for part, given in (("llm", llm), ("rules", rules)):
            if isinstance(given, Mapping):  # a part's options, not a ready abducer
                overrides[part] = given
        llm = None if isinstance(llm, Mapping) else llm
        rules = None if isinstance(rules, Mapping) else rules
        s = make_settings(LLMRulesSettings, settings, overrides, where="abducer 'llm_rules'")
        if llm is None:
            llm = LLMAbducer(client, s.llm)
        if rules is None:
            rules = RulesAbducer(s.rules)
        self.llm, self.rules, self.mode, self.max_causes = llm, rules, s.mode, s.max_causes
        parts = {k: getattr(part, "settings", None) for k, part in (("llm", llm), ("rules", rules))}
        self.settings = replace(s, **{k: v for k, v in parts.items() if v is not None})

    def for_dataset(self, dataset: str) -> LLMRulesAbducer:
        for_dataset = getattr(self.llm, "for_dataset", None)
        if callable(for_dataset):
            for_dataset(dataset)
        return self

    def content_key(self) -> Any:
        return {"llm": cache_key_of(self.llm), "rules": cache_key_of(self.rules)}

    def save(self, folder: str | os.PathLike[str]) -> None:
        """Its settings, and each part in its own subfolder (``llm/``, ``rules/``)."""
        save_settings(self, folder, files={"llm": "llm", "rules": "rules"})
        self.llm.save(Path(folder) / "llm")  # type: ignore[attr-defined]
        self.rules.save(Path(folder) / "rules")  # type: ignore[attr-defined]

    @classmethod
    def load(cls, folder: str | os.PathLike[str], **runtime: Any) -> LLMRulesAbducer:
        """Read what :meth:`save` wrote; ``client=`` is the LLM to use."""
        settings, _ = load_settings(cls, folder)
        llm = LLMAbducer.load(Path(folder) / "llm", client=runtime.get("client"))
        return cls(llm, RulesAbducer.load(Path(folder) / "rules"), settings)

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
