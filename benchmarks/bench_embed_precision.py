"""Embedding throughput and agreement: float32 versus bfloat16 sentence-transformers on real event texts.

    LAMP_DATA_DIR=../shared/datasets HF_HUB_OFFLINE=1 python benchmarks/bench_embed_precision.py \
        [--dataset icews14] [--texts 6000] [--queries 20]

Texts: the first ``--texts`` distinct (subject, relation, object) texts of the dataset, as the dense
retriever embeds them (no date). Each precision loads the model once (not timed), warms up on 256 texts,
then encodes all texts (timed, the retriever's batch size 128). Agreement: the cosine between the two
vectors of every text, and, for ``--queries`` seeded test queries x 5 candidates x 3 generated causes
(bench_retrieval.py's requests), whether dense retrieval keeps the same evidence events with either
precision. ``precision: auto`` picks bfloat16 only where the CPU has native bfloat16 units (this
machine: see the first line of the table). Prints a markdown table and writes
benchmarks/results/bench_embed_precision.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_retrieval import make_requests  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "bench_embed_precision.md"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="icews14")
    parser.add_argument("--texts", type=int, default=6000)
    parser.add_argument("--queries", type=int, default=20)
    args = parser.parse_args()
    if not os.environ.get("LAMP_DATA_DIR"):
        raise SystemExit("set LAMP_DATA_DIR to the datasets folder")
    import torch

    from lamp.data.load import load_dataset
    from lamp.retrieval.dense import DenseRetriever
    from lamp.retrieval.embed import TextEmbeddings, TextEncoder, resolve_precision
    from lamp.retrieval.index import HistoryIndex

    log = load_dataset(args.dataset, download=False)
    index = HistoryIndex.for_log(log)
    texts = list(index.triple_texts(np.arange(min(args.texts, index.num_triples))))
    vecs, rates = {}, {}
    for precision in ("float32", "bfloat16"):
        enc = TextEncoder(precision=precision)
        enc.encode(texts[:256])  # loads the model and warms up
        start = time.perf_counter()
        vecs[precision] = enc.encode(texts)
        rates[precision] = len(texts) / (time.perf_counter() - start)
    cos = (vecs["float32"] * vecs["bfloat16"]).sum(axis=1)
    requests, causes = make_requests(log, args.queries, 5, seed=0)
    kept = {}
    for precision in ("float32", "bfloat16"):
        with tempfile.TemporaryDirectory() as tmp:
            emb = TextEmbeddings(TextEncoder(precision=precision), cache_dir=tmp)
            ret = DenseRetriever(embeddings=emb, top_k=5, max_pool=300, max_evidence=32)
            kept[precision] = [set(e.event_indices.tolist()) for e in ret.retrieve_many(log, requests, causes)]
    same = sum(a == b for a, b in zip(kept["float32"], kept["bfloat16"], strict=True))
    overlap = np.mean([len(a & b) / max(1, len(a | b)) for a, b in zip(kept["float32"], kept["bfloat16"], strict=True)])
    command = "LAMP_DATA_DIR=../shared/datasets HF_HUB_OFFLINE=1 python benchmarks/bench_embed_precision.py " + \
        " ".join(shlex.quote(a) for a in sys.argv[1:])
    lines = ["# Embedding precision: float32 versus bfloat16", "", "```", command.strip(), "```", "",
             f"CPython {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}; "
             f"`precision: auto` resolves to **{resolve_precision('auto', 'auto')}** here. Model all-MiniLM-L6-v2, "
             f"batch 128, {len(texts):,} distinct {args.dataset} event texts (load average {os.getloadavg()[0]:.1f} "
             "at the end).", "",
             "| precision | texts/s | speed-up |", "|---|---:|---:|",
             f"| float32 | {rates['float32']:.0f} | 1.00 |",
             f"| bfloat16 | {rates['bfloat16']:.0f} | {rates['bfloat16'] / rates['float32']:.2f} |", "",
             f"Cosine between the float32 and bfloat16 vector of the same text: min {cos.min():.4f}, 1st percentile "
             f"{np.percentile(cos, 1):.4f}, mean {cos.mean():.5f}.",
             f"Dense retrieval ({len(requests)} requests, 3 causes each, top-5 per cause, pool 300 per entity): the "
             f"same evidence events for {same} of {len(requests)} requests; mean Jaccard overlap {overlap:.3f}."]
    text = "\n".join(lines) + "\n"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
