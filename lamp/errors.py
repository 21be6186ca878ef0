"""Named errors. Every message says what was given, what was expected and how to fix it."""

from __future__ import annotations


class LampError(Exception):
    """Base class of every error lamp raises on purpose; the CLI prints its message without a traceback."""


class DataFormatError(LampError):
    """A data file is malformed: the message names the file, the line and field, and the fix."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        field: str | None = None,
        fix: str | None = None,
    ) -> None:
        where = ""
        if path is not None:
            where = str(path)
            if line is not None:
                where += f", line {line}"
            if field is not None:
                where += f", field {field!r}"
            where += ": "
        text = where + message
        if fix:
            text += f" Fix: {fix}"
        super().__init__(text)
        self.path = path
        self.line = line
        self.field = field
        self.fix = fix


class ConfigError(LampError):
    """A configuration value is invalid or inconsistent."""


class MissingDependencyError(LampError):
    """An optional dependency is not installed; the message gives the pip command."""

    def __init__(self, package: str, extra: str | None = None, purpose: str = "") -> None:
        hint = f"pip install 'lamp[{extra}]'" if extra else f"pip install {package}"
        why = f" (needed for {purpose})" if purpose else ""
        super().__init__(f"The optional package {package!r} is not installed{why}. Install it with: {hint}")
        self.package = package


class DownloadError(LampError):
    """A dataset download failed or its checksum did not match."""


class ClusterError(LampError):
    """A job sent to a cluster (``hydra/launcher=ray``) could not run there: no cluster at the address, a lost worker."""


class LLMError(LampError):
    """An LLM call failed after all retries, or a backend was misconfigured."""


class BudgetExceededError(LLMError):
    """The configured LLM budget (calls, tokens or cost) is spent."""


class LeakageError(LampError):
    """A stage asked for events at or after a query's time."""


class ArtifactError(LampError):
    """A saved artifact or checkpoint is missing, corrupt or from an incompatible version."""


class RequestError(ConfigError):
    """A query or a batch of events given to a fitted pipeline is invalid. ``field`` names the offending
    field (``subject``, ``relation``, ``object``, ``time``, ``top_m``) and ``row`` the event's 0-based position
    in its batch, when there is one; the message says what was given, what was expected and the fix."""

    def __init__(self, message: str, *, field: str | None = None, row: int | None = None,
                 fix: str | None = None) -> None:
        where = (f"event {row}, " if row is not None else "") + (f"field {field!r}: " if field else "")
        super().__init__(where + message + (f" Fix: {fix}" if fix else ""))
        self.field = field
        self.row = row
        self.fix = fix
