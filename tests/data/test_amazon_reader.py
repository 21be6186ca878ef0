"""Amazon reviews: both real files (2014 gzipped, 2018 plain) and the reader's error messages."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from lamp.data.amazon import STAR_NAMES, read_amazon
from lamp.data.eventlog import SPLITS, TimeSpec
from lamp.data.load import load_dataset
from lamp.data.render import render_row
from lamp.errors import DataFormatError

DAYS = TimeSpec("day", 86400.0, None)


def _assert_time_split(event_log) -> None:
    for a, b in zip(SPLITS, SPLITS[1:], strict=False):
        assert event_log.split(a)["time"].max() < event_log.split(b)["time"].min()


def test_instruments_2014_gzip(data_dir: Path) -> None:
    log = load_dataset("amazon-instruments", data_root=data_dir, use_cache=False, download=False)
    assert len(log) == 10261 and log.num_entities == 1429
    assert log.relations.names == STAR_NAMES
    assert not log.has_objects and log.texts is not None
    sizes = log.split_sizes()
    assert abs(sizes["train"] / len(log) - 0.8) < 0.02 and sizes["valid"] > 0 and sizes["test"] > 0
    _assert_time_split(log)
    assert log.describe()["first_date"].startswith("2004-09-18")
    # the first review in the file: A2IBPI20UZIR0U, 5 stars, "good", 2014-02-28
    row = int(np.flatnonzero(log.subjects == log.entities.id("A2IBPI20UZIR0U"))[-1])
    assert render_row(log, row).startswith("2014-02-28 | A2IBPI20UZIR0U | 5 stars")


def test_fashion_2018_drops_missing_ratings_and_variant_duplicates(data_dir: Path) -> None:
    log = load_dataset("amazon-fashion", data_root=data_dir, use_cache=False, download=False)
    assert log.meta["dropped_rows"] == 1  # one review has "overall": null
    assert log.meta["duplicate_rows"] == 107  # the same review repeated per product variant
    assert len(log) == 3176 - 1 - 107 and log.num_entities == 406
    _assert_time_split(log)


def test_items_as_objects(data_dir: Path) -> None:
    log = load_dataset("amazon-instruments", data_root=data_dir, use_cache=False, download=False,
                       options={"object_field": "asin"})
    assert log.has_objects and log.num_entities == 1429 + 900


def _write(tmp_path: Path, lines: list[str], name: str = "reviews.json") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _review(user: str, t: int, **extra) -> str:
    return json.dumps({"reviewerID": user, "asin": "B1", "unixReviewTime": t, "overall": 5.0, "summary": "ok", **extra})


def test_category_type_field_and_python_literal_lines(tmp_path: Path) -> None:
    lines = [_review("u1", 86400 * d, category=["Clothing", "Women", "Shoes"]) for d in range(1, 10)]
    lines.append(str({"reviewerID": "u2", "asin": "B2", "reviewTime": "01 20, 1970", "category": "Watches"}))
    log = read_amazon(_write(tmp_path, lines), "t", DAYS, {"type_field": "category", "category_depth": 2})
    assert set(log.relations.names) == {"Clothing / Women", "Watches"}
    assert log.times.max() == 19.0  # 1970-01-20 is day 19


@pytest.mark.parametrize("line, field, message", [
    ("{not json", None, "not a JSON object"),
    ('["a list"]', None, "expected a JSON object"),
    (json.dumps({"asin": "B1", "unixReviewTime": 5, "overall": 5}), "reviewerID", "no reviewerID"),
    (json.dumps({"reviewerID": "u", "unixReviewTime": "soon", "overall": 5}), "unixReviewTime", "not a number"),
    (json.dumps({"reviewerID": "u", "overall": 5}), "unixReviewTime", "no time"),
    ('{"reviewerID": "u", "unixReviewTime": NaN, "overall": 5}', "time", "finite"),
    (json.dumps({"reviewerID": "u", "unixReviewTime": -86400, "overall": 5}), "time", "non-negative"),
    (json.dumps({"reviewerID": "u", "unixReviewTime": 5, "overall": 6}), "overall", "1, 2, 3, 4, 5"),
    (json.dumps({"reviewerID": "u", "unixReviewTime": 5, "overall": "great"}), "overall", "not a number"),
])
def test_bad_review_names_file_line_and_field(tmp_path: Path, line: str, field: str | None, message: str) -> None:
    lines = [_review("u1", 86400 * d) for d in range(1, 20)]
    lines.insert(10, line)
    path = _write(tmp_path, lines)
    with pytest.raises(DataFormatError, match=message) as err:
        read_amazon(path, "t", DAYS, {"type_field": "overall"})
    assert err.value.path == str(path) and err.value.line == 11
    assert err.value.field == field


@pytest.mark.parametrize("content, message", [
    (b"", "no reviews"),
    (b"\xff\xfe bad bytes\n", "UTF-8"),
])
def test_empty_and_badly_encoded_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "reviews.json"
    path.write_bytes(content)
    with pytest.raises(DataFormatError, match=message):
        read_amazon(path, "t", DAYS, {})


def test_truncated_gzip_and_missing_file(tmp_path: Path) -> None:
    data = gzip.compress("\n".join(_review("u", 86400 * d) for d in range(50)).encode())
    path = tmp_path / "reviews.json.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match="truncated"):
        read_amazon(path, "t", DAYS, {})
    with pytest.raises(DataFormatError, match="does not exist"):
        read_amazon(tmp_path / "nope.json", "t", DAYS, {})


def test_too_few_distinct_times_to_split(tmp_path: Path) -> None:
    path = _write(tmp_path, [_review(f"u{i}", 86400) for i in range(5)])
    with pytest.raises(DataFormatError, match="distinct time"):
        read_amazon(path, "t", DAYS, {})
