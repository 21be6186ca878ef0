"""load_dataset: the Parquet cache, format detection and reader registration."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from lamp.data.eventlog import TimeSpec
from lamp.data.load import formats, get_reader, load_dataset, register_reader
from lamp.errors import ConfigError, DataFormatError


def test_cached_load_equals_cold_load(data_dir: Path, tmp_cache: Path) -> None:
    cold = load_dataset("icews14", data_root=data_dir, download=False)
    entries = list((tmp_cache / "eventlogs").iterdir())
    assert len(entries) == 1 and not entries[0].name.startswith(".tmp-")
    warm = load_dataset("icews14", data_root=data_dir, download=False)
    pd.testing.assert_frame_equal(cold.frame, warm.frame)
    assert (warm.entities, warm.relations, warm.time_spec, warm.split_ends) == \
        (cold.entities, cold.relations, cold.time_spec, cold.split_ends)
    assert warm.fingerprint() == cold.fingerprint()


def test_corrupt_cache_entry_is_rebuilt(data_dir: Path, tmp_cache: Path) -> None:
    first = load_dataset("icews14", data_root=data_dir, download=False)
    entry = next((tmp_cache / "eventlogs").iterdir())
    (entry / "events.parquet").write_bytes(b"garbage")
    again = load_dataset("icews14", data_root=data_dir, download=False)
    assert len(again) == len(first)
    pd.read_parquet(entry / "events.parquet")  # replaced by a good copy
    assert [p.name for p in (tmp_cache / "eventlogs").iterdir()] == [entry.name]


def test_changed_source_gets_a_new_entry(data_dir: Path, tmp_path: Path, tmp_cache: Path) -> None:
    folder = tmp_path / "icews14"
    shutil.copytree(data_dir / "icews14", folder, ignore=shutil.ignore_patterns("*.zip"))
    n = len(load_dataset(folder, use_cache=True))
    lines = (folder / "test.txt").read_text().splitlines()[:-100]
    (folder / "test.txt").write_text("\n".join(lines) + "\n")
    assert len(load_dataset(folder, use_cache=True)) == n - 100


def test_formats_and_reader_registration(tmp_path: Path) -> None:
    assert {"renet", "named", "amazon", "easytpp", "gdelt_raw", "table"} <= set(formats())
    with pytest.raises(ConfigError, match="Unknown data format"):
        get_reader("xml")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataFormatError, match="could not detect"):
        load_dataset(tmp_path, use_cache=False)

    def reader(path, name, ts, opts):  # a user's own format
        csv = tmp_path / "e.csv"
        pd.DataFrame({"time": [1, 2, 3], "subject": "a", "relation": "r", "object": "b"}).to_csv(csv, index=False)
        return get_reader("table")(csv, name, ts, opts)

    register_reader("mine", reader, time_spec=TimeSpec("hour", 3600.0, None))
    log = load_dataset(tmp_path, format="mine", use_cache=False)
    assert log.split_sizes() == {"train": 1, "valid": 1, "test": 1} and log.time_spec.unit == "hour"
    assert "mine" in formats()
    json.dumps(log.describe())
