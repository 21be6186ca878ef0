"""rule_evidence gives exactly what the rules abducer + a retriever give, without the text."""

from __future__ import annotations

import numpy as np
from rank_synthetic import synthetic_log

from lamp.abduce.rules import RulesAbducer
from lamp.abduce.rules.evidence import rule_evidence
from lamp.data.queries import make_queries
from lamp.pipeline.stages import abduction_requests
from lamp.retrieval.fuzzy import FuzzyRetriever
from lamp.tpp.recurrency import RecurrencyBaseline


def test_rule_evidence_equals_abducer_plus_retriever() -> None:
    log = synthetic_log(n_days=150, per_day=20, n_ent=25, n_rel=5)
    queries = make_queries(log, "object", "valid", directions="both").sample(120, seed=0)
    table = RecurrencyBaseline(lmbda=0.1, alpha=0.9).score(log, queries, 6)
    requests = abduction_requests(log, table)
    abducer = RulesAbducer(max_causes=7)
    fast = rule_evidence(log, abducer, requests, max_evidence=5)
    results = abducer.abduce(log, requests)
    slow = FuzzyRetriever(max_evidence=5).retrieve_many(log, requests, [r.causes for r in results])
    assert sum(len(e.event_indices) for e in fast) > 100  # the rules found real evidence
    for a, b in zip(fast, slow, strict=True):
        assert (a.query_id, a.candidate) == (b.query_id, b.candidate)
        np.testing.assert_array_equal(a.event_indices, b.event_indices)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)
