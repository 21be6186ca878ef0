"""What ``hydra/launcher=ray`` does: connect to the cluster, send each job to it as a Ray task, wait for all.

Each job runs Hydra's ``run_job`` on a Ray worker with the driver's Hydra state, as the joblib launcher does in
its processes; the job's config is composed on the driver, so workers need lamp but not the ``conf`` folder.
The jobs of a sweep share the artifact store and the LLM cache under ``LAMP_CACHE_DIR`` (artifacts are renamed
into place whole, the LLM cache is SQLite in WAL mode with per-request claims), so on one machine or a shared
file system they may run at once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

from hydra_plugins.lamp_ray_launcher.ray_launcher import RayLauncher
from lamp import parallel
from lamp.errors import ClusterError

logger = logging.getLogger(__name__)


def import_ray() -> ModuleType:
    """The ``ray`` module, or an install hint."""
    return parallel.import_ray("hydra/launcher=ray")


def connect(ray: ModuleType, address: str | None, init: dict[str, Any]) -> bool:
    """Join the cluster at ``address`` (null: ``$RAY_ADDRESS``, else a new local Ray; see ``RayLauncherConf``);
    False when this process had joined one already (``ray.init`` called before), which is then used as it is."""
    return parallel.connect_ray(ray, address, init, "hydra.launcher.address")


def check_reachable(address: str | None, timeout_s: float = 5.0) -> None:
    """Refuse a ``host:port`` address where nothing listens: ``ray.init`` would wait for it forever."""
    parallel.check_reachable(address, "hydra.launcher.address", timeout_s)


def forwarded_env(names: Sequence[str]) -> dict[str, str]:
    """The driver's values of the variables ``names`` that it has set."""
    return {name: os.environ[name] for name in names if name in os.environ}


def _run_job(hydra_context: HydraContext, sweep_config: DictConfig, task_function: TaskFunction,
             singleton_state: dict[Any, Any], cwd: str) -> JobReturn:
    """One job, on a Ray worker. It runs in the driver's working directory when the worker has it (this
    machine, a shared file system), so relative paths in overrides mean what they mean with joblib."""
    setup_globals()
    Singleton.set_state(singleton_state)
    HydraConfig.instance().set_config(sweep_config)
    old = os.getcwd()
    if os.path.isdir(cwd):
        os.chdir(cwd)
    try:
        return run_job(hydra_context=hydra_context, config=sweep_config, task_function=task_function,
                       job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
    finally:
        os.chdir(old)


def launch(launcher: RayLauncher, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
    """Run the jobs ``job_overrides`` (numbered from ``initial_job_idx``) on the cluster; their results in order."""
    setup_globals()
    assert launcher.config is not None and launcher.hydra_context is not None
    assert launcher.task_function is not None
    ray = import_ray()
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    # absolute, so that every worker writes where this driver (and `lamp sweep`) will look
    sweep_dir = Path(str(launcher.config.hydra.sweep.dir)).absolute()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    joined = connect(ray, launcher.address, launcher.init)
    try:
        return _run_all(ray, launcher, job_overrides, initial_job_idx, sweep_dir)
    finally:
        if joined:  # the next sweep in this process may name another cluster
            ray.shutdown()


def _run_all(ray: ModuleType, launcher: RayLauncher, job_overrides: Sequence[Sequence[str]], initial_job_idx: int,
             sweep_dir: Path) -> list[JobReturn]:
    assert launcher.config is not None and launcher.hydra_context is not None
    env = forwarded_env(launcher.env_vars)
    options: dict[str, Any] = {"num_cpus": launcher.num_cpus, "max_retries": launcher.max_retries}
    if env:
        options["runtime_env"] = {"env_vars": env}
    remote = ray.remote(_run_job).options(**options)
    logger.info("Ray launcher: %d jobs on %s (%s CPUs each), sweep output dir: %s", len(job_overrides),
                ray.get_runtime_context().gcs_address, launcher.num_cpus, sweep_dir)
    singleton_state = Singleton.get_state()
    pending = []
    for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
        logger.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
        sweep_config = launcher.hydra_context.config_loader.load_sweep_config(launcher.config, list(overrides))
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{idx}"
            sweep_config.hydra.job.num = idx
            sweep_config.hydra.sweep.dir = str(sweep_dir)
        ref = remote.remote(launcher.hydra_context, sweep_config, launcher.task_function, singleton_state,
                            os.getcwd())
        pending.append((idx, overrides, ref))
    results = []
    for idx, overrides, ref in pending:
        try:
            results.append(ray.get(ref))
        except ray.exceptions.RayError as exc:
            raise ClusterError(
                f"Job #{idx} ({' '.join(filter_overrides(overrides))}) did not run on the Ray cluster: {exc}. "
                "Its worker's log is in the cluster's session folder (`ray logs` or "
                "/tmp/ray/session_latest/logs on the head).") from exc
    return results
