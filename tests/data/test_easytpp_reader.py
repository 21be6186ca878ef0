"""EasyTPP pickles through the restricted unpickler; the derived split of the dev/test-only copy."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from lamp.data.easytpp import read_easytpp
from lamp.data.eventlog import SPLITS, TimeSpec
from lamp.data.load import load_dataset
from lamp.data.safe_pickle import safe_load, safe_loads
from lamp.errors import ConfigError, DataFormatError

STEP = TimeSpec("step", 1.0, None)


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"dim_process": 2, "dev": [_Exploit(marker)]})
    with pytest.raises(DataFormatError, match=r"posix\.system|os\.system|nt\.system") as err:
        safe_loads(payload, source="evil.pkl")
    assert "evil.pkl" in str(err.value)
    assert not marker.exists()


def test_numpy_and_other_classes_are_refused() -> None:
    with pytest.raises(DataFormatError, match="numpy"):
        safe_loads(pickle.dumps(np.arange(3)))
    with pytest.raises(DataFormatError, match="refused"):
        safe_loads(pickle.dumps(Path("/etc")))


def test_plain_data_and_corrupt_bytes() -> None:
    data = {"a": [1, 2.5, "x", (True, None)], "b": {1, 2}, "c": b"raw"}
    assert safe_loads(pickle.dumps(data)) == data
    blob = pickle.dumps(data)
    with pytest.raises(DataFormatError, match="truncated or corrupt|invalid pickle"):
        safe_loads(blob[: len(blob) // 2])


def test_real_amazon_easytpp_derived_split(data_dir: Path) -> None:
    folder = data_dir / "amazon" / "easytpp-amazon"
    log = load_dataset("amazon-easytpp", data_root=data_dir, use_cache=False, download=False)
    assert log.split_sizes() == {"train": 9431, "valid": 4886, "test": 24611}  # dev = 14,317 events
    assert log.num_entities == 300 + 500 and log.relations.names == tuple(f"type {k}" for k in range(16))
    assert log.meta["derived_split"] is True
    assert log.meta["split_offsets"] == {"train": 0.0, "valid": 67.0, "test": 128.0}
    for a, b in zip(SPLITS, SPLITS[1:], strict=False):
        assert log.split(a)["time"].max() < log.split(b)["time"].min()
    # each sequence is unchanged: subtracting the split's offset gives time_since_start back
    raw = safe_load(folder / "test.pkl")["test"]
    seq = raw[17]
    subj = log.entities.id("test-17")
    rows = np.flatnonzero(log.subjects == subj)
    np.testing.assert_allclose(log.times[rows] - 128.0, [e["time_since_start"] for e in seq])
    assert [int(r) for r in log.rels[rows]] == [e["type_event"] for e in seq]
    assert log.entities.names[:2] == ("dev-0", "dev-1") and "dev-200" in log.entities.names


def _seq(n: int, t0: float = 0.5, types=None) -> list[dict]:
    types = types or [i % 3 for i in range(n)]
    return [{"type_event": types[i], "time_since_last_event": 0.0 if i == 0 else 1.0, "time_since_start": t0 + i}
            for i in range(n)]


def _write(folder: Path, **splits) -> Path:
    folder.mkdir(exist_ok=True)
    for name, seqs in splits.items():
        (folder / f"{name}.pkl").write_bytes(pickle.dumps({"dim_process": 3, name: seqs}))
    return folder


def test_three_file_layout(tmp_path: Path) -> None:
    folder = _write(tmp_path / "tpp", train=[_seq(5), _seq(4)], dev=[_seq(3)], test=[_seq(6)])
    log = read_easytpp(folder, "x", STEP, {})
    assert log.split_sizes() == {"train": 9, "valid": 3, "test": 6}
    assert log.meta["derived_split"] is False and log.entities.names == ("train-0", "train-1", "dev-0", "test-0")


@pytest.mark.parametrize("bad, field, message", [
    ({"type_event": 3, "time_since_start": 1.0}, "type_event", "0..2"),
    ({"type_event": "a", "time_since_start": 1.0}, "type_event", "not an integer"),
    ({"type_event": 1, "time_since_start": float("nan")}, "time_since_start", "finite"),
    ({"type_event": 1, "time_since_start": -1.0}, "time_since_start", "non-negative"),
    ({"type_event": 1, "time_since_start": "late"}, "time_since_start", "finite"),
    ({"type_event": 1, "time_since_start": 0.1}, "time_since_start", "goes back"),
])
def test_bad_events(tmp_path: Path, bad: dict, field: str, message: str) -> None:
    seq = _seq(4)
    seq.append(bad)
    folder = _write(tmp_path / "tpp", dev=[_seq(3), seq, _seq(3)], test=[_seq(3)])
    with pytest.raises(DataFormatError, match=message) as err:
        read_easytpp(folder, "x", STEP, {})
    assert err.value.field == field and err.value.path == str(folder / "dev.pkl")
    assert "sequence 1, event 4" in str(err.value)


def test_bad_files(tmp_path: Path) -> None:
    folder = _write(tmp_path / "a", dev=[_seq(3), _seq(3)])
    with pytest.raises(DataFormatError, match="no test.pkl"):
        read_easytpp(folder, "x", STEP, {})
    (folder / "test.pkl").write_bytes(pickle.dumps({"test": [_seq(3)]}))
    with pytest.raises(DataFormatError, match="dim_process"):
        read_easytpp(folder, "x", STEP, {})
    (folder / "test.pkl").write_bytes(pickle.dumps({"dim_process": 3, "test": []}))
    with pytest.raises(DataFormatError, match="no sequences"):
        read_easytpp(folder, "x", STEP, {})
    (folder / "test.pkl").write_bytes(b"")
    with pytest.raises(DataFormatError):
        read_easytpp(folder, "x", STEP, {})
    with pytest.raises(ConfigError, match="valid_fraction"):
        read_easytpp(_write(tmp_path / "b", dev=[_seq(3)] * 3, test=[_seq(3)]), "x", STEP, {"valid_fraction": 1.5})
