"""Start the HTTP server on a saved pipeline bundle (what ``lamp serve BUNDLE`` runs), here or in a child process."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from lamp.errors import MissingDependencyError

logger = logging.getLogger(__name__)


def run_server(bundle: str | os.PathLike[str], *, host: str = "127.0.0.1", port: int = 8000, threads: int = 1,
               log_level: str = "info", llm: Any = None) -> None:
    """Load ``bundle``, build its history's indices, then serve it until interrupted.

    ``threads``: torch threads for the ranker. One query's batch is tiny: on a 2-core machine shared with
    other work, 2 spinning threads made the ranker 60 times slower than 1 (82 ms against 1.4 ms per call).
    """
    try:
        import uvicorn
    except ImportError as exc:
        raise MissingDependencyError("uvicorn", extra="serve", purpose="lamp serve") from exc
    import torch

    from lamp.pipeline.predictor import Pipeline
    from lamp.serve.app import create_app

    torch.set_num_threads(max(1, int(threads)))
    start = time.perf_counter()
    pipe = Pipeline.load(bundle, llm=llm)
    pipe.warm_up()
    history = pipe.history
    logger.info("loaded %s in %.1f s: %s events of history, newest %s; serving on http://%s:%d (docs: /docs)",
                bundle, time.perf_counter() - start, 0 if history is None else len(history.log),
                "-" if history is None or history.newest is None else pipe.time_spec.format(history.newest), host, port)
    uvicorn.run(create_app(pipe), host=host, port=port, log_level=log_level)


@contextmanager
def serving(bundle: str | os.PathLike[str], *, port: int | None = None, threads: int = 1, log_level: str = "warning",
            log_path: str | os.PathLike[str] | None = None, timeout: float = 300.0) -> Iterator[str]:
    """``lamp serve bundle`` in a child process on 127.0.0.1 (a free port unless given): yields its base URL once
    ``/health`` answers, and stops it on exit. For tests, benchmarks and scripts.

    >>> with serving("icews14.lamp") as url:                         # doctest: +SKIP
    ...     Client(url).predict("Barack Obama", "Make statement", "2015-01-01")
    """
    from lamp.errors import LampError
    from lamp.serve.client import Client

    port = port or free_port()
    cmd = [sys.executable, "-m", "lamp.cli.main", "serve", str(bundle), "--host", "127.0.0.1", "--port", str(port),
           "--threads", str(threads), "--log-level", log_level]
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            Client(url, timeout=5).health()
            return True
        except (OSError, LampError):
            return False

    with child_server(cmd, ready, what=f"lamp serve {bundle}", timeout=timeout, log_path=log_path):
        yield url


@contextmanager
def child_server(cmd: Sequence[str], ready: Callable[[], bool], *, what: str, timeout: float = 300.0,
                 log_path: str | os.PathLike[str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Start the server ``cmd`` in a child process (its output to ``log_path``), wait until ``ready()`` says it
    answers, yield it, and stop it on exit. A child that exits first, or is not ready within ``timeout``
    seconds, raises a :class:`~lamp.errors.LampError` naming ``what`` and the log."""
    from lamp.errors import LampError

    see = f"; its log: {log_path}" if log_path else ""
    with open(log_path or os.devnull, "ab") as log:
        proc = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if proc.poll() is not None:
                raise LampError(f"{what} exited with code {proc.returncode} before answering{see}.")
            if time.monotonic() > deadline:
                raise LampError(f"{what} did not answer within {timeout:.0f} s{see}.")
            time.sleep(0.25)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
