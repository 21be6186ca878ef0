"""Prompts as data: :class:`PromptSpec` (loaded from ``conf/prompt/*.yaml``) and the message builder.

A prompt is a system message (the instruction, the relation or category definitions and the answer
format), few-shot demonstrations as user/assistant turns, and a final user turn with the effect
event(s). The system message and the demonstrations are the same for every request of a run, so a
local backend reuses their KV cache and only the final turn is new work. Effect events are rendered
by :func:`lamp.data.render.render_event`, the one event-to-text function.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from lamp.abduce.demos import DemoEvent, Demonstration, demo_records, demos_from_records
from lamp.abduce.schema import CauseConstraints
from lamp.data.eventlog import EventLog
from lamp.data.render import SEP, render_event, render_row
from lamp.errors import ConfigError
from lamp.llm.json_decoding import SEPARATORS
from lamp.types import AbductionRequest

logger = logging.getLogger(__name__)

DEFINITION_SOURCES = ("cameo_roots", "relations", "none")
DEMO_SOURCES = ("train", "paper", "none")
LEVELS = ("name", "root")
MESSAGE_OVERHEAD = 8  # chat-template tokens around each message (role markers, separators)


@dataclass(frozen=True)
class PromptSpec:
    """One dataset family's prompt. Templates use ``str.format`` placeholders:

    - ``instruction``: ``{num_causes}``, ``{dataset}``
    - ``question``: ``{event}``, ``{num_causes}``
    - ``batched_question``: ``{events}``, ``{num_causes}``, ``{num_candidates}``, and optionally
      ``{date}``: when the template names it, the candidates (which share the query's time) are
      listed without their date and the date is printed once (about 12 tokens saved per candidate)

    ``definitions``: ``cameo_roots`` (the 20 CAMEO root codes), ``relations`` (the relation names),
    ``none``, or a list of ``{name, description}``. ``demos``: ``train`` (built from the train split,
    :func:`lamp.abduce.demos.build_demonstrations`), ``paper`` (the paper's published prompt files at
    ``paper_demos``, relative to the data directory), ``none``, or a list of
    ``{effect: {...}, causes: [...]}`` written by hand.
    """

    name: str
    instruction: str
    question: str = "Effect event: {event}\nList up to {num_causes} earlier events that could have caused it."
    batched_question: str = (
        "Candidate effect events:\n{events}\nFor each of the {num_candidates} candidates, list up to "
        "{num_causes} earlier events that could have caused it."
    )
    definitions: str | tuple[tuple[str, str], ...] = "cameo_roots"
    definitions_title: str = "Event types"
    demos: str | tuple[Demonstration, ...] = "train"
    paper_demos: str | None = None
    demo_window: float | None = None
    demo_max_causes: int = 4
    relation_level: str = "name"
    with_headline: bool = False
    history_hint: bool = True
    tokens_per_cause: int = 60
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"prompt {self.name!r}"
        if isinstance(self.definitions, str) and self.definitions not in DEFINITION_SOURCES:
            raise ConfigError(f"{where}: invalid definitions {self.definitions!r}. Valid choices are: "
                              f"{', '.join(DEFINITION_SOURCES)}, or a list of {{name, description}}.")
        if isinstance(self.demos, str) and self.demos not in DEMO_SOURCES:
            raise ConfigError(f"{where}: invalid demos {self.demos!r}. Valid choices are: {', '.join(DEMO_SOURCES)}, "
                              "or a list of {effect, causes}.")
        if self.demos == "paper" and not self.paper_demos:
            raise ConfigError(f"{where}: demos: paper needs paper_demos (a file or folder under the data directory).")
        if self.relation_level not in LEVELS:
            raise ConfigError(f"{where}: invalid relation_level {self.relation_level!r}. Valid choices are: "
                              f"{', '.join(LEVELS)}")
        checks = {"instruction": {"num_causes": 1, "dataset": "x"}, "question": {"event": "e", "num_causes": 1},
                  "batched_question": {"events": "e", "num_causes": 1, "num_candidates": 2, "date": "d"}}
        for name, values in checks.items():
            try:
                getattr(self, name).format(**values)
            except (KeyError, IndexError, ValueError) as exc:
                raise ConfigError(f"{where}: the {name} template has an invalid placeholder ({exc}). Valid "
                                  f"placeholders: {', '.join('{' + k + '}' for k in values)}; write {{{{ and }}}} "
                                  "for literal braces.") from exc


    def to_record(self) -> dict[str, Any]:
        """The spec as :func:`load_prompt_spec` reads it (e.g. to store a prompt inside a saved bundle)."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        if not isinstance(self.definitions, str):
            out["definitions"] = [{"name": n, "description": d} for n, d in self.definitions]
        if not isinstance(self.demos, str):
            out["demos"] = demo_records(self.demos)
        return out


# Dataset name prefix -> the prompt written for that family (conf/prompt/<family>.yaml).
PROMPT_FAMILIES = (("icews", "icews"), ("gdelt", "gdelt"), ("amazon", "amazon"))


def conf_dir() -> Path:
    """The config folder: ``$LAMP_CONF_DIR``, else the repository's ``conf/``."""
    env = os.environ.get("LAMP_CONF_DIR")
    if env:
        return Path(env).resolve()
    return (Path(__file__).resolve().parents[2] / "conf").resolve()


def default_prompt(dataset: str) -> Path:
    """The prompt of a dataset's family (``icews14`` -> ``conf/prompt/icews.yaml``), for LLM abducers
    configured without one."""
    for prefix, family in PROMPT_FAMILIES:
        if Path(dataset).name.lower().startswith(prefix):
            return conf_dir() / "prompt" / f"{family}.yaml"
    raise ConfigError(
        f"No prompt is written for dataset {dataset!r} (lamp's prompts are for icews*, gdelt* and amazon* data). "
        "Fix: give the LLM abducer a prompt, e.g. abducers=[{'name': 'llm', 'prompt': 'my_prompt.yaml'}] "
        "(copy conf/prompt/icews.yaml and describe your events), or prompt=<name> on the command line.")


def load_prompt_spec(source: str | os.PathLike[str] | Mapping[str, Any]) -> PromptSpec:
    """A :class:`PromptSpec` from a YAML file (``conf/prompt/icews.yaml``) or a mapping (a Hydra node)."""
    if isinstance(source, Mapping):
        data = dict(source)
        where = "prompt config"
    else:
        path = Path(source)
        named = conf_dir() / "prompt" / f"{source}.yaml"
        if not path.is_file() and path.suffix == "" and named.is_file():
            path = named  # a prompt name: conf/prompt/<name>.yaml
        if not path.is_file():
            raise ConfigError(f"Prompt file not found: {path}. Give a YAML file such as conf/prompt/icews.yaml.")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
        where = str(path)
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of prompt fields, got {type(data).__name__}.")
    valid = [f.name for f in fields(PromptSpec) if f.name != "extra"]
    unknown = sorted(set(data) - set(valid) - {"_target_"})
    if unknown:
        raise ConfigError(f"{where}: unknown prompt field(s) {unknown}. Valid fields are: {', '.join(valid)}")
    for required in ("name", "instruction"):
        if not data.get(required):
            raise ConfigError(f"{where}: the prompt needs a non-empty {required!r}.")
    data.pop("_target_", None)
    defs = data.get("definitions")
    if isinstance(defs, Sequence) and not isinstance(defs, str):
        try:
            data["definitions"] = tuple((str(d["name"]), str(d.get("description", ""))) for d in defs)
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"{where}: definitions must be a list of {{name, description}}.") from exc
    demos = data.get("demos")
    if isinstance(demos, Sequence) and not isinstance(demos, str):
        data["demos"] = tuple(demos_from_records(list(demos)))
    return PromptSpec(**data)


# -- text pieces -----------------------------------------------------------------------------------------
def definitions_text(spec: PromptSpec, log: EventLog | None) -> str:
    """The definitions block of the system message ("" for ``none``)."""
    if spec.definitions == "none":
        return ""
    if spec.definitions == "cameo_roots":
        from lamp.data.cameo import cameo_root_definitions

        lines = [f"{code} {name}: {desc}".rstrip(": ") for code, name, desc in cameo_root_definitions()]
    elif spec.definitions == "relations":
        names = list(log.relations.names) if log is not None else []
        lines = ["; ".join(names)] if len(names) > 40 else [f"- {n}" for n in names]
    else:
        pairs: tuple[tuple[str, str], ...] = spec.definitions  # type: ignore[assignment]
        lines = [f"- {n}: {d}".rstrip(": ") for n, d in pairs]
    return f"{spec.definitions_title}:\n" + "\n".join(lines)


def _date_example(log: EventLog) -> str:
    ts = log.time_spec
    if ts.origin is None:
        return "t=<minutes> min"
    return "YYYY-MM-DD" if ts.seconds_per_unit * ts.granularity >= 86400 else "YYYY-MM-DD HH:MM"


def cause_fields(log: EventLog, with_headline: bool, with_date: bool = True) -> dict[str, str]:
    """The answer's fields and what each holds (sequence data without objects has no actors)."""
    out = {"subject": "...", "relation": "...", "object": "..."} if log.has_objects else {"relation": "..."}
    if with_date:
        out["date"] = _date_example(log)
    if with_headline:
        out["headline"] = "..."
    return out


def answer_format(log: EventLog, mode: str, with_headline: bool, with_date: bool = True) -> str:
    causes = [cause_fields(log, with_headline, with_date)]
    shape: dict[str, Any] = {"1": causes, "2": causes} if mode == "batched" else {"causes": causes}
    return "Answer with JSON only, in this form: " + json.dumps(shape, ensure_ascii=False, separators=SEPARATORS)


def demo_text(event: DemoEvent, log: EventLog, level: str, with_headline: bool, with_time: bool = True) -> str:
    """A demonstration's effect as text: through render_row when it is a log row, else the same layout."""
    if event.row is not None:
        return render_row(log, event.row, level=level, with_text=with_headline, with_time=with_time)
    parts = [event.date if with_time else "", event.subject, event.relation, event.object]
    if with_headline and event.headline:
        parts.append(event.headline)
    return SEP.join(p for p in parts if p)


def demo_answer(demo: Demonstration, log: EventLog, with_headline: bool, with_date: bool = True,
                max_causes: int | None = None) -> dict[str, Any]:
    """A demonstration's answer: its first ``max_causes`` causes (demonstrations list their best causes
    first), so a demonstration never shows more causes than the question asks for."""
    keys = cause_fields(log, with_headline, with_date)
    causes = []
    for c in demo.causes[:max_causes]:
        item = {"subject": c.subject, "relation": c.relation, "object": c.object, "date": c.date,
                "headline": c.headline}
        causes.append({k: item[k] for k in keys})
    return {"causes": causes}


def history_hint(constraints: CauseConstraints, named: Collection[str] = ()) -> str:
    """The recent actors and dates a constrained answer may use; actors already ``named`` in the
    question (the candidates' own) are not repeated (a constrained answer may still use them)."""
    parts = []
    others = [e for e in constraints.entities if e not in set(named)]
    if others:
        label = "Other actors in the recent history: " if named else "Actors in the recent history: "
        parts.append(label + "; ".join(others) + ".")
    if constraints.dates:
        parts.append("Dates of recent events: " + ", ".join(constraints.dates) + ".")
    return "\n".join(parts)


class PromptBuilder:
    """Builds the messages of one request and fits the demonstrations into the context window."""

    def __init__(self, spec: PromptSpec, log: EventLog, demos: Sequence[Demonstration], *, num_causes: int,
                 mode: str, count_tokens: Callable[[str], int], context_length: int,
                 with_date: bool = True) -> None:
        self.spec, self.log, self.mode, self.num_causes = spec, log, mode, num_causes
        self.with_date = with_date
        # Batched candidates share the query's time: a template with {date} prints it once.
        self.date_once = mode == "batched" and "{date}" in spec.batched_question
        self.count_tokens, self.context_length = count_tokens, int(context_length)
        parts = [spec.instruction.format(num_causes=num_causes, dataset=log.name), definitions_text(spec, log),
                 answer_format(log, mode, spec.with_headline, with_date)]
        self.system = "\n\n".join(p for p in parts if p)
        self.demo_turns = [self._demo_turns(d) for d in demos]
        self._system_tokens = count_tokens(self.system) + MESSAGE_OVERHEAD
        self._demo_tokens = [sum(count_tokens(c) + MESSAGE_OVERHEAD for _, c in t) for t in self.demo_turns]
        self.shots_dropped = 0  # summed over built requests

    def _demo_turns(self, demo: Demonstration) -> tuple[tuple[str, str], tuple[str, str]]:
        s = self.spec
        answer: dict[str, Any] = demo_answer(demo, self.log, s.with_headline, self.with_date, self.num_causes)
        if self.mode == "batched":
            event = demo_text(demo.effect, self.log, s.relation_level, s.with_headline, with_time=not self.date_once)
            user = s.batched_question.format(events=f"Candidate 1: {event}", num_causes=self.num_causes,
                                             num_candidates=1, date=demo.effect.date)
            answer = {"1": answer["causes"]}
        else:
            event = demo_text(demo.effect, self.log, s.relation_level, s.with_headline)
            user = s.question.format(event=event, num_causes=self.num_causes)
        return ("user", user), ("assistant", json.dumps(answer, ensure_ascii=False, separators=SEPARATORS))

    def effect_text(self, req: AbductionRequest, with_time: bool = True) -> str:
        return render_event(self.log, req.subject, req.relation, req.object, req.time,
                            level=self.spec.relation_level, with_time=with_time)

    def question(self, group: Sequence[AbductionRequest], constraints: CauseConstraints | None) -> str:
        s = self.spec
        if self.mode == "batched":
            events = "\n".join(f"Candidate {i + 1}: {self.effect_text(r, with_time=not self.date_once)}"
                               for i, r in enumerate(group))
            text = s.batched_question.format(events=events, num_causes=self.num_causes, num_candidates=len(group),
                                             date=self.log.time_spec.format(group[0].time))
        else:
            text = s.question.format(event=self.effect_text(group[0]), num_causes=self.num_causes)
        if constraints is not None and s.history_hint and constraints.active:
            named = {self.log.entities.name(e) for r in group for e in (r.subject, r.object) if e >= 0}
            hint = history_hint(constraints, named)
            if hint:
                text += "\n" + hint
        return text

    def build(self, group: Sequence[AbductionRequest], constraints: CauseConstraints | None,
              max_tokens: int) -> tuple[tuple[tuple[str, str], ...], int]:
        """``(messages, shots used)``: as many demonstrations as fit, dropping from the end.

        Raises ConfigError when even the prompt without demonstrations plus ``max_tokens`` does not fit.
        """
        question = self.question(group, constraints)
        budget = self.context_length - max_tokens - self._system_tokens - self.count_tokens(question) - MESSAGE_OVERHEAD
        if budget < 0:
            need = self.context_length - budget
            raise ConfigError(
                f"The abduction prompt needs {need} tokens (system {self._system_tokens}, question and answer "
                f"{need - self._system_tokens}) but the backend's context is {self.context_length}. Fix: lower "
                "abducer.max_entities, num_causes or max_tokens, or use a model with a longer context.")
        used = 0
        for tokens in self._demo_tokens:
            if tokens > budget:
                break
            budget -= tokens
            used += 1
        if used < len(self.demo_turns):
            self.shots_dropped += len(self.demo_turns) - used
            logger.debug("dropped %d of %d demonstrations to fit the %d-token context",
                        len(self.demo_turns) - used, len(self.demo_turns), self.context_length)
        msgs: list[tuple[str, str]] = [("system", self.system)]
        for turns in self.demo_turns[:used]:
            msgs.extend(turns)
        msgs.append(("user", question))
        return tuple(msgs), used
