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
    (its auth mode among them) are taken back after, so a later ``ray start`` in a subprocess starts clean."""
    saved = dict(os.environ)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="warning")
    try:
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
