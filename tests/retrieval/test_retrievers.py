"""Every retriever on real ICEWS14: evidence strictly in the past, sorted, bounded; matching behaviour.

Dense kinds use a small stand-in encoder here (the shared pool/evidence code is what is under test);
test_dense_real.py runs the real sentence-transformers model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from retrieval_helpers import KINDS, build, cause_of_row, fake_embeddings, real_requests

from lamp.data.eventlog import EventLog
from lamp.errors import ConfigError, LeakageError
from lamp.retrieval import build_retriever, evidence_frame
from lamp.retrieval.dense import _ranks, cosine_scores
from lamp.retrieval.index import HistoryIndex
from lamp.types import AbductionRequest, CauseEvent


@pytest.fixture(scope="module")
def requests_and_causes(icews14: EventLog) -> tuple[list[AbductionRequest], list[list[CauseEvent]]]:
    valid = real_requests(icews14, n_queries=4, seed=3, split="valid")
    test = real_requests(icews14, n_queries=6, seed=4, split="test")
    return valid[0] + test[0], valid[1] + test[1]


@pytest.mark.parametrize("kind", KINDS)
def test_evidence_is_strictly_before_the_query_on_real_data(kind: str, icews14: EventLog,
                                                            requests_and_causes) -> None:
    requests, causes = requests_and_causes
    pool: dict[str, Any] = {} if kind in ("random", "recent") else {"max_pool": 300}
    retriever = build(kind, max_evidence=12, **pool)
    evidences = retriever.retrieve_many(icews14, requests, causes)
    assert len(evidences) == len(requests)
    times = icews14.times
    for req, ev in zip(requests, evidences, strict=True):
        assert (ev.query_id, ev.candidate, ev.query_time) == (req.query_id, req.candidate, req.time)
        rows = ev.event_indices
        assert rows.dtype == np.int64 and ev.scores.dtype == np.float32 and len(rows) == len(ev.scores)
        assert (rows < req.history_end).all() and (times[rows] < req.time).all()
        assert (np.diff(rows) > 0).all() and len(rows) <= 12  # sorted by time, no duplicates, last L
    assert sum(e.event_indices.size > 0 for e in evidences) == len(evidences)
    if kind in ("fuzzy", "dense", "hybrid"):
        assert retriever.stats["dropped_future"] == len(requests)  # one future real-event cause each
        assert retriever.stats["causes_indexed"] == len(requests)
    frame = evidence_frame(evidences, icews14)
    assert {"query_id", "candidate", "event_index", "event_time", "query_time", "retrieval_score"} <= set(frame)
    assert (frame["event_time"] < frame["query_time"]).all()


def test_a_request_that_claims_future_history_is_refused(icews14: EventLog) -> None:
    t = float(icews14.times[-1])
    req = AbductionRequest(0, 1, 0, 1, 1, 1, t, len(icews14))  # rows at time t are not before t
    with pytest.raises(LeakageError, match="history_end"):
        build("fuzzy").retrieve(icews14, req, [CauseEvent("a", "b", "c")])


def test_past_real_event_text_comes_back_as_that_event(icews14: EventLog, requests_and_causes) -> None:
    requests, _ = requests_and_causes
    for kind in ("fuzzy", "dense", "hybrid"):
        retriever = build(kind, top_k=1, max_pool=400)
        for req in requests[:6]:
            pool = retriever._job(HistoryIndex.for_log(icews14), req, [CauseEvent("x", "y", "z")]).pool
            row = int(pool[len(pool) // 2])
            ev = retriever.retrieve(icews14, req, [cause_of_row(icews14, row)])
            assert row in ev.event_indices.tolist(), kind  # the dated cause picks that very occurrence
            assert ev.scores.max() == pytest.approx(1.0, abs=2e-3)  # float16-rounded vectors


def test_real_event_causes_are_taken_as_is_and_future_ones_dropped(icews14: EventLog,
                                                                   requests_and_causes) -> None:
    requests, _ = requests_and_causes
    req = requests[0]
    retriever = build_retriever("fuzzy")
    causes = [CauseEvent("", "", "", event_index=req.history_end - 1, score=0.4),
              CauseEvent("", "", "", event_index=req.history_end, score=0.9),
              CauseEvent("", "", "", event_index=-3)]
    ev = retriever.retrieve(icews14, req, causes)
    assert ev.event_indices.tolist() == [req.history_end - 1] and ev.scores.tolist() == [pytest.approx(0.4)]
    assert retriever.stats["dropped_future"] == 2 and retriever.stats["causes_matched"] == 0


def test_dense_keeps_the_most_similar(icews14: EventLog, requests_and_causes) -> None:
    """The paper's code kept the LEAST similar events (ascending argsort): the opposite must hold."""
    requests, causes = requests_and_causes
    retriever = build("dense", top_k=3, max_pool=300, max_evidence=100)
    index = HistoryIndex.for_log(icews14)
    for req, cs in zip(requests[:8], causes[:8], strict=True):
        text_causes = [c for c in cs if c.event_index is None][:1]
        job = retriever._job(index, req, text_causes)
        sims = cosine_scores(retriever.embeddings, index, job, None)[0]
        ev = retriever.retrieve(icews14, req, text_causes)
        chosen = index.triple_of_row[ev.event_indices]
        others = np.setdiff1d(job.triples, chosen)
        kept = sims[np.searchsorted(job.triples, chosen)]
        assert kept.min() >= sims[np.searchsorted(job.triples, others)].max() - 1e-6
        np.testing.assert_allclose(np.sort(ev.scores)[::-1], np.sort(sims)[::-1][: len(ev.scores)], rtol=1e-5)


def test_effect_similarity_ignores_causes(icews14: EventLog, requests_and_causes) -> None:
    requests, causes = requests_and_causes
    retriever = build("effect_similarity", max_pool=300)
    with_causes = retriever.retrieve_many(icews14, requests[:6], causes[:6])
    without = retriever.retrieve_many(icews14, requests[:6], [[] for _ in range(6)])
    for a, b in zip(with_causes, without, strict=True):
        np.testing.assert_array_equal(a.event_indices, b.event_indices)


def test_random_is_seeded_per_request_and_recent_is_the_latest(icews14: EventLog, requests_and_causes) -> None:
    requests, causes = requests_and_causes
    rnd = build_retriever("random", seed=5, max_evidence=8)
    one = rnd.retrieve_many(icews14, requests, causes)
    alone = rnd.retrieve(icews14, requests[3], [])
    np.testing.assert_array_equal(one[3].event_indices, alone.event_indices)
    other_seed = build_retriever("random", seed=6, max_evidence=8).retrieve(icews14, requests[3], [])
    assert not np.array_equal(other_seed.event_indices, alone.event_indices)
    req = requests[0]
    recent = build_retriever("recent", max_evidence=8).retrieve(icews14, req, [])
    s, o = icews14.subjects, icews14.objects
    rows = np.arange(req.history_end)
    involved = rows[np.isin(s[: req.history_end], [req.subject, req.object]) |
                    np.isin(o[: req.history_end], [req.subject, req.object])]
    np.testing.assert_array_equal(recent.event_indices, involved[-8:])


def test_window_limits_the_pool(icews14: EventLog, requests_and_causes) -> None:
    requests, causes = requests_and_causes
    for kind in ("fuzzy", "recent", "random"):
        evidences = build(kind, window=7.0).retrieve_many(icews14, requests, causes)
        for req, ev in zip(requests, evidences, strict=True):
            fixed = {c.event_index for c in causes[requests.index(req)] if c.event_index is not None}
            free = [r for r in ev.event_indices.tolist() if r not in fixed]
            assert (icews14.times[free] >= req.time - 7.0).all(), kind


def test_bad_configuration_is_named(icews14: EventLog) -> None:
    with pytest.raises(ConfigError, match="Valid choices are: dense, effect_similarity, fuzzy, hybrid"):
        build_retriever("bm25")
    with pytest.raises(ConfigError, match="Valid choices"):
        build_retriever("fuzzy", scorer="levenshtein")
    with pytest.raises(ConfigError, match=r"Invalid option\(s\) \['scorer'\] for retriever 'recent'"):
        build_retriever("recent", scorer="ratio")
    with pytest.raises(ConfigError, match="top_k"):
        build_retriever("fuzzy", top_k=0)
    with pytest.raises(ConfigError, match="fusion"):
        build_retriever("hybrid", fusion="max", embeddings=fake_embeddings())
    assert build_retriever("fuzzy", name="fuzzy").name == "fuzzy"  # a config's name key is accepted


def test_rrf_ranks() -> None:
    scores = np.array([[0.1, 0.9, 0.5], [3.0, 2.0, 1.0]], dtype=np.float32)
    assert _ranks(scores).tolist() == [[3, 1, 2], [1, 2, 3]]
