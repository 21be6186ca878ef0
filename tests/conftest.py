"""Shared fixtures: the real data directory (skips without LAMP_DATA_DIR), ICEWS14, a temporary cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lamp.data.eventlog import EventLog


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real datasets folder from ``$LAMP_DATA_DIR``; tests that need it skip when it is unset."""
    env = os.environ.get("LAMP_DATA_DIR")
    if not env:
        pytest.skip("LAMP_DATA_DIR is not set: point it at the datasets folder (e.g. ../shared/datasets) "
                    "to run the tests on real data")
    path = Path(env).expanduser()
    if not path.is_dir():
        pytest.skip(f"LAMP_DATA_DIR={env} is not a folder")
    return path


@pytest.fixture(scope="session")
def icews14(data_dir: Path) -> EventLog:
    """ICEWS14 read from the source files (no cache), with its CAMEO mapping."""
    from lamp.data.load import load_dataset

    if not (data_dir / "icews14" / "train.txt").is_file():
        pytest.skip(f"{data_dir}/icews14 is missing")
    return load_dataset("icews14", data_root=data_dir, use_cache=False, download=False)


@pytest.fixture()
def tmp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache directory for this test (``LAMP_CACHE_DIR``)."""
    cache = tmp_path / "lamp-cache"
    cache.mkdir()
    monkeypatch.setenv("LAMP_CACHE_DIR", str(cache))
    return cache
