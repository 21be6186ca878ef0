"""Raw GDELT 1.0 / 2.0 exports: the real files in gdelt-raw/ and the reader's error messages."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from lamp.data.eventlog import SPLITS, TimeSpec
from lamp.data.gdelt_raw import read_gdelt_raw, url_slug
from lamp.data.load import detect_format, load_dataset
from lamp.data.render import render_row
from lamp.errors import ConfigError, DataFormatError

MIN = TimeSpec("minute", 60.0, None)
V2 = "20191024143000.export.CSV"
V1 = "gdelt1_events_sample_reed9999.csv"


@pytest.fixture(scope="module")
def raw_dir(data_dir: Path) -> Path:
    folder = data_dir / "gdelt-raw"
    if not (folder / V2).is_file():
        pytest.skip(f"{folder} is missing")
    return folder


def test_url_slug() -> None:
    assert url_slug("https://belsat.eu/en/news/10-years-of-belarus-participating-in-eastern-partnership/") == \
        "10 years of belarus participating in eastern partnership"
    assert url_slug("http://www.dailyexcelsior.com/1-addl-tax-dropped-gst-bill/") == "1 addl tax dropped gst bill"
    assert url_slug("https://x.com/a/jeremy-dutcher-brings-songs-to-life-1.23985964") == \
        "jeremy dutcher brings songs to life 1"
    assert url_slug("") == ""


def test_gdelt1_sample(raw_dir: Path, data_dir: Path) -> None:
    assert detect_format(raw_dir / V1) == "gdelt_raw"
    log = load_dataset(raw_dir / V1, data_root=data_dir, use_cache=False)
    assert log.meta["gdelt1"] == 471 and log.meta["dropped_rows"] == 710 - 471
    assert log.time_spec.granularity == 1440.0  # SQLDATE: whole days
    for a, b in zip(SPLITS, SPLITS[1:], strict=False):
        assert log.split(a)["time"].max() < log.split(b)["time"].min()
    assert render_row(log, 0) == "1982-01-02 | BUSINESS | Express intent to cooperate | BUSINESS"
    codes, roots = log.meta["relation_cameo"], log.meta["relation_root"]
    assert all(int(c[:2]) - 1 == r for c, r in zip(codes, roots, strict=True))
    assert log.relations.names[codes.index("010")] == "Make public statement"


def test_single_gdelt2_export_needs_a_time_field(raw_dir: Path, data_dir: Path) -> None:
    with pytest.raises(DataFormatError, match="time_field=SQLDATE") as err:
        load_dataset(raw_dir / V2, data_root=data_dir, use_cache=False)
    assert str(err.value.path).endswith(V2)
    log = load_dataset(raw_dir / V2, data_root=data_dir, use_cache=False, options={"time_field": "SQLDATE"})
    assert len(log) == 1406 and log.meta["dropped_rows"] == 2111 - 1406
    assert log.texts is not None and "eastern partnership" in " ".join(log.texts)


def test_folder_with_both_layouts(raw_dir: Path, data_dir: Path) -> None:
    assert detect_format(raw_dir) == "gdelt_raw"
    log = load_dataset(raw_dir, data_root=data_dir, use_cache=False)
    assert (log.meta["gdelt1"], log.meta["gdelt2"]) == (471, 1406)
    assert log.describe()["last_date"] == "2019-10-24T14:30:00"  # DATEADDED of the 2.0 export
    assert log.time_spec.granularity == 15.0
    assert len(log.meta["cameo_roots"]) == 20 and -1 not in log.meta["relation_root"]


def test_zipped_export(raw_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / f"{V1}.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(raw_dir / V1, V1)
    assert len(read_gdelt_raw(archive, "z", MIN, {})) == 471
    archive.write_bytes(archive.read_bytes()[:500])
    with pytest.raises(DataFormatError, match="zip"):
        read_gdelt_raw(archive, "z", MIN, {})


def _copy_with(raw_dir: Path, tmp_path: Path, line_no: int, edit) -> Path:
    lines = (raw_dir / V1).read_text(encoding="utf-8").splitlines()
    cols = lines[line_no - 1].split("\t")
    lines[line_no - 1] = "\t".join(edit(cols))
    out = tmp_path / "bad.csv"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def _set(i: int, value: str):
    def edit(cols: list[str]) -> list[str]:
        cols[i] = value
        return cols
    return edit


@pytest.mark.parametrize("edit, field, message", [
    (lambda c: c[:40], None, "57 or 58"),
    (_set(26, "0x1"), "EventCode", "CAMEO code"),
    (_set(28, "09"), "EventRootCode", "root"),
    (_set(1, "2016-07-28"), "SQLDATE", "not a date"),
    (_set(1, "20161399"), "SQLDATE", "not a date"),
])
def test_bad_rows(raw_dir: Path, tmp_path: Path, edit, field: str | None, message: str) -> None:
    path = _copy_with(raw_dir, tmp_path, 600, edit)  # line 600 names both actors
    with pytest.raises(DataFormatError, match=message) as err:
        read_gdelt_raw(path, "x", MIN, {})
    assert (err.value.path, err.value.line, err.value.field) == (str(path), 600, field)


def test_bad_files_and_options(tmp_path: Path) -> None:
    empty = tmp_path / "e.export.CSV"
    empty.write_bytes(b"")
    with pytest.raises(DataFormatError, match="empty"):
        read_gdelt_raw(empty, "x", MIN, {})
    empty.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(DataFormatError, match="UTF-8"):
        read_gdelt_raw(empty, "x", MIN, {})
    (tmp_path / "sub").mkdir()
    with pytest.raises(DataFormatError, match="no GDELT export"):
        read_gdelt_raw(tmp_path / "sub", "x", MIN, {})
    with pytest.raises(ConfigError, match="time_field"):
        read_gdelt_raw(empty, "x", MIN, {"time_field": "WHEN"})
