"""A synthetic log where the evidence decides the answer, and its ranker examples.

Every valid query has M = 5 candidates with uninformative (random) base scores. The gold candidate's
evidence holds events of the "signal" relation (id 0); the others' evidence holds only other relations.
A ranker that reads the evidence can find the gold; one that does not is at chance (1/5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from lamp.data.eventlog import EventLog, TimeSpec, build_event_log
from lamp.data.queries import make_queries
from lamp.rank.examples import RankExample, build_examples
from lamp.tpp.base import CandidateTable
from lamp.types import Evidence

M = 5
SIGNAL = 0


@dataclass(frozen=True)
class Synthetic:
    log: EventLog
    table: CandidateTable
    evidences: list[Evidence]
    examples: list[RankExample]


def synthetic_log(n_days: int = 120, per_day: int = 12, n_ent: int = 40, n_rel: int = 8, seed: int = 0) -> EventLog:
    rng = np.random.default_rng(seed)
    t = np.repeat(np.arange(1, n_days + 1), per_day).astype(float)
    n = len(t)
    frame = pd.DataFrame({"time": t, "subject": rng.integers(0, n_ent, n), "relation": rng.integers(0, n_rel, n),
                          "object": rng.integers(0, n_ent, n)})
    cut1, cut2 = int(n * 0.6), int(n * 0.85)
    while t[cut1] == t[cut1 - 1]:  # splits must not share a day
        cut1 += 1
    while t[cut2] == t[cut2 - 1]:
        cut2 += 1
    parts = {"train": frame.iloc[:cut1], "valid": frame.iloc[cut1:cut2], "test": frame.iloc[cut2:]}
    return build_event_log("synthetic", parts, [f"E{i}" for i in range(n_ent)], [f"R{i}" for i in range(n_rel)],
                           TimeSpec("day", 86400.0))


def synthetic(seed: int = 0, n_queries: int = 400, per_candidate: int = 6) -> Synthetic:
    log = synthetic_log(seed=seed)
    rng = np.random.default_rng(seed + 1)
    queries = make_queries(log, "object", "valid", directions="object").sample(n_queries, seed=seed)
    f = queries.frame
    cands = np.zeros((len(f), M), dtype=np.int64)
    evidences = []
    qids, targets = f["query_id"].to_numpy(np.int64), f["target"].to_numpy(np.int64)
    ends, times = f["history_end"].to_numpy(np.int64), f["time"].to_numpy(np.float64)
    rels = log.rels
    signal_rows, other_rows = np.flatnonzero(rels == SIGNAL), np.flatnonzero(rels != SIGNAL)
    for i in range(len(f)):
        gold, end = int(targets[i]), int(ends[i])
        others = rng.choice(np.setdiff1d(np.arange(log.num_entities), [gold]), M - 1, replace=False)
        row = np.concatenate([[gold], others])
        rng.shuffle(row)
        cands[i] = row
        for c in row:
            pool_other = other_rows[other_rows < end]
            picked = rng.choice(pool_other, per_candidate, replace=False)
            if c == gold:
                picked[: 2] = rng.choice(signal_rows[signal_rows < end], 2, replace=False)
            picked = np.sort(picked)
            evidences.append(Evidence(int(qids[i]), int(c), picked.astype(np.int64),
                                      np.ones(len(picked), np.float32), float(times[i])))
    scores = rng.normal(size=(len(f), M)).astype(np.float32)
    table = CandidateTable("base:random", queries, M, cands, scores, np.ones(len(f)))
    return Synthetic(log, table, evidences, build_examples(log, table, evidences))
