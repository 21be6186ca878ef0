"""EventLog: the one in-memory form of a dataset.

Columns are time-sorted numpy arrays (``time`` float64 in dataset units, ``subject``/``relation``/
``object`` int32 ids, ``object == -1`` where a dataset has none, optional ``text``), with the
vocabularies, the time specification (to print real dates) and the split boundaries.
Splits are contiguous row ranges: train rows come first, then valid, then test, and no split's
times go backwards into the previous one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from lamp.data.history import Edges, strictly_before
from lamp.errors import ConfigError, DataFormatError

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class Vocab:
    """Id <-> name mapping; ids are dense 0..n-1."""

    names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.names)

    def name(self, idx: int) -> str:
        if idx < 0:
            return ""
        return self.names[idx]

    def id(self, name: str) -> int:
        lookup = self._lookup()
        if name not in lookup:
            close = [n for n in self.names if name.lower() in n.lower()][:5]
            raise KeyError(f"{name!r} is not in the vocabulary ({len(self)} names); close matches: {close}")
        return lookup[name]

    def get(self, name: str, default: int = -1) -> int:
        return self._lookup().get(name, default)

    def _lookup(self) -> dict[str, int]:
        cached = self.__dict__.get("_lookup_cache")
        if cached is None:
            cached = {n: i for i, n in enumerate(self.names)}
            object.__setattr__(self, "_lookup_cache", cached)
        return cached


@dataclass(frozen=True)
class TimeSpec:
    """How dataset time values map to calendar time.

    ``date(t) = origin + t * seconds_per_unit`` when ``origin`` is set; otherwise the data carries
    no absolute date and times print relative to the first event (``t=+15 min``).
    """

    unit: str  # "day", "hour", "minute", "second" or "step"
    seconds_per_unit: float
    origin: datetime | None = None
    granularity: float = 1.0  # smallest distinct time step, in dataset units

    def to_datetime(self, t: float) -> datetime | None:
        if self.origin is None:
            return None
        return self.origin + timedelta(seconds=float(t) * self.seconds_per_unit)

    def format(self, t: float) -> str:
        """Render a time value: an ISO date (with hour:minute below a day), or a relative time."""
        when = self.to_datetime(t)
        if when is not None:
            if self.seconds_per_unit * self.granularity >= 86400:
                return when.strftime("%Y-%m-%d")
            return when.strftime("%Y-%m-%d %H:%M")
        if self.unit == "step":  # abstract time (e.g. EasyTPP): no minutes to speak of
            return f"t={float(t):g}"
        minutes = float(t) * self.seconds_per_unit / 60.0
        if minutes >= 1440 and minutes % 1440 == 0:
            return f"day {int(minutes // 1440)}"
        return f"t={minutes:g} min"

    def to_dict(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "seconds_per_unit": self.seconds_per_unit,
            "origin": self.origin.isoformat() if self.origin else None,
            "granularity": self.granularity,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TimeSpec:
        origin = datetime.fromisoformat(d["origin"]) if d.get("origin") else None
        return cls(d["unit"], float(d["seconds_per_unit"]), origin, float(d.get("granularity", 1.0)))


@dataclass(frozen=True)
class EventLog:
    """A time-sorted event log with vocabularies, time specification and split boundaries."""

    name: str
    frame: pd.DataFrame
    entities: Vocab
    relations: Vocab
    time_spec: TimeSpec
    split_ends: tuple[int, int, int]  # exclusive end row of train, valid, test
    meta: dict[str, Any] = field(default_factory=dict)

    # -- columns as numpy (views, no copies) --------------------------------------------------
    def column(self, name: str) -> np.ndarray:
        """Column ``name`` as a numpy array, looked up once per log: a pandas column lookup costs ~15 us,
        and per-event code (rendering, rule explanations, one prediction) asks thousands of times. A log's
        frame is never changed in place (``head`` and the loaders build new logs)."""
        cache: dict[str, np.ndarray] | None = self.__dict__.get("_columns")
        if cache is None:
            cache = {}
            object.__setattr__(self, "_columns", cache)
        values = cache.get(name)
        if values is None:
            values = cache[name] = self.frame[name].to_numpy()
        return values

    @property
    def times(self) -> np.ndarray:
        return self.column("time")

    @property
    def subjects(self) -> np.ndarray:
        return self.column("subject")

    @property
    def rels(self) -> np.ndarray:
        return self.column("relation")

    @property
    def objects(self) -> np.ndarray:
        return self.column("object")

    @property
    def texts(self) -> np.ndarray | None:
        return self.column("text") if "text" in self.frame.columns else None

    @property
    def num_entities(self) -> int:
        return len(self.entities)

    @property
    def num_relations(self) -> int:
        return len(self.relations)

    @property
    def has_objects(self) -> bool:
        return bool(len(self.frame)) and int(self.frame["object"].max()) >= 0

    def __len__(self) -> int:
        return len(self.frame)

    # -- splits --------------------------------------------------------------------------------
    def split_range(self, split: str) -> tuple[int, int]:
        if split not in SPLITS:
            raise ConfigError(f"Unknown split {split!r}. Valid choices are: {', '.join(SPLITS)}")
        i = SPLITS.index(split)
        start = 0 if i == 0 else self.split_ends[i - 1]
        return start, self.split_ends[i]

    def split_sizes(self) -> dict[str, int]:
        return {s: (lambda r: r[1] - r[0])(self.split_range(s)) for s in SPLITS}

    def split_of_rows(self) -> np.ndarray:
        """Split name index (0 train, 1 valid, 2 test) of every row."""
        out = np.zeros(len(self), dtype=np.int8)
        out[self.split_ends[0] : self.split_ends[1]] = 1
        out[self.split_ends[1] :] = 2
        return out

    def split(self, split: str) -> pd.DataFrame:
        start, end = self.split_range(split)
        return self.frame.iloc[start:end]

    # -- history -------------------------------------------------------------------------------
    def history_end(self, t: float) -> int:
        """Number of events strictly before time ``t`` (rows [0, end) are the allowed history)."""
        return int(strictly_before(self.times, t))

    def edges(self, end: int | None = None, *, inverse: bool = True) -> Edges:
        """Rows ``[0, end)`` as directed edges, with (``inverse``) the edge ``(o, r + R, s)`` of each event
        that has an object: see :mod:`lamp.data.history`."""
        return Edges.build(self.subjects, self.rels, self.objects, self.times, self.num_relations, end=end,
                           inverse=inverse)

    def head(self, end: int, name: str | None = None) -> EventLog:
        """The log truncated to its first ``end`` rows (splits clipped), e.g. history before a time."""
        ends = tuple(min(e, end) for e in self.split_ends)
        return EventLog(
            name or self.name, self.frame.iloc[:end], self.entities, self.relations, self.time_spec,
            (ends[0], ends[1], ends[2]), {k: v for k, v in self.meta.items() if k != "_fingerprint"},
        )

    def event(self, row: int) -> tuple[float, int, int, int]:
        return (
            float(self.times[row]), int(self.subjects[row]), int(self.rels[row]), int(self.objects[row]),
        )

    def iter_events(self, rows: Sequence[int]) -> Iterator[tuple[float, int, int, int]]:
        for r in rows:
            yield self.event(int(r))

    def date_range(self) -> tuple[datetime | None, datetime | None]:
        if len(self) == 0:
            return None, None
        return self.time_spec.to_datetime(self.times[0]), self.time_spec.to_datetime(self.times[-1])

    def fingerprint(self) -> str:
        """A content hash of the events and vocabularies (for artifact keys and checkpoints)."""
        cached = self.meta.get("_fingerprint")
        if cached:
            return str(cached)
        h = hashlib.sha256()
        for col in ("time", "subject", "relation", "object"):
            h.update(np.ascontiguousarray(self.frame[col].to_numpy()).tobytes())
        h.update("\x1f".join(self.entities.names).encode())
        h.update("\x1f".join(self.relations.names).encode())
        h.update(repr(self.split_ends).encode())
        digest = h.hexdigest()[:16]
        self.meta["_fingerprint"] = digest
        return digest

    def describe(self) -> dict[str, Any]:
        first, last = self.date_range()
        return {
            "name": self.name,
            "events": len(self),
            "splits": self.split_sizes(),
            "num_entities": self.num_entities,
            "num_relations": self.num_relations,
            "time_unit": self.time_spec.unit,
            "first_date": first.isoformat() if first else None,
            "last_date": last.isoformat() if last else None,
            "first_time": float(self.times[0]) if len(self) else None,
            "last_time": float(self.times[-1]) if len(self) else None,
            "has_text": "text" in self.frame.columns,
            "has_objects": self.has_objects,
        }


def build_event_log(
    name: str,
    parts: dict[str, pd.DataFrame],
    entities: Sequence[str],
    relations: Sequence[str],
    time_spec: TimeSpec,
    *,
    sources: dict[str, str] | None = None,
    meta: dict[str, Any] | None = None,
) -> EventLog:
    """Validate split frames and assemble a sorted :class:`EventLog`.

    ``parts`` maps split name to a frame with columns time, subject, relation, object[, text] and,
    for error messages, an optional ``_line`` column (1-based line in ``sources[split]``).
    """
    sources = sources or {}
    n_ent, n_rel = len(entities), len(relations)
    frames = []
    ends: list[int] = []
    prev_max: float | None = None
    prev_split = ""
    total = 0
    for split in SPLITS:
        df = parts.get(split)
        path = sources.get(split, f"<{name}:{split}>")
        if df is None or len(df) == 0:
            raise DataFormatError(
                f"the {split} split is empty or missing.", path=path,
                fix=f"provide a non-empty {split} file (every dataset needs train, valid and test).",
            )
        _check_columns(df, path, n_ent, n_rel)
        df = df.sort_values("time", kind="stable")
        tmin = float(df["time"].iloc[0])
        if prev_max is not None and tmin < prev_max:
            line = _line_of(df, int(np.argmin(df["time"].to_numpy())))
            raise DataFormatError(
                f"the {split} split starts at time {tmin:g}, before the end of the {prev_split} split "
                f"({prev_max:g}); splits must follow each other in time.", path=path, line=line, field="time",
                fix="split the events by time (train < valid < test) or give the files in the right order.",
            )
        prev_max, prev_split = float(df["time"].iloc[-1]), split
        total += len(df)
        ends.append(total)
        frames.append(df)
    frame = pd.concat(frames, ignore_index=True)
    keep = ["time", "subject", "relation", "object"] + (["text"] if "text" in frame.columns else [])
    frame = frame[keep].astype({"time": "float64", "subject": "int32", "relation": "int32", "object": "int32"})
    if "text" in frame.columns:
        frame["text"] = frame["text"].fillna("").astype(str)
    return EventLog(
        name, frame.reset_index(drop=True), Vocab(tuple(entities)), Vocab(tuple(relations)), time_spec,
        (ends[0], ends[1], ends[2]), dict(meta or {}),
    )


def _line_of(df: pd.DataFrame, pos: int) -> int | None:
    return int(df["_line"].iloc[pos]) if "_line" in df.columns else None


def _check_columns(df: pd.DataFrame, path: str, n_ent: int, n_rel: int) -> None:
    t = df["time"].to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(t) | (t < 0))
    if bad.size:
        raise DataFormatError(
            f"time value {float(t[bad[0]])!r} is not a finite non-negative number.", path=path,
            line=_line_of(df, int(bad[0])), field="time", fix="correct or remove that event.",
        )
    for col, limit, allow_missing in (("subject", n_ent, False), ("relation", n_rel, False), ("object", n_ent, True)):
        v = df[col].to_numpy()
        low = -1 if allow_missing else 0
        bad = np.flatnonzero((v < low) | (v >= limit))
        if bad.size:
            raise DataFormatError(
                f"{col} id {int(v[bad[0]])} is outside the vocabulary (expected 0..{limit - 1}).", path=path,
                line=_line_of(df, int(bad[0])), field=col,
                fix=f"add the id to the {'relation' if col == 'relation' else 'entity'} vocabulary file "
                "or correct the event.",
            )
