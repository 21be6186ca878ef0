"""Logging for the ``lamp`` command: the CLI configures handlers, the library never does.

``lamp run`` gets its logging from ``conf/hydra/job_logging/lamp.yaml`` (these classes); the other
commands call :func:`configure_console`. ``-v``/``--verbose`` shows lamp's DEBUG lines.
"""

from __future__ import annotations

import logging
import sys

from tqdm.auto import tqdm

VERBOSE_FLAGS = ("-v", "--verbose")


class ConsoleFormatter(logging.Formatter):
    """INFO lines as their bare message; other levels prefixed: ``warning: ...``, ``debug lamp.x: ...``."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            message = f"{message}\n{record.exc_text}"
        if record.levelno == logging.INFO:
            return message
        if record.levelno <= logging.DEBUG:
            return f"debug {record.name}: {message}"
        return f"{record.levelname.lower()}: {message}"


class ProgressAwareHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes around the open progress bars instead of through them."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except Exception:  # logging must never raise into the caller
            self.handleError(record)


def split_verbose(argv: list[str]) -> tuple[list[str], bool]:
    """``argv`` without ``-v``/``--verbose``, and whether one was there."""
    rest = [a for a in argv if a not in VERBOSE_FLAGS]
    return rest, len(rest) != len(argv)


def configure_console(verbose: bool = False) -> None:
    """Console logging for the commands other than ``lamp run``: lamp's INFO (DEBUG with ``verbose``)
    and everyone's warnings, on stderr."""
    handler = ProgressAwareHandler(sys.stderr)
    handler.setFormatter(ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("lamp").setLevel(logging.DEBUG if verbose else logging.INFO)
