"""The ``rules`` abducer: the real past events that instantiate mined rules for a candidate effect.

For a candidate ``(s, r, o, t)`` it applies the rules with head ``r`` from ``s`` to ``o`` and, with
``both_orientations``, those with head ``r^-1`` from ``o`` to ``s``. Every body event becomes a
:class:`~lamp.types.CauseEvent` with ``event_index`` set (a real event, so retrieval needs no fuzzy
matching), ``score = confidence x time decay``, ``source = "rules"`` and a readable explanation.

>>> abducer = RulesAbducer()                          # doctest: +SKIP  (mines the train split lazily)
>>> result = abducer.abduce(log, requests)[0]         # doctest: +SKIP
>>> result.causes[0].explanation                      # doctest: +SKIP
'Russia | Threaten | Ukraine (2014-03-01), 3 days before ... confidence 0.41 (120 of 291 cases in train)'
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lamp.components import Configurable, file_digest, load_settings, make_settings, not_in_key, save_settings
from lamp.data.eventlog import EventLog
from lamp.data.render import render_event, render_row
from lamp.errors import ConfigError, LeakageError
from lamp.rules.applier import Application, ApplyParams, RuleApplier
from lamp.rules.miner import MiningConfig, mine_rules
from lamp.rules.ruleset import RuleSet
from lamp.types import AbductionRequest, AbductionResult, CauseEvent

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RulesAbducerSettings:
    """Options of the ``rules`` abducer: what to mine (on train), which rules fire, how many causes."""

    rules_path: str | None = None  # a saved rule set (JSON) to use; mined on the train split when None or missing
    max_causes: int = 10  # causes per candidate, best first, one per real event
    both_orientations: bool = True  # also rules for the inverse relation read from the object's side
    mining: MiningConfig = field(default_factory=MiningConfig)
    params: ApplyParams = field(default_factory=ApplyParams)
    n_jobs: int = not_in_key(0)  # threads for rule application (0 = all cores)

    def __post_init__(self) -> None:
        if not isinstance(self.mining, MiningConfig):
            object.__setattr__(self, "mining", MiningConfig(**_tuple_lengths(dict(self.mining))))
        if not isinstance(self.params, ApplyParams):
            object.__setattr__(self, "params", ApplyParams(**dict(self.params)))
        if int(self.max_causes) < 1:
            raise ConfigError(f"rules abducer: max_causes must be >= 1, got {self.max_causes}.")


class RulesAbducer(Configurable):
    """Abduce causes from temporal rules mined on the train split (or loaded from ``rules_path``)."""

    name = "rules"
    Settings = RulesAbducerSettings
    uses_llm = False
    per_query = True  # a request's causes depend on it and the log only (lamp.parallel)

    def __init__(self, settings: RulesAbducerSettings | Mapping[str, Any] | None = None, *,
                 rules: RuleSet | None = None, **overrides: Any) -> None:
        s = self.settings = make_settings(RulesAbducerSettings, settings, overrides, where="abducer 'rules'")
        self.mining, self.params = s.mining, s.params
        self.max_causes = int(s.max_causes)
        self.both_orientations = s.both_orientations
        self.n_jobs = s.n_jobs
        self._rules = self._given_rules = rules
        self._rules_path = Path(s.rules_path).expanduser() if s.rules_path else None
        self._applier: RuleApplier | None = None

    def content_key(self) -> Any:
        if self._given_rules is not None:
            return self._given_rules.content_hash()
        if self._rules_path is not None and self._rules_path.is_file():
            return file_digest(self._rules_path)
        return None

    @property
    def rules(self) -> RuleSet | None:
        """The rule set in use (None until given, loaded or mined)."""
        return self._rules

    def save(self, folder: str | Path) -> None:
        """``component.json`` (settings) and, once known, the rule set as ``rules.json``."""
        save_settings(self, folder, files={"rules": "rules.json"} if self._rules is not None else {})
        if self._rules is not None:
            self._rules.save(Path(folder) / "rules.json")

    @classmethod
    def load(cls, folder: str | Path) -> RulesAbducer:
        settings, files = load_settings(cls, folder)
        rules = RuleSet.load(Path(folder) / files["rules"]) if "rules" in files else None
        return cls(settings, rules=rules)

    def applier(self, log: EventLog) -> RuleApplier:
        """The rule applier for ``log``: rules given, loaded, or mined on its train split once."""
        if self._applier is not None and self._applier.log.fingerprint() == log.fingerprint() \
                and len(self._applier.log) == len(log):
            return self._applier
        rules = self._rules
        if rules is None and self._rules_path is not None and self._rules_path.exists():
            rules = RuleSet.load(self._rules_path, log)
        if rules is None:
            rules = _mined(log, self.mining)
            if self._rules_path is not None:
                rules.save(self._rules_path)
        self._rules = rules
        self._applier = RuleApplier(rules, log, n_jobs=self.n_jobs)
        return self._applier

    def prepare(self, log: EventLog) -> None:
        """Mine (or load) the rules for ``log`` now, e.g. once before the requests fan out in chunks."""
        self.applier(log)

    def abduce(self, log: EventLog, requests: Sequence[AbductionRequest]) -> list[AbductionResult]:
        app = self.applier(log)
        return [AbductionResult(req.query_id, req.candidate, self.causes(log, req, app)) for req in requests]

    def causes(self, log: EventLog, req: AbductionRequest, app: RuleApplier | None = None) -> tuple[CauseEvent, ...]:
        """The cause events of one request, best first, one per real event."""
        app = app or self.applier(log)
        R = log.num_relations
        found = [(a, False) for a in app.explain(req.subject, req.relation, req.object, req.time, self.params)]
        if self.both_orientations:
            found += [(a, True) for a in app.explain(req.object, req.relation + R, req.subject, req.time, self.params)]
        found.sort(key=lambda x: -x[0].score)
        seen: set[int] = set()
        out: list[CauseEvent] = []
        for application, inverse in found:
            if any(row >= req.history_end for row in application.rows):
                raise LeakageError(f"internal error: rule evidence row {max(application.rows)} is not before the "
                                   f"effect (history_end={req.history_end}); please report this.")
            text = explanation(log, app, application, req, inverse)
            for row in application.rows:
                if row in seen:
                    continue
                seen.add(row)
                t, s, r, o = log.event(row)
                out.append(CauseEvent(
                    log.entities.name(s), log.relations.name(r), log.entities.name(o), t,
                    render_row(log, row), application.score, "rules", text, row, s, r, o))
            if len(out) >= self.max_causes:
                break
        return tuple(out[: self.max_causes])


_MINED: dict[tuple[Any, ...], RuleSet] = {}  # rules mined in this process (a run's rules and llm_rules abducers share them)


def _mined(log: EventLog, mining: MiningConfig) -> RuleSet:
    """Mine once per (log, mining config) in a process; rule sets are read-only after mining."""
    key = (log.fingerprint(), len(log), tuple(sorted(asdict(mining).items(), key=lambda kv: kv[0])))
    if key not in _MINED:
        if len(_MINED) >= 4:
            _MINED.pop(next(iter(_MINED)))
        _MINED[key] = mine_rules(log, mining)
    return _MINED[key]


def explanation(log: EventLog, app: RuleApplier, a: Application, req: AbductionRequest, inverse: bool) -> str:
    """``<body events>, <gap> before <effect>. Rule: <rule>; confidence 0.41 (120 of 291 cases in train)``."""
    rules = app.rules
    body = ", then ".join(_event_text(log, row) for row in a.rows)
    effect = render_event(log, req.subject, req.relation, req.object, req.time)
    rule = rules.rule_text(a.rule, log)
    side = " (read from the object's side)" if inverse else ""
    return (f"{body}, within {gap_text(log, req.time - a.first_time)} before {effect}{side}. Rule: {rule}; "
            f"confidence {a.confidence:.2f} ({int(rules.rule_support[a.rule])} of "
            f"{int(rules.body_support[a.rule])} cases in train)")


def _event_text(log: EventLog, row: int) -> str:
    t, s, r, o = log.event(row)
    return render_event(log, s, r, o, None, with_time=False) + f" ({log.time_spec.format(t)})"


def gap_text(log: EventLog, dt: float) -> str:
    """A time difference in words: ``3 days``, ``5 hours``, ``45 minutes`` or ``2 steps``."""
    spec = log.time_spec
    if spec.unit == "step":
        n = round(dt)
        return f"{n} step{'s' if n != 1 else ''}"
    seconds = dt * spec.seconds_per_unit
    for size, word in ((86400.0, "day"), (3600.0, "hour"), (60.0, "minute")):
        if seconds >= size or word == "minute":
            n = round(seconds / size)
            return f"{n} {word}{'s' if n != 1 else ''}"
    return ""  # pragma: no cover


def _tuple_lengths(d: dict[str, Any]) -> dict[str, Any]:
    """YAML gives lists; MiningConfig wants a tuple of lengths."""
    out = dict(d)
    if "lengths" in out:
        out["lengths"] = tuple(int(x) for x in out["lengths"])
    return out
