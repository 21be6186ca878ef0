"""Generic tables (CSV / TSV / Parquet / JSON lines) with a column mapping, plus helpers shared by
the readers that build an EventLog from named events (amazon, gdelt_raw).

Options of format ``table``::

    columns:        {time: ts, subject: actor, relation: action, object: target, text: headline}
                    (defaults: the column named like the key; object and text are optional)
    split_column:   a column holding train / valid / test (also dev, validation); otherwise the rows
                    are split by time, see :func:`time_quantile_split`
    split_fractions: [0.8, 0.1, 0.1]
    time_unit:      unit of numeric times (second, minute, hour, day, week, step; default step), or
                    the unit date strings are converted to (default day); a time column of numbers
                    holds numeric times, anything else is parsed as dates
    origin:         ISO date of t = 0 for numeric times; for date strings, the date measured from
                    (default 1970-01-01)
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lamp.data.eventlog import SPLITS, EventLog, TimeSpec, build_event_log
from lamp.data.textio import decode_utf8, read_bytes
from lamp.errors import ConfigError, DataFormatError

UNIT_SECONDS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0, "week": 604800.0, "step": 1.0}
EPOCH = datetime(1970, 1, 1)
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
SPLIT_NAMES = {"train": 0, "valid": 1, "validation": 1, "dev": 1, "val": 1, "test": 2}


def time_quantile_split(times: np.ndarray, fractions: Sequence[float] = DEFAULT_FRACTIONS, *,
                        path: str = "<events>") -> np.ndarray:
    """Split label (0 train, 1 valid, 2 test) per event: one global cut in time, ties kept together.

    The cut times are the distinct time values whose cumulative share of events is nearest to
    ``fractions`` (default 80/10/10); events at one time value always fall in one split, so splits
    never overlap in time. Each split gets at least one distinct time value.
    """
    try:
        fr = np.asarray(fractions, dtype=np.float64)
    except (TypeError, ValueError):
        fr = np.zeros(0)
    if fr.shape != (3,) or np.any(fr <= 0) or not np.isclose(fr.sum(), 1.0):
        raise ConfigError(f"split_fractions must be three positive numbers summing to 1, got {list(fractions)}.")
    values, counts = np.unique(times, return_counts=True)
    if len(values) < 3:
        raise DataFormatError(
            f"the {len(times)} events have only {len(values)} distinct time value(s); a split by time needs at "
            "least 3.", path=path, field="time",
            fix="load more data (several export files), choose a finer time field, or give a split column.")
    before = np.concatenate([[0], np.cumsum(counts)]) / counts.sum()  # share of events before value k
    n = len(values)
    k1 = int(np.clip(np.argmin(np.abs(before - fr[0])), 1, n - 2))
    k2 = k1 + 1 + int(np.argmin(np.abs(before[k1 + 1 : n] - fr[0] - fr[1])))
    idx = np.searchsorted(values, times)
    return ((idx >= k1).astype(np.int8) + (idx >= k2).astype(np.int8)).astype(np.int8)


def detect_granularity(times: np.ndarray, seconds_per_unit: float) -> float:
    """The coarsest of day / hour / 15 min / minute / second that divides every time (in units)."""
    for seconds in (86400.0, 3600.0, 900.0, 60.0, 1.0):
        step = seconds / seconds_per_unit
        if step >= 1.0 or step == 0:
            q = times / step
            if len(times) and np.allclose(q, np.round(q), rtol=0, atol=1e-6):
                return step
    return 1.0


def epoch_seconds_to_units(seconds: np.ndarray, ts: TimeSpec) -> np.ndarray:
    """Seconds since 1970-01-01 (UTC) -> time values of ``ts`` (measured from its origin, else the epoch)."""
    origin = (ts.origin - EPOCH).total_seconds() if ts.origin is not None else 0.0
    return (np.asarray(seconds, dtype=np.float64) - origin) / ts.seconds_per_unit


def named_events_to_log(
    name: str, events: pd.DataFrame, time_spec: TimeSpec, *, path: str, labels: np.ndarray,
    relations: Sequence[str] | None = None, meta: dict[str, Any] | None = None,
) -> EventLog:
    """Build an EventLog from events given by name.

    ``events`` columns: ``time`` (float, units of ``time_spec``), ``subject``, ``relation``, optional
    ``object`` (names; None/empty = no object), optional ``text`` and ``_line``. ``labels``: split
    per row (0/1/2). Entity ids follow sorted names; relation ids follow ``relations`` when given.
    """
    subj = events["subject"].astype(str)
    obj = _names_or_none(events["object"]) if "object" in events.columns else None
    entities = sorted(set(subj) | (set(obj.dropna()) if obj is not None else set()))
    rel_names = list(relations) if relations is not None else sorted(set(events["relation"].astype(str)))
    frame = pd.DataFrame({
        "time": events["time"].to_numpy(dtype=np.float64),
        "subject": pd.Categorical(subj, categories=entities).codes.astype(np.int64),
        # a name outside ``relations`` gets code -1, which build_event_log reports with its line
        "relation": pd.Categorical(events["relation"].astype(str), categories=rel_names).codes.astype(np.int64),
        "object": pd.Categorical(obj, categories=entities).codes.astype(np.int64) if obj is not None else -1,
    })
    for col in ("text", "_line"):
        if col in events.columns:
            frame[col] = events[col].to_numpy()
    parts = {split: frame[labels == i] for i, split in enumerate(SPLITS)}
    ts = TimeSpec(time_spec.unit, time_spec.seconds_per_unit, time_spec.origin,
                  detect_granularity(frame["time"].to_numpy(), time_spec.seconds_per_unit))
    return build_event_log(name, parts, entities, rel_names, ts, sources=dict.fromkeys(SPLITS, path),
                           meta=meta)


def _names_or_none(values: pd.Series) -> pd.Series:
    """Names as strings, with missing / empty values as NaN (= no object)."""
    out = values.astype(object).where(values.notna(), None).map(lambda v: None if v is None else str(v))
    return out.where(out != "", None)


# -- the "table" reader ----------------------------------------------------------------------------
def _read_frame(path: Path) -> tuple[pd.DataFrame, int]:
    """The raw table and the file line of its first row (for error messages)."""
    low = path.name.lower().removesuffix(".gz")
    if low.endswith(".parquet"):
        try:
            return pd.read_parquet(path), 1
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a corrupt file
            raise DataFormatError(f"not a readable Parquet file ({exc}).", path=str(path),
                                  fix="write the file again with pandas.DataFrame.to_parquet.") from exc
    text = decode_utf8(read_bytes(path), path)
    if not text.strip():
        raise DataFormatError("the file is empty.", path=str(path), fix="add a header row and events.")
    if low.endswith((".jsonl", ".json", ".ndjson")):
        rows = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(f"not a JSON object ({exc.msg}).", path=str(path), line=lineno,
                                      fix="write one JSON object per line.") from exc
            if not isinstance(row, dict):
                raise DataFormatError("expected a JSON object.", path=str(path), line=lineno)
            rows.append({**row, "_line": lineno})
        return pd.DataFrame(rows), 0
    sep = "\t" if low.endswith(".tsv") else ","
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataFormatError(f"not a readable {'TSV' if sep == chr(9) else 'CSV'} table ({exc}).", path=str(path),
                              fix="give every row the same number of columns as the header.") from exc
    return df, 2


def _column(df: pd.DataFrame, mapping: dict[str, str], key: str, path: Path, required: bool) -> str | None:
    col = mapping.get(key, key)
    if col in df.columns:
        return col
    if required or key in mapping:
        raise DataFormatError(
            f"no column {col!r} for {key!r}; the table has {[c for c in df.columns if c != '_line']}.",
            path=str(path), field=col, fix=f"set options.columns.{key} to the column that holds the {key}.")
    return None


def _times(raw: pd.Series, lines: np.ndarray, path: Path, unit: str | None, origin: datetime | None,
           caller: TimeSpec) -> tuple[np.ndarray, TimeSpec]:
    """Time values and their TimeSpec: options first, then the caller's time_spec (unless the default step)."""
    numeric = pd.to_numeric(raw, errors="coerce")
    is_numeric = bool(numeric.notna().mean() > 0.5)
    if unit is not None:
        spec = TimeSpec(unit, UNIT_SECONDS[unit], origin or (None if is_numeric else EPOCH))
    elif caller.unit != "step":
        spec = caller
    else:
        spec = TimeSpec("step", 1.0, origin) if is_numeric else TimeSpec("day", 86400.0, origin or EPOCH)
    if is_numeric:
        bad = np.flatnonzero(numeric.isna().to_numpy())
        if bad.size:
            raise DataFormatError(f"time {raw.iloc[bad[0]]!r} is not a number.", path=str(path),
                                  line=int(lines[bad[0]]), field=str(raw.name), fix="correct or remove that row.")
        return numeric.to_numpy(dtype=np.float64), spec
    parsed = pd.to_datetime(raw, errors="coerce", utc=True, format="mixed")
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if bad.size:
        raise DataFormatError(f"time {raw.iloc[bad[0]]!r} is neither a number nor a date.", path=str(path),
                              line=int(lines[bad[0]]), field=str(raw.name), fix="write ISO dates (2014-03-17).")
    seconds = (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
    return epoch_seconds_to_units(seconds, spec), spec


def read_table(path: Path, name: str, ts: TimeSpec, opts: dict[str, Any]) -> EventLog:
    """Read a CSV / TSV / Parquet / JSON-lines event table (see the module docstring for options)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".csv", ".tsv", ".parquet", ".jsonl"))
        if len(files) != 1:
            raise DataFormatError(f"expected one table file in the folder, found {[p.name for p in files]}.",
                                  path=str(path), fix="pass the file itself as the path.")
        path = files[0]
    df, first_line = _read_frame(path)
    if len(df) == 0:
        raise DataFormatError("the table has no rows.", path=str(path), fix="add events.")
    lines = df["_line"].to_numpy() if "_line" in df.columns else np.arange(len(df)) + first_line
    mapping = opts.get("columns") or {}
    if not isinstance(mapping, dict):
        raise ConfigError(f"options.columns must map time/subject/relation/object/text to column names, got {mapping!r}.")
    cols = {k: _column(df, mapping, k, path, k in ("time", "subject", "relation"))
            for k in ("time", "subject", "relation", "object", "text")}
    for key in ("subject", "relation"):
        bad = np.flatnonzero(df[cols[key]].isna().to_numpy())
        if bad.size:
            raise DataFormatError(f"the {key} is missing.", path=str(path), line=int(lines[bad[0]]),
                                  field=cols[key], fix="fill in or remove that row.")
    unit = opts.get("time_unit")
    if unit is not None and unit not in UNIT_SECONDS:
        raise ConfigError(f"Unknown time_unit {unit!r}. Valid choices are: {', '.join(UNIT_SECONDS)}")
    origin = datetime.fromisoformat(str(opts["origin"])) if opts.get("origin") else None
    times, spec = _times(df[cols["time"]], lines, path, unit, origin, ts)
    events = pd.DataFrame({"time": times, "subject": df[cols["subject"]].astype(str).to_numpy(),
                           "relation": df[cols["relation"]].astype(str).to_numpy(), "_line": lines})
    if cols["object"]:
        events["object"] = df[cols["object"]].to_numpy()
    if cols["text"]:
        events["text"] = df[cols["text"]].fillna("").astype(str).to_numpy()
    labels = _labels(df, opts, times, lines, path)
    return named_events_to_log(name, events, spec, path=str(path), labels=labels,
                               meta={"format": "table", "path": str(path)})


def _labels(df: pd.DataFrame, opts: dict[str, Any], times: np.ndarray, lines: np.ndarray, path: Path) -> np.ndarray:
    col = opts.get("split_column")
    if not col:
        return time_quantile_split(times, opts.get("split_fractions") or DEFAULT_FRACTIONS, path=str(path))
    if col not in df.columns:
        raise DataFormatError(f"no split column {col!r}.", path=str(path), field=col,
                              fix="set options.split_column to an existing column or leave it out.")
    raw = df[col].astype(str).str.strip().str.lower()
    labels = raw.map(SPLIT_NAMES)
    bad = np.flatnonzero(labels.isna().to_numpy())
    if bad.size:
        raise DataFormatError(f"split {df[col].iloc[bad[0]]!r} is not train, valid or test.", path=str(path),
                              line=int(lines[bad[0]]), field=col, fix="use train, valid or test.")
    return labels.to_numpy(dtype=np.int8)
