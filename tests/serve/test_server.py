"""``lamp serve`` for real: a uvicorn server on 127.0.0.1 (a child process started by the CLI) serving the
session's shared bundle (``icews14_bundle`` in tests/conftest.py: real ICEWS14 train + valid, events up to
2014-11-30; recurrency, mined rules, fuzzy retrieval, a 2-epoch energy ranker), exercised with valid and
malformed requests, and with predictions and observations at once.

Every answer is checked against the library: the server answers exactly what ``Pipeline.predict`` answers on the
same bundle with the same events observed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import lamp
from lamp.data.eventlog import EventLog
from lamp.pipeline.predictor import Pipeline
from lamp.serve import serving
from lamp.serve.client import Client

pytestmark = [pytest.mark.slow, pytest.mark.network]

SANCTIONS = "Impose embargo, boycott, or sanctions"
SERVER_THREADS = 1  # the server's torch threads; the library's answers are computed with as many


@contextmanager
def server_threads() -> Iterator[None]:
    """Torch set to the server's thread count: float sums split over another number of threads may differ in
    the last digits (seen on AMD EPYC: an energy of .19478001 vs .19478004), and the answers hold scores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(SERVER_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def bundle(icews14_bundle: Path) -> Path:
    return icews14_bundle


@pytest.fixture(scope="module")
def server(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("serve-log") / "server.log"
    with serving(bundle, threads=SERVER_THREADS, log_path=log) as url:
        yield url
    text = log.read_text(errors="replace")
    assert "Traceback" not in text and " 500 " not in text, text[-3000:]


@pytest.fixture(scope="module")
def december(icews14: EventLog) -> pd.DataFrame:
    return lamp.named_events(icews14, "test")


def _events(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [dict(r) for r in frame.to_dict("records")]


def test_health_openapi_and_a_prediction_equal_to_the_library(server: str, bundle: Path) -> None:
    client = Client(server)
    health = client.health()
    assert health["status"] == "ok" and health["newest"] == "2014-11-30" and health["history_version"] == 0
    assert health["components"] == {"base_model": "recurrency", "abducer": "rules", "retriever": "fuzzy",
                                    "ranker": "energy"}
    spec = client.request("GET", "/openapi.json").body
    assert {"/observe", "/predict", "/health", "/relations"} <= set(spec["paths"])
    assert {"EventIn", "PredictRequest", "PredictResponse", "ErrorResponse"} <= set(spec["components"]["schemas"])
    assert SANCTIONS in client.request("GET", "/relations").body
    answer = client.predict("Barack Obama", SANCTIONS, "2014-12-01")
    with server_threads():
        assert answer == Pipeline.load(bundle).predict("Barack Obama", SANCTIONS, "2014-12-01").to_dict()
    assert len(answer["candidates"]) == 5 and answer["ranking"] in ("ranked", "tied", "arbitrary")
    assert all(e["date"] < "2014-12-01" for c in answer["candidates"] for e in c["evidence"])


MALFORMED: list[tuple[str, Any, str]] = [  # (path, body: JSON-able or raw bytes, the field the answer must name)
    ("/predict", b"not json", "body"),
    ("/predict", b'{"subject": "Barack Obama", "relation": ', "body"),
    ("/predict", [1, 2], "body"),
    ("/predict", {"relation": "Make statement", "time": "2014-12-20"}, "subject"),
    ("/predict", {"subject": 3, "relation": "Make statement", "time": "2014-12-20"}, "subject"),
    ("/predict", {"subject": "", "relation": "Make statement", "time": "2014-12-20"}, "subject"),
    ("/predict", {"subject": "Barack Obama", "relation": "Impose sanctions", "time": "2014-12-20"}, "relation"),
    ("/predict", {"subject": "Barack Obama", "relation": "Make statement", "time": True}, "time"),
    ("/predict", {"subject": "Barack Obama", "relation": "Make statement", "time": "yesterday"}, "time"),
    ("/predict", {"subject": "Barack Obama", "relation": "Make statement", "time": "2014-03-17"}, "time"),
    ("/predict", {"subject": "Barack Obama", "relation": "Make statement", "time": "2014-12-20", "top_m": 0}, "top_m"),
    ("/predict", {"subject": "Barack Obama", "relation": "Make statement", "time": "2014-12-20", "k": 1}, "k"),
    ("/predict", {"subject": "x" * 5000, "relation": "Make statement", "time": "2014-12-20"}, "subject"),
    ("/observe", {}, "events"),
    ("/observe", {"events": []}, "events"),
    ("/observe", {"events": {"subject": "A"}}, "events"),
    ("/observe", {"events": [{"subject": "A", "relation": "Make statement", "object": "B"}]}, "events[0].time"),
    ("/observe", {"events": [{"subject": "A", "relation": "Make statement", "object": "B", "time": "2014-12-02"},
                             {"subject": "A", "relation": "Make statement", "object": "B", "time": "2014-12-32"}]},
     "events[1].time"),
    ("/observe", {"events": [{"subject": "A", "relation": "Make statement", "object": "B", "time": "2014-12-02"},
                             {"subject": "A", "relation": "Make statement", "object": "B", "time": "2014-11-02"}]},
     "events[1].time"),  # earlier than the newest observed event (2014-11-30)
    ("/observe", {"events": [{"subject": "A", "relation": 7, "object": "B", "time": "2014-12-02"}]},
     "events[0].relation"),
]


def test_malformed_requests_get_422_naming_the_field_and_the_fix_and_change_nothing(server: str) -> None:
    client = Client(server)
    before = client.health()
    for path, body, field in MALFORMED:
        reply = client.request("POST", path, raw=body) if isinstance(body, bytes) else client.request("POST", path,
                                                                                                       body)
        assert reply.status == 422, (path, body, reply.text)
        problems = reply.body["problems"]
        assert problems[0]["field"] == field and problems[0]["fix"] and reply.body["error"], (path, body, problems)
    wrong_type = client.request("POST", "/predict", raw=b"subject=Obama", content_type="text/plain")
    assert wrong_type.status == 422 and wrong_type.body["problems"][0]["field"] == "body"
    assert client.request("GET", "/predict").status == 405 and client.request("GET", "/nowhere").status == 404
    assert client.health() == before  # no bad batch was half applied


def test_predictions_during_observations_each_read_one_consistent_history(server: str, bundle: Path,
                                                                          december: pd.DataFrame) -> None:
    days = [december[december["time"] == f"2014-12-0{d}"] for d in range(1, 5)]
    targets = december[december["time"] == "2014-12-20"].iloc[:4]
    queries = [(r.subject, r.relation, "2014-12-20") for r in targets.itertuples()]
    queries.append(("Barack Obama", SANCTIONS, "2014-12-20"))
    answers: list[tuple[tuple[str, str, str], dict[str, Any]]] = []
    failures: list[str] = []
    first_answer, fed = threading.Event(), threading.Event()

    def ask() -> None:  # asks until the feed is over, then once more round: the first and last versions are seen
        client = Client(server)
        rounds = 0
        while not fed.is_set() or rounds < 2:
            done = fed.is_set()
            for q in queries:
                reply = client.request("POST", "/predict", {"subject": q[0], "relation": q[1], "time": q[2]})
                if reply.status != 200:
                    failures.append(f"{q}: {reply.status} {reply.text[:300]}")
                    return
                answers.append((q, reply.body))
                first_answer.set()
            rounds += done

    def feed() -> None:
        client = Client(server)
        first_answer.wait(timeout=300)
        try:
            for day in days:
                report = client.observe(_events(day))
                if report["added"] != len(day):
                    failures.append(f"observe: {report}")
        finally:
            fed.set()

    start = Client(server).health()["history_version"]
    threads = [threading.Thread(target=ask) for _ in range(3)] + [threading.Thread(target=feed)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    seen_versions = {a["history_version"] for _, a in answers}
    assert not failures and {start, start + len(days)} <= seen_versions
    # The same bundle in-process, fed the same days: what each history version answers.
    ref = Pipeline.load(bundle)
    expected: dict[tuple[Any, ...], dict[str, Any]] = {}
    with server_threads():
        for day in [None, *days]:
            if day is not None:
                ref.observe(day)
            version = ref.history.version  # type: ignore[union-attr]
            if version + start in seen_versions:
                for q in queries:
                    expected[(q, version + start)] = ref.predict(*q).to_dict() | {"history_version": version + start}
    for q, answer in answers:
        assert answer == expected[(q, answer["history_version"])], (q, answer["history_version"])
    assert Client(server).health()["history_version"] == start + len(days)
    # A batch sent again (a retry) is dropped as duplicates.
    again = Client(server).observe(_events(days[-1]))
    assert again["added"] == 0 and again["duplicates"] == len(days[-1]) and again["version"] == start + len(days)
