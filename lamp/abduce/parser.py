"""A tolerant parser for abduced cause events.

It accepts JSON (bare, in a code fence, or embedded in prose; truncated JSON keeps its complete
cause objects), pipe lines in the order :func:`lamp.data.render.render_event` prints
(``2014-03-12 | Barack Obama | Impose sanctions | Russia``, optionally with a header row), inline
``subject: ..., relation: ...`` lines and multi-line ``key: value`` blocks like the paper's prompts
(``event type: ...`` / ``subject name: ...``).

Every cause is parsed as a unit: a missing or unknown field makes that one cause a parse failure and
never shifts the fields of the others. Names map back to ids through the log's vocabularies (exact,
then case- and underscore-insensitive); dates convert to dataset time; causes dated at or after the
effect are dropped and counted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from lamp.abduce.schema import NameResolver, norm_name, parse_time
from lamp.types import CauseEvent

# Field name variants seen in prompts and model answers -> canonical field.
_KEYS: dict[str, str] = {}
for _canon, _names in {
    "subject": ("subject", "subject name", "actor", "actor1", "source", "head", "user", "customer"),
    "relation": ("relation", "event type", "type", "predicate", "relation type", "product category",
                 "category", "action", "event"),
    "object": ("object", "object name", "target", "actor2", "tail"),
    "date": ("date", "time", "event time", "event date", "timestamp", "when"),
    "headline": ("headline", "event headline", "summary", "summary text", "title", "product title", "text"),
}.items():
    for _n in _names:
        _KEYS[_n] = _canon
_IGNORED = ("key phrases", "review text", "reason", "explanation", "id", "score")
_KEY_ALT = "|".join(sorted((re.escape(k) for k in list(_KEYS) + list(_IGNORED)), key=len, reverse=True))
_KV = re.compile(rf"(?:^|[,;]\s*|\s{{2,}})({_KEY_ALT})\s*[:=]\s*", re.IGNORECASE)
_MARKER = re.compile(r"^\s*(?:[-*\u2022>]+|\d+\s*[.)]|#+)\s*")
_CAUSE_HEADER = re.compile(r"^\W*(?:cause(?:\s+event)?|event)\s*#?\s*\d*\s*[:.)-]?\s*$", re.IGNORECASE)
_EFFECT_HEADER = re.compile(r"^\W*effect(?:\s+event)?\s*[:.-]?\s*$", re.IGNORECASE)
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_CANDIDATE = re.compile(r"^\W*candidate\s*#?\s*(\d+)\b", re.IGNORECASE | re.MULTILINE)
_CANDIDATE_PREFIX = re.compile(r"^\W*candidate\s*#?\s*\d+\s*[:.)-]?\s*", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedCauses:
    causes: tuple[CauseEvent, ...]
    parse_failures: int = 0
    dropped_future: int = 0
    duplicates: int = 0


# -- records: raw field dicts found in the text ------------------------------------------------------
def _canon_key(key: str) -> str | None:
    k = " ".join(str(key).replace("_", " ").replace("-", " ").lower().split())
    return _KEYS.get(k)


def _record_from_mapping(obj: dict[str, Any]) -> dict[str, str] | None:
    """Canonical fields of a JSON cause; None when a field holds something that is not a scalar."""
    rec: dict[str, str] = {}
    for key, value in obj.items():
        canon = _canon_key(key)
        if canon is None or canon in rec:
            continue
        if isinstance(value, dict | list):
            return None
        rec[canon] = "" if value is None else str(value).strip()
    return rec


def _causes_in_json(value: Any) -> tuple[list[dict[str, str] | None], bool]:
    """Cause records in a decoded JSON value, and whether it looked like an answer at all."""
    if isinstance(value, dict):
        for key in ("causes", "cause events", "cause_events", "events", "answer"):
            if key in value:
                return _causes_in_json(value[key])
        if any(_canon_key(k) for k in value):
            return [_record_from_mapping(value)], True
        return [], False
    if isinstance(value, list):
        out: list[dict[str, str] | None] = []
        for item in value:
            out.append(_record_from_mapping(item) if isinstance(item, dict) else None)
        return out, True
    return [], False


def decode_json(text: str) -> tuple[Any, bool] | None:
    """The first decodable JSON object or array in ``text`` (fenced or bare), and whether it starts at
    the first bracket (False: the outer JSON is broken and only an inner part decoded)."""
    decoder = json.JSONDecoder()
    for body in [m.group(1) for m in _FENCE.finditer(text)] + [text]:
        starts = [m.start() for m in re.finditer(r"[{\[]", body)]
        for start in starts:
            try:
                value, end = decoder.raw_decode(body, start)
            except ValueError:
                continue
            if isinstance(value, dict | list) and (value or end - start > 2):
                return value, start == starts[0]
    return None


def _json_records(text: str) -> list[dict[str, str] | None] | None:
    found = decode_json(text)
    if found is not None and found[1]:
        records, ok = _causes_in_json(found[0])
        if ok:
            return records
    # Truncated or broken JSON: keep every complete cause object, count the broken tail once.
    decoder = json.JSONDecoder()
    salvaged: list[dict[str, str] | None] = []
    pos, broken = 0, False
    for m in re.finditer(r"\{", text):
        if m.start() < pos:
            continue
        try:
            value, end = decoder.raw_decode(text, m.start())
        except ValueError:
            broken = broken or bool(re.match(r"\{\s*\"", text[m.start():]))
            continue
        if isinstance(value, dict) and any(_canon_key(k) for k in value):
            salvaged.append(_record_from_mapping(value))
            pos = end
    if broken and salvaged:
        salvaged.append(None)
    return salvaged or None


def _pipe_record(line: str, header: list[str | None] | None, resolver: NameResolver) -> dict[str, str] | None:
    parts = [p.strip() for p in line.strip().strip("|").split("|")]
    if header is not None:
        if len(parts) != len(header):
            return None
        return {k: v for k, v in zip(header, parts, strict=True) if k is not None}
    rec: dict[str, str] = {}
    if parts and parse_time(parts[0], resolver.time_spec) is not None:
        rec["date"] = parts.pop(0)
    elif len(parts) > 1 and parse_time(parts[-1], resolver.time_spec) is not None:
        rec["date"] = parts.pop()
    names = ("subject", "relation", "object") if resolver.has_objects else ("subject", "relation")
    if len(parts) < len(names):
        return None
    rec.update(zip(names, parts[: len(names)], strict=True))
    if len(parts) > len(names):
        rec["headline"] = " | ".join(parts[len(names):])
    return rec


def _line_records(text: str, resolver: NameResolver) -> list[dict[str, str] | None]:
    records: list[dict[str, str] | None] = []
    current: dict[str, str] = {}
    skipping = False  # inside an echoed "effect event" block, up to the next blank line or cause header
    header: list[str | None] | None = None

    def flush() -> None:
        nonlocal current
        if current and not skipping:
            records.append(dict(current))
        current = {}

    for raw in text.splitlines():
        line = raw.strip()
        if not line or _CAUSE_HEADER.match(line):
            flush()
            skipping = False
            continue
        if _EFFECT_HEADER.match(line):
            flush()
            skipping = True
            continue
        if "|" in line:
            flush()
            if skipping or re.fullmatch(r"[|:\-\s]+", line):
                continue
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            cols = [_canon_key(c) for c in cells]
            if sum(c is not None for c in cols) >= 2:  # a table header fixes the column order
                header = cols
                continue
            records.append(_pipe_record(line, header, resolver))
            continue
        line = _MARKER.sub("", line)
        pairs = _split_pairs(line)
        if not pairs:
            flush()
            continue
        for key, value in pairs:
            canon = _canon_key(key)
            if canon is None:
                continue
            if canon in current:
                flush()
            current[canon] = value
        if len(pairs) > 1:
            flush()
    flush()
    return records


def _split_pairs(line: str) -> list[tuple[str, str]]:
    matches = list(_KV.finditer(line))
    if not matches or matches[0].start() != 0:
        return []
    out = []
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(line)
        out.append((m.group(1).lower(), line[m.end():end].strip().strip("\"'").strip()))
    return out


def extract_records(text: str, resolver: NameResolver) -> list[dict[str, str] | None] | None:
    """Raw cause records (a ``None`` item = an attempted cause that could not be read); None when the
    text holds nothing recognisable as causes (an explicit empty JSON list gives ``[]``)."""
    records = _json_records(text)
    if records is None:
        records = _line_records(text, resolver) or None
    return records


# -- records -> cause events ----------------------------------------------------------------------------
def record_to_cause(rec: dict[str, str], resolver: NameResolver, *, default_subject: str = "",
                    source: str = "llm") -> CauseEvent | None:
    """A cause event, or None when a required field is missing or empty."""
    subject = rec.get("subject", "") or ("" if resolver.has_objects else default_subject)
    relation, obj = rec.get("relation", ""), rec.get("object", "")
    if not relation or not subject or (resolver.has_objects and not obj):
        return None
    s_name, s_id = resolver.entity(subject)
    r_name, r_id = resolver.relation(relation)
    o_name, o_id = resolver.entity(obj) if resolver.has_objects else ("", -1)
    when = parse_time(rec.get("date", ""), resolver.time_spec)
    return CauseEvent(s_name, r_name, o_name, when, text=rec.get("headline", ""), source=source,
                      subject_id=s_id, relation_id=r_id, object_id=o_id)


def parse_causes(text: str, resolver: NameResolver, effect_time: float, *, num_causes: int | None = None,
                 default_subject: str = "", source: str = "llm") -> ParsedCauses:
    """Parse one answer into cause events (see the module docstring for the accepted forms).

    An answer with no recognisable cause at all counts as one parse failure.
    """
    return causes_from_records(extract_records(text or "", resolver), resolver, effect_time,
                               num_causes=num_causes, default_subject=default_subject, source=source)


def causes_from_records(records: list[dict[str, str] | None] | None, resolver: NameResolver, effect_time: float, *,
                        num_causes: int | None = None, default_subject: str = "",
                        source: str = "llm") -> ParsedCauses:
    causes: list[CauseEvent] = []
    failures = dropped = dups = 0
    seen: set[tuple[str, str, str, float | None]] = set()
    for rec in records or ():
        cause = None if rec is None else record_to_cause(rec, resolver, default_subject=default_subject,
                                                          source=source)
        if cause is None:
            failures += 1
            continue
        if cause.time is not None and cause.time >= effect_time:
            dropped += 1
            continue
        key = (norm_name(cause.subject), norm_name(cause.relation), norm_name(cause.object), cause.time)
        if key in seen:
            dups += 1
            continue
        seen.add(key)
        if num_causes is None or len(causes) < num_causes:
            causes.append(cause)
    if records is None:
        failures = 1
    return ParsedCauses(tuple(causes), failures, dropped, dups)


# -- batched answers: one section per candidate number ------------------------------------------------
def _section(value: Any) -> list[dict[str, str] | None] | None:
    records, ok = _causes_in_json(value)
    return records if ok else None


def _candidate_number(key: Any) -> int | None:
    m = re.fullmatch(r"\W*(?:candidate|c)?[\s_#]*(\d+)\W*", str(key), re.IGNORECASE)
    return int(m.group(1)) if m else None


def split_batched(text: str, n: int, resolver: NameResolver) -> list[list[dict[str, str] | None] | None]:
    """Per candidate 1..n, its raw cause records (None where the answer has no section for it)."""
    out: list[list[dict[str, str] | None] | None] = [None] * n
    found = decode_json(text)
    value = found[0] if found and found[1] else None
    if isinstance(value, dict) and isinstance(value.get("candidates"), list | dict):
        value = value["candidates"]
    if isinstance(value, dict) and any(_candidate_number(k) for k in value):
        for key, sub in value.items():
            k = _candidate_number(key)
            if k is not None and 1 <= k <= n and out[k - 1] is None:
                out[k - 1] = _section(sub)
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict | list) for v in value):
        for i, sub in enumerate(value[:n]):
            out[i] = _section(sub)
        return out
    # Broken JSON keyed by number, or text with "Candidate k" headers: split the text itself.
    marks = [(int(m.group(1)), m.start()) for m in re.finditer(r"\"(?:candidate\s*)?(\d+)\"\s*:\s*[{\[]", text)]
    marks = marks or [(int(m.group(1)), m.start()) for m in _CANDIDATE.finditer(text)]
    for i, (k, start) in enumerate(marks):
        end = marks[i + 1][1] if i + 1 < len(marks) else len(text)
        if 1 <= k <= n and out[k - 1] is None:
            chunk = text[start:end] if text[start] == '"' else _CANDIDATE_PREFIX.sub("", text[start:end], count=1)
            out[k - 1] = extract_records(chunk, resolver)
    return out


def parse_batched(text: str, n: int, resolver: NameResolver, effect_times: list[float], *,
                  num_causes: int | None = None, default_subjects: list[str] | None = None,
                  source: str = "llm") -> list[ParsedCauses]:
    """Parse a batched answer into one :class:`ParsedCauses` per candidate; a candidate without a
    section counts one parse failure."""
    sections = split_batched(text or "", n, resolver)
    subjects = default_subjects or [""] * n
    return [
        causes_from_records(sec, resolver, effect_times[i], num_causes=num_causes,
                            default_subject=subjects[i], source=source)
        for i, sec in enumerate(sections)
    ]
