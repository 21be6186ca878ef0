"""``lamp.Pipeline``: a trained predictor to embed in a forecasting pipeline.

>>> import lamp
>>> log = lamp.load_dataset("icews14")                                                 # doctest: +SKIP
>>> pipe = lamp.Pipeline.fit(log.head(log.split_range("test")[0]), abducer="rules", retriever="fuzzy")  # doctest: +SKIP
>>> pipe.observe(lamp.named_events(log, "test").query("time < '2014-12-19'"))          # doctest: +SKIP
>>> pred = pipe.predict("Barack Obama", "Impose embargo, boycott, or sanctions", "2014-12-19")  # doctest: +SKIP
>>> pred.candidates[0].entity, pred.ranking, pred.candidates[0].evidence[:1]           # doctest: +SKIP
>>> pipe.save("icews14.lamp"); pipe = lamp.Pipeline.load("icews14.lamp")                # doctest: +SKIP

``fit`` trains every stage on one dataset: the base model on its train split, the ranker on a seeded
sample of its valid queries (abduction and retrieval run on those queries only), and keeps the log's
events as the pipeline's history (:mod:`lamp.pipeline.history`). ``observe`` adds new events to it;
``predict`` answers one object query ``(subject, relation, ?, time)`` from the events of the history
strictly before ``time`` (or, with ``history=``, from a table or EventLog the caller gives instead), with,
for each of the top-M candidates, the abduced causes and the real past events that support them, and
whether the scores could tell the candidates apart at all (:mod:`lamp.pipeline.prediction`).

What a history may hold:

- Only events strictly before the query time are used; later ones are ignored and counted
  (``Prediction.ignored_future``), so a caller can pass a whole live feed.
- Entities unseen in training are kept: they are candidates, history-based base models (recurrency,
  frequency, rules) score them from the history, and the ranker sees them through one shared
  "unknown entity" embedding. Base models with a learned entity table (``ke_anhp``, easy-tpp) cannot
  score them: ``predict`` raises a ConfigError naming them.
- Relations unseen in training have no learned parameters anywhere: their events are dropped and
  counted (``ObserveReport.dropped_unseen_relation``, ``Prediction.dropped_unseen_relation``); a query
  with such a relation is a :class:`~lamp.errors.RequestError`.

Threads: ``predict`` and ``observe`` may be called from several threads. Predictions run one at a time
(the components keep per-history indices and were not written for concurrent use), each from the
history as it was when it started; ``observe`` checks a batch and builds the new history without
blocking predictions, then swaps it in and builds its indices before the next prediction runs.

``save`` writes a versioned folder (``pipeline.json``, ``vocab.json``, the base model's checkpoint,
mined rules or LLM demonstrations, the ranker's safetensors, the history as Parquet); no pickle
anywhere, and no secret: an LLM is stored as its config (an API key is only ever named by its
environment variable).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import lamp
from lamp.data.eventlog import EventLog, Vocab
from lamp.data.queries import QuerySet, make_queries
from lamp.data.render import render_event
from lamp.errors import ArtifactError, ConfigError, RequestError
from lamp.pipeline.config import Component, PipelineConfig, default_artifacts_dir, default_llm
from lamp.pipeline.config import as_component as _component
from lamp.pipeline.history import History, ObserveReport, encode_events, history_log, to_time
from lamp.pipeline.prediction import CandidatePrediction, EvidenceEvent, Prediction, tie_report
from lamp.tpp.base import BaseModel, CandidateTable, top_m_of

logger = logging.getLogger(__name__)

FORMAT = "lamp-pipeline"
FORMAT_VERSION = 3  # 2: each component saves itself in its own subfolder; 3: the kept history (history/)
_SECRET_HINTS = ("api_key", "token", "password", "secret")
__all__ = ["CandidatePrediction", "EvidenceEvent", "ObserveReport", "Pipeline", "Prediction"]


@dataclass
class Pipeline:
    """A fitted predictor: vocabulary, base model, one abducer, a retriever, the ranker and the history."""

    entities: Vocab  # the training vocabulary (what the base model and the ranker learned)
    relations: Vocab
    time_spec: Any
    base_model: BaseModel
    abducer: Any
    retriever: Any
    ranker: Any  # a fitted ranker (lamp.rank.rerank.apply_ranker) | None (no ranker, or no training example had its gold in the top-M)
    top_m: int
    config: dict[str, Any]
    fit_info: dict[str, Any] = field(default_factory=dict)
    dataset_meta: dict[str, Any] = field(default_factory=dict)
    history: History | None = None  # the kept history (None: predict needs history=)
    _lock: Any = field(default_factory=threading.RLock, init=False, repr=False, compare=False)  # components: one user
    _observing: Any = field(default_factory=threading.Lock, init=False, repr=False, compare=False)  # one observe
    _last_cut: tuple[History, int, EventLog] | None = field(default=None, init=False, repr=False, compare=False)

    # -- training --------------------------------------------------------------------------------------
    @classmethod
    def fit(cls, log: EventLog, *, base_model: str | Component | Mapping[str, Any] | BaseModel = "recurrency",
            abducer: str | Component | Mapping[str, Any] = "rules",
            retriever: str | Component | Mapping[str, Any] = "hybrid",
            ranker: str | Mapping[str, Any] | None = "energy", use_ranker: bool = True, top_m: int = 5,
            n_valid_queries: int | None = 100, seed: int = 0, llm: Mapping[str, Any] | None = None,
            artifacts_dir: str | None = None, progress: bool = False) -> Pipeline:
        """Train on ``log``: the base model on train, the ranker on ``n_valid_queries`` valid queries.

        The same steps as a run (:mod:`lamp.pipeline.steps`), with the same artifact store (``artifacts_dir``,
        default ``$LAMP_CACHE_DIR/artifacts``) and leakage checks: a pipeline fitted with a run's settings
        reuses that run's base model, abduction, evidence and ranker. ``abducer`` is ``rules`` (no LLM),
        ``llm``, ``llm_rules`` or ``pmi``; for the LLM ones ``llm`` is a conf/llm group as a dict (default: the
        packaged SmolLM2 run in-process, within a budget of 300 calls). ``ranker`` names the ranker
        (``energy``) or gives its options (a mapping); ``use_ranker=False`` or ``ranker=None`` fits none.
        """
        from lamp.abduce.base import uses_llm
        from lamp.pipeline import steps
        from lamp.pipeline.artifacts import ArtifactStore
        from lamp.pipeline.components import build_components
        from lamp.pipeline.stages import abduction_requests

        ab = _component(abducer)
        llm_cfg = dict(llm) if llm is not None else (default_llm() if uses_llm(ab.name) else None)
        ranker_comp = None if (ranker is None or not use_ranker) else (
            Component(ranker) if isinstance(ranker, str) else Component(str(dict(ranker).get("name", "energy")),
                                                                        {k: v for k, v in dict(ranker).items()
                                                                         if k != "name"}))
        instance = base_model if isinstance(base_model, BaseModel) else None
        cfg = PipelineConfig(dataset=log.name, task="object", directions="object", top_m=top_m,
                             n_valid_queries=n_valid_queries, n_test_queries=0, seed=seed,
                             base_model=Component(instance.name) if instance else _component(base_model),
                             abducers=(ab,), llm=llm_cfg, retriever=_component(retriever), ablations=(),
                             ranker=ranker_comp, progress=progress,
                             artifacts_dir=artifacts_dir or default_artifacts_dir())
        comps = build_components(cfg, log, base_model=instance)
        store = ArtifactStore(cfg.artifacts_dir)
        train_q = make_queries(log, "object", "train", directions="object")
        valid_all = make_queries(log, "object", "valid", directions="object")
        fitted = steps.fit_base(comps.base_model, log, train_q, valid_all, store=store)
        valid_q = valid_all.sample(n_valid_queries, seed)
        table = steps.score_base(fitted, log, valid_q, top_m, store=store, progress=progress)
        the_abducer = comps.abducers[ab.name]
        requests = abduction_requests(log, table)
        abduced = steps.abduce(the_abducer, log, requests, steps.table_key(fitted, valid_q, top_m), store=store,
                               usage=comps.usage_snapshot if comps.uses_llm(ab.name) else None)
        retrieved = steps.retrieve(comps.retriever, log, requests, abduced.results, abduced.key, store=store)
        info: dict[str, Any] = {"base_fit": fitted.report, "valid_queries": len(valid_q)}
        the_ranker = None
        if comps.ranker is not None:
            # the ranker learns from the valid queries only; the numbers of their held-out last part are "valid_*"
            the_ranker, rinfo, _, _ = steps.fit_ranker(comps.ranker, log, table, retrieved.evidence, retrieved.key,
                                                       seed=seed, progress=progress, store=store)
            info["ranker"] = {f"valid_{k}" if k.startswith("stop_") else k: v for k, v in rinfo.items()
                              if k != "curve" and not k.startswith("_")}
        _keep_fitted_state(the_abducer, log)
        config = {"task": "object", "top_m": top_m, "seed": seed, "base_model": fitted.model.name,
                  "abducer": ab.name, "retriever": comps.retriever.name,
                  "ranker": None if ranker_comp is None else ranker_comp.name, "llm": _public_llm(llm_cfg)}
        meta = {"name": log.name, "fingerprint": log.fingerprint(), "events": len(log),
                **{k: v for k, v in log.meta.items() if k in ("relation_root", "cameo_roots")}}
        meta = _jsonable(meta)
        return cls(log.entities, log.relations, log.time_spec, fitted.model, the_abducer, comps.retriever,
                   the_ranker, top_m, config, _jsonable(info), meta, History.from_log(log, meta))

    # -- the kept history ------------------------------------------------------------------------------
    def observe(self, events: pd.DataFrame | EventLog) -> ObserveReport:
        """Add ``events`` (a table of named events, or an EventLog) to the kept history.

        The batch is checked whole first (a :class:`~lamp.errors.RequestError` leaves the history as it was);
        entities unseen so far get new ids, events with relations unseen in training are dropped and counted,
        exact duplicates of kept events are dropped and counted, and an event earlier than the newest kept
        one refuses the batch (the policy is in :mod:`lamp.pipeline.history`). Predictions that started
        before the new history is swapped in answer from the old one.
        """
        with self._observing:
            new, report = self._kept().observe(events)
            if report.added:
                with self._lock:  # the indices of the new history are built before the next prediction runs
                    self.history = new
                    self.warm_up()
        logger.info("observed %d events (%d duplicates, %d with unseen relations dropped); history: %d events, "
                    "newest %s", report.added, report.duplicates, report.dropped_unseen_relation,
                    report.history_events, report.newest)
        return report

    def warm_up(self) -> None:
        """Build the kept history's indices now (one prediction just after its newest event), so the next
        prediction does not pay for them."""
        h = self.history
        if h is None or not len(h.log):
            return
        s, r = int(h.log.subjects[-1]), int(h.log.rels[-1])
        t = float(h.log.times[-1]) + float(self.time_spec.granularity or 1.0)
        with self._lock:
            self._rank_query(h.log, s, r, t, min(self.top_m, h.log.num_entities))

    def _kept_before(self, t: float) -> tuple[EventLog, int]:
        """The kept history as the log of a query at ``t`` (and how many kept events are at or after ``t``): the
        kept log itself when every event is before ``t`` (the serving case: its indices are built), else its
        events and entities before ``t`` only, exactly the log a ``history=`` table of the same events gives (the
        last one is kept for the next query at the same time)."""
        kept = self._kept()
        end = kept.log.history_end(t)
        if end == len(kept.log):
            return kept.log, 0
        cached = self._last_cut
        if cached is None or cached[0] is not kept or cached[1] != end:
            head = kept.log.frame.iloc[:end]
            known = max(kept.training_entities, int(head[["subject", "object"]].to_numpy().max(initial=-1)) + 1)
            log = history_log(head, Vocab(kept.log.entities.names[:known]), self.relations, self.time_spec,
                              self.dataset_meta)
            cached = self._last_cut = (kept, end, log)
        return cached[2], len(kept.log) - end

    def _kept(self) -> History:
        if self.history is None:
            raise ConfigError("this pipeline keeps no history (it was built without one). Fix: fit it again with "
                              "Pipeline.fit, or pass history= to predict.")
        return self.history

    # -- prediction ------------------------------------------------------------------------------------
    def predict(self, subject: str, relation: str, time: float | str | date | datetime, *,
                history: EventLog | pd.DataFrame | None = None, top_m: int | None = None) -> Prediction:
        """Rank the objects of ``(subject, relation, ?, time)`` from the events strictly before ``time``.

        Without ``history`` they come from the kept history (what the pipeline was fitted on plus what
        it observed); ``history`` (a table of named events or an EventLog) replaces it for this call only
        (slower: its indices are built for the call). See the module docstring for what a history may hold
        and :class:`~lamp.pipeline.prediction.Prediction` for the result.
        """
        if isinstance(subject, pd.DataFrame | EventLog):
            raise RequestError("the history is now a keyword argument, and the kept history is used without one.",
                               field="subject", fix="call predict(subject, relation, time) or "
                                                    "predict(subject, relation, time, history=table).")
        subject_name = _query_name(subject, "subject")
        r = self.relations.get(_query_name(relation, "relation"))
        if r < 0:
            raise RequestError(f"relation {relation!r} was not seen in training, so nothing can score it.",
                               field="relation", fix=f"use one of the {len(self.relations)} relations in the "
                               f"pipeline's vocab.json (e.g. {', '.join(self.relations.names[:3])}).")
        if top_m is not None and (isinstance(top_m, bool) or not isinstance(top_m, int | np.integer) or top_m < 1):
            raise RequestError(f"got {top_m!r}.", field="top_m", fix="give a whole number >= 1, or leave it out.")
        if isinstance(time, date | datetime):
            time = pd.Timestamp(time).isoformat()
        t = to_time(time, self.time_spec)
        until = _fitted_until(self.abducer)
        if until is not None and t <= until:
            raise RequestError(f"{self.time_spec.format(t)} is not after {self.time_spec.format(until)}, the end of the "
                               "train split the rules were mined on: their confidences count events up to then, so "
                               "they would know this query's future.", field="time",
                               fix=f"ask about a time after {self.time_spec.format(until)}.")
        with self._lock:
            kept = self.history if history is None else None
            if history is None:
                log, ignored = self._kept_before(t)
                unseen, dropped = log.entities.names[self._kept().training_entities:], 0
            else:
                enc = encode_events(history, self.entities, self.relations, self.time_spec, before=t)
                log = history_log(enc.frame, enc.entities, self.relations, self.time_spec, self.dataset_meta)
                unseen, ignored, dropped = enc.new_entities, enc.ignored_future, enc.dropped_unseen_relation
            s = log.entities.get(subject_name)
            if s < 0:  # a subject with no history at all is still a query: it gets an id like any unseen entity
                log = history_log(log.frame, Vocab(log.entities.names + (subject_name,)), self.relations,
                                  self.time_spec, self.dataset_meta)
                s, unseen = log.num_entities - 1, (*unseen, subject_name)
            if unseen and getattr(type(self.base_model), "vocabulary_bound", False):
                raise ConfigError(f"base model {self.base_model.name!r} learned one embedding per training entity "
                                  f"and cannot score {len(unseen)} unseen one(s): {', '.join(unseen[:5])}. Fix: leave "
                                  "them out of the history or fit a history-based base model (recurrency, frequency, "
                                  "rules).")
            ranked = self._rank_query(log, s, r, t, min(top_m or self.top_m, log.num_entities))
        return replace(ranked, subject=subject_name, relation=self.relations.name(r), ignored_future=ignored,
                       dropped_unseen_relation=dropped, unseen_entities=tuple(unseen),
                       history_version=None if kept is None else kept.version)

    def _rank_query(self, log: EventLog, s: int, r: int, t: float, m: int) -> Prediction:
        """The stages for one query on ``log`` (events strictly before ``t`` only): base top-``m``, abduction,
        retrieval, the ranker; the base model's scores of every candidate tell where it cannot decide."""
        from lamp.pipeline.stages import abduction_requests
        from lamp.pipeline.steps import check_evidence
        from lamp.rank.rerank import apply_ranker

        queries = _one_query(log, s, r, t)
        scores = np.asarray(self.base_model.score_batch(log, queries, np.zeros(1, dtype=np.int64)), dtype=np.float64)
        cands, _ = top_m_of(scores, m)
        base = scores[0, cands[0]]
        table = CandidateTable(f"base:{self.base_model.name}", queries, m, cands, base[None].astype(np.float32),
                               np.full(1, np.nan))
        requests = abduction_requests(log, table)
        results = self.abducer.abduce(log, requests)
        evidence = self.retriever.retrieve_many(log, requests, [res.causes for res in results])
        check_evidence(self.retriever, requests, evidence)
        order, final, energies = np.arange(m)[None, :], base[None], None
        if self.ranker is not None:
            order, final, energies = apply_ranker(self.ranker, log, table, evidence, known_entities=len(self.entities))
        ranking, ties = tie_report(final[0], base, order[0], scores[0])
        cands_out = []
        for rank, pos in enumerate(order[0], 1):
            cand = int(cands[0, pos])
            ev = evidence[int(pos)]
            cands_out.append(CandidatePrediction(
                rank, log.entities.name(cand), render_event(log, s, r, cand, t), int(pos) + 1, float(base[pos]),
                None if energies is None else float(energies[0, pos]), tuple(results[int(pos)].causes),
                tuple(_evidence_event(log, int(row), float(sc)) for row, sc in zip(ev.event_indices, ev.scores,
                                                                                     strict=True))))
        return Prediction(log.entities.name(s), log.relations.name(r), t, self.time_spec.format(t), tuple(cands_out),
                          log.history_end(t), ranker_used=self.ranker is not None, ranking=ranking, ties=ties)

    # -- persistence -----------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the bundle folder atomically (a temporary folder renamed into place); each component
        writes its own subfolder (``base_model/``, ``abducer/``, ``retriever/``, ``ranker/``), the kept
        history its own (``history/``)."""
        target = Path(path).expanduser()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            manifest: dict[str, Any] = {
                "format": FORMAT, "format_version": FORMAT_VERSION, "lamp_version": lamp.__version__,
                "config": self.config, "fit_info": self.fit_info, "dataset": self.dataset_meta,
                "time_spec": self.time_spec.to_dict(), "top_m": self.top_m, "history": self.history is not None,
                "components": {"base_model": self.base_model.name, "abducer": self.abducer.name,
                               "retriever": self.retriever.name,
                               "ranker": None if self.ranker is None else self.config.get("ranker")}}
            (tmp / "vocab.json").write_text(json.dumps({"entities": list(self.entities.names),
                                                        "relations": list(self.relations.names)}), encoding="utf-8")
            self.base_model.save(tmp / "base_model")
            self.abducer.save(tmp / "abducer")
            self.retriever.save(tmp / "retriever")
            if self.ranker is not None:
                self.ranker.save(tmp / "ranker")
            if self.history is not None:
                self.history.save(tmp / "history")
            (tmp / "pipeline.json").write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, llm: Mapping[str, Any] | Any = None) -> Pipeline:
        """Read a bundle written by :meth:`save`. ``llm`` replaces the saved LLM config (a conf/llm dict, or
        an LLMClient) for the LLM abducers."""
        from lamp.abduce.base import ABDUCERS, uses_llm
        from lamp.data.eventlog import TimeSpec
        from lamp.pipeline.components import build_llm_client
        from lamp.rank import RANKERS
        from lamp.retrieval import RETRIEVERS
        from lamp.tpp.factory import load_base_model

        folder = Path(path).expanduser()
        try:
            manifest = json.loads((folder / "pipeline.json").read_text(encoding="utf-8"))
            vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{folder} is not a readable lamp pipeline bundle ({exc}). Expected pipeline.json "
                                "and vocab.json written by Pipeline.save.") from exc
        if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
            raise ArtifactError(f"{folder / 'pipeline.json'} has format {manifest.get('format')!r} version "
                                f"{manifest.get('format_version')!r}; this lamp reads {FORMAT!r} version "
                                f"{FORMAT_VERSION}. Fix: refit and save with this lamp version.")
        cfg, parts = manifest["config"], manifest["components"]
        model = load_base_model(folder / "base_model")
        runtime: dict[str, Any] = {}
        if uses_llm(parts["abducer"]):
            llm_cfg = llm if isinstance(llm, Mapping) else cfg.get("llm")
            runtime["client"] = llm if (llm is not None and not isinstance(llm, Mapping)) else \
                build_llm_client(dict(llm_cfg))
        abducer = ABDUCERS.lookup(parts["abducer"]).load(folder / "abducer", **runtime)  # type: ignore[attr-defined]
        retriever = RETRIEVERS.lookup(parts["retriever"]).load(folder / "retriever")
        ranker = RANKERS.lookup(parts["ranker"]).load_model(folder / "ranker") if parts.get("ranker") else None
        entities, relations = Vocab(tuple(vocab["entities"])), Vocab(tuple(vocab["relations"]))
        spec, meta = TimeSpec.from_dict(manifest["time_spec"]), manifest.get("dataset", {})
        history = History.load(folder / "history", entities, relations, spec, meta) if manifest.get("history") else None
        return cls(entities, relations, spec, model, abducer, retriever, ranker, int(manifest["top_m"]), cfg,
                   manifest.get("fit_info", {}), meta, history)


# -- helpers -----------------------------------------------------------------------------------------
def _one_query(log: EventLog, s: int, r: int, t: float) -> QuerySet:
    """The query ``(s, r, ?, t)`` over every entity, reading the log's events strictly before ``t``; its
    'gold' is a placeholder (no metric is computed)."""
    end = log.history_end(t)
    frame = pd.DataFrame({"query_id": [0], "event_index": [end], "time": [t], "subject": [s], "relation": [r],
                          "object": [-1], "direction": ["object"], "target": [s], "history_end": [end]})
    return QuerySet("object", "predict", frame, log.num_entities, log.num_relations, np.array([0, 1], np.int64),
                    np.array([s], np.int64))


def _query_name(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RequestError(f"got {value!r}.", field=field, fix=f"give the {field}'s name as a non-empty string.")
    return value.strip()


def _fitted_until(abducer: Any) -> float | None:
    """The time of the last event an abducer learned from (mined rules count events up to it), or None."""
    times = [float(rs.last_time) for part in (abducer, getattr(abducer, "rules", None))
             if (rs := getattr(part, "rules", None)) is not None and hasattr(rs, "last_time")]
    times = [t for t in times if np.isfinite(t)]  # a rule set without the record is refused by its applier
    return max(times) if times else None


def _keep_fitted_state(abducer: Any, log: EventLog) -> None:
    """What an abducer learns lazily from the fit log, learned now, so that predict (and save) use it and never
    relearn it from a history: mined rules of the train split, an LLM's train demonstrations. (Its step may have
    come from the artifact store, in which case it never ran.)"""
    parts: list[Any] = [abducer, getattr(abducer, "rules", None), getattr(abducer, "llm", None)]
    for part in parts:
        if callable(getattr(part, "applier", None)):
            part.applier(log)
        if hasattr(part, "demonstrations"):
            part.fixed_demonstrations = list(part.demonstrations(log))


def _evidence_event(log: EventLog, row: int, score: float) -> EvidenceEvent:
    t, s, r, o = log.event(row)
    return EvidenceEvent(row, log.time_spec.format(t), log.entities.name(s), log.relations.name(r),
                         log.entities.name(o) if o >= 0 else "", score)


def _public_llm(cfg: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The LLM config as stored in a bundle: never a value under a secret-looking key (only ``*_env``
    names of environment variables are kept)."""
    if cfg is None:
        return None
    out: dict[str, Any] = {}
    for k, v in cfg.items():
        if any(h in k.lower() for h in _SECRET_HINTS) and not k.lower().endswith("_env"):
            continue
        out[k] = _public_llm(v) if isinstance(v, Mapping) else v
    return out


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
