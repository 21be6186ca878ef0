"""The registry, its manifests in data/manifests, and every registered dataset that is present."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from lamp.data.load import load_dataset
from lamp.data.registry import AUXILIARY, DATASETS, get_spec, manifest
from lamp.errors import ConfigError

MANIFESTS = Path(__file__).resolve().parents[2] / "data" / "manifests"
EXPECTED = {  # from the datasets README
    "icews14": {"train": 74845, "valid": 8514, "test": 7371},
    "icews18": {"train": 373018, "valid": 45995, "test": 49545},
    "gdelt": {"train": 79319, "valid": 9957, "test": 9715},
}


@pytest.mark.parametrize("name", sorted({*DATASETS, *AUXILIARY}))
def test_manifest_mirrors_registry(name: str) -> None:
    path = MANIFESTS / f"{name}.json"
    assert path.is_file(), f"missing {path}; regenerate the manifests (see data/README.md)"
    assert json.loads(path.read_text()) == json.loads(json.dumps(manifest(name)))


def test_checksums_match_the_shared_copies(data_dir: Path) -> None:
    checked = 0
    for name in sorted({*DATASETS, *AUXILIARY}):
        entry = manifest(name)
        for src in entry["sources"]:  # type: ignore[attr-defined]
            local = data_dir / str(entry["folder"]) / src["filename"]
            if name.startswith("icews"):
                local = data_dir / name / src["filename"]
            if local.is_file() and src["sha256"]:
                assert hashlib.sha256(local.read_bytes()).hexdigest() == src["sha256"], local
                checked += 1
    assert checked >= 15


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_registered_dataset_loads(name: str, data_dir: Path) -> None:
    spec = get_spec(name)
    if not (data_dir / spec.folder).is_dir():
        pytest.skip(f"{spec.folder} is not in {data_dir}")
    log = load_dataset(name, data_root=data_dir, use_cache=False, download=False)
    if name in EXPECTED:
        assert log.split_sizes() == EXPECTED[name]
    info = log.describe()
    assert info["events"] == len(log) > 0 and all(v > 0 for v in info["splits"].values())
    assert spec.description


def test_unknown_names() -> None:
    with pytest.raises(ConfigError, match="Valid choices are: icews14"):
        get_spec("icews19")
    with pytest.raises(ConfigError, match="neither a known dataset"):
        load_dataset("no/such/folder")
