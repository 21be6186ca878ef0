"""LLMAbducer end to end through the real LLMClient (durable cache) with a scripted fake backend, and once
with the real local SmolLM2 on ICEWS14."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from lamp.abduce.llm_abducer import LLMAbducer
from lamp.abduce.prompts import load_prompt_spec
from lamp.data.eventlog import EventLog
from lamp.errors import ConfigError, LeakageError
from lamp.llm.cache import LLMCache
from lamp.llm.client import LLMClient
from lamp.llm.types import LLMRequest, LLMResponse
from lamp.types import AbductionRequest

sys.path.insert(0, str(Path(__file__).parent))
from test_prompts import synthetic_log  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ICEWS = ROOT / "conf" / "prompt" / "icews.yaml"


def _causes_from(schema: dict) -> list:
    """One cause with the first allowed value of each field (the second entity as the object)."""
    fields = schema["items"]["properties"]
    cause = {k: (v.get("enum") or ["x"])[0] for k, v in fields.items()}
    if "object" in fields and len(fields["object"].get("enum", [])) > 1:
        cause["object"] = fields["object"]["enum"][1]
    return [cause]


def first_enum_answer(req: LLMRequest) -> str:
    """A valid answer built from the request's JSON schema (per-candidate or keyed per candidate)."""
    schema = req.json_schema
    assert schema is not None
    if "causes" in schema["properties"]:
        return json.dumps({"causes": _causes_from(dict(schema["properties"]["causes"]))})
    return json.dumps({k: _causes_from(v) for k, v in schema["properties"].items()})


class ScriptedBackend:
    """Implements the LLMBackend protocol; answers with ``answer(request)``; records every real call."""

    name = "scripted"
    model_id = "scripted-1"

    def __init__(self, answer: Callable[[LLMRequest], str] = first_enum_answer, fail: bool = False,
                 context: int = 32_000) -> None:
        self.answer, self.fail, self._ctx = answer, fail, context
        self.calls: list[LLMRequest] = []

    def generate(self, requests: Sequence[LLMRequest]) -> list[LLMResponse]:
        self.calls.extend(requests)
        if self.fail:
            return [LLMResponse("", 0, 0, False, 0.0, error="HTTP 500 after 3 retries") for _ in requests]
        return [LLMResponse(self.answer(r), self.count_tokens(r.prompt_text()), 20, False, 0.01) for r in requests]

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    @property
    def context_length(self) -> int:
        return self._ctx

    def loglikelihood(self, context: str, continuation: str) -> float:
        return 0.0


@pytest.fixture(scope="module")
def log() -> EventLog:
    return synthetic_log()


def requests_for(log: EventLog, n_queries: int = 3, m: int = 3) -> list[AbductionRequest]:
    out = []
    for q in range(n_queries):
        row = log.split_ends[1] + 5 * q
        t, s, r, o = log.event(row)
        for k in range(m):
            cand = (o + k) % log.num_entities
            out.append(AbductionRequest(q, cand, k, s, r, cand, t, log.history_end(t)))
    return out


def make(backend: ScriptedBackend, tmp_path: Path, **kw: Any) -> LLMAbducer:
    client = LLMClient(backend, LLMCache(tmp_path / "llm.sqlite"))
    spec = dataclasses.replace(load_prompt_spec(ICEWS), definitions="none")  # no CAMEO files needed
    # the paper's per-candidate calls with dated causes (the main job's defaults are batched and dateless)
    return LLMAbducer(client, spec, **{"mode": "per_candidate", "cause_dates": True, "max_entities": 30,
                                       "max_dates": 30, "n_shots": 2, "num_causes": 3, **kw})


@pytest.mark.parametrize("mode,calls", [("per_candidate", 9), ("batched", 3)])
def test_modes_call_counts_order_and_cache(log: EventLog, tmp_path: Path, mode: str, calls: int) -> None:
    backend = ScriptedBackend()
    ab = make(backend, tmp_path, mode=mode)
    reqs = requests_for(log)
    res = ab.abduce(log, reqs)
    assert len(backend.calls) == calls == ab.last_stats.calls
    assert [(r.query_id, r.candidate) for r in res] == [(r.query_id, r.candidate) for r in reqs]
    assert all(len(r.causes) == 1 and r.parse_failures == 0 and r.error is None for r in res)
    assert all(r.causes[0].time is not None and r.causes[0].time < q.time for r, q in zip(res, reqs, strict=True))
    again = ab.abduce(log, reqs)  # same requests: every answer comes from the durable cache
    assert len(backend.calls) == calls and ab.last_stats.cached_calls == calls
    assert [r.causes for r in again] == [r.causes for r in res]


def test_constraints_come_only_from_history_before_the_query(log: EventLog, tmp_path: Path) -> None:
    backend = ScriptedBackend()
    ab = make(backend, tmp_path, max_entities=6, max_dates=4)
    req = requests_for(log, 1, 1)[0]
    cons = ab.constraints(log, [req])
    assert len(cons.entities) <= 6 and len(cons.dates) <= 4
    assert cons.entities[:2] == (log.entities.name(req.subject), log.entities.name(req.object))
    seen = set()
    for row in range(req.history_end):
        _, s, _, o = log.event(row)
        if {s, o} & {req.subject, req.object}:
            seen |= {log.entities.name(s), log.entities.name(o)}
    assert set(cons.entities) <= seen | {log.entities.name(req.subject), log.entities.name(req.object)}
    allowed_dates = {log.time_spec.format(t) for t in log.times[: req.history_end]}
    assert set(cons.dates) <= allowed_dates and log.time_spec.format(req.time) not in cons.dates
    ab.abduce(log, [req])
    schema = backend.calls[0].json_schema
    assert schema is not None
    item = schema["properties"]["causes"]["items"]["properties"]
    assert item["subject"]["enum"] == list(cons.entities) and item["relation"]["enum"] == list(log.relations.names)


def test_demonstrations_come_from_train_only(log: EventLog, tmp_path: Path) -> None:
    ab = make(ScriptedBackend(), tmp_path, n_shots=3)
    demos = ab.demonstrations(log)
    assert demos and all(e.row is not None and e.row < log.split_ends[0] for d in demos for e in (d.effect, *d.causes))


def test_llm_errors_are_reported_per_request_not_skipped(log: EventLog, tmp_path: Path) -> None:
    ab = make(ScriptedBackend(fail=True), tmp_path, mode="batched")
    reqs = requests_for(log, 2, 2)
    res = ab.abduce(log, reqs)
    assert len(res) == 4 and all(r.error == "HTTP 500 after 3 retries" and r.causes == () for r in res)
    assert ab.last_stats.errors == 2


def test_future_causes_and_unparseable_answers_are_counted(log: EventLog, tmp_path: Path) -> None:
    def answer(req: LLMRequest) -> str:
        if "Country C" in req.messages[-1][1].split("\n")[0]:
            return "no idea"
        return "2014-01-02 | Country A | Threaten | Country B\n2099-01-01 | Country A | Threaten | Country B"

    ab = make(ScriptedBackend(answer), tmp_path, constrained=False, structured=False)
    res = ab.abduce(log, requests_for(log, 2, 3))
    assert sum(r.dropped_future for r in res) == ab.last_stats.dropped_future >= 1
    assert all(r.raw_text for r in res)
    assert ab.last_stats.parse_failures == sum(r.parse_failures for r in res)
    assert all(r.parse_failures == 1 for r in res if r.raw_text == "no idea")


def test_leakage_and_config_errors(log: EventLog, tmp_path: Path) -> None:
    ab = make(ScriptedBackend(), tmp_path)
    req = requests_for(log, 1, 1)[0]
    bad = AbductionRequest(req.query_id, req.candidate, 0, req.subject, req.relation, req.object, req.time,
                           len(log))
    with pytest.raises(LeakageError):
        ab.abduce(log, [bad])
    with pytest.raises(ConfigError, match="Valid choices"):
        make(ScriptedBackend(), tmp_path, mode="sometimes")
    with pytest.raises(ConfigError, match="structured"):
        make(ScriptedBackend(), tmp_path, constrained=True, structured=False)
    with pytest.raises(ConfigError, match="context"):
        make(ScriptedBackend(context=50), tmp_path).abduce(log, [req])


def test_from_config_reads_conf_abducer_llm(tmp_path: Path) -> None:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from lamp.cli.schemas import register_schemas

    register_schemas()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = OmegaConf.to_container(compose("config", overrides=["abducer.num_causes=3"]).abducer, resolve=True)
    assert isinstance(cfg, dict)
    client = LLMClient(ScriptedBackend(), LLMCache(tmp_path / "c.sqlite"))
    ab = LLMAbducer.from_config(client, cfg, prompt=str(ICEWS))
    assert (ab.mode, ab.constrained, ab.num_causes, ab.max_entities) == (
        cfg["mode"], cfg["constrained"], 3, cfg["max_entities"])
    assert ab.prompt.name == "icews"
    with pytest.raises(ConfigError, match=r"Invalid option\(s\) \['shots'\].*Valid choices"):
        LLMAbducer.from_config(client, {**cfg, "shots": 3}, prompt=str(ICEWS))


@pytest.mark.slow
@pytest.mark.real_llm
def test_real_smollm2_on_icews14(icews14: EventLog, tmp_path: Path) -> None:
    """The real local backend, grammar-constrained, on two ICEWS14 test requests (a short prompt keeps
    it to a few seconds per call on two CPU cores: no definitions, one demonstration, one cause)."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install 'lamp[local]')")
    from lamp.llm.local_backend import LocalBackend

    backend = LocalBackend(packaged="smollm2", n_ctx=2048, n_threads=1)  # robust when CPUs are shared
    client = LLMClient(backend, LLMCache(tmp_path / "llm.sqlite"))
    spec = dataclasses.replace(load_prompt_spec(ICEWS), definitions="none")
    ab = LLMAbducer(client, spec, mode="per_candidate", cause_dates=True, n_shots=1, num_causes=1, max_entities=8,
                    max_dates=6)
    test0 = icews14.split_ends[1]
    reqs = []
    for q, row in enumerate((test0, test0 + 500)):
        t, s, r, o = icews14.event(row)
        reqs.append(AbductionRequest(q, o, 0, s, r, o, t, icews14.history_end(t)))
    res = ab.abduce(icews14, reqs)
    assert len(res) == 2 and ab.last_stats.calls == 2 and ab.last_stats.errors == 0
    for out, req in zip(res, reqs, strict=True):
        assert out.raw_text and out.parse_failures == 0, out.raw_text  # the grammar makes the JSON well formed
        assert len(out.causes) == 1
        c = out.causes[0]
        assert c.time is not None and c.time < req.time
        assert c.relation_id >= 0 and c.subject_id >= 0 and c.object_id >= 0  # enums map back to ids
    ab.abduce(icews14, reqs)
    assert ab.last_stats.cached_calls == 2 and client.usage.calls == 2


def test_paper_demonstrations_option(log: EventLog, tmp_path: Path, data_dir: Path) -> None:
    client = LLMClient(ScriptedBackend(), LLMCache(tmp_path / "llm.sqlite"))
    spec = dataclasses.replace(load_prompt_spec(ROOT / "conf" / "prompt" / "gdelt.yaml"), demos="paper",
                               definitions="none")
    ab = LLMAbducer(client, spec, mode="per_candidate", cause_dates=True, n_shots=3, data_root=str(data_dir))
    demos = ab.demonstrations(log)
    assert len(demos) == 3 and demos[0].source == "paper" and demos[0].effect.date == "2022-04-19"
    res = ab.abduce(log, requests_for(log, 1, 2))
    assert len(res) == 2 and ab.last_stats.shots_used == 3
