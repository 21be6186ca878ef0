"""The launcher class Hydra instantiates; Ray is imported only when a sweep is launched (see ``_core``)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from lamp.errors import LampError


class RayLauncher(Launcher):
    """Runs each job of a Hydra sweep as one Ray task (``hydra/launcher=ray``), on the cluster at ``address``."""

    def __init__(self, address: str | None = None, num_cpus: float = 1.0, max_retries: int = 0,
                 env_vars: Sequence[str] = (), init: dict[str, Any] | None = None) -> None:
        self.address = address
        self.num_cpus = num_cpus
        self.max_retries = max_retries
        self.env_vars = list(env_vars)
        self.init = dict(init or {})
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.task_function = task_function
        self.hydra_context = hydra_context

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """The jobs' results in order. A LampError (no Ray, no cluster at the address, a lost worker) ends
        ``lamp run`` with its one-line message and exit status 2, as a job's own LampError does, instead of
        the traceback Hydra prints for a launcher's exceptions."""
        from hydra_plugins.lamp_ray_launcher import _core

        try:
            return _core.launch(self, job_overrides, initial_job_idx)
        except LampError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from exc
