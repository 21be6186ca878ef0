"""The history a fitted :class:`lamp.Pipeline` keeps, and how named events enter it.

A pipeline keeps every event it was fitted on (the whole log, in the vocabulary it learned) and every
event given to :meth:`lamp.Pipeline.observe` since. A prediction at time ``t`` reads the events of this
history strictly before ``t``. What ``observe`` does with a batch of named events:

- **names**: an entity unseen so far gets the next free id (in order of first appearance, by time);
  an event whose relation was unseen in training is dropped and counted (no learned parameter knows
  it), as in an explicit ``history=`` table.
- **time order**: a batch may be in any order (it is sorted by time, stably); an event earlier than the
  newest event already kept refuses the whole batch (a :class:`~lamp.errors.RequestError` naming it):
  an answer already given for a later time would silently change, and the fitted rows must stay the
  history's first rows. Events at the newest time are accepted (a day's events may come in several
  batches; a prediction at that time never sees them, being strictly before it only).
- **duplicates**: an event equal in subject, relation, object and time to one already kept (or earlier
  in the same batch) is dropped and counted: the log is a set of facts, so re-sending a batch (a retry
  after a timeout) changes nothing.
- **all or nothing**: a batch is checked whole (columns, names, times, order) before anything is kept;
  an error leaves the history as it was.

A :class:`History` is immutable: ``observe`` builds a new one, so a prediction reads one consistent
snapshot. It is saved in a bundle as ``history/events.parquet`` (ids) and ``history/history.json``
(the entity names beyond the training vocabulary, the version): no pickle.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lamp.data.eventlog import EventLog, TimeSpec, Vocab
from lamp.errors import ArtifactError, ConfigError, RequestError

HISTORY_FORMAT = 1
COLUMNS = ("subject", "relation", "object", "time")
_FIX_TIME = "give an ISO date like 2014-12-19 (or a number in the dataset's time units)"


def named_events(log: EventLog, split: str | None = None, *, dates: bool = True) -> pd.DataFrame:
    """The events of ``log`` (or of one ``split``) as a table of names: ``subject``, ``relation``, ``object``
    and ``time`` (an ISO date when the log has a calendar and ``dates``, else a number in its units): the
    form of a live feed that :meth:`lamp.Pipeline.observe` takes.

    >>> recent = named_events(lamp.load_dataset("icews14"), "test")     # doctest: +SKIP
    """
    start, end = log.split_range(split) if split else (0, len(log))
    part = log.frame.iloc[start:end]
    ents, rels = np.asarray(log.entities.names, dtype=object), np.asarray(log.relations.names, dtype=object)
    obj = part["object"].to_numpy()
    times = part["time"].to_numpy(dtype=np.float64)
    return pd.DataFrame({
        "subject": ents[part["subject"].to_numpy()], "relation": rels[part["relation"].to_numpy()],
        "object": np.where(obj >= 0, ents[np.maximum(obj, 0)], ""),
        "time": [log.time_spec.format(t) for t in times] if dates and log.time_spec.origin is not None else times})


def to_times(values: Sequence[Any] | pd.Series, spec: TimeSpec, *, field: str = "time",
             rows: np.ndarray | None = None) -> np.ndarray:
    """Dataset time units (float64) from numbers, or from ISO dates when the data has a calendar.

    A value that is neither raises :class:`RequestError` naming its row in a batch (``rows[i]``; none without
    ``rows``).
    """
    series = values.reset_index(drop=True) if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    if pd.api.types.is_bool_dtype(series.dtype):
        raise RequestError(f"got a boolean ({series.iloc[0]!r}).", field=field, row=_row(rows, 0), fix=_FIX_TIME)
    if pd.api.types.is_numeric_dtype(series.dtype):
        out = series.to_numpy(dtype=np.float64)
    else:
        out = np.full(len(series), np.nan)
        is_num = np.array([isinstance(v, int | float | np.number) and not isinstance(v, bool) for v in series],
                          dtype=bool)
        out[is_num] = series[is_num].astype(np.float64).to_numpy()
        is_str = np.array([isinstance(v, str) for v in series], dtype=bool)
        if is_str.any():
            if spec.origin is None:
                i = int(np.flatnonzero(is_str)[0])
                raise RequestError(f"got {series.iloc[i]!r}, but this dataset has no calendar (relative times).",
                                   field=field, row=_row(rows, i), fix=f"give a number in its units ({spec.unit}s).")
            out[is_str] = _dates_to_units(series[is_str], spec, field, None if rows is None else rows[is_str])
    bad = np.flatnonzero(~np.isfinite(out))
    if bad.size:
        i = int(bad[0])
        raise RequestError(f"got {series.iloc[i]!r}, which is not a time.", field=field, row=_row(rows, i),
                           fix=_FIX_TIME)
    return out


def to_time(value: Any, spec: TimeSpec, *, field: str = "time") -> float:
    """One time (a query's): :func:`to_times` of one value, with ISO dates read without pandas (faster)."""
    if isinstance(value, str) and spec.origin is not None:
        try:
            when = datetime.fromisoformat(value.strip())
        except ValueError:
            when = None
        if when is not None:
            return (_utc_naive(when) - _utc_naive(spec.origin)).total_seconds() / spec.seconds_per_unit
    return float(to_times([value], spec, field=field)[0])


def _utc_naive(when: datetime | None) -> datetime:
    """A naive datetime is read as UTC; an aware one is converted to it."""
    if when is None:
        raise ConfigError("internal error: a calendar time was asked of data without a calendar.")
    return when if when.tzinfo is None else when.astimezone(UTC).replace(tzinfo=None)


def _row(rows: np.ndarray | None, i: int) -> int | None:
    return None if rows is None else int(rows[i])


def _dates_to_units(strings: pd.Series, spec: TimeSpec, field: str, rows: np.ndarray | None) -> np.ndarray:
    try:  # utc=True: naive dates are read as UTC (as the origin is), aware ones converted to it
        stamps = pd.to_datetime(strings, format="ISO8601", errors="coerce", utc=True)
    except (ValueError, TypeError, OverflowError) as exc:
        raise RequestError(f"could not read the dates ({exc}).", field=field, fix=_FIX_TIME) from exc
    bad = np.flatnonzero(stamps.isna().to_numpy())
    if bad.size:
        i = int(bad[0])
        raise RequestError(f"got {strings.iloc[i]!r}, which is not a date.", field=field, row=_row(rows, i),
                           fix=_FIX_TIME)
    origin = pd.Timestamp(_utc_naive(spec.origin)).tz_localize("UTC")
    seconds = (stamps - origin).dt.total_seconds().to_numpy(dtype=np.float64)
    return seconds / spec.seconds_per_unit


@dataclass(frozen=True)
class Encoded:
    """A batch of named events in a pipeline's vocabulary, sorted by time (stable)."""

    frame: pd.DataFrame  # time float64, subject / relation / object int32 (object -1: none)
    entities: Vocab  # the vocabulary, extended by the batch's new names
    new_entities: tuple[str, ...]
    dropped_unseen_relation: int
    ignored_future: int
    positions: np.ndarray  # each kept event's 0-based position in the batch as given (to name it in errors)


def encode_events(events: pd.DataFrame | EventLog, entities: Vocab, relations: Vocab, spec: TimeSpec, *,
                  before: float | None = None) -> Encoded:
    """``events`` (a table of names, or an EventLog of any vocabulary) in the vocabulary ``entities`` /
    ``relations``; events at or after ``before`` are left out and counted. Every field of every event is
    checked before anything is returned (:class:`RequestError` names the first bad one)."""
    frame = named_events(events, dates=False) if isinstance(events, EventLog) else events
    if not isinstance(frame, pd.DataFrame):
        raise RequestError(f"expected a pandas DataFrame of named events or an EventLog, got {type(events).__name__}.",
                           fix="pass a table with columns subject, relation, object, time.")
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise RequestError(f"the events table lacks column(s) {missing}; expected subject, relation, object (names) "
                           "and time.", fix="rename the columns or pass an EventLog.")
    subjects = _names(frame["subject"], "subject", required=True)
    rel_names = _names(frame["relation"], "relation", required=True)
    objects = _names(frame["object"], "object", required=False)
    times = to_times(frame["time"], spec, rows=np.arange(len(frame)))
    rel_ids = np.array([relations.get(r) for r in rel_names], dtype=np.int64)
    future = times >= before if before is not None else np.zeros(len(times), dtype=bool)
    unseen = rel_ids < 0
    keep = np.flatnonzero(~future & ~unseen)
    keep = keep[np.argsort(times[keep], kind="stable")]
    subj, obj, vocab, new = _assign_ids(subjects[keep], objects[keep], entities)
    out = pd.DataFrame({"time": times[keep], "subject": subj, "relation": rel_ids[keep].astype(np.int32),
                        "object": obj})
    return Encoded(out, vocab, new, int((unseen & ~future).sum()), int(future.sum()), keep)


def _names(values: pd.Series, field: str, *, required: bool) -> np.ndarray:
    """Names as strings ('' for a missing object); a missing or empty required name is an error."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values.tolist()):
        missing = v is None or (isinstance(v, float) and np.isnan(v))
        text = "" if missing else str(v).strip()
        if required and not text:
            raise RequestError(f"got {v!r}, an empty name.", field=field, row=i,
                               fix=f"give every event a {field} (a name, e.g. from the pipeline's vocab.json).")
        out[i] = text
    return out


def _assign_ids(subjects: np.ndarray, objects: np.ndarray, entities: Vocab
                ) -> tuple[np.ndarray, np.ndarray, Vocab, tuple[str, ...]]:
    """Ids of the names (row by row, subject before object); unseen names get the next free ids in order of
    first appearance, so a history grown batch by batch numbers them as one table of the same events would."""
    n = len(subjects)
    names = np.empty(2 * n, dtype=object)
    names[0::2], names[1::2] = subjects, objects
    present = names != ""
    codes, uniques = pd.factorize(names[present])
    ids = np.array([entities.get(str(u)) for u in uniques], dtype=np.int64)
    unseen = ids < 0
    ids[unseen] = len(entities) + np.arange(int(unseen.sum()))
    flat = np.full(2 * n, -1, dtype=np.int64)
    flat[present] = ids[codes]
    new = tuple(str(u) for u in uniques[unseen])
    vocab = Vocab(entities.names + new) if new else entities
    return flat[0::2].astype(np.int32), flat[1::2].astype(np.int32), vocab, new


def history_log(frame: pd.DataFrame, entities: Vocab, relations: Vocab, spec: TimeSpec,
                meta: dict[str, Any]) -> EventLog:
    """An EventLog of history events (every row in one split: no component may treat them as training)."""
    n = len(frame)
    return EventLog("history", frame.reset_index(drop=True), entities, relations, spec, (n, n, n),
                    {k: v for k, v in meta.items() if not k.startswith("_")})


@dataclass(frozen=True)
class ObserveReport:
    """What :meth:`lamp.Pipeline.observe` did with a batch."""

    added: int
    duplicates: int  # dropped: equal to an event already kept, or earlier in the batch
    dropped_unseen_relation: int
    new_entities: tuple[str, ...]
    history_events: int  # events kept after the batch
    newest: str  # the newest kept event's time, as a date when the data has a calendar
    version: int  # the history's version after the batch (+1 per batch that added events)


@dataclass(frozen=True)
class History:
    """Every event a pipeline knows, in its vocabulary (training entities first), sorted by time."""

    log: EventLog
    training_entities: int  # ids below this are the fitted vocabulary
    version: int = 0
    observed: int = 0  # events added by observe since the pipeline was fitted

    @classmethod
    def from_log(cls, log: EventLog, meta: dict[str, Any]) -> History:
        """The events a pipeline was fitted on (all splits), as its history."""
        frame = log.frame[["time", "subject", "relation", "object"]]
        return cls(history_log(frame, log.entities, log.relations, log.time_spec, meta), log.num_entities)

    @property
    def newest(self) -> float | None:
        return float(self.log.times[-1]) if len(self.log) else None

    def observe(self, events: pd.DataFrame | EventLog) -> tuple[History, ObserveReport]:
        """The history with ``events`` added (see the module docstring), and what was done; ``self`` is unchanged."""
        log = self.log
        enc = encode_events(events, log.entities, log.relations, log.time_spec)
        frame = enc.frame
        dup = frame.duplicated(keep="first").to_numpy() | self._already_kept(frame)
        newest = self.newest
        late = np.flatnonzero(~dup & (frame["time"].to_numpy() < newest)) if newest is not None else np.zeros(0, int)
        if late.size and newest is not None:
            i = int(late[0])
            when = log.time_spec.format(float(frame["time"].iloc[i]))
            raise RequestError(
                f"this event ({when}) is earlier than the newest event already observed ({log.time_spec.format(newest)}"
                f"); events must arrive in time order, so the batch was refused and nothing was kept.",
                field="time", row=int(enc.positions[i]),
                fix=f"send only events at or after {log.time_spec.format(newest)} (re-sent events that are already "
                    "kept are dropped as duplicates), or predict with history= to use another history.")
        added = frame.loc[~dup]
        new_hist = self
        if len(added):
            merged = pd.concat([log.frame, added], ignore_index=True)
            new_hist = replace(self, log=history_log(merged, enc.entities, log.relations, log.time_spec, log.meta),
                               version=self.version + 1, observed=self.observed + len(added))
        report = ObserveReport(len(added), int(dup.sum()), enc.dropped_unseen_relation,
                               enc.new_entities if len(added) else (), len(new_hist.log),
                               _format(new_hist.log, new_hist.newest), new_hist.version)
        return new_hist, report

    def _already_kept(self, frame: pd.DataFrame) -> np.ndarray:
        """Which events of ``frame`` equal one already kept (searched only from the batch's earliest time on)."""
        if not len(frame) or not len(self.log):
            return np.zeros(len(frame), dtype=bool)
        start = self.log.history_end(float(frame["time"].min()))
        kept = self.log.frame.iloc[start:]
        if not len(kept):
            return np.zeros(len(frame), dtype=bool)
        cols = ["time", "subject", "relation", "object"]
        hit = frame[cols].reset_index().merge(kept[cols].drop_duplicates(), on=cols, how="inner")["index"]
        out = np.zeros(len(frame), dtype=bool)
        out[hit.to_numpy()] = True
        return out

    # -- persistence -----------------------------------------------------------------------------------
    def save(self, folder: str | os.PathLike[str]) -> None:
        from lamp.pipeline.artifacts import write_parquet

        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        write_parquet(self.log.frame[["time", "subject", "relation", "object"]], target / "events.parquet")
        record = {"format_version": HISTORY_FORMAT, "version": self.version, "observed": self.observed,
                  "training_entities": self.training_entities,
                  "new_entities": list(self.log.entities.names[self.training_entities:])}
        (target / "history.json").write_text(json.dumps(record, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, folder: str | os.PathLike[str], entities: Vocab, relations: Vocab, spec: TimeSpec,
             meta: dict[str, Any]) -> History:
        """Read what :meth:`save` wrote; ``entities`` is the pipeline's training vocabulary."""
        path = Path(folder)
        try:
            record = json.loads((path / "history.json").read_text(encoding="utf-8"))
            frame = pd.read_parquet(path / "events.parquet")
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{path} holds no readable history ({exc}); expected history.json and events.parquet "
                                "written by Pipeline.save. Fix: save the pipeline again with this lamp version.") from exc
        if record.get("format_version") != HISTORY_FORMAT or record.get("training_entities") != len(entities):
            raise ArtifactError(f"{path / 'history.json'} has format {record.get('format_version')!r} for "
                                f"{record.get('training_entities')!r} training entities; expected format "
                                f"{HISTORY_FORMAT} for {len(entities)}. Fix: refit and save with this lamp version.")
        vocab = Vocab(entities.names + tuple(str(n) for n in record["new_entities"]))
        frame = frame.astype({"time": "float64", "subject": "int32", "relation": "int32", "object": "int32"})
        ids = frame[["subject", "object"]].to_numpy()
        if len(frame) and (ids.max() >= len(vocab) or frame["relation"].max() >= len(relations)
                           or not frame["time"].is_monotonic_increasing):
            raise ArtifactError(f"{path / 'events.parquet'} does not match its vocabulary or is not sorted by time. "
                                "Fix: save the pipeline again.")
        return cls(history_log(frame, vocab, relations, spec, meta), len(entities), int(record["version"]),
                   int(record["observed"]))


def _format(log: EventLog, t: float | None) -> str:
    return "" if t is None else log.time_spec.format(t)
