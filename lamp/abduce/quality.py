"""How good are abduced causes? One function for every abducer (LLM, rules, both).

>>> q = abduction_quality(log, requests, results, gold_triples={7: (12, 3, 40)})   # doctest: +SKIP
>>> q["grounded_share"], q["gold_in_causes"]                                       # doctest: +SKIP
(0.62, 0.18)

- ``grounded_share``: share of causes for which a real event with the same subject, relation and
  object exists strictly before the effect's time. Causes carrying ids (``subject_id`` ...) are
  matched by id; otherwise by name through the log's vocabularies (exact, then case- and
  space-insensitive). Rules causes are grounded by construction; for LLM causes this is the measure.
- ``distinct_causes_per_answer``: mean number of distinct (subject, relation, object) per result.
- ``parse_rate``: parsed causes / (parsed causes + parse failures); ``error_rate``: share of results
  whose abducer failed.
- ``gold_in_causes`` (with ``gold_triples``: query id -> gold (s, r, o) ids, data orientation): over
  results of those queries, the share whose grounded causes include an earlier event with the gold
  triple or its reverse ``(o, r, s)``; ``gold_in_causes_queries`` says over how many results.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lamp.data.eventlog import EventLog, Vocab
from lamp.errors import ConfigError
from lamp.types import AbductionRequest, AbductionResult, CauseEvent


def abduction_quality(log: EventLog, requests: Sequence[AbductionRequest], results: Sequence[AbductionResult],
                      gold_triples: Mapping[int, tuple[int, int, int]] | None = None) -> dict[str, Any]:
    """Quality measures of ``results`` (aligned with ``requests``); see the module docstring."""
    if len(requests) != len(results):
        raise ConfigError(f"abduction_quality got {len(requests)} requests but {len(results)} results; "
                          "pass the results in the order of their requests.")
    first = _first_times(log)
    ent, rel = _Names(log.entities), _Names(log.relations)
    n_causes = n_grounded = n_failures = n_errors = 0
    distinct: list[int] = []
    gold_hits, gold_total = 0, 0
    for req, res in zip(requests, results, strict=True):
        if (req.query_id, req.candidate) != (res.query_id, res.candidate):
            raise ConfigError(f"result ({res.query_id}, {res.candidate}) does not answer request "
                              f"({req.query_id}, {req.candidate}); keep results in request order.")
        n_failures += res.parse_failures
        n_errors += res.error is not None
        keys = set()
        grounded: set[tuple[int, int, int]] = set()
        for c in res.causes:
            triple = _triple(c, ent, rel)
            keys.add(triple if triple is not None else (c.subject.lower(), c.relation.lower(), c.object.lower()))
            n_causes += 1
            if triple is not None and first.get(triple, np.inf) < req.time:
                n_grounded += 1
                grounded.add(triple)
        distinct.append(len(keys))
        gold = None if gold_triples is None else gold_triples.get(req.query_id)
        if gold is not None:
            s, r, o = (int(x) for x in gold)
            gold_total += 1
            gold_hits += bool(grounded & {(s, r, o), (o, r, s)})
    n = len(results)
    return {
        "results": n,
        "causes": n_causes,
        "causes_per_answer": n_causes / n if n else 0.0,
        "distinct_causes_per_answer": float(np.mean(distinct)) if distinct else 0.0,
        "grounded_share": n_grounded / n_causes if n_causes else float("nan"),
        "parse_rate": n_causes / (n_causes + n_failures) if (n_causes + n_failures) else float("nan"),
        "parse_failures": n_failures,
        "error_rate": n_errors / n if n else 0.0,
        "gold_in_causes": gold_hits / gold_total if gold_total else float("nan"),
        "gold_in_causes_queries": gold_total,
    }


def _first_times(log: EventLog) -> dict[tuple[int, int, int], float]:
    """Earliest time of every (subject, relation, object) in the log."""
    f = log.frame
    key = (f["subject"].to_numpy().astype(np.int64) * log.num_relations + f["relation"].to_numpy()) \
        * (log.num_entities + 1) + (f["object"].to_numpy().astype(np.int64) + 1)
    uniq, first = np.unique(key, return_index=True)  # the log is time-sorted: first row = earliest
    times = f["time"].to_numpy()[first]
    o = uniq % (log.num_entities + 1) - 1
    sr = uniq // (log.num_entities + 1)
    return {(int(a), int(b), int(c)): float(t) for a, b, c, t in
            zip(sr // log.num_relations, sr % log.num_relations, o, times, strict=True)}


class _Names:
    """Name -> id, exact first, then ignoring case, underscores and repeated spaces."""

    def __init__(self, vocab: Vocab) -> None:
        self.vocab = vocab
        self.loose = {_norm(n): i for i, n in enumerate(vocab.names)}

    def id(self, name: str) -> int:
        i = self.vocab.get(name)
        return i if i >= 0 else self.loose.get(_norm(name), -1)


def _norm(name: str) -> str:
    return " ".join(str(name).replace("_", " ").lower().split())


def _triple(c: CauseEvent, ent: _Names, rel: _Names) -> tuple[int, int, int] | None:
    """Ids of a cause: its own ids when all are set, else its names through the vocabularies."""
    if c.subject_id >= 0 and c.relation_id >= 0 and c.object_id >= 0:
        return c.subject_id, c.relation_id, c.object_id
    s = c.subject_id if c.subject_id >= 0 else ent.id(c.subject)
    r = c.relation_id if c.relation_id >= 0 else rel.id(c.relation)
    if c.object_id >= 0:
        o = c.object_id
    else:
        o = -1 if not c.object.strip() else ent.id(c.object)  # sequence data: no object
        if o < 0 and c.object.strip():
            return None
    if s < 0 or r < 0:
        return None
    return s, r, o
