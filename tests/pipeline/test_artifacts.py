from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lamp.errors import ArtifactError
from lamp.pipeline.artifacts import ArtifactStore, load_arrays, save_arrays, stable_hash


def test_stable_hash_ignores_key_order() -> None:
    assert stable_hash({"a": 1, "b": [1, 2]}) == stable_hash({"b": [1, 2], "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})


def test_artifact_is_atomic_on_failure(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    with pytest.raises(RuntimeError), store.writing("base", "k1") as tmp:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("killed")
    assert not store.exists("base", "k1")
    assert not list((tmp_path / "base").iterdir())  # no temporary directory left behind


def test_artifact_written_once(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    with store.writing("rank", "k", {"w": 0.5}) as tmp:
        save_arrays(tmp / "a.npz", order=np.arange(3))
    assert store.exists("rank", "k")
    assert store.info("rank", "k") == {"w": 0.5}
    assert load_arrays(store.path("rank", "k") / "a.npz")["order"].tolist() == [0, 1, 2]


def test_load_arrays_refuses_pickled_objects(tmp_path: Path) -> None:
    np.savez(tmp_path / "evil.npz", obj=np.array([{"x": 1}], dtype=object))
    with pytest.raises(ValueError):
        load_arrays(tmp_path / "evil.npz")


def test_an_artifact_of_another_layout_is_refused_with_the_fix(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    old = store.path("rank", "k")
    old.mkdir(parents=True)
    (old / "_done.json").write_text('{"w": 0.5}')  # written before layouts were recorded
    with pytest.raises(ArtifactError, match=r"another lamp version.*Fix: delete"):
        store.exists("rank", "k")
