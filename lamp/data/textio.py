"""Careful text reading: UTF-8 (optionally gzipped) with errors that name the file and line."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

from lamp.errors import DataFormatError


def read_bytes(path: Path) -> bytes:
    """Read a file, transparently un-gzipping ``.gz`` files; truncated archives raise DataFormatError."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError("the file does not exist.", path=str(path),
                              fix="check the data directory (LAMP_DATA_DIR) or download the dataset with `lamp data download`.")
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz" or raw[:2] == b"\x1f\x8b":
            return gzip.decompress(raw)
        return raw
    except (EOFError, OSError, zlib.error) as exc:
        raise DataFormatError(f"the gzip stream is truncated or corrupt ({exc}).", path=str(path),
                              fix="download the file again and check its sha256.") from exc


def decode_utf8(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataFormatError(f"invalid UTF-8 byte {raw[exc.start:exc.start + 1]!r} at offset {exc.start}.",
                              path=str(path), line=line, fix="re-encode the file as UTF-8.") from exc


def read_text_lines(path: Path, limit: int | None = None) -> list[tuple[int, str]]:
    """Non-blank lines as (1-based line number, text without the newline)."""
    text = decode_utf8(read_bytes(Path(path)), Path(path))
    out = []
    for i, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            out.append((i, line.rstrip("\r\n")))
            if limit is not None and len(out) >= limit:
                break
    return out
