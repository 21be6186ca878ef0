"""Raw GDELT event exports -> EventLog (format ``gdelt_raw``).

Reads tab-separated GDELT 1.0 rows (57 columns before April 2013, 58 with SOURCEURL after) and
GDELT 2.0 rows (61 columns), from one file, a ``.zip`` holding one, or every such file in a folder.

subject = Actor1Name, object = Actor2Name (rows missing either are dropped and counted in
``meta["dropped_rows"]``), relation = the CAMEO EventCode (named from the CAMEO codebook when
``<data_dir>/cameo`` exists; ``meta["relation_cameo"]`` holds the codes and ``meta["relation_root"]``
the root index from EventRootCode), text = a headline-like slug from SOURCEURL.

Time (``time_field`` option): ``auto`` (default) uses DATEADDED for 2.0 rows (YYYYMMDDHHMMSS,
15-minute steps) and SQLDATE (the event's day) for 1.0 rows; ``DATEADDED`` or ``SQLDATE`` force one.
Times are minutes since 1970-01-01 by default.

Splits: an export has no split, so events are cut globally by time quantiles (``split_fractions``,
default 80/10/10; ties stay in one split, see ``lamp.data.table.time_quantile_split``). A single
15-minute 2.0 export has one DATEADDED for every row and cannot be split by it: load several
consecutive exports (a folder), or use ``time_field: SQLDATE``.
"""

from __future__ import annotations

import logging
import re
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd

from lamp.data.eventlog import EventLog, TimeSpec
from lamp.data.table import (
    DEFAULT_FRACTIONS,
    epoch_seconds_to_units,
    named_events_to_log,
    time_quantile_split,
)
from lamp.data.textio import decode_utf8, read_bytes
from lamp.errors import ConfigError, DataFormatError, LampError

log = logging.getLogger(__name__)

# column positions: (SQLDATE, Actor1Name, Actor2Name, EventCode, EventRootCode, DATEADDED, SOURCEURL)
LAYOUTS = {57: (1, 6, 16, 26, 28, 56, None), 58: (1, 6, 16, 26, 28, 56, 57), 61: (1, 6, 16, 26, 28, 59, 60)}
TIME_FIELDS = ("auto", "DATEADDED", "SQLDATE")
_EPOCH = datetime(1970, 1, 1)


def url_slug(url: str) -> str:
    """``https://x.com/news/10-years-of-belarus-in-eap/`` -> ``10 years of belarus in eap``."""
    if not url:
        return ""
    segments = [s for s in urlparse(url.strip()).path.split("/") if s]
    best = max(segments, key=lambda s: (s.count("-") + s.count("_"), len(s)), default="")
    best = re.sub(r"\.(s?html?|php|aspx?|cms|story)$", "", best, flags=re.IGNORECASE)
    words = [w for w in re.split(r"[-_+.]+", best) if w and not (w.isdigit() and len(w) > 4)]
    return " ".join(words)


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.name.lower().endswith((".csv", ".csv.zip", ".tsv")))
    if not files:
        raise DataFormatError("no GDELT export files (*.CSV, *.csv, *.CSV.zip) in the folder.", path=str(path),
                              fix="put the export files in the folder or pass one file.")
    return files


def _text_of(path: Path) -> str:
    if not path.name.lower().endswith(".zip"):
        return decode_utf8(read_bytes(path), path)
    try:
        with zipfile.ZipFile(path) as zf:
            members = [m for m in zf.namelist() if not m.endswith("/")]
            if len(members) != 1:
                raise DataFormatError(f"expected one export file in the zip, found {members[:5]}.", path=str(path),
                                      fix="unzip it and load the files as a folder.")
            raw = zf.read(members[0])
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataFormatError(f"the zip archive is truncated or corrupt ({exc}).", path=str(path),
                              fix="download the export again.") from exc
    return decode_utf8(raw, path)


def _seconds(raw: str, field: str, path: Path, lineno: int, cache: dict[str, float]) -> float:
    hit = cache.get(raw)
    if hit is not None:
        return hit
    fmt = {8: "%Y%m%d", 14: "%Y%m%d%H%M%S"}.get(len(raw))
    try:
        if fmt is None or not raw.isdigit():
            raise ValueError(raw)
        value = (datetime.strptime(raw, fmt) - _EPOCH).total_seconds()
    except ValueError as exc:
        raise DataFormatError(f"{field} {raw!r} is not a date (YYYYMMDD or YYYYMMDDHHMMSS).", path=str(path),
                              line=lineno, field=field, fix="correct or remove that row.") from exc
    cache[raw] = value
    return value


def _parse_file(path: Path, time_field: str, rows: list[tuple[Any, ...]], stats: dict[str, int]) -> None:
    cache: dict[str, float] = {}
    text = _text_of(path)
    if not text.strip():
        raise DataFormatError("the file is empty.", path=str(path), fix="remove it or download it again.")
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        cols = line.split("\t")
        layout = LAYOUTS.get(len(cols))
        if layout is None:
            raise DataFormatError(
                f"expected 57 or 58 (GDELT 1.0) or 61 (GDELT 2.0) tab-separated columns, got {len(cols)}.",
                path=str(path), line=lineno, fix="check the file is an unmodified GDELT event export.")
        i_date, i_a1, i_a2, i_code, i_root, i_added, i_url = layout
        a1, a2 = cols[i_a1].strip(), cols[i_a2].strip()
        if not a1 or not a2:
            stats["dropped_rows"] += 1
            continue
        code, root = cols[i_code].strip(), cols[i_root].strip()
        if not (code.isdigit() and 2 <= len(code) <= 4):
            raise DataFormatError(f"EventCode {code!r} is not a 2-4 digit CAMEO code.", path=str(path), line=lineno,
                                  field="EventCode", fix="correct or remove that row.")
        if not (root.isdigit() and len(root) == 2 and code.startswith(root) and 1 <= int(root) <= 20):
            raise DataFormatError(f"EventRootCode {root!r} is not the root (01..20) of EventCode {code!r}.",
                                  path=str(path), line=lineno, field="EventRootCode", fix="correct or remove that row.")
        use_added = time_field == "DATEADDED" or (time_field == "auto" and len(cols) == 61)
        field = "DATEADDED" if use_added else "SQLDATE"
        secs = _seconds(cols[i_added if use_added else i_date].strip(), field, path, lineno, cache)
        url = cols[i_url] if i_url is not None else ""
        rows.append((secs, a1, code, a2, url_slug(url), lineno, int(root) - 1))
        stats["gdelt2" if len(cols) == 61 else "gdelt1"] += 1


def _codebook_names(codes: list[str]) -> list[str]:
    try:
        from lamp.data.cameo import load_codebook

        book = load_codebook()
    except LampError:
        log.info("no CAMEO codebook in the data directory; GDELT relations are named by code")
        return [f"CAMEO {c}" for c in codes]
    names = []
    for c in codes:
        own = book.names.get(c)
        names.append(own if own else f"{book.name_of(c) or 'CAMEO'} ({c})")
    return names


def read_gdelt_raw(path: Path, name: str, ts: TimeSpec, opts: dict[str, Any]) -> EventLog:
    """Read GDELT 1.0 / 2.0 event exports (see the module docstring)."""
    time_field = str(opts.get("time_field", "auto"))
    if time_field not in TIME_FIELDS:
        raise ConfigError(f"Unknown time_field {time_field!r}. Valid choices are: {', '.join(TIME_FIELDS)}")
    files = _files(Path(path))
    rows: list[tuple[Any, ...]] = []
    stats = {"dropped_rows": 0, "gdelt1": 0, "gdelt2": 0}
    for file in files:
        _parse_file(file, time_field, rows, stats)
    if not rows:
        raise DataFormatError(f"no row names both actors ({stats['dropped_rows']} dropped).", path=str(path),
                              fix="check the export: Actor1Name and Actor2Name must be set.")
    if stats["dropped_rows"]:
        log.info("%s: dropped %d row(s) without Actor1Name or Actor2Name", Path(path).name, stats["dropped_rows"])
    events = pd.DataFrame(rows, columns=["seconds", "subject", "relation", "object", "text", "_line", "root"])
    events["time"] = epoch_seconds_to_units(events["seconds"].to_numpy(), ts)
    codes = sorted(events["relation"].unique())
    names = _codebook_names(codes)
    events["relation"] = events["relation"].map(dict(zip(codes, names, strict=True)))
    root_of = events.groupby("relation")["root"].first()
    if events["time"].nunique() < 3:
        raise DataFormatError(
            f"the {len(events)} events fall on {events['time'].nunique()} distinct time(s) ({time_field} time), too "
            "few to split train / valid / test by time (one 15-minute GDELT 2.0 export has one DATEADDED).",
            path=str(path), field="time",
            fix="load a folder of several consecutive exports, or set the option time_field=SQLDATE "
                "(CLI: --option time_field=SQLDATE).")
    labels = time_quantile_split(events["time"].to_numpy(), opts.get("split_fractions") or DEFAULT_FRACTIONS,
                                 path=str(path))
    return named_events_to_log(
        name, events.drop(columns=["seconds", "root"]), ts, path=str(files[0] if len(files) == 1 else path),
        labels=labels, relations=names,
        meta={"format": "gdelt_raw", "path": str(path), "time_field": time_field, **stats,
              "relation_cameo": codes, "relation_root": [int(root_of[n]) for n in names]},
    )
