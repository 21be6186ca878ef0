"""Artifact store: stage outputs under a directory keyed by a hash of the stage's config and inputs.

A stage is done when its directory exists: it is written into a temporary sibling and renamed into
place in one step, so a killed run never leaves a half-written artifact and a rerun skips finished
stages. Two processes that compute the same stage race harmlessly: the first rename wins.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lamp.errors import ArtifactError


def stable_hash(*parts: Any) -> str:
    """A short hash of JSON-serialisable parts (dict keys sorted)."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class ArtifactStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def exists(self, stage: str, key: str) -> bool:
        return (self.path(stage, key) / "_done.json").is_file()

    @contextmanager
    def writing(self, stage: str, key: str, info: dict[str, Any] | None = None) -> Iterator[Path]:
        """Yield a temporary directory; on success it becomes the artifact atomically."""
        target = self.path(stage, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".tmp-{key}-"))
        try:
            yield tmp
            (tmp / "_done.json").write_text(json.dumps(info or {}, default=str), encoding="utf-8")
            try:
                os.replace(tmp, target)
            except OSError:
                if not self.exists(stage, key):
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def info(self, stage: str, key: str) -> dict[str, Any]:
        try:
            return dict(json.loads((self.path(stage, key) / "_done.json").read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"artifact {stage}/{key} is missing or corrupt ({exc}); delete "
                                f"{self.path(stage, key)} and rerun.") from exc


def save_arrays(path: Path, **arrays: np.ndarray) -> None:
    """Save arrays without pickle (object arrays are refused)."""
    np.savez(path, **{k: np.asarray(v) for k, v in arrays.items()})  # type: ignore[arg-type]


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Write a parquet file atomically (temp file + rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def write_json(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)
