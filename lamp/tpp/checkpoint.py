"""Safe checkpoints shared by every base model: safetensors for arrays, a JSON sidecar for the rest.

A checkpoint is a folder::

    <path>/tensors.safetensors   arrays (numpy, or torch tensors for neural models)
    <path>/checkpoint.json       {"format", "format_version", "kind", "lamp_version", "config",
                                  "data_fingerprint", "tensors": {name: {dtype, shape}}, "sha256"}

Nothing is ever unpickled. Loading is strict: a wrong kind, a missing or unexpected tensor, a
changed file (sha256), a newer format or a different data fingerprint raises :class:`ArtifactError`
with what was found, what was expected and how to fix it.

>>> save_checkpoint(path, kind="recurrency", tensors={"lmbda": lam}, config={"task": "object"},
...                 fingerprint=log.fingerprint())                    # doctest: +SKIP
>>> ckpt = load_checkpoint(path, kind="recurrency", expected_tensors={"lmbda"},
...                        fingerprint=log.fingerprint())             # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lamp.errors import ArtifactError, MissingDependencyError

FORMAT = "lamp-checkpoint"
FORMAT_VERSION = 1
TENSORS_FILE = "tensors.safetensors"
META_FILE = "checkpoint.json"


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: arrays by name, the model config and the sidecar metadata."""

    kind: str
    tensors: dict[str, Any]  # numpy arrays, or torch tensors with framework="pt"
    config: dict[str, Any]
    data_fingerprint: str | None
    meta: dict[str, Any]


def _lamp_version() -> str:
    try:
        from importlib.metadata import version

        return version("lamp")
    except Exception:  # noqa: BLE001 - an uninstalled source tree has no distribution metadata
        return "unknown"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _is_torch(value: Any) -> bool:
    return type(value).__module__.startswith("torch")


def save_checkpoint(path: str | os.PathLike[str], *, kind: str, tensors: Mapping[str, Any], config: Mapping[str, Any],
                    fingerprint: str | None) -> Path:
    """Write a checkpoint folder atomically (a temp folder renamed into place); returns its path.

    ``tensors`` are numpy arrays or (all) torch tensors; ``config`` must be JSON-serialisable;
    ``fingerprint`` is :meth:`EventLog.fingerprint` of the data the model was fitted on (None: none).
    """
    target = Path(path)
    try:
        config_json = json.loads(json.dumps(dict(config)))
    except (TypeError, ValueError) as exc:
        raise ArtifactError(f"checkpoint config for {kind!r} is not JSON-serialisable ({exc}); "
                            "store arrays as tensors and only plain values in the config.") from exc
    torch_mode = any(_is_torch(v) for v in tensors.values())
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        if torch_mode:
            try:
                from safetensors.torch import save_file as save_pt
            except ImportError as exc:  # pragma: no cover - torch is a core dependency
                raise MissingDependencyError("torch", purpose="saving torch tensors") from exc
            save_pt({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / TENSORS_FILE))
            info = {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)} for k, v in tensors.items()}
        else:
            from safetensors.numpy import save_file as save_np

            arrays = {k: np.ascontiguousarray(np.asarray(v)) for k, v in tensors.items()}
            bad = [k for k, v in arrays.items() if v.dtype == object]
            if bad:
                raise ArtifactError(f"tensors {bad} of {kind!r} have dtype object; only numeric arrays can be saved.")
            save_np(arrays, str(tmp / TENSORS_FILE))
            info = {k: {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in arrays.items()}
        meta = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind, "lamp_version": _lamp_version(),
            "framework": "pt" if torch_mode else "numpy", "config": config_json, "data_fingerprint": fingerprint,
            "tensors": info, "sha256": _sha256(tmp / TENSORS_FILE),
        }
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def read_checkpoint_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON sidecar of a checkpoint folder (validated format), without loading tensors."""
    folder = Path(path)
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise ArtifactError(f"{folder} is not a lamp checkpoint: {META_FILE} is missing. "
                            "Pass the folder written by model.save(path).")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{meta_path} is not valid JSON ({exc}); the checkpoint is corrupt. Save the model again.") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ArtifactError(f"{meta_path}: expected format {FORMAT!r}, got {meta.get('format') if isinstance(meta, dict) else meta!r}.")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ArtifactError(f"{meta_path}: checkpoint format version {version!r} is newer than this lamp supports "
                            f"({FORMAT_VERSION}). Upgrade lamp or save the model again with this version.")
    return meta


def load_checkpoint(path: str | os.PathLike[str], *, kind: str, expected_tensors: set[str] | None,
                    fingerprint: str | None = None, framework: str = "numpy") -> Checkpoint:
    """Load a checkpoint strictly.

    ``expected_tensors``: the exact tensor names the model needs (None: accept what is there).
    ``fingerprint``: when given, must equal the fingerprint recorded at save time.
    ``framework``: "numpy" or "pt" (torch tensors).
    """
    folder = Path(path)
    meta = read_checkpoint_meta(folder)
    if meta.get("kind") != kind:
        raise ArtifactError(f"{folder} holds a {meta.get('kind')!r} checkpoint, expected {kind!r}. "
                            f"Load it with the {meta.get('kind')!r} model or point to a {kind!r} checkpoint.")
    saved_fp = meta.get("data_fingerprint")
    if fingerprint is not None and saved_fp is not None and saved_fp != fingerprint:
        raise ArtifactError(f"{folder} was fitted on data with fingerprint {saved_fp}, but the given data has "
                            f"fingerprint {fingerprint}. Load it with the same dataset (and splits) or refit the model.")
    tensor_path = folder / TENSORS_FILE
    if not tensor_path.is_file():
        raise ArtifactError(f"{tensor_path} is missing; the checkpoint is incomplete. Save the model again.")
    if _sha256(tensor_path) != meta.get("sha256"):
        raise ArtifactError(f"{tensor_path} does not match the sha256 in {META_FILE}; the file was changed or "
                            "truncated. Save the model again.")
    try:
        if framework == "pt":
            from safetensors.torch import load_file as load_pt

            tensors: dict[str, Any] = dict(load_pt(str(tensor_path)))
        else:
            from safetensors.numpy import load_file as load_np

            tensors = dict(load_np(str(tensor_path)))
    except Exception as exc:  # noqa: BLE001 - safetensors raises several error types for bad files
        raise ArtifactError(f"{tensor_path} could not be read as safetensors ({exc}). Save the model again.") from exc
    if set(tensors) != set(meta.get("tensors", {})):
        raise ArtifactError(f"{tensor_path} holds tensors {sorted(tensors)} but {META_FILE} lists "
                            f"{sorted(meta.get('tensors', {}))}; the checkpoint is inconsistent. Save the model again.")
    if expected_tensors is not None:
        missing, unexpected = sorted(expected_tensors - set(tensors)), sorted(set(tensors) - expected_tensors)
        if missing or unexpected:
            raise ArtifactError(f"{folder}: {kind!r} checkpoint has missing tensors {missing} and unexpected tensors "
                                f"{unexpected}. It was written by a different model version; refit and save again.")
    return Checkpoint(kind, tensors, dict(meta.get("config") or {}), saved_fp, meta)
