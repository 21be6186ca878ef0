"""PMI scoring (lamp.llm.likelihood, lamp.abduce.likelihood, lamp.retrieval.pmi): the arithmetic against a fake log-likelihood, then the real
SmolLM2 scorer, the ``pmi`` abducer over mined rules and the PMI retrieval re-scorer on ICEWS14."""

from __future__ import annotations

import numpy as np
import pytest

from lamp.abduce.base import build_abducer
from lamp.abduce.likelihood import PMIAbducer
from lamp.data.eventlog import EventLog
from lamp.errors import ConfigError
from lamp.llm.likelihood import PMIScorer
from lamp.retrieval.pmi import PMIRescorer
from lamp.types import AbductionRequest, AbductionResult, CauseEvent, Evidence


class WordOverlapLM:
    """log p(continuation | context) = overlap of words - length: a cause sharing words 'explains' more."""

    name = "fake"
    model_id = "fake-lm"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def loglikelihood(self, context: str, continuation: str) -> float:
        self.calls.append((context, continuation))
        shared = set(context.lower().split()) & set(continuation.lower().split())
        return float(len(shared)) - len(continuation.split())


def test_pmi_is_conditional_minus_prior_and_memoised() -> None:
    lm = WordOverlapLM()
    scorer = PMIScorer(lm)
    pmi = scorer.score("Russia threatens Ukraine", ["Russia mobilises troops", "Brazil plays football"])
    assert pmi[0] > pmi[1] and pmi[1] == pytest.approx(0.0) and pmi[0] == pytest.approx(1.0)  # "russia" shared
    n = len(lm.calls)
    scorer.score("Russia threatens Ukraine", ["Russia mobilises troops"])
    assert len(lm.calls) == n  # memoised
    assert lm.calls[0] == ("Later event:", " Russia threatens Ukraine")
    with pytest.raises(ConfigError, match="loglikelihood"):
        PMIScorer(object())
    with pytest.raises(ConfigError, match="cause"):
        PMIScorer(lm, template="no placeholder")


class Fixed:
    name = "fixed"

    def __init__(self, causes: list[CauseEvent]) -> None:
        self.causes = tuple(causes)

    def abduce(self, log: EventLog, requests: list[AbductionRequest]) -> list[AbductionResult]:
        return [AbductionResult(r.query_id, r.candidate, self.causes) for r in requests]


def _request(log: EventLog, row: int) -> AbductionRequest:
    t, s, r, o = log.event(row)
    return AbductionRequest(0, o, 0, s, r, o, t, log.history_end(t))


def test_pmi_abducer_orders_the_proposers_causes(icews14: EventLog) -> None:
    row = icews14.split_range("test")[0] + 10
    req = _request(icews14, row)
    s_name = icews14.entities.name(req.subject)
    causes = [CauseEvent("Nobody", "Consult", "Nowhere", source="x"), CauseEvent(s_name, "Consult", s_name, source="x")]
    ab = build_abducer("pmi", proposer=Fixed(causes), backend=WordOverlapLM(), max_causes=1, candidates=2)
    assert isinstance(ab, PMIAbducer)
    (res,) = ab.abduce(icews14, [req])
    assert [c.subject for c in res.causes] == [s_name]  # the cause naming the effect's subject explains it
    assert res.causes[0].source == "x+pmi" and "PMI" in res.causes[0].explanation
    with pytest.raises(ConfigError, match="log-probabilities"):
        build_abducer("pmi", proposer=Fixed(causes))


@pytest.mark.slow
@pytest.mark.real_llm
def test_real_smollm2_pmi_over_rules_and_as_a_retrieval_rescorer(icews14: EventLog) -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (bash .ci/setup builds it)")
    from lamp.llm.local_backend import LocalBackend
    from lamp.retrieval import build_retriever

    backend = LocalBackend(packaged="smollm2", n_ctx=512, n_threads=1, loglik_n_ctx=256)
    scorer = PMIScorer(backend)
    pmi = scorer.score("2014-03-17 | Barack Obama | Impose sanctions | Russia",
                       ["2014-03-10 | Barack Obama | Threaten | Russia", "2014-03-10 | Mali | Host a visit | Peru"])
    assert np.isfinite(pmi).all() and pmi[0] > pmi[1]
    start = icews14.split_range("test")[0] + 200
    reqs = [_request(icews14, start + k) for k in range(2)]
    ab = build_abducer("pmi", proposer={"name": "rules", "max_causes": 6}, scorer=scorer, max_causes=3, candidates=6)
    results = ab.abduce(icews14, reqs)
    for req, res in zip(reqs, results, strict=True):
        assert len(res.causes) <= 3
        assert all(c.event_index is not None and c.event_index < req.history_end for c in res.causes)
        scores = [c.score for c in res.causes]
        assert scores == sorted(scores, reverse=True)
    rescorer = PMIRescorer(build_retriever("fuzzy", max_pool=30), scorer, keep=2)
    evidence = rescorer.retrieve_many(icews14, reqs, [r.causes for r in results])
    for req, ev in zip(reqs, evidence, strict=True):
        assert isinstance(ev, Evidence) and ev.event_indices.size <= 2
        assert (ev.event_indices < req.history_end).all()  # still nothing at or after the query time
        assert np.all(np.diff(icews14.times[ev.event_indices]) >= 0)
    assert scorer.stats()["loglik_calls"] > 0
