"""Temporal logical rules: the columnar :class:`RuleSet`, its JSON save format and rule verbalisation.

A rule predicts a head event ``(X, head, Y, t)`` from a body of earlier events:

- length 1: ``(X, b1, Y, t1)`` with ``t1 < t``;
- length 2: ``(X, b1, Z, t1), (Z, b2, Y, t2)`` with ``t1 <= t2 < t`` and ``Y != X``.

Relations live in the query space ``0 .. 2R-1``: ``r + R`` is the inverse of ``r`` (``(Y, r+R, X)`` is the
event ``(X, r, Y)`` read backwards). ``confidence = rule_support / body_support``: of all body instances in
the mining events, the share followed (later, within the optional window) by the head between the same
``X`` and ``Y``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lamp.data.eventlog import EventLog
from lamp.errors import ArtifactError, ConfigError

FORMAT = "lamp-rules"
VERSION = 1
_COLUMNS = ("head", "body1", "body2", "rule_support", "body_support")


@dataclass(frozen=True)
class RuleSet:
    """Rules as parallel arrays (one row per rule), sorted by head, length, body.

    ``body2 == -1`` marks a length-1 rule. ``provenance`` records the data fingerprint, the mining
    configuration and the mining cutoff (``last_time``: the latest event time the counts saw).
    """

    num_relations: int  # R of the log (relations 0..R-1; R..2R-1 are inverses)
    head: np.ndarray  # int32 [n]
    body1: np.ndarray  # int32 [n]
    body2: np.ndarray  # int32 [n], -1 for length 1
    rule_support: np.ndarray  # int64 [n]
    body_support: np.ndarray  # int64 [n]
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.head)
        if any(len(getattr(self, c)) != n for c in _COLUMNS):
            raise ArtifactError("rule columns have different lengths; the rule set is corrupt.")

    def __len__(self) -> int:
        return len(self.head)

    @property
    def confidence(self) -> np.ndarray:
        """float64 [n]: rule support / body support."""
        return self.rule_support / np.maximum(self.body_support, 1)

    @property
    def length(self) -> np.ndarray:
        return np.where(self.body2 >= 0, 2, 1).astype(np.int8)

    @property
    def last_time(self) -> float:
        """Latest event time the mining counts saw; queries must come strictly after it."""
        return float(self.provenance.get("last_time", np.inf))

    # -- selection ---------------------------------------------------------------------------------
    def select(self, mask: np.ndarray) -> RuleSet:
        """The rules where ``mask`` is true (order kept)."""
        m = np.asarray(mask, dtype=bool)
        return RuleSet(self.num_relations, self.head[m], self.body1[m], self.body2[m], self.rule_support[m],
                       self.body_support[m], dict(self.provenance))

    def filter(self, *, min_support: int = 1, min_confidence: float = 0.0,
               lengths: tuple[int, ...] = (1, 2)) -> RuleSet:
        """Rules with at least ``min_support`` confirmed body instances and ``min_confidence``."""
        keep = (self.rule_support >= min_support) & (self.confidence >= min_confidence)
        keep &= np.isin(self.length, np.asarray(lengths, dtype=np.int8))
        return self.select(keep)

    def top(self, k: int, *, min_support: int = 1) -> np.ndarray:
        """Positions of the ``k`` most confident rules with ``min_support`` (ties: more support first)."""
        cand = np.flatnonzero(self.rule_support >= min_support)
        order = np.lexsort((-self.rule_support[cand], -self.confidence[cand]))
        return cand[order[:k]]

    def content_hash(self) -> str:
        """A hash of the rules themselves (every column), for cache keys."""
        digest = hashlib.sha256(str(self.num_relations).encode())
        for c in _COLUMNS:
            digest.update(np.ascontiguousarray(getattr(self, c)).tobytes())
        return digest.hexdigest()[:16]

    def counts(self) -> dict[str, int]:
        lengths = self.length
        return {"rules": len(self), "length_1": int((lengths == 1).sum()), "length_2": int((lengths == 2).sum()),
                "heads": int(np.unique(self.head).size)}

    # -- text --------------------------------------------------------------------------------------
    def rule_text(self, i: int, log: EventLog) -> str:
        """``X Mobilize Y <= X Threaten Y earlier`` (relation names from the log)."""
        h, b1, b2 = int(self.head[i]), int(self.body1[i]), int(self.body2[i])
        head = atom_text(log, h, "X", "Y", self.num_relations)
        if b2 < 0:
            return f"{head} <= {atom_text(log, b1, 'X', 'Y', self.num_relations)} earlier"
        return (f"{head} <= {atom_text(log, b1, 'X', 'Z', self.num_relations)}, then "
                f"{atom_text(log, b2, 'Z', 'Y', self.num_relations)}")

    def verbalize(self, i: int, log: EventLog) -> str:
        """The rule text with its confidence: ``... earlier  [conf 0.412 = 120/291]``."""
        return (f"{self.rule_text(i, log)}  [conf {self.confidence[i]:.3f} = "
                f"{int(self.rule_support[i])}/{int(self.body_support[i])}]")

    # -- persistence -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "num_relations": self.num_relations,
                "provenance": self.provenance, "rules": {c: getattr(self, c).tolist() for c in _COLUMNS}}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write JSON atomically (a temp file renamed into place)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, path)
        return path

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "<dict>") -> RuleSet:
        if d.get("format") != FORMAT or int(d.get("version", -1)) != VERSION:
            raise ArtifactError(f"{source} is not a lamp rule set of version {VERSION} "
                                f"(format={d.get('format')!r}, version={d.get('version')!r}); mine the rules again.")
        try:
            cols = d["rules"]
            i32, i64 = (lambda c: np.asarray(cols[c], dtype=np.int32)), (lambda c: np.asarray(cols[c], dtype=np.int64))
            return cls(int(d["num_relations"]), i32("head"), i32("body1"), i32("body2"), i64("rule_support"),
                       i64("body_support"), dict(d.get("provenance", {})))
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{source}: the rule set is corrupt ({exc}); mine the rules again.") from exc

    @classmethod
    def load(cls, path: str | os.PathLike[str], log: EventLog | None = None) -> RuleSet:
        """Read a rule set; with ``log``, check it was mined on the same data (fingerprint)."""
        path = Path(path)
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"cannot read the rule set {path}: {exc}. Fix: mine the rules again.") from exc
        rules = cls.from_dict(d, str(path))
        if log is not None:
            rules.check_log(log)
        return rules

    def check_log(self, log: EventLog) -> None:
        """Raise :class:`ConfigError` when ``log`` does not speak the rules' relations.

        Rules mined by this lamp record the relation vocabulary they were mined on: they apply to any
        log with the same relations (a caller's own history in ``lamp.Pipeline.predict``). Older rule
        sets only recorded the data fingerprint, which must then match exactly.
        """
        rel_fp = self.provenance.get("relations")
        if rel_fp is not None:
            if rel_fp != relations_fingerprint(log):
                raise ConfigError(f"these rules were mined on the relations of {self.provenance.get('dataset')!r}, "
                                  f"but the log {log.name!r} has other relation names. Fix: mine the rules on this log "
                                  "(lamp.rules.mine_rules).")
            return
        fp = self.provenance.get("fingerprint")
        if fp is not None and fp != log.fingerprint():
            raise ConfigError(f"these rules were mined on data with fingerprint {fp} ({self.provenance.get('dataset')}),"
                              f" but the log {log.name!r} has fingerprint {log.fingerprint()}. "
                              "Fix: mine the rules on this log (lamp.rules.mine_rules).")
        if log.num_relations != self.num_relations:
            raise ConfigError(f"the rules know {self.num_relations} relations, the log {log.name!r} has "
                              f"{log.num_relations}. Fix: mine the rules on this log.")


def relations_fingerprint(log: EventLog) -> str:
    """A short hash of the log's relation names, in id order."""
    import hashlib

    return hashlib.sha256("\n".join(log.relations.names).encode("utf-8")).hexdigest()[:16]


def atom_text(log: EventLog, rel: int, a: str, b: str, num_relations: int) -> str:
    """``a <relation> b`` for a query-space relation; an inverse relation swaps the variables."""
    if rel >= num_relations:
        return f"{b} {log.relations.name(rel - num_relations)} {a}"
    return f"{a} {log.relations.name(rel)} {b}"


def empty_ruleset(num_relations: int, provenance: dict[str, Any] | None = None) -> RuleSet:
    z32, z64 = np.zeros(0, np.int32), np.zeros(0, np.int64)
    return RuleSet(num_relations, z32, z32.copy(), z32.copy(), z64, z64.copy(), dict(provenance or {}))
