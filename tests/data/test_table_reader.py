"""The generic table reader (CSV / TSV / Parquet / JSON lines) and the time-quantile split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lamp.data.eventlog import SPLITS, TimeSpec
from lamp.data.load import detect_format, load_dataset
from lamp.data.render import render_row
from lamp.data.table import detect_granularity, read_table, time_quantile_split
from lamp.errors import ConfigError, DataFormatError

STEP = TimeSpec("step", 1.0, None)


def test_time_quantile_split_keeps_ties_together() -> None:
    times = np.repeat(np.arange(10.0), 10)
    labels = time_quantile_split(times)
    assert np.bincount(labels).tolist() == [80, 10, 10]
    times = np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 2], dtype=float)  # 80% at one time value
    labels = time_quantile_split(times)
    assert labels.tolist() == [0] * 8 + [1, 2]
    for t in range(3):
        assert len(set(labels[times == t])) == 1
    with pytest.raises(DataFormatError, match="distinct time"):
        time_quantile_split(np.array([1.0, 1.0, 2.0]))
    with pytest.raises(ConfigError, match="split_fractions"):
        time_quantile_split(times, (0.5, 0.5, 0.5))


def test_detect_granularity() -> None:
    assert detect_granularity(np.array([0.0, 1440.0, 2880.0]), 60.0) == 1440.0
    assert detect_granularity(np.array([0.0, 15.0, 45.0]), 60.0) == 15.0
    assert detect_granularity(np.array([0.0, 1.5]), 86400.0) == 1.0


def _frame(n: int = 30) -> pd.DataFrame:
    return pd.DataFrame({
        "date": [f"2014-01-{d + 1:02d}" for d in range(n)],
        "actor": [f"A{i % 4}" for i in range(n)], "action": ["Consult" if i % 2 else "Threaten" for i in range(n)],
        "target": [f"A{(i + 1) % 4}" for i in range(n)], "headline": [f"story {i}" for i in range(n)],
    })


COLUMNS = {"time": "date", "subject": "actor", "relation": "action", "object": "target", "text": "headline"}


def test_csv_with_dates(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    _frame().to_csv(path, index=False)
    assert detect_format(path) == "table"
    log = load_dataset(path, options={"columns": COLUMNS}, use_cache=False)
    assert log.split_sizes() == {"train": 24, "valid": 3, "test": 3}
    assert log.time_spec.unit == "day" and log.time_spec.granularity == 1.0
    assert render_row(log, 0) == "2014-01-01 | A0 | Threaten | A1 | story 0"


def test_parquet_jsonl_tsv_with_split_column_and_numeric_time(tmp_path: Path) -> None:
    df = _frame().rename(columns={v: k for k, v in COLUMNS.items()})
    df["time"] = np.arange(len(df)) * 2.0
    df["split"] = ["train"] * 20 + ["dev"] * 5 + ["test"] * 5
    opts = {"split_column": "split", "time_unit": "hour", "origin": "2018-01-01"}
    df.to_parquet(tmp_path / "e.parquet")
    (tmp_path / "e.jsonl").write_text("\n".join(json.dumps(r) for r in df.to_dict("records")) + "\n")
    df.to_csv(tmp_path / "e.tsv", sep="\t", index=False)
    for name in ("e.parquet", "e.jsonl", "e.tsv"):
        log = read_table(tmp_path / name, "t", STEP, opts)
        assert log.split_sizes() == {"train": 20, "valid": 5, "test": 5}, name
        assert log.time_spec.unit == "hour" and log.describe()["last_date"] == "2018-01-03T10:00:00"


def test_without_object_column(tmp_path: Path) -> None:
    df = _frame().drop(columns=["target"])
    df.to_csv(tmp_path / "e.csv", index=False)
    log = read_table(tmp_path / "e.csv", "t", STEP, {"columns": {k: v for k, v in COLUMNS.items() if k != "object"}})
    assert not log.has_objects


def _bad_csv(tmp_path: Path, row: int, col: str, value: object) -> Path:
    df = _frame()
    values = df[col].tolist()
    values[row] = value
    df[col] = values
    path = tmp_path / "bad.csv"
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("col, value, field, message", [
    ("date", "not a date", "date", "neither a number nor a date"),
    ("actor", None, "actor", "subject is missing"),
    ("action", None, "action", "relation is missing"),
])
def test_bad_values_name_the_line(tmp_path: Path, col: str, value: object, field: str, message: str) -> None:
    path = _bad_csv(tmp_path, 7, col, value)
    with pytest.raises(DataFormatError, match=message) as err:
        read_table(path, "t", STEP, {"columns": COLUMNS})
    assert (err.value.path, err.value.line, err.value.field) == (str(path), 9, field)  # header + 1-based


@pytest.mark.parametrize("value, message", [("x", "not a number"), ("nan", "not a number"), ("inf", "finite"), ("-3", "non-negative")])
def test_bad_numeric_times(tmp_path: Path, value: str, message: str) -> None:
    df = _frame()
    df["date"] = [str(i) for i in range(len(df))]
    df["date"] = [value if i == 12 else t for i, t in enumerate(df["date"])]
    df.to_csv(tmp_path / "e.csv", index=False)
    with pytest.raises(DataFormatError, match=message) as err:
        read_table(tmp_path / "e.csv", "t", STEP, {"columns": COLUMNS})
    assert err.value.line == 14


def test_splits_that_overlap_or_go_backwards(tmp_path: Path) -> None:
    df = _frame()
    df["split"] = ["test"] * 5 + ["train"] * 20 + ["valid"] * 5  # test events come first in time
    df.to_csv(tmp_path / "e.csv", index=False)
    with pytest.raises(DataFormatError, match="splits must follow each other in time"):
        read_table(tmp_path / "e.csv", "t", STEP, {"columns": COLUMNS, "split_column": "split"})
    df["split"] = ["train"] * 20 + ["tset"] * 10
    df.to_csv(tmp_path / "e.csv", index=False)
    with pytest.raises(DataFormatError, match="not train, valid or test") as err:
        read_table(tmp_path / "e.csv", "t", STEP, {"columns": COLUMNS, "split_column": "split"})
    assert err.value.line == 22


def test_bad_files(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(DataFormatError, match="empty"):
        read_table(tmp_path / "e.csv", "t", STEP, {})
    (tmp_path / "e.csv").write_text("date,actor\n2014-01-01,A\n")
    with pytest.raises(DataFormatError, match="no column 'time'") as err:
        read_table(tmp_path / "e.csv", "t", STEP, {"columns": {"time": "time"}})
    assert err.value.field == "time"
    (tmp_path / "e.csv").write_text('date,actor\n"2014-01-01,A\n')
    with pytest.raises(DataFormatError):
        read_table(tmp_path / "e.csv", "t", STEP, {})
    (tmp_path / "e.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataFormatError, match="Parquet"):
        read_table(tmp_path / "e.parquet", "t", STEP, {})
    (tmp_path / "e.jsonl").write_text('{"a": 1}\n{oops\n')
    with pytest.raises(DataFormatError, match="JSON") as err:
        read_table(tmp_path / "e.jsonl", "t", STEP, {})
    assert err.value.line == 2
    with pytest.raises(ConfigError, match="time_unit"):
        _frame().to_csv(tmp_path / "ok.csv", index=False)
        read_table(tmp_path / "ok.csv", "t", STEP, {"columns": COLUMNS, "time_unit": "fortnight"})


def test_splits_follow_in_time(tmp_path: Path) -> None:
    _frame(100).assign(date=[f"2014-{1 + d // 28:02d}-{1 + d % 28:02d}" for d in range(100)]).to_csv(
        tmp_path / "e.csv", index=False)
    log = read_table(tmp_path / "e.csv", "t", STEP, {"columns": COLUMNS})
    for a, b in zip(SPLITS, SPLITS[1:], strict=False):
        assert log.split(a)["time"].max() < log.split(b)["time"].min()


def test_caller_time_spec_applies_to_dates(tmp_path: Path) -> None:
    from datetime import datetime

    _frame().to_csv(tmp_path / "e.csv", index=False)
    hours = TimeSpec("hour", 3600.0, datetime(2014, 1, 1))
    log = read_table(tmp_path / "e.csv", "t", hours, {"columns": COLUMNS})
    assert log.times[0] == 0.0 and log.times[1] == 24.0 and log.time_spec.granularity == 24.0
    assert render_row(log, 1).startswith("2014-01-02 | ")
