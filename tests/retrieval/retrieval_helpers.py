"""Helpers of the retrieval tests: real requests with generated causes, and a small stand-in encoder."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from lamp.data.eventlog import EventLog
from lamp.data.queries import candidate_triple, make_queries
from lamp.retrieval import build_retriever
from lamp.retrieval.embed import TextEmbeddings
from lamp.types import AbductionRequest, CauseEvent

KINDS = ("fuzzy", "dense", "hybrid", "random", "recent", "effect_similarity")
DENSE_KINDS = ("dense", "hybrid", "effect_similarity")


def cause_of_row(log: EventLog, row: int, **extra: object) -> CauseEvent:
    """A generated cause that restates real event ``row`` by name (no ids: the retriever resolves them)."""
    t, s, r, o = log.event(row)
    return CauseEvent(log.entities.name(s), log.relations.name(r), log.entities.name(o), time=t, **extra)  # type: ignore[arg-type]


def real_requests(log: EventLog, n_queries: int = 6, m: int = 3, seed: int = 0,
                  split: str = "test") -> tuple[list[AbductionRequest], list[list[CauseEvent]]]:
    """Requests for ``n_queries`` real queries (gold + random candidates), each with causes that are
    past events, future events (same text as a future row), made-up strings and real-event rows."""
    rng = np.random.default_rng(seed)
    q = make_queries(log, "object", split, directions="both").sample(n_queries, seed=seed)
    f = q.frame
    qids, subj, rel = (f[c].to_numpy(np.int64) for c in ("query_id", "subject", "relation"))
    target, ends, times = f["target"].to_numpy(np.int64), f["history_end"].to_numpy(np.int64), f["time"].to_numpy()
    requests, causes = [], []
    for i in range(len(q)):
        end, t = int(ends[i]), float(times[i])
        cands = [int(target[i])] + rng.choice(log.num_entities, m - 1, replace=False).tolist()
        for pos, c in enumerate(cands):
            s, r, o = candidate_triple("object", int(subj[i]), int(rel[i]), -1, c, log.num_relations,
                                       log.num_entities)
            requests.append(AbductionRequest(int(qids[i]), c, pos, s, r, o, t, end))
            past, future = int(rng.integers(max(end - 500, 0), end)), int(rng.integers(end, len(log)))
            causes.append([
                cause_of_row(log, past),
                cause_of_row(log, future),  # its text may also occur in the past; only past rows may come back
                CauseEvent("Someone", "Make statement", log.entities.name(s)),
                CauseEvent("Unknown entity", "does something", "nobody"),
                CauseEvent("", "", "", event_index=past, score=0.7, source="rules"),
                CauseEvent("", "", "", event_index=future, score=0.9, source="rules"),  # must be dropped
            ])
    return requests, causes


class FakeEncoder:
    """Deterministic unit vectors from hashed character trigrams: fast, and similar texts are close."""

    key = "fake-trigram-64"

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim
        self.calls: list[int] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(len(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            t = f"  {text.lower()} "
            for k in range(len(t) - 2):
                h = int.from_bytes(hashlib.blake2b(t[k : k + 3].encode(), digest_size=4).digest(), "little")
                out[i, h % self.dim] += 1.0
        norm = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norm, 1e-9)


def fake_embeddings(cache_dir: str | None = None) -> TextEmbeddings:
    return TextEmbeddings(FakeEncoder(), cache=cache_dir is not None, cache_dir=cache_dir)


def build(kind: str, cache_dir: str | None = None, **kwargs: Any) -> Any:
    """A retriever of ``kind``; dense kinds get the fake encoder (the real model has its own slow tests)."""
    if kind in DENSE_KINDS:
        kwargs.setdefault("embeddings", fake_embeddings(cache_dir))
    return build_retriever(kind, **kwargs)
