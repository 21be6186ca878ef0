"""Few-shot demonstrations: built from the TRAIN split, supplied by hand, or read from the paper's files.

Procedure of :func:`build_demonstrations` (seeded, train rows only):

1. Co-occurrence statistics. For a seeded sample of train events (the "effects"), the candidate
   causes are the train events strictly earlier, within ``window`` time units, that share an entity
   with the effect (subject or object; the subject alone for data without objects). For every
   relation pair we count on how many effects ``r_cause`` appears before ``r_effect`` (``n``), and
   score the pair by a shrunk lift ``n / (expected + 5)`` with ``expected = n_cause * n_effect / N``,
   so that pairs seen a handful of times do not win on chance alone.
2. Shots. Train events are visited in a seeded random order; an event becomes a shot when at least
   ``min_causes`` of its candidate causes have lift >= ``min_lift`` (and at least 3 supporting
   effects; a last pass drops the lift threshold, with a warning, for dense data where no pair stands
   out). Its causes are the highest-lift ones (ties: most recent), one per unordered entity pair
   and relation (ICEWS often records both directions), never the effect's own triple, up to
   ``max_causes``, listed most recent first. A first pass takes at most one shot per effect
   relation, so the shots show varied event types.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lamp.data.eventlog import EventLog
from lamp.data.history import Postings, involvement
from lamp.data.render import relation_text
from lamp.errors import ConfigError, DataFormatError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoEvent:
    """An event of a demonstration, as text fields (``row`` is its log row when it came from data)."""

    date: str
    subject: str
    relation: str
    object: str = ""
    headline: str = ""
    row: int | None = None


@dataclass(frozen=True)
class Demonstration:
    effect: DemoEvent
    causes: tuple[DemoEvent, ...]
    source: str = ""  # "train", "yaml", "paper"


def demo_event_from_row(log: EventLog, row: int, level: str = "name") -> DemoEvent:
    t, s, r, o = log.event(row)
    texts = log.texts
    return DemoEvent(log.time_spec.format(t), log.entities.name(s), relation_text(log, r, level),
                     log.entities.name(o) if o >= 0 else "", str(texts[row]) if texts is not None else "", row)


@dataclass(frozen=True)
class _Cols:
    """The log's columns as numpy arrays, read once (the EventLog properties go through pandas)."""

    t: np.ndarray
    s: np.ndarray
    r: np.ndarray
    o: np.ndarray
    num_relations: int

    @classmethod
    def of(cls, log: EventLog) -> _Cols:
        return cls(log.times, log.subjects, log.rels, log.objects, log.num_relations)


def _candidate_causes(c: _Cols, index: Postings, row: int, window: float) -> np.ndarray:
    t = c.t[row]
    rows = index.union([int(c.s[row]), int(c.o[row])], row)  # the rows of its entities before it
    times = c.t[rows]
    return rows[(times < t) & (times >= t - window)]


def relation_lift(log: EventLog, index: Postings, effects: np.ndarray, window: float) -> tuple[np.ndarray, np.ndarray]:
    """``(shrunk lift, support)`` matrices [R_cause, R_effect] over the given effect rows."""
    c = _Cols.of(log)
    R = c.num_relations
    pair = np.zeros((R, R), dtype=np.int64)
    n_cause = np.zeros(R, dtype=np.int64)
    n_effect = np.zeros(R, dtype=np.int64)
    for row in effects:
        causes = np.unique(c.r[_candidate_causes(c, index, int(row), window)])
        re_ = int(c.r[row])
        pair[causes, re_] += 1
        n_cause[causes] += 1
        n_effect[re_] += 1
    expected = np.outer(n_cause, n_effect).astype(np.float64) / max(len(effects), 1)
    return pair / (expected + 5.0), pair


def build_demonstrations(
    log: EventLog,
    n_shots: int,
    seed: int,
    *,
    window: float | None = None,
    max_causes: int = 4,
    min_causes: int = 2,
    min_lift: float = 1.0,
    sample_size: int = 2000,
    level: str = "name",
) -> list[Demonstration]:
    """``n_shots`` demonstrations from the train split (see the module docstring for the procedure).

    ``window`` is in dataset time units; by default 5% of the train period.
    """
    if n_shots <= 0:
        return []
    train_end = log.split_ends[0]
    times = log.times[:train_end]
    t0, t1 = float(times[0]), float(times[-1])
    window = float(window) if window else max((t1 - t0) * 0.05, log.time_spec.granularity)
    index = involvement(log.edges(train_end))
    rng = np.random.default_rng(seed)
    eligible = np.flatnonzero(times >= t0 + window)
    if eligible.size == 0:
        raise ConfigError(f"{log.name}: the train split spans {t1 - t0:g} time units, less than the demonstration "
                          f"window {window:g}; set a smaller demo window.")
    stats_rows = rng.choice(eligible, size=min(sample_size, eligible.size), replace=False)
    lift, support = relation_lift(log, index, stats_rows, window)
    cols = _Cols.of(log)
    shots: list[Demonstration] = []
    used_effect_rel: set[int] = set()
    order = rng.permutation(eligible)[: 20 * sample_size]
    # Passes: varied effect relations, then any relation, then (dense data such as a handful of
    # ratings, where no pair stands out) without the lift threshold, with a warning.
    for diverse, lift_floor in ((True, min_lift), (False, min_lift), (False, 0.0)):
        if lift_floor == 0.0 and len(shots) < n_shots:
            logger.warning("%s: only %d of %d demonstrations have >= %d causes of lift >= %g; relaxing the "
                           "lift threshold for the rest", log.name, len(shots), n_shots, min_causes, min_lift)
        for row in order:
            if len(shots) >= n_shots:
                break
            row = int(row)
            if any(d.effect.row == row for d in shots) or (diverse and int(cols.r[row]) in used_effect_rel):
                continue
            causes = _pick_causes(cols, index, row, window, lift, support, max_causes, lift_floor)
            if len(causes) < min_causes:
                continue
            used_effect_rel.add(int(cols.r[row]))
            shots.append(Demonstration(demo_event_from_row(log, row, level),
                                       tuple(demo_event_from_row(log, c, level) for c in causes), "train"))
    if len(shots) < n_shots:
        logger.warning("%s: found only %d of %d demonstrations with >= %d earlier causes; using %d",
                       log.name, len(shots), n_shots, min_causes, len(shots))
    return shots


def _pick_causes(c: _Cols, index: Postings, row: int, window: float, lift: np.ndarray,
                 support: np.ndarray, max_causes: int, min_lift: float) -> list[int]:
    rows = _candidate_causes(c, index, row, window)
    if rows.size == 0:
        return []
    re_ = int(c.r[row])
    rc = c.r[rows]
    score = np.where(support[rc, re_] >= 3, lift[rc, re_], 0.0)
    ok = score >= min_lift if min_lift > 0 else np.ones(len(rows), dtype=bool)
    rows, score = rows[ok], score[ok]
    order = np.lexsort((-rows, -score))  # highest lift first, then most recent

    def key(r: int) -> tuple[int, int, int]:
        s, o = int(c.s[r]), int(c.o[r])
        if o < 0:  # sequence data: one user's events; repeats of a type are distinct events
            return s, int(c.r[r]), r
        return min(s, o), int(c.r[r]), max(s, o)

    picked: list[int] = []
    seen = {key(row)}
    for cand in rows[order]:
        k = key(int(cand))
        if k in seen:
            continue
        seen.add(k)
        picked.append(int(cand))
        if len(picked) >= max_causes:
            break
    return sorted(picked, reverse=True)


# -- hand-written and published demonstrations ------------------------------------------------------------
def _demo_event(d: Mapping[str, Any], where: str) -> DemoEvent:
    if not isinstance(d, Mapping):
        raise ConfigError(f"{where}: expected a mapping with subject, relation, object, date; got {d!r}.")
    missing = [k for k in ("relation", "date") if not str(d.get(k, "")).strip()]
    if missing:
        raise ConfigError(f"{where}: missing field(s) {missing} in {dict(d)!r}. Fix: give every demonstration "
                          "event at least relation and date (and subject/object for relational data).")
    return DemoEvent(str(d["date"]), str(d.get("subject", "")), str(d["relation"]), str(d.get("object", "")),
                     str(d.get("headline", "")))


def demo_records(demos: Sequence[Demonstration]) -> list[dict[str, Any]]:
    """Demonstrations as records that :func:`demos_from_records` reads back."""
    keys = ("date", "subject", "relation", "object", "headline")
    return [{"effect": {k: getattr(d.effect, k) for k in keys},
             "causes": [{k: getattr(c, k) for k in keys} for c in d.causes]} for d in demos]


def demos_from_records(records: Sequence[Mapping[str, Any]]) -> list[Demonstration]:
    """Demonstrations written in YAML: ``[{effect: {...}, causes: [{...}, ...]}, ...]``."""
    out = []
    for i, rec in enumerate(records):
        where = f"demonstration {i + 1}"
        if not isinstance(rec, Mapping) or "effect" not in rec or not rec.get("causes"):
            raise ConfigError(f"{where}: expected {{effect: {{...}}, causes: [...]}}; got {rec!r}.")
        causes = tuple(_demo_event(c, f"{where}, cause {j + 1}") for j, c in enumerate(rec["causes"]))
        out.append(Demonstration(_demo_event(rec["effect"], f"{where}, effect"), causes, "yaml"))
    return out


# "cause type" is a typo in one block of the paper's GDELT file (example 6).
_PAPER_KEYS = {"event headline": "headline", "event type": "relation", "cause type": "relation", "event time": "date", "subject name": "subject",
               "object name": "object", "product category": "relation", "summary text": "headline"}


def _paper_blocks(text: str) -> tuple[dict[str, str] | None, list[dict[str, str]]]:
    """The effect block and the cause blocks of one example written in the paper's key: value layout."""
    effect: dict[str, str] | None = None
    causes: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for line in text.splitlines():
        s = " ".join(line.split())
        low = s.lower()
        if low.startswith("effect event"):
            current = effect = {}
        elif re.match(r"cause event \d+", low):
            current = {}
            causes.append(current)
        elif current is not None and ":" in s:
            key, value = s.split(":", 1)
            field = _PAPER_KEYS.get(key.strip().lower())
            if field and field not in current:
                current[field] = value.strip()
    return effect, causes


def _paper_demo(effect: dict[str, str] | None, causes: list[dict[str, str]], where: str) -> Demonstration:
    if effect is None or not causes:
        raise DataFormatError("expected an 'effect event' block and 'cause event N' blocks.", path=where,
                              fix="use the paper's prompt files unchanged.")
    try:
        return Demonstration(_demo_event(effect, where), tuple(_demo_event(c, where) for c in causes), "paper")
    except ConfigError as exc:
        raise DataFormatError(str(exc), fix="use the paper's prompt files unchanged.") from exc


def load_paper_gdelt_demos(path: str | Path) -> list[Demonstration]:
    """The 16 demonstrations of the paper's ``gdelt_16shot.txt`` (GDELT 2022 events with headlines)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"The paper's GDELT prompt file was not found at {path}. Put lamp-gdelt/ in the data "
                          "directory (LAMP_DATA_DIR) or use demos: train.")
    text = path.read_text(encoding="utf-8")
    text = text.split("Now I give you an effect event", 1)[0]
    chunks = re.split(r"^Example \d+\s*[:\uff1a]", text, flags=re.MULTILINE)[1:]
    return [_paper_demo(*_paper_blocks(c), f"{path} example {i + 1}") for i, c in enumerate(chunks)]


def load_paper_amazon_demos(folder: str | Path) -> list[Demonstration]:
    """The paper's Amazon demonstrations: ``prompt_user_k.txt`` (effect) + ``prompt_assistant_k.txt`` (causes)."""
    folder = Path(folder)
    users = sorted(folder.glob("prompt_user_*.txt"), key=lambda p: int(re.sub(r"\D", "", p.stem) or 0))
    if not users:
        raise ConfigError(f"No prompt_user_*.txt files in {folder}. Put amazon/lamp-prompts/ in the data "
                          "directory (LAMP_DATA_DIR) or use demos: train.")
    out = []
    for user in users:
        assistant = user.with_name(user.name.replace("prompt_user_", "prompt_assistant_"))
        effect, _ = _paper_blocks(user.read_text(encoding="utf-8"))
        _, causes = _paper_blocks(assistant.read_text(encoding="utf-8") if assistant.is_file() else "")
        out.append(_paper_demo(effect, causes, str(user)))
    return out
