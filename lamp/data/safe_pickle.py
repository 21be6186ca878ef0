"""A restricted unpickler for data files: builtin containers, numbers and strings only.

Plain ``pickle.load`` runs any callable a file names (``os.system`` included). This unpickler
refuses every global lookup, so a pickle can only build what the pickle machine makes without one:
dict, list, tuple, set, frozenset, str, bytes, int, float, bool and None.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from lamp.errors import DataFormatError


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose ``find_class`` refuses everything."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(
            f"the pickle asks for {module}.{name}; only builtin containers, numbers and strings are allowed"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("the pickle uses persistent ids, which are not allowed")


def safe_loads(data: bytes, *, source: str = "<bytes>") -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`; anything else raises DataFormatError."""
    try:
        return RestrictedUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError as exc:
        raise DataFormatError(
            f"refused or invalid pickle: {exc}.", path=source,
            fix="convert the file to plain lists/dicts of numbers and strings (e.g. with numpy's .tolist()), "
                "or to JSON.",
        ) from exc
    except Exception as exc:  # noqa: BLE001 - a malformed pickle raises many types; all mean "corrupt"
        raise DataFormatError(f"the pickle is truncated or corrupt ({type(exc).__name__}: {exc}).", path=source,
                              fix="download the file again and check its sha256.") from exc


def safe_load(path: str | Path) -> Any:
    """Read and unpickle a file safely (see :func:`safe_loads`)."""
    from lamp.data.textio import read_bytes

    return safe_loads(read_bytes(Path(path)), source=str(path))
