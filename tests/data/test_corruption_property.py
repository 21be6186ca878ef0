"""Property: corrupt copies of real files at random; only a LampError may escape load_dataset, and
the cache never holds a half-written or unreadable entry."""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lamp.data.eventlog import SPLITS, EventLog
from lamp.data.load import _read_cache, load_dataset
from lamp.errors import LampError

pytestmark = pytest.mark.slow

TOKENS = ["0", "1", "7", "-1", "x", "nan", "inf", "-inf", "1e400", "99999999999", "", " ", "T_5", "T_x",
          "\udcff", "0.5", "{", '"a"', "null", "Consult", "2014-01-01"]


def _head(src: Path, dst: Path, n: int) -> None:
    lines = src.read_bytes().splitlines(keepends=True)[:n]
    dst.write_bytes(b"".join(lines))


@pytest.fixture(scope="module")
def bases(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    """Small real copies: ICEWS14 (300 lines a split), the GDELT slice (named), Amazon 2014 reviews."""
    root = tmp_path_factory.mktemp("bases")
    icews = root / "icews14"
    icews.mkdir()
    for name in ("entity2id.txt", "relation2id.txt", "stat.txt"):
        shutil.copy(data_dir / "icews14" / name, icews / name)
    for split in SPLITS:
        _head(data_dir / "icews14" / f"{split}.txt", icews / f"{split}.txt", 300)
    gdelt = root / "gdelt"
    gdelt.mkdir()
    for name in ("entity2id.json", "relation2id.json"):
        shutil.copy(data_dir / "gdelt" / name, gdelt / name)
    for split in SPLITS:
        _head(data_dir / "gdelt" / f"{split}.txt", gdelt / f"{split}.txt", 200)
    amazon = root / "amazon"
    amazon.mkdir()
    raw = gzip.decompress((data_dir / "amazon/musical-instruments-2014/reviews_Musical_Instruments_5.json.gz").read_bytes())
    (amazon / "reviews.json").write_bytes(b"\n".join(raw.splitlines()[:300]) + b"\n")
    return {"renet": (icews, "renet"), "named": (gdelt, "named"), "amazon": (amazon, "amazon")}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAMP_CACHE_DIR", str(path))
        yield path


@st.composite
def corruption(draw: st.DrawFn, size: int) -> tuple[str, object]:
    kind = draw(st.sampled_from(["truncate", "delete", "insert", "line", "gzip", "empty", "remove"]))
    pos = draw(st.integers(0, max(size - 1, 0)))
    if kind == "delete":
        return kind, (pos, draw(st.integers(1, 200)))
    if kind == "insert":
        return kind, (pos, draw(st.binary(min_size=1, max_size=12)))
    if kind == "line":
        cols = draw(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=6))
        return kind, (pos, "\t".join(cols).encode("utf-8", "surrogateescape"))
    if kind == "gzip":
        return kind, draw(st.booleans())
    return kind, pos


def _apply(path: Path, kind: str, arg: Any) -> None:
    data = path.read_bytes()
    if kind == "truncate":
        path.write_bytes(data[: int(arg)])
    elif kind == "delete":
        pos, n = arg
        path.write_bytes(data[:pos] + data[pos + n :])
    elif kind == "insert":
        pos, blob = arg
        path.write_bytes(data[:pos] + blob + data[pos:])
    elif kind == "line":
        pos, line = arg
        lines = data.splitlines(keepends=True)
        i = data[:pos].count(b"\n")
        if lines:
            lines[min(i, len(lines) - 1)] = line + b"\n"
        path.write_bytes(b"".join(lines))
    elif kind == "gzip":
        z = gzip.compress(data)
        path.write_bytes(z[: len(z) // 2] if arg else z)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "remove":
        path.unlink()


def _check_invariants(event_log: EventLog) -> None:
    t = event_log.times
    assert np.all(np.isfinite(t)) and np.all(t >= 0) and np.all(np.diff(t) >= 0)
    assert event_log.subjects.min() >= 0 and event_log.subjects.max() < event_log.num_entities
    assert event_log.rels.min() >= 0 and event_log.rels.max() < event_log.num_relations
    assert event_log.objects.max() < event_log.num_entities
    assert all(n > 0 for n in event_log.split_sizes().values())


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_random_corruption_raises_only_lamp_errors(bases, cache: Path, tmp_path: Path, data: st.DataObject) -> None:
    fmt = data.draw(st.sampled_from(sorted(bases)), label="format")
    base, reader = bases[fmt]
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    folder = work / base.name
    shutil.copytree(base, folder)
    files = sorted(p.name for p in folder.iterdir())
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        files = sorted(p.name for p in folder.iterdir())
        if not files:
            break
        target = folder / data.draw(st.sampled_from(files), label="file")
        kind, arg = data.draw(corruption(target.stat().st_size), label="corruption")
        _apply(target, kind, arg)
    try:
        event_log = load_dataset(folder, format=reader, data_root=work)
    except LampError:
        pass
    else:
        _check_invariants(event_log)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_cache_holds_only_complete_entries(bases, cache: Path) -> None:
    """Runs after the property test (same module cache): every entry loads, none is half-written."""
    root = cache / "eventlogs"
    if not root.is_dir():
        pytest.skip("no cache entries were written")
    entries = list(root.iterdir())
    assert not [e for e in entries if e.name.startswith(".tmp-")]
    for entry in entries:
        cached = _read_cache(entry)
        assert cached is not None, entry
        _check_invariants(cached)
    assert os.listdir(root)
