"""Checksummed, atomic dataset downloads.

Each source file is streamed to a temporary folder next to the target (retrying dropped
connections), its sha256 checked, archives extracted there, and only then is the folder renamed into
place (``os.replace``): a failed or interrupted download leaves no half-written dataset behind.

Mirrors: with ``LAMP_DOWNLOAD_BASE_URL`` set, every file is fetched from
``<base>/<dataset folder>/<file name>`` (the layout of a data directory) instead of its public URL.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from lamp.data.registry import AUXILIARY, DATASETS, DatasetSpec, Source, data_dir
from lamp.errors import ConfigError, DownloadError

log = logging.getLogger(__name__)

BASE_URL_ENV = "LAMP_DOWNLOAD_BASE_URL"
_CHUNK = 1 << 20
_RETRYABLE = (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException, OSError)


class _Dropped(Exception):
    """The connection closed before the announced body was complete."""


def source_url(source: Source, folder: str) -> str:
    """The URL to fetch: the public one, or ``$LAMP_DOWNLOAD_BASE_URL/<folder>/<filename>``."""
    base = os.environ.get(BASE_URL_ENV)
    if base:
        return f"{base.rstrip('/')}/{folder.strip('/')}/{source.filename}"
    return source.url


def fetch(url: str, dest: Path, sha256: str | None, *, timeout: float = 60.0, retries: int = 3,
          backoff: float = 1.0) -> str:
    """Stream ``url`` to ``dest`` and return its sha256; a mismatch with ``sha256`` raises DownloadError.

    Dropped connections, timeouts and 5xx answers are retried ``retries`` times (waiting
    ``backoff * 2**attempt`` seconds); 4xx answers fail at once.
    """
    last: BaseException | None = None
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
            log.info("retrying %s (attempt %d of %d) after: %s", url, attempt + 1, retries + 1, last)
        try:
            digest = _stream(url, dest, timeout)
            break
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                raise DownloadError(
                    f"{url} answered HTTP {exc.code} ({exc.reason}). Fix: check the URL"
                    f"{' and the mirror in ' + BASE_URL_ENV if os.environ.get(BASE_URL_ENV) else ''}, or put the "
                    "files into the data directory by hand."
                ) from exc
            last = exc
        except ValueError as exc:  # urllib's answer to a malformed URL
            raise DownloadError(f"{url!r} is not a valid URL ({exc}). Fix: check {BASE_URL_ENV} or the registry.") from exc
        except (_Dropped, *_RETRYABLE) as exc:
            last = exc
    else:
        raise DownloadError(
            f"downloading {url} failed after {retries + 1} attempts; last error: {last}. Fix: check the network "
            f"connection, set {BASE_URL_ENV} to a mirror, or put the files into the data directory by hand."
        ) from last
    if sha256 is not None and digest != sha256.lower():
        raise DownloadError(
            f"{url}: sha256 mismatch: expected {sha256}, got {digest}. The file is corrupt or changed upstream. "
            f"Fix: retry; if it persists, fetch the file from the source named in data/README.md and compare."
        )
    return digest


def _stream(url: str, dest: Path, timeout: float) -> str:
    h = hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": "lamp-downloader"})
    with urllib.request.urlopen(request, timeout=timeout) as resp, open(dest, "wb") as out:  # noqa: S310
        expected = resp.headers.get("Content-Length")
        got = 0
        while chunk := resp.read(_CHUNK):
            h.update(chunk)
            out.write(chunk)
            got += len(chunk)
    # http.client returns a short body silently when the peer closes early; treat it as dropped.
    if expected is not None and got != int(expected):
        raise _Dropped(f"connection closed after {got} of {expected} bytes")
    return h.hexdigest()


def _extract(archive: Path, into: Path) -> None:
    """Extract a zip into ``into``, dropping one common top folder; refuses paths leaving it."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
            parts = [PurePosixPath(m.filename).parts for m in members]
            for m, p in zip(members, parts, strict=True):
                if PurePosixPath(m.filename).is_absolute() or ".." in p or not p:
                    raise DownloadError(f"{archive.name}: unsafe path {m.filename!r} in the archive; refusing it.")
            tops = {p[0] for p in parts}
            strip = 1 if len(tops) == 1 and all(len(p) > 1 for p in parts) else 0
            for m, p in zip(members, parts, strict=True):
                target = into.joinpath(*p[strip:])
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(m) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise DownloadError(f"{archive.name} is not a valid zip archive ({exc}). Fix: download it again.") from exc


def download_folder(folder: str, sources: Sequence[Source], root: str | os.PathLike[str] | None = None, *,
                    force: bool = False, timeout: float = 60.0, retries: int = 3, backoff: float = 1.0,
                    required: Sequence[str] = ()) -> Path:
    """Download ``sources`` into ``<root>/<folder>`` atomically and return that folder."""
    target = data_dir(root) / folder
    if target.exists() and not force:
        log.info("%s already exists; not downloading", target)
        return target
    if not sources:
        raise ConfigError(f"{folder!r} has no public download source; see data/README.md for where to get it.")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".tmp-{Path(folder).name}-"))
    try:
        content = tmp / "content"
        content.mkdir()
        for src in sources:
            url = source_url(src, folder)
            log.info("downloading %s", url)
            dest = tmp / src.filename
            fetch(url, dest, src.sha256, timeout=timeout, retries=retries, backoff=backoff)
            if src.extract:
                _extract(dest, content)
            else:
                os.replace(dest, content / src.filename)
        missing = [f for f in required if not (content / f).is_file()]
        if missing:
            raise DownloadError(f"the download of {folder!r} lacks {missing}. Fix: check the sources in the registry.")
        if force and target.exists():
            shutil.rmtree(target)
        try:
            os.replace(content, target)
        except OSError:
            if not target.exists():
                raise
            log.info("%s appeared during the download (another process); keeping it", target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def download_dataset(spec: DatasetSpec, root: str | os.PathLike[str] | None = None, *, force: bool = False,
                     timeout: float = 60.0, retries: int = 3, backoff: float = 1.0) -> Path:
    """Download a registry dataset into ``<root>/<spec.folder>`` (``root`` defaults to the data directory).

    >>> download_dataset(get_spec("icews14"), "/data")   # doctest: +SKIP
    PosixPath('/data/icews14')                           # holds train.txt, valid.txt, test.txt, ...
    """
    required = ("train.txt", "valid.txt", "test.txt") if spec.format in ("renet", "named") else ()
    return download_folder(spec.folder, spec.sources, root, required=required, force=force, timeout=timeout,
                           retries=retries, backoff=backoff)


def download(name: str, root: str | os.PathLike[str] | None = None, *, force: bool = False, timeout: float = 60.0,
             retries: int = 3, backoff: float = 1.0) -> Path:
    """Download a dataset or an auxiliary folder (``cameo``, ``gdelt-renet``) by name."""
    spec = DATASETS.get(name)
    if spec is not None and spec.sources:
        return download_dataset(spec, root, force=force, timeout=timeout, retries=retries, backoff=backoff)
    if name in AUXILIARY:
        return download_folder(name, AUXILIARY[name], root, force=force, timeout=timeout, retries=retries,
                               backoff=backoff)
    if spec is not None:
        raise ConfigError(f"Dataset {name!r} has no public download source ({spec.description}); "
                          "see data/README.md for where to get it.")
    raise ConfigError(f"Unknown dataset name: {name!r}. Valid choices are: "
                      f"{', '.join(sorted(n for n, s in DATASETS.items() if s.sources) + sorted(AUXILIARY))}")
