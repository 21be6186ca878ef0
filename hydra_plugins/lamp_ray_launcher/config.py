"""The options of ``hydra/launcher=ray`` (override any: ``hydra.launcher.address=127.0.0.1:6379``)."""

# No `from __future__ import annotations`: Hydra's plugin scan runs this module before it is in sys.modules,
# where dataclasses would look string annotations up.
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

# What lamp (and the libraries it runs) read from the environment. A worker started by `ray start` has the
# environment of that command, not of `lamp run`, so the driver sends these along (those it has set).
# API keys are not among them: they would be stored in Ray's job table; give the workers their own.
FORWARDED_ENV = [
    "LAMP_DATA_DIR",
    "LAMP_CACHE_DIR",
    "LAMP_CONF_DIR",
    "LAMP_DOWNLOAD_BASE_URL",
    "HF_HOME",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "TOKENIZERS_PARALLELISM",
]


@dataclass
class RayLauncherConf:
    _target_: str = "hydra_plugins.lamp_ray_launcher.ray_launcher.RayLauncher"
    # the cluster: null = $RAY_ADDRESS, else a new local one for this sweep; "host:port" = the head's GCS address
    # (`ray start --head --port=PORT`); "auto" = the cluster last started on this machine
    address: str | None = None
    # CPUs each job reserves: at most (cluster CPUs / num_cpus) jobs run at once
    num_cpus: float = 1.0
    # Ray reruns a job whose worker died (not one that raised) up to this many times
    max_retries: int = 0
    # names of environment variables whose driver values the jobs get (unset ones are skipped)
    env_vars: list[str] = field(default_factory=lambda: list(FORWARDED_ENV))
    # more keyword arguments of ray.init (e.g. {num_cpus: 2} for a new local cluster, {runtime_env: {...}})
    init: dict[str, Any] = field(default_factory=dict)


ConfigStore.instance().store(group="hydra/launcher", name="ray", node=RayLauncherConf, provider="lamp_ray_launcher")
