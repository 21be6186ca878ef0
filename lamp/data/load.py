"""Load a dataset by name or path into an EventLog, with a Parquet cache keyed by the source files."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from lamp.data.eventlog import EventLog, TimeSpec, Vocab
from lamp.data.quadruples import looks_named, read_id_quadruples, read_named_quadruples
from lamp.data.registry import DATASETS, DatasetSpec, data_dir, get_spec
from lamp.errors import ConfigError, DataFormatError

log = logging.getLogger(__name__)

CACHE_VERSION = 1

Reader = Callable[[Path, str, TimeSpec, dict[str, Any]], EventLog]


def _read_renet(path: Path, name: str, ts: TimeSpec, opts: dict[str, Any]) -> EventLog:
    return read_id_quadruples(path, name, ts, underscores=opts.get("underscores"))  # type: ignore[arg-type]


def _read_named(path: Path, name: str, ts: TimeSpec, opts: dict[str, Any]) -> EventLog:
    return read_named_quadruples(path, name, ts)


# format name -> reader; other modules of lamp.data register their readers here.
READERS: dict[str, Reader] = {"renet": _read_renet, "named": _read_named}


def register_reader(fmt: str, reader: Reader) -> None:
    READERS[fmt] = reader


def cache_dir() -> Path:
    env = os.environ.get("LAMP_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lamp"


def detect_format(path: Path) -> str:
    """Guess a path's format from its files; ``--format`` overrides."""
    if path.is_dir():
        if (path / "train.txt").is_file() or (path / "train").is_file():
            return "named" if looks_named(path) else "renet"
        if any(path.glob("*.pkl")):
            return "easytpp"
        if any(path.glob("*.json*")):
            return "amazon"
        if any(path.glob("*.export.CSV")) or any(path.glob("*.CSV")):
            return "gdelt_raw"
    else:
        low = path.name.lower()
        if low.endswith(".pkl"):
            return "easytpp"
        if low.endswith((".json", ".json.gz", ".jsonl", ".jsonl.gz")) and "review" in low or "amazon" in low:
            return "amazon"
        if low.endswith(".export.csv"):
            return "gdelt_raw"
        if low.endswith((".csv", ".parquet", ".jsonl", ".tsv")):
            return "table"
    raise DataFormatError(
        "could not detect the dataset format from its files.", path=str(path),
        fix=f"pass the format explicitly (one of: {', '.join(sorted(READERS))}).",
    )


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
    if fmt not in READERS:
        _import_optional_readers()
    if fmt not in READERS:
        raise ConfigError(f"Unknown data format: {fmt!r}. Valid choices are: {', '.join(sorted(READERS))}")
    opts = {**(spec.options if spec else {}), **(options or {})}
    ts = time_spec or (spec.time_spec if spec else TimeSpec("step", 1.0, None))
    name = spec.name if spec else path.stem
    key = hashlib.sha256(json.dumps(
        [CACHE_VERSION, fmt, str(path.resolve()), _source_fingerprint(path), ts.to_dict(), opts],
        sort_keys=True, default=str).encode()).hexdigest()[:20]
    target = cache_dir() / "eventlogs" / f"{name}-{key}"
    if use_cache:
        cached = _read_cache(target)
        if cached is not None:
            return cached
    event_log = READERS[fmt](path, name, ts, opts)
    if use_cache:
        _write_cache(event_log, target)
    return event_log


def _import_optional_readers() -> None:
    # Importing these modules registers their readers.
    import importlib

    for mod in ("lamp.data.amazon", "lamp.data.easytpp", "lamp.data.gdelt_raw", "lamp.data.table"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


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
        except OSError:  # another process won the race; its copy is equivalent
            pass
    finally:
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)


def _read_cache(target: Path) -> EventLog | None:
    try:
        meta = json.loads((target / "meta.json").read_text(encoding="utf-8"))
        frame = pd.read_parquet(target / "events.parquet")
    except (OSError, ValueError, KeyError):
        return None
    except Exception:  # noqa: BLE001 - a corrupt cache entry is rebuilt from the source files
        log.warning("ignoring unreadable cache entry %s", target)
        return None
    return EventLog(
        meta["name"], frame, Vocab(tuple(meta["entities"])), Vocab(tuple(meta["relations"])),
        TimeSpec.from_dict(meta["time_spec"]), tuple(meta["split_ends"]), dict(meta.get("meta", {})),  # type: ignore[arg-type]
    )
