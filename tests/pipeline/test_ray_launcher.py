"""``hydra/launcher=ray`` (hydra_plugins/lamp_ray_launcher): a 2-job sweep on a real local Ray cluster gives the
joblib launcher's metrics, job by job, with both jobs sharing one artifact store."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lamp.cli.main import main
from lamp.errors import ClusterError, MissingDependencyError

ROOT = Path(__file__).resolve().parents[2]
SWEEP = ["stages=[data,base,eval]", "experiment=base_only", "queries.n_test=30", "candidates.top_m=3,5"]


def _stop_group(pgid: int, grace_s: float = 2.0) -> None:
    """End the processes of the cluster this test started (its own process group), and only those: `ray stop`
    would end every Ray process of this user on the machine."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


@pytest.fixture()
def ray_cluster(tmp_path: Path) -> Iterator[str]:
    """A one-node Ray cluster from ``ray start --head`` on 127.0.0.1 with 2 CPUs; its address.

    Its environment has neither LAMP_DATA_DIR nor LAMP_CACHE_DIR and an empty HOME, so the jobs find the data
    and the cache only through the variables the launcher forwards from the driver."""
    pytest.importorskip("ray")
    from lamp.serve.server import free_port

    ray_cli = Path(sys.executable).parent / "ray"
    port = free_port()
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    env = {k: v for k, v in os.environ.items() if k not in ("LAMP_DATA_DIR", "LAMP_CACHE_DIR", "RAY_ADDRESS")}
    env["HOME"] = str(tmp_path / "home")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.Popen([str(ray_cli), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                             "--num-cpus=2", "--object-store-memory=100000000", "--include-dashboard=false",
                             "--disable-usage-stats", f"--temp-dir={temp}"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=120)  # returns once the head is up; its daemons stay in the group
        assert proc.returncode == 0, f"ray start failed ({proc.returncode}):\n{out.decode(errors='replace')[-3000:]}"
        yield f"127.0.0.1:{port}"
    finally:
        proc.kill()
        _stop_group(proc.pid)
        shutil.rmtree(temp, ignore_errors=True)


def _metrics(sweep: Path) -> dict[str, list[dict]]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(sweep.glob("*/metrics.json"))}


@pytest.mark.slow
def test_ray_sweep_equals_joblib_sweep(ray_cluster: str, data_dir: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("LAMP_CACHE_DIR", str(cache))
    monkeypatch.chdir(tmp_path)
    # relative paths: the jobs write and read where the driver (and `lamp sweep`) would
    code = main(["run", "-m", *SWEEP, "hydra/launcher=ray", f"hydra.launcher.address={ray_cluster}",
                 "hydra.sweep.dir=ray-sweep", "artifacts_dir=ray-artifacts"])
    assert code == 0
    by_ray = _metrics(tmp_path / "ray-sweep")
    assert list(by_ray) == ["0", "1"]
    # both jobs used one artifact store: one fitted base model between them
    assert len(list((tmp_path / "ray-artifacts" / "fit").glob("*/_done.json"))) == 1
    assert list((cache / "eventlogs").glob("icews14-*")), \
        "the jobs did not get LAMP_CACHE_DIR from the driver (the loaded log is cached there)"

    code = main(["run", "-m", *SWEEP, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                 f"artifacts_dir={tmp_path / 'joblib-artifacts'}", f"hydra.sweep.dir={tmp_path / 'joblib-sweep'}"])
    # (absolute: loky reuses worker processes started by an earlier sweep, in that sweep's working directory)
    assert code == 0
    by_joblib = _metrics(tmp_path / "joblib-sweep")
    assert by_ray == by_joblib
    assert [rows[0]["top_m"] for rows in by_ray.values()] == [3, 5]


def test_unreachable_address_is_one_line_error(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing listens at the address: an error naming it and the fix, at once (``ray.init`` would wait forever)."""
    pytest.importorskip("ray")
    from lamp.serve.server import free_port

    monkeypatch.chdir(tmp_path)
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "-m", *SWEEP, "hydra/launcher=ray", f"hydra.launcher.address={address}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"error: No Ray cluster answers at hydra.launcher.address='{address}'" in err and "ray start --head" in err
    assert "Traceback" not in err


def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from hydra_plugins.lamp_ray_launcher._core import check_reachable, import_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees where it is not installed
    with pytest.raises(MissingDependencyError, match=r"pip install 'lamp\[ray\]'"):
        import_ray()
    for address in (None, "auto", "local"):  # left to Ray's own lookup
        check_reachable(address)
    with pytest.raises(ClusterError, match="ray://127.0.0.1:1"):
        check_reachable("ray://127.0.0.1:1", timeout_s=1.0)
