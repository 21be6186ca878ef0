"""JSON schemas for the abducer's structured output.

One answer is ``{"causes": [{"subject", "relation", "object", "date"?, "headline"?}, ...]}``; a batched
answer keys the list of causes by candidate number: ``{"1": [...], "2": [...], ...}`` (the date is
left out when the abducer runs with ``cause_dates: false``).

A :class:`CauseConstraints` narrows the fields to bounded vocabularies (constrained abduction): the
relation names, the entities of the query's recent history and the dates before the effect. Without
constraints the schema fixes only the shape, which still lets a grammar-based backend produce valid
JSON. Only keywords that llama.cpp's schema-to-grammar converter and OpenAI's structured outputs both
support are used (object, array with min/maxItems, string, enum, required).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lamp.data.eventlog import EventLog, TimeSpec, Vocab

CAUSE_FIELDS = ("subject", "relation", "object", "date", "headline")
_ISO = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[ T](\d{1,2}):(\d{2}))?")
_DAY = re.compile(r"\bday\s*([+-]?\d+(?:\.\d+)?)\b", re.IGNORECASE)
_REL = re.compile(r"^(?:t\s*=\s*)?([+-]?\d+(?:\.\d+)?)\s*(min|minutes?|h|hours?|d|days?)\b", re.IGNORECASE)
_MINUTES = {"m": 1.0, "h": 60.0, "d": 1440.0}


def parse_time(value: str, spec: TimeSpec) -> float | None:
    """Dataset time of a printed date: an ISO date when the data has an origin, else a relative
    time as :meth:`TimeSpec.format` prints it (``t=45 min``, ``day 3``); None when unreadable."""
    text = str(value).strip()
    if not text:
        return None
    if spec.origin is not None:
        m = _ISO.search(text)
        if m is None:
            return None
        y, mo, d, hh, mm = (int(g) if g else 0 for g in m.groups())
        try:
            when = datetime(y, mo, d, hh, mm)
        except ValueError:
            return None
        return (when - spec.origin).total_seconds() / spec.seconds_per_unit
    m = _DAY.search(text)
    if m:
        minutes = float(m.group(1)) * 1440.0
    else:
        m = _REL.search(text)
        if m is None:
            return None
        minutes = float(m.group(1)) * _MINUTES[m.group(2)[0].lower()]
    return minutes * 60.0 / spec.seconds_per_unit


@dataclass(frozen=True)
class NameResolver:
    """Maps names in an answer back to vocabulary ids, and dates to dataset time."""

    entities: Vocab
    relations: Vocab
    time_spec: TimeSpec
    has_objects: bool = True

    @classmethod
    def from_log(cls, log: EventLog) -> NameResolver:
        return cls(log.entities, log.relations, log.time_spec, log.has_objects)

    def entity(self, name: str) -> tuple[str, int]:
        return _lookup(self.entities, name)

    def relation(self, name: str) -> tuple[str, int]:
        return _lookup(self.relations, name)


def norm_name(name: str) -> str:
    """Lower case, underscores as spaces, single spaces: how names are matched loosely."""
    return " ".join(name.replace("_", " ").lower().split())


def _lookup(vocab: Vocab, name: str) -> tuple[str, int]:
    """(canonical name, id) on an exact or a normalised match, else (name, -1)."""
    idx = vocab.get(name)
    if idx >= 0:
        return name, idx
    folded = vocab.__dict__.get("_folded_lookup")
    if folded is None:
        folded = {}
        for i, n in enumerate(vocab.names):
            folded.setdefault(norm_name(n), i)
        object.__setattr__(vocab, "_folded_lookup", folded)
    idx = folded.get(norm_name(name), -1)
    return (vocab.names[idx], idx) if idx >= 0 else (name, -1)




@dataclass(frozen=True)
class CauseConstraints:
    """Allowed values per field; an empty tuple leaves that field free (any string)."""

    relations: tuple[str, ...] = ()
    entities: tuple[str, ...] = ()
    dates: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return bool(self.relations or self.entities or self.dates)


def _string(values: Sequence[str]) -> dict[str, Any]:
    # An enum must hold distinct values; order is kept so the prompt and the grammar agree.
    if values:
        return {"type": "string", "enum": list(dict.fromkeys(values))}
    return {"type": "string"}


def cause_item_schema(
    constraints: CauseConstraints | None = None, *, has_object: bool = True, with_headline: bool = False,
    with_date: bool = True,
) -> dict[str, Any]:
    """Schema of one cause event: subject, relation, object, date (+ headline); relation and date only
    for sequence data without objects; no date with ``with_date=False``."""
    c = constraints or CauseConstraints()
    props: dict[str, Any] = {}
    if has_object:  # sequence data (no objects) has no actors to name: every event is the same user's
        props["subject"] = _string(c.entities)
    props["relation"] = _string(c.relations)
    if has_object:
        props["object"] = _string(c.entities)
    if with_date:
        props["date"] = _string(c.dates)
    required = list(props)
    if with_headline:
        props["headline"] = {"type": "string"}
        required.append("headline")
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


def cause_list_schema(num_causes: int, constraints: CauseConstraints | None = None, **fields: bool) -> dict[str, Any]:
    """``[cause, ...]`` with 1..``num_causes`` items (``fields``: see :func:`cause_item_schema`)."""
    return {"type": "array", "items": cause_item_schema(constraints, **fields), "minItems": 1,
            "maxItems": int(num_causes)}


def causes_schema(num_causes: int, constraints: CauseConstraints | None = None, **fields: bool) -> dict[str, Any]:
    """``{"causes": [cause, ...]}`` with 1..``num_causes`` items."""
    return {"type": "object", "properties": {"causes": cause_list_schema(num_causes, constraints, **fields)},
            "required": ["causes"], "additionalProperties": False}


def batched_schema(num_candidates: int, num_causes: int, constraints: CauseConstraints | None = None,
                   **fields: bool) -> dict[str, Any]:
    """``{"1": [cause, ...], ..., "M": [...]}``: the causes of each candidate by its number (1-based)."""
    one = cause_list_schema(num_causes, constraints, **fields)
    keys = [str(i + 1) for i in range(num_candidates)]
    return {
        "type": "object",
        "properties": {k: one for k in keys},
        "required": keys,
        "additionalProperties": False,
    }
