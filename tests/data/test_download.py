"""Downloads against a real local HTTP server (127.0.0.1, random port) serving the datasets folder."""

from __future__ import annotations

import dataclasses
import functools
import socket
import threading
import zipfile
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lamp.data.download import BASE_URL_ENV, _extract, download, download_dataset
from lamp.data.load import load_dataset
from lamp.data.registry import DATASETS, get_spec
from lamp.errors import ConfigError, DownloadError

pytestmark = pytest.mark.network


class _Handler(SimpleHTTPRequestHandler):
    """Serves files; drops the connection mid-body for paths in ``server.drops`` (counted down)."""

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        server = self.server
        server.requests.append(self.path)  # type: ignore[attr-defined]
        left = server.drops.get(self.path, 0)  # type: ignore[attr-defined]
        if left:
            server.drops[self.path] = left - 1  # type: ignore[attr-defined]
            body = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server(data_dir: Path) -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(data_dir)))
    httpd.drops, httpd.requests = {}, []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture()
def mirror(server: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch) -> ThreadingHTTPServer:
    server.drops.clear()  # type: ignore[attr-defined]
    server.requests.clear()  # type: ignore[attr-defined]
    monkeypatch.setenv(BASE_URL_ENV, f"http://127.0.0.1:{server.server_address[1]}")
    return server


def _nothing_half_written(root: Path) -> None:
    assert not any(p.name.startswith(".tmp-") for p in root.rglob("*"))


def test_icews14_download_then_load(mirror, data_dir: Path, tmp_path: Path, tmp_cache: Path) -> None:
    folder = download_dataset(get_spec("icews14"), tmp_path, backoff=0.01)
    assert folder == tmp_path / "icews14"
    for name in ("train.txt", "valid.txt", "test.txt", "entity2id.txt", "relation2id.txt"):
        assert (folder / name).read_bytes() == (data_dir / "icews14" / name).read_bytes()
    log = load_dataset("icews14", data_root=tmp_path, download=False)
    assert log.split_sizes() == {"train": 74845, "valid": 8514, "test": 7371}
    _nothing_half_written(tmp_path)


def test_load_dataset_downloads_a_missing_dataset(mirror, tmp_path: Path, tmp_cache: Path) -> None:
    log = load_dataset("gdelt", data_root=tmp_path)  # six plain files, each checked
    assert len(log) == 98991
    assert ["/gdelt/" in p for p in mirror.requests] == [True] * 6


def test_auxiliary_and_small_datasets(mirror, tmp_path: Path) -> None:
    for name in ("cameo", "gdelt-renet", "amazon-easytpp", "amazon-fashion"):
        folder = download(name, tmp_path, backoff=0.01)
        assert folder.is_dir() and any(folder.iterdir())
    assert (tmp_path / "amazon" / "fashion-2018" / "AMAZON_FASHION_5.json").is_file()


def test_checksum_mismatch(mirror, tmp_path: Path) -> None:
    spec = get_spec("icews14")
    bad = dataclasses.replace(spec, sources=(dataclasses.replace(spec.sources[0], sha256="0" * 64),))
    with pytest.raises(DownloadError) as err:
        download_dataset(bad, tmp_path, backoff=0.01)
    text = str(err.value)
    assert "ICEWS14.zip" in text and "0" * 64 in text and str(spec.sources[0].sha256) in text and "Fix:" in text
    assert not (tmp_path / "icews14").exists()
    _nothing_half_written(tmp_path)


def test_dropped_connection_is_retried(mirror, tmp_path: Path) -> None:
    mirror.drops["/icews14/ICEWS14.zip"] = 1
    download_dataset(get_spec("icews14"), tmp_path, retries=2, backoff=0.01)
    assert mirror.requests == ["/icews14/ICEWS14.zip"] * 2
    assert (tmp_path / "icews14" / "train.txt").is_file()


def test_connection_that_keeps_dropping_fails_cleanly(mirror, tmp_path: Path) -> None:
    mirror.drops["/icews14/ICEWS14.zip"] = 10
    with pytest.raises(DownloadError, match="after 3 attempts"):
        download_dataset(get_spec("icews14"), tmp_path, retries=2, backoff=0.01)
    assert len(mirror.requests) == 3
    assert not (tmp_path / "icews14").exists()
    _nothing_half_written(tmp_path)


def test_404_is_not_retried(mirror, tmp_path: Path) -> None:
    spec = get_spec("icews14")
    gone = dataclasses.replace(spec, sources=(dataclasses.replace(spec.sources[0], filename="gone.zip"),))
    with pytest.raises(DownloadError, match="HTTP 404") as err:
        download_dataset(gone, tmp_path, retries=3, backoff=0.01)
    assert "/icews14/gone.zip" in str(err.value) and len(mirror.requests) == 1
    assert not (tmp_path / "icews14").exists()


def test_unreachable_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    monkeypatch.setenv(BASE_URL_ENV, f"http://127.0.0.1:{port}")
    with pytest.raises(DownloadError, match="after 2 attempts"):
        download("cameo", tmp_path, retries=1, backoff=0.01)
    _nothing_half_written(tmp_path)


def test_existing_folder_is_kept_and_unknown_names(tmp_path: Path) -> None:
    (tmp_path / "icews14").mkdir()
    assert download("icews14", tmp_path) == tmp_path / "icews14"
    with pytest.raises(ConfigError, match="no public download source"):
        download("amazon-instruments", tmp_path)
    with pytest.raises(ConfigError, match="Valid choices"):
        download("icews99", tmp_path)
    assert DATASETS["icews18"].sources[0].extract


def test_archive_paths_are_confined(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../escape.txt", "x")
    with pytest.raises(DownloadError, match="unsafe path"):
        _extract(archive, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ICEWS/train.txt", "1\t2\t3\t4\n")
    _extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "train.txt").is_file()  # one common top folder is dropped
