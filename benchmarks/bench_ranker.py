"""Energy-ranker training time per epoch on a realistic example count (2,000 queries, M=5, L=32).

    LAMP_DATA_DIR=../shared/datasets python benchmarks/bench_ranker.py [--examples 2000] [--m 5] [--l 32]
        [--epochs 3] [--threads N]

Examples are real: ICEWS14 valid queries (object direction), the gold and M-1 random entities as
candidates, each with its L most recent earlier events involving the candidate event's entities
(the ``recent`` retriever), so ids, time gaps and padding are as in a pipeline run. Reports the time
to build the examples, per training epoch (median over ``--epochs``, default hyperparameters of
conf/ranker/energy.yaml), to score 1,000 examples, and the model size. Prints a markdown table and
writes it to benchmarks/results/bench_ranker.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shlex
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "bench_ranker.md"


def make_examples(n: int, m: int, length: int, seed: int = 0):  # type: ignore[no-untyped-def]
    from lamp.data.load import load_dataset
    from lamp.data.queries import candidate_triple, make_queries
    from lamp.rank import build_examples
    from lamp.retrieval import build_retriever
    from lamp.tpp.base import CandidateTable
    from lamp.types import AbductionRequest

    log = load_dataset("icews14", download=False)
    queries = make_queries(log, "object", "valid", directions="object").sample(n, seed=seed)
    rng = np.random.default_rng(seed)
    gold = queries.frame["target"].to_numpy()
    cands = np.stack([np.concatenate([[g], rng.choice(np.setdiff1d(np.arange(log.num_entities), [g])[:500], m - 1,
                                                      replace=False)]) for g in gold])
    cands = np.stack([rng.permutation(row) for row in cands]).astype(np.int64)
    table = CandidateTable("base:bench", queries, m, cands, rng.normal(size=cands.shape).astype(np.float32),
                           np.ones(len(gold)))
    qid, subj, rel, end = (queries.frame[c].to_numpy(np.int64) for c in ("query_id", "subject", "relation",
                                                                         "history_end"))
    times = queries.frame["time"].to_numpy(np.float64)
    requests = [AbductionRequest(int(qid[i]), int(c), j,
                                 *candidate_triple("object", int(subj[i]), int(rel[i]), -1, int(c), log.num_relations,
                                                   log.num_entities), float(times[i]), int(end[i]))
                for i in range(len(qid)) for j, c in enumerate(cands[i])]
    evidence = build_retriever("recent", max_evidence=length).retrieve_many(log, requests, [[] for _ in requests])
    return log, build_examples(log, table, evidence)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--m", type=int, default=5)
    parser.add_argument("--l", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args()
    if not os.environ.get("LAMP_DATA_DIR"):
        raise SystemExit("set LAMP_DATA_DIR to the datasets folder")
    import torch

    from lamp.rank import EnergyRanker, split_by_time

    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    log, examples = make_examples(args.examples, args.m, args.l)
    build_s = time.perf_counter() - start
    lengths = [len(ev) for ex in examples for ev in ex.evidence_events]
    train, stop = split_by_time(examples)
    ranker = EnergyRanker(log.num_entities, log.num_relations, max_evidence=args.l)
    cpu = time.process_time()
    report = ranker.fit(examples, stop, epochs=args.epochs, patience=args.epochs + 1, seed=0)
    cpu_epoch = (time.process_time() - cpu) / len(report["curve"])
    per_epoch = float(np.median([r["seconds"] for r in report["curve"]]))
    start = time.perf_counter()
    ranker.score(examples[:1000])
    score_s = time.perf_counter() - start
    params = sum(p.numel() for p in ranker.net.parameters())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    command = "LAMP_DATA_DIR=/work/shared/datasets python benchmarks/bench_ranker.py " + \
        " ".join(shlex.quote(a) for a in sys.argv[1:])
    hp = ranker.hparams
    lines = ["# Ranker benchmark", "", "```", command.strip(), "```", "",
             f"CPython {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, torch "
             f"{torch.__version__} ({torch.get_num_threads()} threads), device={ranker.device} (load average "
             f"{os.getloadavg()[0]:.1f} at the end: the machine is shared, timings are noisy).",
             f"{len(examples):,} ICEWS14 valid queries x M={args.m} candidates, evidence L <= {args.l} "
             f"(mean {np.mean(lengths):.1f} events per candidate); EnergyRanker dim={hp['dim']}, "
             f"layers={hp['layers']}, heads={hp['heads']}, batch {hp['batch_size']} queries, "
             f"{params:,} parameters ({log.num_entities:,} entity embeddings).", "",
             "| measure | value |", "|---|---:|",
             f"| build examples (retrieve + collate inputs) | {build_s:.1f} s |",
             f"| training epoch over {len(examples):,} examples (median of {len(report['curve'])}) | "
             f"{per_epoch:.1f} s |",
             f"| CPU time per epoch (all threads; excludes waiting for a shared CPU) | {cpu_epoch:.1f} s |",
             f"| per example per epoch (wall) | {1000 * per_epoch / len(examples):.2f} ms |",
             f"| score 1,000 examples | {score_s:.2f} s |",
             f"| peak RSS | {peak_mb:.0f} MB |",
             "", "Epochs: " + ", ".join(f"{r['seconds']:.1f} s (train loss {r['train_loss']:.3f})"
                                        for r in report["curve"])]
    text = "\n".join(lines) + "\n"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
