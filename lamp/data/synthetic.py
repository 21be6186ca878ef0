"""Synthetic event logs of any size with the statistics of a real one, for scale benchmarks.

:func:`source_stats` reads what a log's shape is made of; :func:`synthesize` draws a log of
``num_events`` events from it; :func:`write_renet` writes it as a RE-Net folder that
:func:`lamp.data.load.load_dataset` reads like the real data (so a benchmark of "load" measures the
real loader).

The process, per event (one time step after another, ``events_per_step`` drawn from the source's
own per-step counts, so a larger log spans more steps, not denser ones):

- with probability ``novel_rate`` (the source's share of events whose ``(s, r, o)`` never occurred
  at an earlier step, measured over its second half) a *novel* event: the ``(s, r)`` of a random
  source event and the object of another random source event with the same relation, which keeps
  the subject, relation and relation-object frequency distributions of the source;
- otherwise a *repeat*: the triple of a random event ``L`` steps earlier, ``L`` drawn from the
  source's gaps between consecutive occurrences of a triple (burstiness: most repeats follow
  within days, a few after months). Copying from the past keeps the frequencies in expectation
  and makes popular triples more popular, as in the real data.

Entities and relations are the source's (same vocabularies, same names, so CAMEO still applies);
the number of distinct entities does not grow with the log. Everything is drawn from one seeded
``numpy.random.Generator``: the same (source, size, seed) gives the same log.

>>> stats = source_stats(load_dataset("icews18"))                         # doctest: +SKIP
>>> fake = synthesize(stats, 1_000_000, seed=0)                           # doctest: +SKIP
>>> write_renet(fake, Path("/tmp/icews18-x1m"))                           # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lamp.data.eventlog import SPLITS, EventLog, TimeSpec, build_event_log
from lamp.errors import ConfigError


@dataclass(frozen=True)
class SourceStats:
    """What :func:`synthesize` needs from a real log (arrays of the source, not summaries)."""

    name: str
    subjects: np.ndarray  # int32 [N] of the source events
    relations: np.ndarray
    objects: np.ndarray
    rel_ptr: np.ndarray  # int64 [R + 1]: source events grouped by relation (positions in ``rel_rows``)
    rel_rows: np.ndarray  # int64 [N]
    events_per_step: np.ndarray  # int64: events at each distinct time of the source
    repeat_gaps: np.ndarray  # int64: steps between consecutive occurrences of a triple
    novel_rate: float  # share of events whose triple is new at its step (second half of the source)
    split_shares: tuple[float, float]  # cumulative share of events in train, train + valid
    entities: tuple[str, ...]
    relation_names: tuple[str, ...]
    first_time: float
    step: float  # time between consecutive steps, in the log's units
    time_spec: TimeSpec


def _step_index(times: np.ndarray, step: float) -> np.ndarray:
    return np.rint((times - times[0]) / step).astype(np.int64)


def triple_codes(log: EventLog) -> np.ndarray:
    """One int64 code per row for its ``(subject, relation, object)``."""
    s, r, o = (np.asarray(a, dtype=np.int64) for a in (log.subjects, log.rels, log.objects))
    return (s * log.num_relations + r) * (log.num_entities + 1) + (o + 1)


def repeat_profile(codes: np.ndarray, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per event, whether its triple occurred at an earlier step, and the gaps (steps) of those repeats
    to the triple's previous step."""
    order = np.lexsort((steps, codes))
    c, st = codes[order], steps[order]
    idx = np.arange(len(c))
    new_code = np.ones(len(c), dtype=bool)
    new_code[1:] = c[1:] != c[:-1]
    new_step = new_code.copy()
    new_step[1:] |= st[1:] != st[:-1]
    group_start = np.maximum.accumulate(np.where(new_code, idx, 0))
    step_start = np.maximum.accumulate(np.where(new_step, idx, 0))
    repeated = step_start > group_start  # an earlier step of the same triple exists
    prev = st[np.maximum(step_start - 1, 0)]  # the last entry of the previous step of that triple
    out = np.zeros(len(c), dtype=bool)
    out[order] = repeated
    return out, (st - prev)[repeated]


def source_stats(log: EventLog) -> SourceStats:
    """The statistics of ``log`` that :func:`synthesize` reproduces."""
    if len(log) < 2 or not log.has_objects:
        raise ConfigError(f"a synthetic log needs a source with events that have objects; {log.name!r} has "
                          f"{len(log)} events (has objects: {log.has_objects}).")
    times = log.times
    step = float(log.time_spec.granularity) if log.time_spec.granularity > 0 else 1.0
    steps = _step_index(times, step)
    _, per_step = np.unique(steps, return_counts=True)
    repeated, gaps = repeat_profile(triple_codes(log), steps)
    half = len(log) // 2
    rels = np.asarray(log.rels, dtype=np.int64)
    rel_rows = np.argsort(rels, kind="stable")
    ends = log.split_ends
    return SourceStats(
        log.name, np.asarray(log.subjects, np.int32), np.asarray(log.rels, np.int32), np.asarray(log.objects, np.int32),
        np.searchsorted(rels[rel_rows], np.arange(log.num_relations + 1)).astype(np.int64), rel_rows,
        per_step.astype(np.int64), gaps, float(1.0 - repeated[half:].mean()),
        (ends[0] / len(log), ends[1] / len(log)), log.entities.names, log.relations.names, float(times[0]), step, log.time_spec)


def synthesize(stats: SourceStats, num_events: int, *, seed: int = 0, name: str | None = None) -> EventLog:
    """A log of ``num_events`` events drawn with the statistics of the source (module docstring)."""
    if num_events < 3:
        raise ConfigError(f"num_events must be at least 3 (one per split), got {num_events}.")
    rng = np.random.default_rng(seed)
    # events per step: the source's own counts, drawn until the total is reached
    mean = float(stats.events_per_step.mean())
    per_step = rng.choice(stats.events_per_step, size=int(num_events / mean * 1.2) + 8)
    cum = np.cumsum(per_step)
    n_steps = int(np.searchsorted(cum, num_events)) + 1
    per_step = per_step[:n_steps].copy()
    per_step[-1] -= int(cum[n_steps - 1]) - num_events
    step_of = np.repeat(np.arange(n_steps, dtype=np.int64), per_step)
    step_start = np.concatenate([[0], np.cumsum(per_step)[:-1]]).astype(np.int64)

    # who each event copies: itself (novel) or a random event `gap` steps earlier
    src = np.arange(num_events, dtype=np.int64)
    gap = rng.choice(stats.repeat_gaps, size=num_events) if len(stats.repeat_gaps) else np.zeros(num_events, np.int64)
    target_step = step_of - gap
    repeat = (rng.random(num_events) >= stats.novel_rate) & (target_step >= 0) & (gap > 0)
    ts = target_step[repeat]
    src[repeat] = step_start[ts] + (rng.random(len(ts)) * per_step[ts]).astype(np.int64)
    while True:  # pointer jumping: every event ends at the novel event its chain of copies starts from
        nxt = src[src]
        if np.array_equal(nxt, src):
            break
        src = nxt

    # novel events: (s, r) of a random source event, o of a random source event with that relation
    novel = np.flatnonzero(~repeat)
    pick = rng.integers(0, len(stats.subjects), size=len(novel))
    r_new = stats.relations[pick].astype(np.int64)
    lo, hi = stats.rel_ptr[r_new], stats.rel_ptr[r_new + 1]
    o_pick = stats.rel_rows[lo + (rng.random(len(novel)) * (hi - lo)).astype(np.int64)]
    s = np.zeros(num_events, np.int32)
    r = np.zeros(num_events, np.int32)
    o = np.zeros(num_events, np.int32)
    s[novel], r[novel], o[novel] = stats.subjects[pick], r_new, stats.objects[o_pick]
    s, r, o = s[src], r[src], o[src]

    times = stats.first_time + step_of.astype(np.float64) * stats.step
    parts = {}
    bounds = [0, *(_step_boundary(step_start, int(share * num_events)) for share in stats.split_shares), num_events]
    for i, split in enumerate(SPLITS):
        a, b = bounds[i], max(bounds[i + 1], bounds[i] + 1)
        parts[split] = pd.DataFrame({"time": times[a:b], "subject": s[a:b], "relation": r[a:b], "object": o[a:b]})
    label = name or f"{stats.name}-synthetic-{num_events}"
    return build_event_log(label, parts, stats.entities, stats.relation_names, stats.time_spec,
                           meta={"format": "synthetic", "source": stats.name, "seed": seed})


def _step_boundary(step_start: np.ndarray, row: int) -> int:
    """The first row of the step that holds ``row`` (splits never cut a step)."""
    return int(step_start[max(int(np.searchsorted(step_start, row, side="right")) - 1, 0)])


def write_renet(log: EventLog, folder: Path, *, chunk: int = 2_000_000) -> Path:
    """Write ``log`` as a RE-Net folder (``{train,valid,test}.txt`` of ``s r o t`` ids, tab-separated, and
    ``entity2id.txt`` / ``relation2id.txt`` / ``stat.txt``); integer times, as the RE-Net files have."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for kind, names in (("entity", log.entities.names), ("relation", log.relations.names)):
        with open(folder / f"{kind}2id.txt", "w", encoding="utf-8") as fh:
            fh.writelines(f"{n}\t{i}\n" for i, n in enumerate(names))
    (folder / "stat.txt").write_text(f"{log.num_entities}\t{log.num_relations}\n", encoding="utf-8")
    for split in SPLITS:
        a, b = log.split_range(split)
        with open(folder / f"{split}.txt", "w", encoding="utf-8", newline="\n") as fh:
            for lo in range(a, b, chunk):
                hi = min(b, lo + chunk)
                block = pd.DataFrame({"s": log.subjects[lo:hi], "r": log.rels[lo:hi], "o": log.objects[lo:hi],
                                      "t": log.times[lo:hi].astype(np.int64)})
                block.to_csv(fh, sep="\t", header=False, index=False, lineterminator="\n")
    return folder
