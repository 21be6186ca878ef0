"""Where the per-query stages run: in this process (the default) or fanned out as Ray tasks in chunks.

A component whose class says ``per_query = True`` computes each request's (or query's) output from that
request and the event log alone, so its work can be split into chunks that run anywhere and be put back
together in order, with the same result as one call. That holds for the rules abducer, the matching
retrievers and their ablations, and the base models that declare ``thread_safe`` scoring (recurrency,
frequency, rules). LLM abduction and PMI re-scoring stay in the driver process whatever the executor: one
client keeps the run's budget, cache and rate limits exact, and its requests already run ``max_concurrency``
at a time.

``executor=ray`` (conf/executor/ray.yaml) connects to the Ray cluster at ``address`` (or ``$RAY_ADDRESS``) or,
without one, starts a local Ray for the run. The component and the log travel once per stage (``ray.put``);
each task gets a chunk of ``chunk_size`` requests or queries.
"""

from __future__ import annotations

import logging
import os
import socket
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from lamp.errors import ClusterError, ConfigError, MissingDependencyError

logger = logging.getLogger(__name__)

EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class ExecutorSettings:
    """``kind``: local | ray. Ray only: ``address`` of a running cluster (None: ``$RAY_ADDRESS``, else a local
    Ray started for the run with ``num_cpus`` CPUs, None = all), ``chunk_size`` requests or queries per task."""

    kind: str = "local"
    address: str | None = None
    chunk_size: int = 2000
    num_cpus: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise ConfigError(f"Invalid executor.kind {self.kind!r}. Valid choices are: {', '.join(EXECUTORS)}")
        if int(self.chunk_size) < 1:
            raise ConfigError(f"executor.chunk_size must be >= 1, got {self.chunk_size}")

    @classmethod
    def of(cls, value: ExecutorSettings | str | dict[str, Any] | None) -> ExecutorSettings:
        if value is None:
            return cls()
        if isinstance(value, ExecutorSettings):
            return value
        if isinstance(value, str):
            return cls(kind=value)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ConfigError(f"Unknown executor option(s) {unknown}. Valid options are: {', '.join(sorted(known))}")
        return cls(**value)


# -- Ray: shared by executor=ray and hydra/launcher=ray ---------------------------------------------------------
def import_ray(purpose: str) -> ModuleType:
    """The ``ray`` module, or an install hint naming what needs it."""
    try:
        import ray
    except ImportError as exc:
        raise MissingDependencyError("ray", extra="ray", purpose=purpose) from exc
    return ray


def connect_ray(ray: ModuleType, address: str | None, init: dict[str, Any], setting: str) -> bool:
    """Join the cluster at ``address`` (None: ``$RAY_ADDRESS``, else a new local Ray; "auto": the cluster last
    started on this machine); False when this process had joined one already, which is then used as it is.
    ``setting`` names the option that gave the address, for the error message.

    None never means Ray's own lookup of the last cluster started here (/tmp/ray/ray_current_cluster): that file
    outlives its cluster, and a stopped one would make every later run fail."""
    if ray.is_initialized():
        return False
    if address is None and os.environ.get("RAY_ADDRESS"):
        address, setting = os.environ["RAY_ADDRESS"], "$RAY_ADDRESS"
    check_reachable(address, setting)
    if address:
        use_token_if_present()
    try:
        ray.init(address=address or "local", **init)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"at {setting}={address!r}" if address else "started for this run"
        raise ClusterError(f"Could not join the Ray cluster {where}: {exc}. Fix: {_fix(setting)}") from exc
    return True


def use_token_if_present() -> None:
    """Send this machine's Ray token to a cluster given by address. ``ray start`` turns token authentication on
    by itself when a token exists (``~/.ray/auth_token``, which any earlier local ``ray.init`` writes), but a
    client given an address does not (Ray 2.60): it would be refused (InvalidAuthToken). So, with
    ``RAY_AUTH_MODE`` unset and a token present, this process (and what it starts) uses ``RAY_AUTH_MODE=token``;
    a cluster without authentication accepts such a client. ``RAY_AUTH_MODE=disabled`` opts out."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    if os.environ.get("RAY_AUTH_TOKEN") or path.is_file():
        os.environ["RAY_AUTH_MODE"] = "token"
        logger.info("Ray: token authentication on (a token is at %s or in $RAY_AUTH_TOKEN)", path)


def _fix(setting: str) -> str:
    return (f"start one (`ray start --head --port=PORT`) and give its address as host:PORT, or leave {setting} "
            "unset to start a local one.")


def check_reachable(address: str | None, setting: str = "the address", timeout_s: float = 5.0) -> None:
    """Refuse a ``host:port`` address where nothing listens: ``ray.init`` would wait for it forever."""
    if address is None or ":" not in address:  # "auto", "local": Ray's own lookup
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ClusterError(f"No Ray cluster answers at {setting}={address!r} ({exc}). Fix: {_fix(setting)}") from exc


class Executor:
    """Runs ``fn(shared, chunk)`` for every chunk, results in chunk order. In-process by default."""

    kind = "local"

    def __init__(self, settings: ExecutorSettings | None = None) -> None:
        self.settings = settings or ExecutorSettings()

    def map(self, fn: Callable[[Any, Any], Any], shared: Any, chunks: Sequence[Any]) -> list[Any]:
        return [fn(shared, chunk) for chunk in chunks]

    def close(self) -> None:
        """Release what the executor started (nothing in-process)."""


class RayExecutor(Executor):
    """Chunks as Ray tasks; ``shared`` (the component and the log) is put in the object store once per call."""

    kind = "ray"

    def __init__(self, settings: ExecutorSettings) -> None:
        super().__init__(settings)
        self._started = False
        self._task: Any = None

    def _ray(self) -> Any:
        ray = import_ray("executor=ray")
        address = self.settings.address or os.environ.get("RAY_ADDRESS") or None
        init: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "warning"}
        if address is None and self.settings.num_cpus:
            init["num_cpus"] = int(self.settings.num_cpus)
        if connect_ray(ray, address, init, "executor.address"):
            self._started = True
            logger.info("executor=ray: %s", f"joined the cluster at {address}" if address else "started a local Ray")
        if self._task is None:
            self._task = ray.remote(_call)
        return ray

    def map(self, fn: Callable[[Any, Any], Any], shared: Any, chunks: Sequence[Any]) -> list[Any]:
        if len(chunks) <= 1:  # one chunk: not worth shipping the log
            return super().map(fn, shared, chunks)
        ray = self._ray()
        ref = ray.put(shared)
        return list(ray.get([self._task.remote(fn, ref, chunk) for chunk in chunks]))

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False


def _call(fn: Callable[[Any, Any], Any], shared: Any, chunk: Any) -> Any:
    return fn(shared, chunk)


def make_executor(value: ExecutorSettings | str | dict[str, Any] | None = None) -> Executor:
    """The executor a run's ``executor`` setting names."""
    settings = ExecutorSettings.of(value)
    return RayExecutor(settings) if settings.kind == "ray" else Executor(settings)


def fans_out(component: Any, executor: Executor | None) -> bool:
    """Whether ``component``'s work is split into chunks on ``executor`` (see the module docstring)."""
    return executor is not None and executor.kind != "local" and bool(getattr(component, "per_query", False))


def _spans(n: int, size: int) -> list[tuple[int, int]]:
    return [(lo, min(n, lo + size)) for lo in range(0, n, size)]


# -- the per-query stages ------------------------------------------------------------------------------------
def abduce(executor: Executor | None, abducer: Any, log: Any, requests: Sequence[Any]) -> list[Any]:
    """``abducer.abduce(log, requests)``, in chunks on ``executor`` where the abducer is per-query."""
    if not fans_out(abducer, executor) or not requests:
        return list(abducer.abduce(log, requests))
    assert executor is not None
    prepare = getattr(abducer, "prepare", None)
    if callable(prepare):
        prepare(log)  # e.g. mine the rules once here, not once per task
    chunks = [list(requests[lo:hi]) for lo, hi in _spans(len(requests), executor.settings.chunk_size)]
    return [r for part in executor.map(_abduce_chunk, (abducer, log), chunks) for r in part]


def _abduce_chunk(shared: tuple[Any, Any], chunk: list[Any]) -> list[Any]:
    abducer, log = shared
    return list(abducer.abduce(log, chunk))


def retrieve(executor: Executor | None, retriever: Any, log: Any, requests: Sequence[Any],
             causes: Sequence[Any]) -> list[Any]:
    """``retriever.retrieve_many(log, requests, causes)``, in chunks on ``executor`` where the retriever is
    per-query; the tasks' counters (``retriever.stats``) are added to the driver's."""
    if not fans_out(retriever, executor) or not requests:
        return list(retriever.retrieve_many(log, requests, causes))
    assert executor is not None
    chunks = [(list(requests[lo:hi]), list(causes[lo:hi]))
              for lo, hi in _spans(len(requests), executor.settings.chunk_size)]
    parts = executor.map(_retrieve_chunk, (retriever, log), chunks)
    stats = getattr(retriever, "stats", None)
    out: list[Any] = []
    for evidence, counts in parts:
        out.extend(evidence)
        if stats is not None:
            stats.update(counts)
    return out


def _retrieve_chunk(shared: tuple[Any, Any], chunk: tuple[list[Any], list[Any]]) -> tuple[list[Any], Counter[str]]:
    retriever, log = shared
    stats = getattr(retriever, "stats", None)
    before = Counter(stats) if stats is not None else Counter()
    evidence = list(retriever.retrieve_many(log, *chunk))
    after = Counter(stats) if stats is not None else Counter()
    after.subtract(before)
    return evidence, +after


def score(executor: Executor | None, model: Any, log: Any, queries: Any, top_m: int, *, progress: bool = False) -> Any:
    """``model.score(log, queries, top_m)``, in chunks of queries on ``executor`` where the model is per-query."""
    from lamp.types import CandidateTable

    if not fans_out(model, executor) or len(queries) == 0 or queries.task == "relation_object":
        return model.score(log, queries, top_m, progress=progress)
    assert executor is not None
    prepare = getattr(model, "prepare", None)
    if callable(prepare):
        prepare(log)
    chunks = [(queries.take(np.arange(lo, hi)), top_m) for lo, hi in _spans(len(queries), executor.settings.chunk_size)]
    parts = executor.map(_score_chunk, (model, log), chunks)
    first = parts[0]
    groups = [p.tie_groups for p in parts]
    return CandidateTable(first.method, queries, first.top_m, np.concatenate([p.candidates for p in parts]),
                          np.concatenate([p.scores for p in parts]),
                          np.concatenate([p.gold_rank_filtered for p in parts]),
                          None if any(g is None for g in groups) else np.concatenate(groups))


def _score_chunk(shared: tuple[Any, Any], chunk: tuple[Any, int]) -> Any:
    model, log = shared
    queries, top_m = chunk
    return model.score(log, queries, top_m)
