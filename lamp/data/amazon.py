"""Amazon review JSON lines (2014 and 2018 layouts, gzipped or not) -> EventLog (format ``amazon``).

One review is one event: subject = the user (``reviewerID``), relation = the event type read from
``type_field``, object = -1 (or the item, with ``object_field: asin``), time = ``unixReviewTime``
in days since 1970-01-01 (``reviewTime`` "MM D, YYYY" when the former is missing), text = ``summary``.

Options
-------
``file``            the file inside the folder (default: the only ``*.json[l][.gz]`` file)
``type_field``      ``category`` (a string, or a list joined by " / ", cut to ``category_depth``
                    levels) or ``overall`` (star rating -> "1 star" .. "5 stars"), or any other field
``object_field``    ``asin`` to make the item the object; default none (-1)
``text_field``      default ``summary``; null for no text
``dedupe``          default true: drop repeated (user, asin, time, type) rows -- the 2018 5-core files
                    repeat a review once per product variant
``split_fractions`` default [0.8, 0.1, 0.1]: one global cut in time (see ``time_quantile_split``)

Reviews without a value in ``type_field`` are dropped and counted (``meta["dropped_rows"]``).
"""

from __future__ import annotations

import ast
import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from lamp.data.eventlog import EventLog, TimeSpec
from lamp.data.table import (
    DEFAULT_FRACTIONS,
    epoch_seconds_to_units,
    named_events_to_log,
    time_quantile_split,
)
from lamp.data.textio import decode_utf8, read_bytes
from lamp.errors import DataFormatError

log = logging.getLogger(__name__)

STAR_NAMES = ("1 star", "2 stars", "3 stars", "4 stars", "5 stars")


def _find_file(folder: Path, opts: dict[str, Any]) -> Path:
    if opts.get("file"):
        return folder / str(opts["file"])
    files = sorted(p for p in folder.iterdir() if p.name.lower().endswith((".json", ".json.gz", ".jsonl", ".jsonl.gz")))
    if len(files) != 1:
        raise DataFormatError(f"expected one review file (*.json[l][.gz]) in the folder, found {[p.name for p in files]}.",
                              path=str(folder), fix="set options.file to the review file.")
    return files[0]


def _parse_line(line: str, path: Path, lineno: int) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        # The 2014 full (non-5-core) files are Python literals with single quotes; parse those safely.
        try:
            row = ast.literal_eval(line) if line.lstrip().startswith("{'") else None
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            row = None
        if row is None:
            raise DataFormatError(f"not a JSON object ({exc.msg}).", path=str(path), line=lineno,
                                  fix="write one JSON review object per line.") from exc
    if not isinstance(row, dict):
        raise DataFormatError(f"expected a JSON object, got {type(row).__name__}.", path=str(path), line=lineno)
    return row


def _seconds(row: dict[str, Any], path: Path, lineno: int) -> float:
    raw = row.get("unixReviewTime")
    if raw is None and isinstance(row.get("reviewTime"), str):
        try:
            return (datetime.strptime(row["reviewTime"].strip(), "%m %d, %Y") - datetime(1970, 1, 1)).total_seconds()
        except ValueError as exc:
            raise DataFormatError(f"reviewTime {row['reviewTime']!r} is not 'MM D, YYYY'.", path=str(path), line=lineno,
                                  field="reviewTime", fix="correct the date or add unixReviewTime.") from exc
    if raw is None:
        raise DataFormatError("the review has no time.", path=str(path), line=lineno, field="unixReviewTime",
                              fix="add unixReviewTime (seconds since 1970) or remove the review.")
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise DataFormatError(f"unixReviewTime {raw!r} is not a number.", path=str(path), line=lineno,
                              field="unixReviewTime", fix="write seconds since 1970 as a number.")
    try:
        value = float(raw)
    except ValueError as exc:
        raise DataFormatError(f"unixReviewTime {raw!r} is not a number.", path=str(path), line=lineno,
                              field="unixReviewTime", fix="write seconds since 1970 as a number.") from exc
    return value  # NaN / negative values are reported by build_event_log with this line


def _event_type(value: Any, field: str, depth: int | None, path: Path, lineno: int) -> str | None:
    if value is None or value == "" or value == []:
        return None
    if field == "overall":
        try:
            stars = float(value)
        except (TypeError, ValueError) as exc:
            raise DataFormatError(f"rating {value!r} is not a number.", path=str(path), line=lineno, field=field,
                                  fix="use a star rating 1..5.") from exc
        if stars not in (1.0, 2.0, 3.0, 4.0, 5.0):
            raise DataFormatError(f"rating {value!r} is not one of 1, 2, 3, 4, 5.", path=str(path), line=lineno,
                                  field=field, fix="use a whole star rating 1..5.")
        return STAR_NAMES[int(stars) - 1]
    if isinstance(value, list):
        parts = [str(v).strip() for v in value if str(v).strip()]
        return " / ".join(parts[:depth] if depth else parts) or None
    return str(value).strip() or None


def read_amazon(path: Path, name: str, ts: TimeSpec, opts: dict[str, Any]) -> EventLog:
    """Read Amazon reviews (see the module docstring for the options)."""
    path = Path(path)
    file = _find_file(path, opts) if path.is_dir() else path
    type_field = str(opts.get("type_field") or "overall")
    obj_field = opts.get("object_field")
    text_field = opts.get("text_field", "summary")
    depth = opts.get("category_depth")
    text = decode_utf8(read_bytes(file), file)
    rows, dropped = [], 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        row = _parse_line(line, file, lineno)
        user = row.get("reviewerID")
        if not isinstance(user, str) or not user:
            raise DataFormatError("the review has no reviewerID.", path=str(file), line=lineno, field="reviewerID",
                                  fix="every review needs the user id in reviewerID.")
        etype = _event_type(row.get(type_field), type_field, depth, file, lineno)
        if etype is None:
            dropped += 1
            continue
        item = row.get(obj_field) if obj_field else None
        if obj_field and (not isinstance(item, str) or not item):
            raise DataFormatError(f"the review has no {obj_field}.", path=str(file), line=lineno, field=str(obj_field),
                                  fix=f"add {obj_field} or leave options.object_field unset.")
        rows.append((_seconds(row, file, lineno), user, etype, item, str(row.get("asin", "")),
                     str(row.get(text_field) or "") if text_field else "", lineno))
    if not rows:
        raise DataFormatError(f"no reviews with a {type_field!r} value.", path=str(file),
                              fix="check the file and options.type_field.")
    events = pd.DataFrame(rows, columns=["seconds", "subject", "relation", "object", "item", "text", "_line"])
    before = len(events)
    if opts.get("dedupe", True):
        events = events.drop_duplicates(["subject", "item", "seconds", "relation"], keep="first")
    duplicates = before - len(events)
    if dropped or duplicates:
        log.info("%s: dropped %d review(s) without %r and %d duplicate(s)", file.name, dropped, type_field, duplicates)
    events["time"] = epoch_seconds_to_units(events["seconds"].to_numpy(), ts)
    events = events.drop(columns=["item"] if obj_field else ["item", "object"])
    labels = time_quantile_split(events["time"].to_numpy(), opts.get("split_fractions") or DEFAULT_FRACTIONS,
                                 path=str(file))
    relations = list(STAR_NAMES) if type_field == "overall" else None
    return named_events_to_log(
        name, events.drop(columns="seconds"), ts, path=str(file), labels=labels, relations=relations,
        meta={"format": "amazon", "path": str(file), "type_field": type_field, "dropped_rows": dropped,
              "duplicate_rows": duplicates, "users": int(events["subject"].nunique())},
    )
