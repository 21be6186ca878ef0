"""Artifact store: stage outputs under a directory keyed by a hash of the stage's config and inputs.

A stage is done when its directory exists: it is written into a temporary sibling and renamed into
place in one step, so a killed run never leaves a half-written artifact and a rerun skips finished
stages. Two processes that compute the same stage race harmlessly: the first rename wins.
"""

from __future__ import annotations

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

from lamp.components import stable_hash
from lamp.errors import ArtifactError

__all__ = ["LAYOUT", "ArtifactStore", "load_arrays", "save_arrays", "stable_hash", "write_json", "write_parquet"]


# The layout of an artifact folder; one written under another layout is refused, never half-read.
LAYOUT = 2


class ArtifactStore:
    """Finished stage outputs under ``root/<stage>/<key>/`` (see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def exists(self, stage: str, key: str) -> bool:
        """Whether the artifact is finished; one of an older layout is an :class:`ArtifactError`."""
        done = self.path(stage, key) / "_done.json"
        if not done.is_file():
            return False
        layout = self._read_info(stage, key).get("_layout")
        if layout != LAYOUT:
            raise ArtifactError(f"artifact {stage}/{key} was written by another lamp version (layout {layout!r}, this "
                                f"lamp reads layout {LAYOUT}). Fix: delete {self.path(stage, key)} (or the whole "
                                f"{self.root}) and rerun.")
        return True

    @contextmanager
    def writing(self, stage: str, key: str, info: dict[str, Any] | None = None) -> Iterator[Path]:
        """Yield a temporary directory; on success it becomes the artifact atomically."""
        target = self.path(stage, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".tmp-{key}-"))
        try:
            yield tmp
            (tmp / "_done.json").write_text(json.dumps({**(info or {}), "_layout": LAYOUT}, default=str),
                                            encoding="utf-8")
            try:
                os.replace(tmp, target)
            except OSError:
                if not self.exists(stage, key):
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def info(self, stage: str, key: str) -> dict[str, Any]:
        """What the stage recorded when it finished (the info dict given to :meth:`writing`)."""
        return {k: v for k, v in self._read_info(stage, key).items() if k != "_layout"}

    def _read_info(self, stage: str, key: str) -> dict[str, Any]:
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
