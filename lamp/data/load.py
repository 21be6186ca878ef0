"""Load a dataset by name or path into an EventLog, with a Parquet cache keyed by the source files."""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from lamp.data.eventlog import EventLog, TimeSpec, Vocab
from lamp.data.quadruples import looks_named, read_id_quadruples, read_named_quadruples
from lamp.data.registry import DATASETS, DatasetSpec, data_dir, get_spec
from lamp.errors import ConfigError, DataFormatError

log = logging.getLogger(__name__)

CACHE_VERSION = 2  # 2: CAMEO metadata attached to ICEWS / GDELT logs

Reader = Callable[[Path, str, TimeSpec, dict[str, Any]], EventLog]


def _read_renet(path: Path, name: str, ts: TimeSpec, opts: dict[str, Any]) -> EventLog:
    return read_id_quadruples(path, name, ts, underscores=opts.get("underscores"))  # type: ignore[arg-type]


def _read_named(path: Path, name: str, ts: TimeSpec, opts: dict[str, Any]) -> EventLog:
    return read_named_quadruples(path, name, ts)


# format name -> reader. Readers of the other formats live in their own modules and are imported on
# first use (``_LAZY``), so loading ICEWS never imports the Amazon or GDELT code.
READERS: dict[str, Reader] = {"renet": _read_renet, "named": _read_named}
_LAZY = {
    "amazon": "lamp.data.amazon:read_amazon",
    "easytpp": "lamp.data.easytpp:read_easytpp",
    "gdelt_raw": "lamp.data.gdelt_raw:read_gdelt_raw",
    "table": "lamp.data.table:read_table",
}
_EPOCH = datetime(1970, 1, 1)
# The time specification of a path loaded without one (a registry name brings its own).
DEFAULT_TIME_SPECS: dict[str, TimeSpec] = {
    "amazon": TimeSpec("day", 86400.0, _EPOCH),
    "gdelt_raw": TimeSpec("minute", 60.0, _EPOCH, granularity=15.0),
}
# Formats whose relation names are CAMEO event names: load_dataset attaches the CAMEO mapping.
CAMEO_FORMATS = ("renet", "named", "gdelt_raw")


def register_reader(fmt: str, reader: Reader, *, time_spec: TimeSpec | None = None) -> None:
    """Add (or replace) the reader of a format; ``time_spec`` is its default for paths loaded without one."""
    READERS[fmt] = reader
    _LAZY.pop(fmt, None)
    if time_spec is not None:
        DEFAULT_TIME_SPECS[fmt] = time_spec


def get_reader(fmt: str) -> Reader:
    """The reader of a format (importing its module on first use)."""
    if fmt not in READERS and fmt in _LAZY:
        module, func = _LAZY[fmt].split(":")
        READERS[fmt] = getattr(importlib.import_module(module), func)
    if fmt not in READERS:
        raise ConfigError(f"Unknown data format: {fmt!r}. Valid choices are: {', '.join(formats())}")
    return READERS[fmt]


def formats() -> list[str]:
    """Every known format name."""
    return sorted(set(READERS) | set(_LAZY))


def cache_dir() -> Path:
    env = os.environ.get("LAMP_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lamp"


def detect_format(path: Path) -> str:
    """Guess a path's format from its files; ``--format`` overrides."""
    path = Path(path)
    if path.is_dir():
        if (path / "train.txt").is_file() or (path / "train").is_file():
            return "named" if looks_named(path) else "renet"
        files = sorted(p for p in path.iterdir() if p.is_file())
    else:
        files = [path]
    for p in files:
        fmt = _format_of_file(p)
        if fmt:
            return fmt
    raise DataFormatError(
        "could not detect the dataset format from its files.", path=str(path),
        fix=f"pass the format explicitly (one of: {', '.join(formats())}).",
    )


def _format_of_file(p: Path) -> str | None:
    low = p.name.lower()
    if low.endswith(".pkl"):
        return "easytpp"
    if ".export.csv" in low or low.endswith(".csv.zip"):
        return "gdelt_raw"
    if low.endswith((".json", ".json.gz", ".jsonl.gz")) and ("review" in low or "amazon" in low):
        return "amazon"
    if low.endswith((".csv", ".tsv", ".csv.gz")):
        # GDELT exports are tab-separated with 57, 58 (1.0) or 61 (2.0) columns and no header.
        with open(p, "rb") as fh:
            first = fh.readline()
        return "gdelt_raw" if first.count(b"\t") in (56, 57, 60) else "table"
    if low.endswith((".parquet", ".jsonl")):
        return "table"
    return None


def _source_fingerprint(path: Path) -> str:
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        st = p.stat()
        h.update(f"{p.relative_to(path) if path.is_dir() else p.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def resolve(name_or_path: str | os.PathLike[str], *, data_root: str | os.PathLike[str] | None = None,
            download: bool = True) -> tuple[Path, DatasetSpec | None]:
    """Find a dataset: an existing path, or a registry name under the data directory (downloaded if missing)."""
    text = str(name_or_path)
    if text in DATASETS:
        spec = get_spec(text)
        folder = data_dir(data_root) / spec.folder
        if not folder.exists():
            if not download or not spec.sources:
                raise ConfigError(
                    f"Dataset {text!r} was not found at {folder}. Set LAMP_DATA_DIR to a folder that holds "
                    f"{spec.folder}/, or run `lamp data download {text}`."
                )
            from lamp.data.download import download_dataset

            download_dataset(spec, data_dir(data_root))
        return folder, spec
    path = Path(text).expanduser()
    if not path.exists():
        raise ConfigError(f"{text!r} is neither a known dataset ({', '.join(DATASETS)}) nor an existing path.")
    return path, None


def load_dataset(
    name_or_path: str | os.PathLike[str],
    *,
    data_root: str | os.PathLike[str] | None = None,
    format: str | None = None,
    time_spec: TimeSpec | None = None,
    options: dict[str, Any] | None = None,
    use_cache: bool = True,
    download: bool = True,
) -> EventLog:
    """Load a dataset into an :class:`EventLog`.

    >>> log = load_dataset("icews14")            # doctest: +SKIP  (reads $LAMP_DATA_DIR/icews14)
    >>> log.describe()["splits"]                  # doctest: +SKIP
    {'train': 74845, 'valid': 8514, 'test': 7371}
    """
    path, spec = resolve(name_or_path, data_root=data_root, download=download)
    fmt = format or (spec.format if spec else detect_format(path))
    reader = get_reader(fmt)
    opts = {**(spec.options if spec else {}), **(options or {})}
    ts = time_spec or (spec.time_spec if spec else DEFAULT_TIME_SPECS.get(fmt, TimeSpec("step", 1.0, None)))
    name = spec.name if spec else (path.name if path.is_dir() else path.name.split(".")[0])
    cameo = _cameo_folder(data_root) if fmt in CAMEO_FORMATS else None
    key = hashlib.sha256(json.dumps(
        [CACHE_VERSION, fmt, str(path.resolve()), _source_fingerprint(path), ts.to_dict(), opts,
         _source_fingerprint(cameo) if cameo else None],
        sort_keys=True, default=str).encode()).hexdigest()[:20]
    target = cache_dir() / "eventlogs" / f"{name}-{key}"
    if use_cache:
        cached = _read_cache(target)
        if cached is not None:
            return cached
    event_log = reader(path, name, ts, opts)
    if cameo is not None:
        event_log = _with_cameo(event_log, cameo, opts, data_root)
    if use_cache:
        _write_cache(event_log, target)
    return event_log


def _cameo_folder(data_root: str | os.PathLike[str] | None) -> Path | None:
    folder = data_dir(data_root) / "cameo"
    return folder if (folder / "dict_id2ont.json").is_file() else None


def _with_cameo(event_log: EventLog, folder: Path, opts: dict[str, Any],
                data_root: str | os.PathLike[str] | None) -> EventLog:
    from lamp.data.cameo import attach_cameo, gdelt_slice_codes

    fallback = gdelt_slice_codes(data_root) if opts.get("cameo_fallback") == "gdelt_slice" else None
    return attach_cameo(event_log, folder=folder, fallback_codes=fallback)


def _write_cache(event_log: EventLog, target: Path) -> None:
    """Write parquet + meta atomically: a temp dir renamed into place, never half-written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    try:
        event_log.frame.to_parquet(tmp / "events.parquet", index=False)
        meta = {
            "name": event_log.name, "entities": list(event_log.entities.names),
            "relations": list(event_log.relations.names), "time_spec": event_log.time_spec.to_dict(),
            "split_ends": list(event_log.split_ends),
            "meta": {k: v for k, v in event_log.meta.items() if not k.startswith("_")},
        }
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        try:
            os.replace(tmp, target)
        except OSError:
            # Another process won the race (its copy is equivalent), or an old entry is corrupt:
            # move a corrupt one aside and retry once.
            if _read_cache(target) is None:
                stale = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-stale-"))
                try:
                    os.replace(target, stale / "old")
                    os.replace(tmp, target)
                except OSError:
                    pass
                finally:
                    shutil.rmtree(stale, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _read_cache(target: Path) -> EventLog | None:
    if not (target / "meta.json").is_file():
        return None
    try:
        meta = json.loads((target / "meta.json").read_text(encoding="utf-8"))
        frame = pd.read_parquet(target / "events.parquet")
        return EventLog(
            meta["name"], frame, Vocab(tuple(meta["entities"])), Vocab(tuple(meta["relations"])),
            TimeSpec.from_dict(meta["time_spec"]), tuple(meta["split_ends"]), dict(meta.get("meta", {})),  # type: ignore[arg-type]
        )
    except Exception:  # noqa: BLE001 - a corrupt cache entry is rebuilt from the source files
        log.warning("ignoring unreadable cache entry %s", target)
        return None
