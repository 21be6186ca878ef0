"""The prompted-LLM abducer: few-shot prompts, (constrained) structured output, tolerant parsing.

Example::

    client = LLMClient(build_backend("local", model="smollm2"), cache, budget, prices)
    abducer = LLMAbducer(client, load_prompt_spec("conf/prompt/icews.yaml"), mode="per_candidate")
    results = abducer.abduce(log, requests)      # one AbductionResult per request, in order

``per_candidate`` sends one call per (query, candidate), as in the paper; ``batched`` one call per
query for all its candidates (the requests sharing a ``query_id``). Every call of a stage goes to
``client.generate`` at once; the client handles the cache, the budget and concurrency.

Constrained abduction limits the answer's ``relation`` to the relation (or CAMEO root) names,
``subject``/``object`` to at most ``max_entities`` entities from the recent history of the request's
entities and ``date`` to dates of those events; all of it from rows ``< history_end`` only. With
``cause_dates=False`` the answer has no date field (about 17 fewer tokens per cause on SmolLM2; the
retrieval stage matches dateless cause text, so only the date-based checks are lost).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from lamp.abduce.demos import (
    Demonstration,
    build_demonstrations,
    demo_records,
    demos_from_records,
    load_paper_amazon_demos,
    load_paper_gdelt_demos,
)
from lamp.abduce.parser import ParsedCauses, parse_batched, parse_causes
from lamp.abduce.prompts import PromptBuilder, PromptSpec, default_prompt, load_prompt_spec
from lamp.abduce.schema import CauseConstraints, NameResolver, batched_schema, causes_schema
from lamp.components import Configurable, load_settings, make_settings, not_in_key, save_settings, stable_hash
from lamp.data.eventlog import EventLog
from lamp.data.history import Postings, involvement, strictly_before
from lamp.data.registry import data_dir
from lamp.errors import ConfigError, LeakageError, LLMError
from lamp.llm.types import LLMRequest, LLMResponse, describe_llm
from lamp.types import AbductionRequest, AbductionResult

logger = logging.getLogger(__name__)

MODES = ("per_candidate", "batched")


@dataclass
class AbductionStats:
    """Counts of the last :meth:`LLMAbducer.abduce` call (also logged at INFO)."""

    requests: int = 0
    calls: int = 0
    cached_calls: int = 0
    errors: int = 0
    parse_failures: int = 0
    dropped_future: int = 0
    causes: int = 0
    shots_used: float = 0.0  # mean per call
    shots_dropped: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class LLMAbducerSettings:
    """Options of the ``llm`` abducer. The defaults are the main job's: one batched, JSON-schema-constrained
    call per query (``per_candidate`` asks one call per (query, candidate), as in the paper)."""

    prompt: Any = not_in_key(None)  # a prompt name/path (conf/prompt/<name>.yaml) or its fields; None = the dataset family's (its text is in the key)
    mode: str = "batched"  # batched | per_candidate
    constrained: bool = True  # the schema limits relation / entities / dates to values seen before the query
    structured: bool = True  # JSON-schema output; False = free text through the tolerant parser
    num_causes: int = 2  # causes per candidate
    n_shots: int = 4  # demonstrations; dropped from the end (and logged) when the context is too short
    seed: int = 0  # demonstration sampling and the LLM sampling seed
    max_entities: int = 12  # entity list offered to a constrained answer (each adds ~5 prompt tokens)
    max_dates: int = 10  # recent dates offered to a constrained answer
    cause_dates: bool = False  # ask each cause's date too (the paper does; ~17 more tokens per cause)
    history_events: int = 50  # recent events per query entity that the lists are drawn from
    max_tokens: int | None = None  # per candidate; None = prompt.tokens_per_cause * num_causes + 16
    temperature: float = 0.0
    data_root: str | None = None  # where the paper's demonstration files are (prompts with demos: paper)
    progress: bool | None = not_in_key(None)  # None: follow the stage (lamp.progress)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"Invalid abducer mode: {self.mode!r}. Valid choices are: {', '.join(MODES)}")
        if self.constrained and not self.structured:
            raise ConfigError("constrained abduction needs structured output. Fix: set structured: true, or "
                              "constrained: false for a backend without JSON-schema support.")
        for key in ("num_causes", "max_entities", "max_dates"):
            if getattr(self, key) < 1:
                raise ConfigError(f"abducer.{key} must be >= 1, got {getattr(self, key)}.")
        if self.n_shots < 0:
            raise ConfigError(f"abducer.n_shots must be >= 0, got {self.n_shots}.")


class LLMAbducer(Configurable):
    """Abducer ``llm``: asks an LLM which earlier events could have caused each candidate.

    ``client`` is an :class:`~lamp.llm.LLMClient` (or a backend); its model is part of the cache key, as
    is the prompt's whole text and any fixed demonstrations.
    """

    name = "llm"
    Settings = LLMAbducerSettings
    uses_llm = True

    def __init__(self, client: Any, settings: LLMAbducerSettings | Mapping[str, Any] | None = None, *,
                 prompt: PromptSpec | Mapping[str, Any] | str | None = None, **overrides: Any) -> None:
        if isinstance(settings, (str, PromptSpec)):  # the old positional prompt: LLMAbducer(client, prompt, ...)
            settings, prompt = None, settings
        s = self.settings = make_settings(LLMAbducerSettings, settings, overrides, where="abducer 'llm'")
        self.client, self.mode = client, s.mode
        source = prompt if prompt is not None else s.prompt
        self._prompt: PromptSpec | None = None if source is None else (
            source if isinstance(source, PromptSpec) else load_prompt_spec(source))
        self.constrained, self.structured = s.constrained, s.structured
        self.num_causes, self.n_shots, self.seed = s.num_causes, s.n_shots, s.seed
        self.max_entities, self.max_dates, self.max_tokens = s.max_entities, s.max_dates, s.max_tokens
        self.temperature, self.history_events, self.progress = s.temperature, s.history_events, s.progress
        self.data_root = s.data_root
        self.cause_dates = bool(s.cause_dates)
        self.last_stats = AbductionStats()
        # Set by lamp.Pipeline: the train demonstrations, reused for any history given to predict().
        self.fixed_demonstrations: list[Demonstration] | None = None
        self._demo_cache: dict[str, list[Demonstration]] = {}
        self._index_cache: dict[str, Postings] = {}

    @classmethod
    def from_config(cls, client: Any, config: Mapping[str, Any],
                    prompt: PromptSpec | Mapping[str, Any] | str | None = None) -> LLMAbducer:
        """From ``conf/abducer/llm.yaml`` values (``prompt`` overrides ``config["prompt"]``)."""
        return cls(client, config, prompt=prompt)

    @property
    def prompt(self) -> PromptSpec:
        """The prompt in use; an abducer built without one gets its dataset's on first use (:meth:`for_dataset`)."""
        if self._prompt is None:
            raise ConfigError("this llm abducer has no prompt yet. Fix: give it one (prompt='icews' or a YAML path), "
                              "or call for_dataset(<dataset name>) to take the dataset family's.")
        return self._prompt

    def for_dataset(self, dataset: str) -> LLMAbducer:
        """Give an abducer built without a prompt its dataset family's (``icews14`` -> conf/prompt/icews.yaml)."""
        if self._prompt is None:
            self._prompt = load_prompt_spec(default_prompt(dataset))
        return self

    def save(self, folder: str | os.PathLike[str]) -> None:
        """``component.json`` with the prompt stored whole (a bundle loads on a machine without its file) and,
        when fixed, the demonstrations (``demonstrations.json``). The LLM itself is not saved: pass it to load."""
        target = Path(folder)
        files = {"demonstrations": "demonstrations.json"} if self.fixed_demonstrations is not None else {}
        settings = replace(self.settings, prompt=self.prompt.to_record())
        save_settings(self, target, files=files, settings=settings)
        if self.fixed_demonstrations is not None:
            (target / "demonstrations.json").write_text(json.dumps(demo_records(self.fixed_demonstrations), indent=1),
                                                        encoding="utf-8")

    @classmethod
    def load(cls, folder: str | os.PathLike[str], **runtime: Any) -> LLMAbducer:
        """Read what :meth:`save` wrote; ``client=`` is the LLM to use."""
        settings, files = load_settings(cls, folder)
        abducer = cls(runtime.pop("client", None), settings, **runtime)
        if "demonstrations" in files:
            records = json.loads((Path(folder) / files["demonstrations"]).read_text(encoding="utf-8"))
            abducer.fixed_demonstrations = demos_from_records(records)
        return abducer

    def content_key(self) -> Any:
        demos = None if self.fixed_demonstrations is None else demo_records(self.fixed_demonstrations)
        return {"prompt": self.prompt.to_record(), "llm": describe_llm(self.client),
                "fixed_demonstrations": None if demos is None else stable_hash(demos)}

    # -- pieces ------------------------------------------------------------------------------------------
    @property
    def backend(self) -> Any:
        return getattr(self.client, "backend", self.client)

    def demonstrations(self, log: EventLog) -> list[Demonstration]:
        """The few-shot demonstrations for ``log`` (train split only, or the configured fixed ones)."""
        if self.fixed_demonstrations is not None:
            return list(self.fixed_demonstrations)
        key = log.fingerprint()
        if key not in self._demo_cache:
            src, spec = self.prompt.demos, self.prompt
            if self.n_shots == 0 or src == "none":
                demos: list[Demonstration] = []
            elif src == "train":
                demos = build_demonstrations(log, self.n_shots, self.seed, window=spec.demo_window,
                                             max_causes=spec.demo_max_causes, level=spec.relation_level)
            elif src == "paper":
                path = data_dir(self.data_root) / str(spec.paper_demos)
                demos = load_paper_amazon_demos(path) if path.is_dir() else load_paper_gdelt_demos(path)
            else:
                demos = list(src)  # type: ignore[arg-type]
            self._demo_cache[key] = demos[: self.n_shots]
        return self._demo_cache[key]

    def relation_names(self, log: EventLog) -> tuple[str, ...]:
        if self.prompt.relation_level == "root":
            return tuple(log.meta.get("cameo_roots") or ())
        return log.relations.names

    def constraints(self, log: EventLog, group: Sequence[AbductionRequest]) -> CauseConstraints:
        """Allowed values for one call, from rows ``< history_end`` of the group's entities only."""
        key = log.fingerprint()
        index = self._index_cache.get(key) or self._index_cache.setdefault(key, involvement(log.edges()))
        end = min(r.history_end for r in group)
        focus = list(dict.fromkeys(e for r in group for e in (r.subject, r.object) if e >= 0))
        rows = index.union(focus, end, per_key=self.history_events)[::-1]  # most recent first
        counts: dict[int, int] = {}
        for ent in np.stack([log.subjects[rows], log.objects[rows]], axis=1).reshape(-1):
            if ent >= 0 and int(ent) not in focus:
                counts[int(ent)] = counts.get(int(ent), 0) + 1  # dict order = recency, kept for ties
        others = sorted(counts, key=lambda e: -counts[e])
        # Sequence data names no actors in its answers (every event is the same user's).
        entities = [log.entities.name(e) for e in (focus + others)[: self.max_entities]] if log.has_objects else []
        dates = list(dict.fromkeys(log.time_spec.format(t) for t in log.times[rows]))[: self.max_dates] \
            if self.cause_dates else []
        return CauseConstraints(self.relation_names(log), tuple(entities), tuple(dates))

    def _groups(self, requests: Sequence[AbductionRequest]) -> list[list[int]]:
        if self.mode == "per_candidate":
            return [[i] for i in range(len(requests))]
        by_query: dict[int, list[int]] = {}
        for i, r in enumerate(requests):
            by_query.setdefault(r.query_id, []).append(i)
        return list(by_query.values())

    def _max_tokens(self, n_candidates: int) -> int:
        if self.max_tokens is not None:
            return int(self.max_tokens) * (n_candidates if self.mode == "batched" else 1)
        per = self.prompt.tokens_per_cause * self.num_causes + 16
        return per * n_candidates + 8 if self.mode == "batched" else per

    def _schema(self, log: EventLog, n: int, constraints: CauseConstraints | None) -> dict[str, Any] | None:
        if not self.structured:
            return None
        kw = {"has_object": log.has_objects, "with_headline": self.prompt.with_headline,
              "with_date": self.cause_dates}
        if self.mode == "batched":
            return batched_schema(n, self.num_causes, constraints, **kw)
        return causes_schema(self.num_causes, constraints, **kw)

    # -- the stage ---------------------------------------------------------------------------------------
    def abduce(self, log: EventLog, requests: Sequence[AbductionRequest]) -> list[AbductionResult]:
        """One result per request, in order; LLM errors and parse failures are counted, never skipped."""
        start = time.perf_counter()
        self.for_dataset(log.name)
        if self.prompt.relation_level == "root" and "cameo_roots" not in log.meta:
            from lamp.data.cameo import attach_cameo

            log = attach_cameo(log)
        _check_history(log, requests)
        stats = AbductionStats(requests=len(requests))
        builder = PromptBuilder(self.prompt, log, self.demonstrations(log), num_causes=self.num_causes,
                                mode=self.mode, count_tokens=self.backend.count_tokens,
                                context_length=self.backend.context_length, with_date=self.cause_dates)
        groups = self._groups(requests)
        calls = []
        for g in groups:
            group = [requests[i] for i in g]
            cons = self.constraints(log, group) if self.constrained else None
            max_tokens = self._max_tokens(len(group))
            messages, used = builder.build(group, cons, max_tokens)
            stats.shots_used += used
            tag = f"abduce/{self.mode}/q{group[0].query_id}" + ("" if self.mode == "batched" else f"/c{group[0].candidate}")
            calls.append(LLMRequest(messages, max_tokens=max_tokens, temperature=self.temperature, seed=self.seed,
                                    json_schema=self._schema(log, len(group), cons), tag=tag))
        responses: list[LLMResponse] = list(self.client.generate(calls, progress=self.progress)) if calls else []
        if len(responses) != len(calls):
            raise LLMError(f"The LLM client returned {len(responses)} responses for {len(calls)} requests.")
        out: list[AbductionResult | None] = [None] * len(requests)
        resolver = NameResolver.from_log(log)
        for g, resp in zip(groups, responses, strict=True):
            for i, res in zip(g, self._results(log, resolver, [requests[i] for i in g], resp), strict=True):
                out[i] = res
        results = [r for r in out if r is not None]
        stats.calls, stats.shots_dropped = len(calls), builder.shots_dropped
        stats.shots_used = stats.shots_used / max(len(calls), 1)
        stats.cached_calls = sum(1 for r in responses if r.cached)
        stats.errors = sum(1 for r in responses if r.error is not None)
        stats.prompt_tokens = sum(r.prompt_tokens for r in responses)
        stats.completion_tokens = sum(r.completion_tokens for r in responses)
        stats.parse_failures = sum(r.parse_failures for r in results)
        stats.dropped_future = sum(r.dropped_future for r in results)
        stats.causes = sum(len(r.causes) for r in results)
        stats.seconds = time.perf_counter() - start
        self.last_stats = stats
        logger.debug("abduce[llm,%s%s]: %d requests, %d calls (%d cached), %d LLM errors, %d parse failures, "
                    "%d future causes dropped, %d causes", self.mode, ",constrained" if self.constrained else "",
                    stats.requests, stats.calls, stats.cached_calls, stats.errors, stats.parse_failures,
                    stats.dropped_future, stats.causes)
        if stats.errors:
            logger.warning("abduce[llm]: %d of %d LLM calls failed; their requests carry the error and no causes",
                           stats.errors, stats.calls)
        return results

    def _results(self, log: EventLog, resolver: NameResolver, group: list[AbductionRequest],
                 resp: LLMResponse) -> list[AbductionResult]:
        if resp.error is not None:
            return [AbductionResult(r.query_id, r.candidate, (), resp.text, 0, 0, resp.error) for r in group]
        subjects = [log.entities.name(r.subject) for r in group]
        parsed: list[ParsedCauses]
        if self.mode == "batched":
            parsed = parse_batched(resp.text, len(group), resolver, [r.time for r in group],
                                   num_causes=self.num_causes, default_subjects=subjects)
        else:
            parsed = [parse_causes(resp.text, resolver, group[0].time, num_causes=self.num_causes,
                                   default_subject=subjects[0])]
        return [AbductionResult(r.query_id, r.candidate, p.causes, resp.text, p.parse_failures, p.dropped_future)
                for r, p in zip(group, parsed, strict=True)]


def _check_history(log: EventLog, requests: Sequence[AbductionRequest]) -> None:
    """A request may only see rows strictly before its time."""
    if not requests:
        return
    times = np.array([r.time for r in requests], dtype=np.float64)
    allowed = strictly_before(log.times, times)
    ends = np.array([r.history_end for r in requests])
    bad = np.flatnonzero(ends > allowed)
    if bad.size:
        r = requests[int(bad[0])]
        raise LeakageError(f"request (query {r.query_id}, candidate {r.candidate}) has history_end {r.history_end} "
                           f"but only {int(allowed[bad[0]])} events are strictly before its time {r.time:g}. "
                           "Fix: set history_end = log.history_end(time).")
