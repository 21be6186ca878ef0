"""The embedding cache: lazy (only pool texts), incremental (never twice), float16 .npy on disk, no pickle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from retrieval_helpers import FakeEncoder, build, real_requests

from lamp.data.eventlog import EventLog
from lamp.errors import ArtifactError
from lamp.retrieval.embed import EmbeddingStore, TextEmbeddings, TextEncoder, resolve_model, text_hashes
from lamp.retrieval.index import HistoryIndex


def test_store_round_trip_is_float16_npy(tmp_path: Path) -> None:
    store = EmbeddingStore(tmp_path / "m")
    vecs = np.random.default_rng(0).normal(size=(5, 8)).astype(np.float32)
    keys = text_hashes([f"text {i}" for i in range(5)])
    store.add(keys[:3], vecs[:3])
    store.add(keys[3:], vecs[3:])
    found, got = EmbeddingStore(tmp_path / "m").lookup(keys[[4, 0, 2]])
    assert found.all()
    np.testing.assert_allclose(got, vecs[[4, 0, 2]], atol=1e-2)
    missing, none = store.lookup(text_hashes(["never stored"]))
    assert not missing.any() and none.shape[0] == 0
    for path in (tmp_path / "m").glob("*.vecs.npy"):
        assert np.load(path, allow_pickle=False).dtype == np.float16
    assert store.disk_bytes() > 0


def test_only_pool_texts_are_embedded_and_only_once(icews14: EventLog, tmp_path: Path) -> None:
    requests, causes = real_requests(icews14, n_queries=3, seed=9)
    encoder = FakeEncoder()
    emb = TextEmbeddings(encoder, cache_dir=str(tmp_path))
    retriever = build("dense", embeddings=emb, max_pool=100)
    retriever.retrieve_many(icews14, requests, causes)
    index = HistoryIndex.for_log(icews14)
    jobs = [retriever._job(index, r, [c for c in cs if c.event_index is None]) for r, cs in zip(requests, causes,
                                                                                                   strict=True)]
    pool_triples = np.unique(np.concatenate([j.triples for j in jobs]))
    queries = {t for j in jobs for t in j.texts} - set(index.triple_texts(pool_triples))
    assert emb.encoded == len(pool_triples) + len(queries) < index.num_triples // 10  # lazy: a small part
    assert len(encoder.calls) == 2  # one batch of pool texts, one of cause texts
    # a new process (fresh memory) with the same cache encodes nothing
    fresh = TextEmbeddings(FakeEncoder(), cache_dir=str(tmp_path))
    again = build("dense", embeddings=fresh, max_pool=100).retrieve_many(icews14, requests, causes)
    first = build("dense", embeddings=emb, max_pool=100).retrieve_many(icews14, requests, causes)
    assert fresh.encoded == 0
    for a, b in zip(again, first, strict=True):
        np.testing.assert_array_equal(a.event_indices, b.event_indices)
        np.testing.assert_array_equal(a.scores, b.scores)  # fresh vectors are rounded like the disk copy


def test_default_model_resolves_to_the_packaged_folder() -> None:
    path = Path(resolve_model("all-MiniLM-L6-v2"))
    assert (path / "modules.json").is_file() or not path.is_absolute()
    assert TextEncoder("all-MiniLM-L6-v2").key == TextEncoder("all-MiniLM-L6-v2").key != TextEncoder("other").key


def test_a_corrupt_shard_is_named_with_the_fix(tmp_path: Path) -> None:
    store = EmbeddingStore(tmp_path / "m")
    store.add(text_hashes(["a"]), np.ones((1, 4), dtype=np.float32))
    next((tmp_path / "m").glob("*.keys.npy")).write_bytes(b"not a numpy file")
    with pytest.raises(ArtifactError, match="delete"):
        EmbeddingStore(tmp_path / "m").lookup(text_hashes(["a"]))
