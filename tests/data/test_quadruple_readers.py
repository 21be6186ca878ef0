"""RE-Net id folders and named T_<n> folders: real data and every kind of bad input."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from lamp.data.eventlog import TimeSpec
from lamp.data.load import detect_format, load_dataset
from lamp.data.quadruples import read_id_quadruples, read_named_quadruples
from lamp.errors import DataFormatError

DAY = TimeSpec("day", 86400.0, None)
VOCAB = ("entity2id.txt", "relation2id.txt", "stat.txt")


@pytest.fixture()
def small_icews(data_dir: Path, tmp_path: Path) -> Path:
    """The first 200 events of each ICEWS14 split with the real vocabularies."""
    folder = tmp_path / "icews14-small"
    folder.mkdir()
    for name in VOCAB:
        shutil.copy(data_dir / "icews14" / name, folder / name)
    for split in ("train", "valid", "test"):
        lines = (data_dir / "icews14" / f"{split}.txt").read_text().splitlines()[:200]
        (folder / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return folder


def _edit(folder: Path, split: str, line: int, text: str) -> Path:
    path = folder / f"{split}.txt"
    lines = path.read_text().splitlines()
    lines[line - 1] = text
    path.write_text("\n".join(lines) + "\n")
    return path


def test_real_folders_are_detected(data_dir: Path) -> None:
    assert detect_format(data_dir / "icews14") == "renet"
    assert detect_format(data_dir / "gdelt") == "named"
    assert detect_format(data_dir / "amazon" / "easytpp-amazon") == "easytpp"
    assert detect_format(data_dir / "amazon" / "fashion-2018") == "amazon"
    assert detect_format(data_dir / "amazon" / "musical-instruments-2014") == "amazon"


def test_small_copy_loads(small_icews: Path) -> None:
    log = read_id_quadruples(small_icews, "s", DAY)
    assert log.split_sizes() == {"train": 200, "valid": 200, "test": 200}


@pytest.mark.parametrize("text, field, message", [
    ("1\t2\t3", None, "columns"),
    ("1\t2\t3\t4\t5\t6", None, "columns"),
    ("x\t2\t3\t4", "subject", "not an integer id"),
    ("1\t2.5\t3\t4", "relation", "not an integer id"),
    ("1\t2\t99999\t4", "object", "outside the vocabulary"),
    ("1\t230\t3\t4", "relation", "outside the vocabulary"),
    ("-2\t2\t3\t4", "subject", "outside the vocabulary"),
    ("1\t2\t3\tlate", "time", "not a number"),
    ("1\t2\t3\tnan", "time", "finite"),
    ("1\t2\t3\t-1", "time", "non-negative"),
])
def test_bad_train_line(small_icews: Path, text: str, field: str | None, message: str) -> None:
    path = _edit(small_icews, "train", 57, text)
    with pytest.raises(DataFormatError, match=message) as err:
        read_id_quadruples(small_icews, "s", DAY)
    assert (err.value.path, err.value.line, err.value.field) == (str(path), 57, field)


def test_splits_that_go_backwards(small_icews: Path) -> None:
    path = _edit(small_icews, "valid", 30, "1\t2\t3\t1")  # the small train covers days 1-2, valid 305-306
    with pytest.raises(DataFormatError, match="splits must follow each other") as err:
        read_id_quadruples(small_icews, "s", DAY)
    assert (err.value.path, err.value.line, err.value.field) == (str(path), 30, "time")
    # overlapping ranges: the test split's first day lies before valid's last
    _edit(small_icews, "valid", 30, "1\t2\t3\t340")
    _edit(small_icews, "test", 5, "1\t2\t3\t320")
    with pytest.raises(DataFormatError, match="test split starts at time 320"):
        read_id_quadruples(small_icews, "s", DAY)


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"1\t2\t3\t4\n\xff\xfe\t1\t1\t1\n", "UTF-8"),
])
def test_empty_and_badly_encoded_split(small_icews: Path, content: bytes, message: str) -> None:
    (small_icews / "test.txt").write_bytes(content)
    with pytest.raises(DataFormatError, match=message) as err:
        read_id_quadruples(small_icews, "s", DAY)
    assert err.value.path == str(small_icews / "test.txt")


def test_missing_and_truncated_gzip_files(small_icews: Path) -> None:
    data = gzip.compress((small_icews / "valid.txt").read_bytes())
    (small_icews / "valid.txt").write_bytes(data)  # a gzipped split is fine...
    assert len(read_id_quadruples(small_icews, "s", DAY)) == 600
    (small_icews / "valid.txt").write_bytes(data[: len(data) // 2])  # ...a truncated one is not
    with pytest.raises(DataFormatError, match="truncated"):
        read_id_quadruples(small_icews, "s", DAY)
    (small_icews / "valid.txt").unlink()
    with pytest.raises(DataFormatError, match="no valid file"):
        read_id_quadruples(small_icews, "s", DAY)
    (small_icews / "entity2id.txt").unlink()
    with pytest.raises(DataFormatError, match="does not exist"):
        read_id_quadruples(small_icews, "s", DAY)


@pytest.mark.parametrize("text, message", [
    ("Abc", "name<TAB>id"), ("Abc\tseven", "not an integer"), ("Abc\t0", "given twice"), ("Abc\t999999", "dense"),
])
def test_bad_vocabulary(small_icews: Path, text: str, message: str) -> None:
    path = small_icews / "entity2id.txt"
    path.write_text(path.read_text() + text + "\n")
    with pytest.raises(DataFormatError, match=message) as err:
        read_id_quadruples(small_icews, "s", DAY)
    assert err.value.path == str(path)


def test_stat_file_must_agree(small_icews: Path) -> None:
    (small_icews / "stat.txt").write_text("10\t5\n")
    with pytest.raises(DataFormatError, match="declares 10 entities"):
        read_id_quadruples(small_icews, "s", DAY)


@pytest.fixture()
def small_gdelt(data_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "gdelt-small"
    folder.mkdir()
    for name in ("entity2id.json", "relation2id.json"):
        shutil.copy(data_dir / "gdelt" / name, folder / name)
    for split in ("train", "valid", "test"):
        lines = (data_dir / "gdelt" / f"{split}.txt").read_text().splitlines()[:150]
        (folder / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return folder


def test_named_reader(small_gdelt: Path) -> None:
    log = read_named_quadruples(small_gdelt, "g", TimeSpec("minute", 60.0, None))
    assert len(log) == 450 and log.num_relations == 237 and log.relations.names[0] == "Make an appeal or request"


@pytest.mark.parametrize("text, field, message", [
    ("Mexico\tConsult\tAmerican", None, "4 tab-separated"),
    ("Mexico\tConsult\tAmerican\tT_soon", "time", "T_<number>"),
    ("Mexico\tConsult\tAmerican\tT_-15", "time", "non-negative"),
])
def test_named_reader_bad_lines(small_gdelt: Path, text: str, field: str | None, message: str) -> None:
    path = _edit(small_gdelt, "train", 12, text)
    with pytest.raises(DataFormatError, match=message) as err:
        read_named_quadruples(small_gdelt, "g", TimeSpec("minute", 60.0, None))
    assert (err.value.path, err.value.line, err.value.field) == (str(path), 12, field)


def test_named_reader_bad_json_vocab(small_gdelt: Path) -> None:
    (small_gdelt / "relation2id.json").write_text('{"Consult": "zero"}')
    with pytest.raises(DataFormatError, match="not an integer"):
        read_named_quadruples(small_gdelt, "g", TimeSpec("minute", 60.0, None))
    (small_gdelt / "relation2id.json").write_text("{broken")
    with pytest.raises(DataFormatError, match="JSON"):
        load_dataset(small_gdelt, use_cache=False)


@pytest.mark.parametrize("content, message", [
    (b"", "empty"), (b"Mexico\tConsult\t\xff\xfe\tT_0\n", "UTF-8"), (gzip.compress(b"a\tb\tc\tT_0\n" * 50)[:20], "truncated"),
])
def test_named_reader_bad_files(small_gdelt: Path, content: bytes, message: str) -> None:
    (small_gdelt / "valid.txt").write_bytes(content)
    with pytest.raises(DataFormatError, match=message) as err:
        read_named_quadruples(small_gdelt, "g", TimeSpec("minute", 60.0, None))
    assert err.value.path == str(small_gdelt / "valid.txt")
    (small_gdelt / "valid.txt").unlink()
    with pytest.raises(DataFormatError, match="no valid file"):
        read_named_quadruples(small_gdelt, "g", TimeSpec("minute", 60.0, None))


def test_named_reader_splits_go_backwards(small_gdelt: Path) -> None:
    _edit(small_gdelt, "train", 3, "Mexico\tConsult\tAmerican\tT_99990")  # a train event after all of valid
    with pytest.raises(DataFormatError, match="valid split starts at time .* before the end of the train") as err:
        read_named_quadruples(small_gdelt, "g", TimeSpec("minute", 60.0, None))
    assert err.value.path == str(small_gdelt / "valid.txt") and err.value.field == "time"
