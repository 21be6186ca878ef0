"""Retrieval: generated causes -> real events strictly before the query time.

>>> from lamp.retrieval import build_retriever
>>> retriever = build_retriever("fuzzy", scorer="ratio", top_k=5)          # doctest: +SKIP
>>> evidences = retriever.retrieve_many(log, requests, [r.causes for r in results])   # doctest: +SKIP
>>> evidence_frame(evidences, log).to_parquet("evidence.parquet")           # doctest: +SKIP

Kinds: ``fuzzy`` (rapidfuzz), ``dense`` (sentence-transformers), ``hybrid`` (fusion of both), and the
no-LLM ablations ``random``, ``recent`` and ``effect_similarity``. Every retriever searches only the
events before a request's ``history_end`` (:class:`~lamp.retrieval.index.HistoryIndex`) and reports
what it skipped in ``retriever.stats``.
"""

from __future__ import annotations

from typing import Any

from lamp.components import Resolver
from lamp.retrieval.base import cause_text, evidence_frame
from lamp.retrieval.index import HistoryIndex

RETRIEVERS: Resolver[Any] = Resolver("retriever", {
    "fuzzy": "lamp.retrieval.fuzzy:FuzzyRetriever",
    "dense": "lamp.retrieval.dense:DenseRetriever",
    "hybrid": "lamp.retrieval.dense:HybridRetriever",
    "random": "lamp.retrieval.ablations:RandomRetriever",
    "recent": "lamp.retrieval.ablations:RecentRetriever",
    "effect_similarity": "lamp.retrieval.dense:EffectSimilarityRetriever",
}, conf_group="retriever")
ABLATION_RETRIEVERS = ("random", "recent", "effect_similarity")


def build_retriever(kind: str, **kwargs: Any) -> Any:
    """A retriever by name, with its options (fields of its ``Settings``; see ``conf/retriever/<kind>.yaml``).

    Common: ``top_k`` (events per cause, 5), ``max_evidence`` (events kept per candidate, 32),
    ``max_pool`` (most recent events searched per involved entity, 500), ``window`` (only events
    within this many time units before the query; null = all), ``progress`` (a tqdm bar).
    """
    return RETRIEVERS.make(kind, **kwargs)


__all__ = ["ABLATION_RETRIEVERS", "RETRIEVERS", "HistoryIndex", "build_retriever", "cause_text", "evidence_frame"]
