"""The pipeline's stages as plain functions over typed inputs; :mod:`lamp.pipeline.run` orders them."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lamp.data.eventlog import EventLog
from lamp.data.queries import QuerySet, candidate_triple
from lamp.pipeline.artifacts import load_arrays, save_arrays, write_parquet
from lamp.tpp.base import CandidateTable
from lamp.types import AbductionRequest, AbductionResult, CauseEvent, Evidence

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitQueries:
    """The seeded query samples of a run: ``valid`` trains the ranker, ``test`` is reported."""

    valid: QuerySet
    test: QuerySet


# -- candidate tables ----------------------------------------------------------------------------
def save_table(table: CandidateTable, path: Path) -> None:
    save_arrays(path, candidates=table.candidates, scores=table.scores,
                gold_rank_filtered=table.gold_rank_filtered, query_id=table.queries.frame["query_id"].to_numpy())


def load_table(path: Path, method: str, queries: QuerySet, top_m: int) -> CandidateTable:
    arrays = load_arrays(path)
    if not np.array_equal(arrays["query_id"], queries.frame["query_id"].to_numpy()):
        from lamp.errors import ArtifactError

        raise ArtifactError(f"{path} was written for other queries; delete it and rerun.")
    return CandidateTable(method, queries, min(top_m, queries.num_candidates), arrays["candidates"],
                          arrays["scores"], arrays["gold_rank_filtered"])


# -- abduction -----------------------------------------------------------------------------------
def abduction_requests(log: EventLog, table: CandidateTable) -> list[AbductionRequest]:
    """One request per (query, candidate) of the top-M, the candidate as a full event."""
    q = table.queries
    f = q.frame
    out = []
    s_col, r_col, o_col = f["subject"].to_numpy(), f["relation"].to_numpy(), f["object"].to_numpy()
    qid, times, ends = f["query_id"].to_numpy(), f["time"].to_numpy(), f["history_end"].to_numpy()
    for i in range(len(q)):
        for pos, cand in enumerate(table.candidates[i]):
            s, r, o = candidate_triple(q.task, int(s_col[i]), int(r_col[i]), int(o_col[i]), int(cand),
                                       q.num_relations, log.num_entities)
            out.append(AbductionRequest(int(qid[i]), int(cand), pos, s, r, o, float(times[i]), int(ends[i])))
    return out


CAUSE_COLUMNS = ["query_id", "candidate", "cause_no", "subject", "relation", "object", "time", "text", "score",
                 "source", "explanation", "event_index", "subject_id", "relation_id", "object_id"]
RESULT_COLUMNS = ["query_id", "candidate", "n_causes", "parse_failures", "dropped_future", "error", "raw_text"]


def results_to_frames(results: Sequence[AbductionResult]) -> tuple[pd.DataFrame, pd.DataFrame]:
    causes, stats = [], []
    for res in results:
        stats.append((res.query_id, res.candidate, len(res.causes), res.parse_failures, res.dropped_future,
                      res.error or "", res.raw_text))
        for k, c in enumerate(res.causes):
            causes.append((res.query_id, res.candidate, k, c.subject, c.relation, c.object,
                           np.nan if c.time is None else c.time, c.text, c.score, c.source, c.explanation,
                           -1 if c.event_index is None else c.event_index, c.subject_id, c.relation_id, c.object_id))
    return pd.DataFrame(causes, columns=CAUSE_COLUMNS), pd.DataFrame(stats, columns=RESULT_COLUMNS)


def frames_to_results(causes: pd.DataFrame, stats: pd.DataFrame) -> list[AbductionResult]:
    grouped: dict[tuple[int, int], list[CauseEvent]] = {}
    for c in causes.to_dict("records"):
        grouped.setdefault((int(c["query_id"]), int(c["candidate"])), []).append(CauseEvent(
            str(c["subject"]), str(c["relation"]), str(c["object"]), None if pd.isna(c["time"]) else float(c["time"]),
            str(c["text"]), float(c["score"]), str(c["source"]), str(c["explanation"]),
            None if int(c["event_index"]) < 0 else int(c["event_index"]),
            int(c["subject_id"]), int(c["relation_id"]), int(c["object_id"])))
    return [AbductionResult(int(r["query_id"]), int(r["candidate"]),
                            tuple(grouped.get((int(r["query_id"]), int(r["candidate"])), ())), str(r["raw_text"]),
                            int(r["parse_failures"]), int(r["dropped_future"]), str(r["error"]) or None)
            for r in stats.to_dict("records")]


def save_abduction(results: Sequence[AbductionResult], folder: Path) -> None:
    causes, stats = results_to_frames(results)
    write_parquet(causes, folder / "causes.parquet")
    write_parquet(stats, folder / "results.parquet")


def load_abduction(folder: Path) -> list[AbductionResult]:
    return frames_to_results(pd.read_parquet(folder / "causes.parquet"), pd.read_parquet(folder / "results.parquet"))


def abduction_summary(results: Sequence[AbductionResult]) -> dict[str, Any]:
    n = len(results)
    return {
        "requests": n,
        "failed": sum(1 for r in results if r.error),
        "parse_failures": sum(r.parse_failures for r in results),
        "dropped_future": sum(r.dropped_future for r in results),
        "causes": sum(len(r.causes) for r in results),
        "causes_per_request": (sum(len(r.causes) for r in results) / n) if n else 0.0,
    }


# -- evidence ------------------------------------------------------------------------------------
def evidence_to_frame(evidences: Sequence[Evidence], log: EventLog, method: str, split: str) -> pd.DataFrame:
    """The retrieval layer's evidence table, tagged with the method and split it belongs to."""
    from lamp.retrieval.base import evidence_frame

    frame = evidence_frame(evidences, log)
    frame.insert(0, "split", split)
    frame.insert(0, "method", method)
    return frame


def frame_to_evidence(frame: pd.DataFrame, requests: Sequence[AbductionRequest]) -> list[Evidence]:
    groups = {k: g for k, g in frame.groupby(["query_id", "candidate"], sort=False)}
    out = []
    for req in requests:
        g = groups.get((req.query_id, req.candidate))
        if g is None:
            out.append(Evidence(req.query_id, req.candidate, np.zeros(0, np.int64), np.zeros(0, np.float32), req.time))
        else:
            out.append(Evidence(req.query_id, req.candidate, g["event_index"].to_numpy(np.int64),
                                g["retrieval_score"].to_numpy(np.float32), req.time))
    return out


def no_ranker_order(table: CandidateTable, evidences: Sequence[Evidence]) -> tuple[np.ndarray, np.ndarray]:
    """The unlearned ordering ``lamp[<abducer>,no_ranker]``: candidates by how strongly real events
    support their abduced causes (sum of retrieval scores of the evidence), base order breaking ties.

    Returns, per query, a permutation of positions 0..M-1 (best first) and the [Q, M, 2] sort keys
    (support, base score) aligned with the base positions: candidates equal in both stay tied.
    """
    m = table.candidates.shape[1]
    support = np.zeros(table.candidates.shape, dtype=np.float64)
    pos_of = {(int(qid), int(c)): (i, j) for i, qid in enumerate(table.queries.frame["query_id"].to_numpy())
              for j, c in enumerate(table.candidates[i])}
    for ev in evidences:
        ij = pos_of.get((ev.query_id, ev.candidate))
        if ij is not None:
            support[ij] = float(np.sum(ev.scores))
    base_pos = np.broadcast_to(np.arange(m), support.shape)
    return np.lexsort((base_pos, -support), axis=1), np.stack([support, table.scores.astype(np.float64)], axis=2)
