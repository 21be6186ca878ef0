"""The one function that renders an event as text; prompts, retrieval and reports all use it."""

from __future__ import annotations

from lamp.data.eventlog import EventLog

SEP = " | "


def relation_text(log: EventLog, relation: int, level: str = "name") -> str:
    """A relation's name, or its CAMEO root name when ``level == "root"`` and the log has a mapping."""
    if relation < 0:
        return ""
    if level == "root":
        roots = log.meta.get("relation_root_names")
        if roots:
            return str(roots[relation])
    return log.relations.name(relation)


def render_event(
    log: EventLog,
    subject: int,
    relation: int,
    obj: int,
    time: float | None,
    *,
    text: str | None = None,
    level: str = "name",
    with_time: bool = True,
) -> str:
    """``2014-03-17 | Barack Obama | Impose sanctions | Russia`` (plus `` | headline`` when given).

    Sequence data without objects renders as ``date | user | category``. Without an absolute date
    the time prints relative (``t=45 min``). ``with_time=False`` drops the date, as dense retrieval
    does so that one embedding serves every occurrence of a triple.
    """
    parts = []
    if with_time and time is not None:
        parts.append(log.time_spec.format(time))
    parts.append(log.entities.name(subject))
    parts.append(relation_text(log, relation, level))
    if obj >= 0:
        parts.append(log.entities.name(obj))
    if text:
        parts.append(" ".join(str(text).split())[:300])
    return SEP.join(parts)


def render_row(log: EventLog, row: int, *, level: str = "name", with_time: bool = True, with_text: bool = True) -> str:
    """Render event ``row`` of the log."""
    t, s, r, o = log.event(row)
    texts = log.texts
    text = str(texts[row]) if (with_text and texts is not None) else None
    return render_event(log, s, r, o, t, text=text, level=level, with_time=with_time)
