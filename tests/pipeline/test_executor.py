"""``executor=ray``: the per-query stages (base scoring, rules abduction, retrieval) run as Ray tasks in chunks on
a real local Ray and give exactly what one in-process call gives, stage by stage and for a whole run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray

import lamp
from lamp import parallel
from lamp.abduce.rules import RulesAbducer
from lamp.data.eventlog import EventLog
from lamp.data.queries import make_queries
from lamp.errors import ClusterError, ConfigError
from lamp.pipeline.config import PipelineConfig
from lamp.pipeline.stages import abduction_requests
from lamp.retrieval import RETRIEVERS
from lamp.rules import MiningConfig
from lamp.tpp.factory import BASE_MODELS

FAST = MiningConfig(lengths=(1, 2), max_length2_per_head=50)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[parallel.Executor]:
    """A real local Ray with 2 CPUs, and an executor that sends chunks of 25 to it. The variables ``ray.init`` sets
    (its auth mode among them) are taken back after, so a later ``ray start`` in a subprocess starts clean.
    ``address="local"``: a new one, never the last cluster started on this machine (a README example's, maybe gone)."""
    saved = dict(os.environ)
    try:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="warning")
        yield parallel.make_executor({"kind": "ray", "chunk_size": 25})
    finally:
        ray.shutdown()
        os.environ.clear()
        os.environ.update(saved)


def test_each_per_query_stage_gives_the_in_process_result(icews14: EventLog, local_ray: parallel.Executor) -> None:
    train = make_queries(icews14, "object", "train")
    valid = make_queries(icews14, "object", "valid")
    test = make_queries(icews14, "object", "test", directions="both").sample(80, seed=3)
    for name, params in (("recurrency", {}), ("rules", {"mining": FAST, "tune": False})):
        model = BASE_MODELS.make(name, **params)
        model.fit(icews14, train, valid)
        here = parallel.score(None, model, icews14, test, 5)
        there = parallel.score(local_ray, model, icews14, test, 5)
        for field in ("candidates", "scores", "gold_rank_filtered"):
            np.testing.assert_array_equal(getattr(here, field), getattr(there, field), err_msg=f"{name}: {field}")
        assert there.queries is test and there.method == here.method

    requests = abduction_requests(icews14, here)  # 80 queries x 5 candidates: 16 chunks
    abducer = RulesAbducer(mining=FAST)
    causes_here = parallel.abduce(None, abducer, icews14, requests)
    causes_there = parallel.abduce(local_ray, RulesAbducer(mining=FAST), icews14, requests)
    assert causes_there == causes_here
    assert sum(len(r.causes) for r in causes_here) > 0

    causes = [r.causes for r in causes_here]
    for name in ("fuzzy", "random", "recent"):
        a, b = RETRIEVERS.make(name), RETRIEVERS.make(name)
        ev_here = parallel.retrieve(None, a, icews14, requests, causes)
        ev_there = parallel.retrieve(local_ray, b, icews14, requests, causes)
        assert len(ev_there) == len(ev_here)
        for x, y in zip(ev_here, ev_there, strict=True):
            assert (x.query_id, x.candidate) == (y.query_id, y.candidate)
            np.testing.assert_array_equal(x.event_indices, y.event_indices, err_msg=name)
            np.testing.assert_array_equal(x.scores, y.scores, err_msg=name)
        assert b.stats == a.stats, name  # the tasks' counters come back to the driver's retriever
        assert sum(e.event_indices.size for e in ev_here) > 0, name
    assert not parallel.fans_out(RETRIEVERS.make("hybrid"), local_ray)  # its embedding model stays in the driver


def test_a_run_on_ray_equals_the_run_in_process(data_dir: Path, tmp_path: Path, local_ray: parallel.Executor) -> None:
    common: dict[str, Any] = {"dataset": "icews14", "data_dir": str(data_dir), "abducers": ["rules"],
                              "base_model": "recurrency", "retriever": "fuzzy", "ablations": ["random"],
                              "ranker": "lightgbm", "n_test_queries": 40, "n_valid_queries": 150, "top_m": 3}
    here = lamp.run(**common, run_dir=str(tmp_path / "local"), artifacts_dir=str(tmp_path / "a1"))
    there = lamp.run(**common, run_dir=str(tmp_path / "ray"), artifacts_dir=str(tmp_path / "a2"),
                     executor={"kind": "ray", "chunk_size": 60})
    for a, b in zip(here.metrics, there.metrics, strict=True):
        assert {k: v for k, v in a.items() if a.get(k) != b.get(k) and not k.endswith("_seconds")} == {}, a["method"]
    assert {r["method"] for r in here.metrics} >= {"base:recurrency", "lamp[rules]", "ablation:random"}
    assert ray.is_initialized()  # the run joined the test's Ray and left it running


def test_bad_executor_settings_say_what_to_fix() -> None:
    with pytest.raises(ConfigError, match="executor.kind 'dask'.*local, ray"):
        PipelineConfig(executor="dask")
    with pytest.raises(ConfigError, match="Unknown executor option.*adress"):
        parallel.make_executor({"kind": "ray", "adress": "127.0.0.1:6379"})
    with pytest.raises(ClusterError, match=r"executor.address='127.0.0.1:1'.*ray start --head"):
        parallel.check_reachable("127.0.0.1:1", "executor.address", timeout_s=1.0)


class _FakeRay:
    """Records the address ``ray.init`` is given (unit test of the address rule, no cluster)."""

    def __init__(self) -> None:
        self.addresses: list[str | None] = []

    def is_initialized(self) -> bool:
        return False

    def init(self, address: str | None = None, **_: Any) -> None:
        self.addresses.append(address)


def test_no_address_starts_a_new_ray_unless_ray_address_names_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset, the address is never Ray's own lookup of the last cluster started on this machine: its file
    (/tmp/ray/ray_current_cluster) outlives a stopped cluster and would make every later run fail."""
    fake = _FakeRay()
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert parallel.connect_ray(fake, None, {}, "executor.address")  # type: ignore[arg-type]
    assert parallel.connect_ray(fake, "auto", {}, "executor.address")  # type: ignore[arg-type]
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    with pytest.raises(ClusterError, match=r"\$RAY_ADDRESS='127.0.0.1:1'"):
        parallel.connect_ray(fake, None, {}, "executor.address")  # type: ignore[arg-type]
    assert fake.addresses == ["local", "auto"]


def test_a_token_on_this_machine_turns_token_auth_on(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``ray start`` uses ~/.ray/auth_token when it exists; a client given an address must send it too."""
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    parallel.use_token_if_present()
    assert "RAY_AUTH_MODE" not in os.environ  # no token: nothing to send
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("0" * 64)
    parallel.use_token_if_present()
    assert os.environ["RAY_AUTH_MODE"] == "token"
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    parallel.use_token_if_present()
    assert os.environ["RAY_AUTH_MODE"] == "disabled"  # the user's choice stands
