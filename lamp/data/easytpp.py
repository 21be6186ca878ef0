"""EasyTPP pickles -> EventLog (format ``easytpp``), for base-model (TPP) metrics.

An EasyTPP file is a dict ``{"dim_process": K, "<split>": [sequence, ...]}``; a sequence is a list
of ``{"type_event", "time_since_last_event", "time_since_start"}``. Each sequence becomes one
subject (``dev-0``, ``test-17``, ...), its events have relation ``type <k>`` and time
``time_since_start``; there are no objects.

Splits. With ``train.pkl``, ``dev.pkl`` and ``test.pkl`` they are train / valid / test. The LAMP
authors' Amazon copy has ``dev.pkl`` and ``test.pkl`` only, so the split is derived: the first
(1 - ``valid_fraction``) of the dev sequences (default 2/3, in file order) are train, the rest are
valid, and test.pkl is test.

Time axis. Every sequence starts near 0, so the splits overlap in raw time, while an EventLog's
splits must follow each other in time. Each split is therefore shifted by a constant so it starts
after the previous one ends: offset(train) = 0, offset(next) = floor(max time so far) + 1. The
offsets are in ``meta["split_offsets"]``; within a sequence, times and gaps are unchanged, and a
per-sequence model sees exactly the original data.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lamp.data.eventlog import SPLITS, EventLog, TimeSpec, build_event_log
from lamp.data.safe_pickle import safe_load
from lamp.errors import ConfigError, DataFormatError


def _sequences(path: Path) -> tuple[int, list[Any]]:
    data = safe_load(path)
    if not isinstance(data, dict) or "dim_process" not in data:
        raise DataFormatError("expected a dict with 'dim_process' and a list of sequences.", path=str(path),
                              field="dim_process", fix="write the file in the EasyTPP layout.")
    dim = data["dim_process"]
    if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
        raise DataFormatError(f"dim_process {dim!r} is not a positive integer.", path=str(path), field="dim_process",
                              fix="set dim_process to the number of event types.")
    lists = [k for k, v in data.items() if k != "dim_process" and isinstance(v, list)]
    if len(lists) != 1:
        raise DataFormatError(f"expected exactly one list of sequences next to dim_process, found keys {lists}.",
                              path=str(path), fix="keep one split per file ({'dim_process': K, 'dev': [...]}).")
    seqs = data[lists[0]]
    if not seqs:
        raise DataFormatError("the file holds no sequences.", path=str(path), fix="add sequences.")
    return dim, seqs


def _number(ev: dict[str, Any], key: str, path: Path, where: str) -> float:
    v = ev.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise DataFormatError(f"{where}: {key} {v!r} is not a finite non-negative number.", path=str(path), field=key,
                              fix="correct or remove that event.")
    return float(v)


def _rows(seqs: list[Any], dim: int, path: Path, prefix: str, first: int) -> list[tuple[float, int, int, str]]:
    rows: list[tuple[float, int, int, str]] = []
    for i, seq in enumerate(seqs, start=first):
        if not isinstance(seq, list) or not seq:
            raise DataFormatError(f"sequence {i} is not a non-empty list of events.", path=str(path),
                                  fix="remove empty sequences.")
        last = -math.inf
        for j, ev in enumerate(seq):
            where = f"sequence {i}, event {j}"
            if not isinstance(ev, dict):
                raise DataFormatError(f"{where} is not a dict.", path=str(path), fix="write events as dicts.")
            k = ev.get("type_event")
            if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < dim:
                raise DataFormatError(f"{where}: type_event {k!r} is not an integer in 0..{dim - 1}.", path=str(path),
                                      field="type_event", fix="use type ids below dim_process.")
            t = _number(ev, "time_since_start", path, where)
            if t < last:
                raise DataFormatError(f"{where}: time_since_start {t:g} goes back from {last:g}.", path=str(path),
                                      field="time_since_start", fix="sort each sequence by time.")
            last = t
            rows.append((t, i, k, f"{prefix}-{i}"))
    return rows


def read_easytpp(path: Path, name: str, ts: TimeSpec, opts: dict[str, Any]) -> EventLog:
    """Read an EasyTPP folder (train/dev/test.pkl, or dev/test.pkl with a derived split)."""
    folder = Path(path)
    if not folder.is_dir():
        raise ConfigError(f"{folder} is a file; the easytpp format reads a folder holding dev.pkl and test.pkl.")
    files = {s: folder / f"{s}.pkl" for s in ("train", "dev", "test")}
    for s in ("dev", "test"):
        if not files[s].is_file():
            raise DataFormatError(f"no {s}.pkl.", path=str(folder), fix=f"put the {s} split in {files[s]}.")
    dim, dev = _sequences(files["dev"])
    dim_test, test = _sequences(files["test"])
    derived = not files["train"].is_file()
    if derived:
        frac = float(opts.get("valid_fraction", 1 / 3))
        if not 0 < frac < 1:
            raise ConfigError(f"valid_fraction must be between 0 and 1, got {frac}.")
        cut = min(max(1, round(len(dev) * (1 - frac))), len(dev) - 1)
        if len(dev) < 2:
            raise DataFormatError("dev.pkl needs at least 2 sequences to derive train and valid.", path=str(files["dev"]))
        parts_raw = {"train": (files["dev"], dev[:cut], 0), "valid": (files["dev"], dev[cut:], cut),
                     "test": (files["test"], test, 0)}
    else:
        dim_train, train = _sequences(files["train"])
        dim = max(dim, dim_train)
        parts_raw = {"train": (files["train"], train, 0), "valid": (files["dev"], dev, 0), "test": (files["test"], test, 0)}
    if dim_test != dim:
        raise DataFormatError(f"dim_process is {dim_test} here but {dim} in the other files.", path=str(files["test"]),
                              field="dim_process", fix="use the same event types in every split.")
    parts: dict[str, pd.DataFrame] = {}
    sources: dict[str, str] = {}
    offsets: dict[str, float] = {}
    entities: list[str] = []
    offset = 0.0
    for split in SPLITS:
        file, seqs, first = parts_raw[split]
        rows = _rows(seqs, dim, file, file.stem, first)
        df = pd.DataFrame(rows, columns=["time", "seq", "relation", "subject_name"])
        df["time"] += offset
        offsets[split] = offset
        df["subject"] = np.asarray(df["seq"].to_numpy() - first + len(entities), dtype=np.int64)
        entities.extend(f"{file.stem}-{i}" for i in range(first, first + len(seqs)))
        df["object"] = -1
        parts[split], sources[split] = df[["time", "subject", "relation", "object"]], str(file)
        offset = math.floor(float(df["time"].max())) + 1.0
    return build_event_log(
        name, parts, entities, [f"type {k}" for k in range(dim)], ts, sources=sources,
        meta={"format": "easytpp", "path": str(folder), "dim_process": dim, "split_offsets": offsets,
              "derived_split": derived},
    )
