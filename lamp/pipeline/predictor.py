"""``lamp.Pipeline``: a trained predictor to embed in a forecasting pipeline.

>>> import lamp
>>> log = lamp.load_dataset("icews14")                                              # doctest: +SKIP
>>> pipe = lamp.Pipeline.fit(log, abducer="rules", retriever="fuzzy", n_valid_queries=100)  # doctest: +SKIP
>>> pred = pipe.predict(history, subject="Barack Obama", relation="Impose sanctions", time="2014-03-17")  # doctest: +SKIP
>>> pred.candidates[0].entity, pred.candidates[0].evidence[:1]                      # doctest: +SKIP
>>> pipe.save("obama.lamp"); pipe = lamp.Pipeline.load("obama.lamp")                # doctest: +SKIP

``fit`` trains every stage on one dataset: the base model on its train split, the ranker on a seeded
sample of its valid queries (abduction and retrieval run on those queries only). ``predict`` answers
one object query ``(subject, relation, ?, time)`` against a history the caller gives (an EventLog or
a table of named events), with, for each of the top-M candidates, the abduced causes and the real
past events that support them: the explanation of the ranking.

What the history may hold:

- Only events strictly before the query time are used; later ones are ignored and counted
  (``Prediction.ignored_future``), so a caller can pass a whole live feed.
- Entities unseen in training are kept: they are candidates, history-based base models (recurrency,
  frequency, rules) score them from the history, and the ranker sees them through one shared
  "unknown entity" embedding. Base models with a learned entity table (``ke_anhp``, easy-tpp) cannot
  score them: ``predict`` raises a ConfigError naming them.
- Relations unseen in training have no learned parameters anywhere: their events are dropped and
  counted (``Prediction.dropped_unseen_relation``); a query with such a relation is a ConfigError.

``save`` writes a versioned folder (``pipeline.json``, ``vocab.json``, the base model's checkpoint,
mined rules or LLM demonstrations, the ranker's safetensors); no pickle anywhere, and no secret: an
LLM is stored as its config (an API key is only ever named by its environment variable).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import lamp
from lamp.data.eventlog import EventLog, Vocab
from lamp.data.queries import QuerySet, make_queries
from lamp.data.render import SEP, render_event
from lamp.errors import ArtifactError, ConfigError
from lamp.pipeline.config import Component, PipelineConfig, default_artifacts_dir, default_llm
from lamp.pipeline.config import as_component as _component
from lamp.tpp.base import BaseModel
from lamp.types import CauseEvent

logger = logging.getLogger(__name__)

FORMAT = "lamp-pipeline"
FORMAT_VERSION = 2  # 2: each component saves itself in its own subfolder
_SECRET_HINTS = ("api_key", "token", "password", "secret")


@dataclass(frozen=True)
class EvidenceEvent:
    """A real past event that supports a candidate (found by the retriever)."""

    row: int
    date: str
    subject: str
    relation: str
    object: str
    score: float


@dataclass(frozen=True)
class CandidatePrediction:
    """One of the top-M candidates: where the base model and lamp put it, and why."""

    rank: int  # 1-based, after the ranker
    entity: str
    event: str  # the candidate event as text (render_event)
    base_rank: int  # 1-based, the base model's order
    base_score: float
    energy: float | None  # the ranker's energy (lower = more plausible); None without a ranker
    causes: tuple[CauseEvent, ...]
    evidence: tuple[EvidenceEvent, ...]


@dataclass(frozen=True)
class Prediction:
    """The ranked candidates of one query, best first, with the history actually used."""

    subject: str
    relation: str
    time: float
    date: str
    candidates: tuple[CandidatePrediction, ...]
    history_events: int
    ignored_future: int = 0
    dropped_unseen_relation: int = 0
    unseen_entities: tuple[str, ...] = ()
    ranker_used: bool = True

    def to_frame(self) -> pd.DataFrame:
        """One row per candidate (rank, entity, base rank and score, energy, causes and evidence as text)."""
        return pd.DataFrame([{
            "rank": c.rank, "entity": c.entity, "event": c.event, "base_rank": c.base_rank,
            "base_score": c.base_score, "energy": c.energy, "n_causes": len(c.causes),
            "causes": " || ".join(SEP.join((x.subject, x.relation, x.object)) for x in c.causes),
            "evidence": " || ".join(SEP.join((e.date, e.subject, e.relation, e.object)) for e in c.evidence),
        } for c in self.candidates])

    def explain(self, top: int = 3) -> str:
        """A readable explanation of the first ``top`` candidates."""
        lines = [f"Query: {SEP.join((self.date, self.subject, self.relation, '?'))}  "
                 f"({self.history_events} history events before it)"]
        for c in self.candidates[:top]:
            lines.append(f"{c.rank}. {c.entity}  (base rank {c.base_rank}, score {c.base_score:.3f}"
                         + (f", energy {c.energy:.3f})" if c.energy is not None else ")"))
            lines += [f"   cause: {SEP.join((x.subject, x.relation, x.object))}" for x in c.causes[:3]]
            lines += [f"   evidence: {SEP.join((e.date, e.subject, e.relation, e.object))}  ({e.score:.2f})"
                      for e in c.evidence[:3]]
        return "\n".join(lines)


@dataclass
class Pipeline:
    """A fitted predictor: vocabulary, base model, one abducer, a retriever and the ranker."""

    entities: Vocab
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
        inner: Any = getattr(the_abducer, "llm", the_abducer)
        if hasattr(inner, "demonstrations"):  # an LLM abducer keeps its train demonstrations for predict()
            inner.fixed_demonstrations = list(inner.demonstrations(log))
        config = {"task": "object", "top_m": top_m, "seed": seed, "base_model": fitted.model.name,
                  "abducer": ab.name, "retriever": comps.retriever.name,
                  "ranker": None if ranker_comp is None else ranker_comp.name, "llm": _public_llm(llm_cfg)}
        meta = {"name": log.name, "fingerprint": log.fingerprint(), "events": len(log),
                **{k: v for k, v in log.meta.items() if k in ("relation_root", "cameo_roots")}}
        return cls(log.entities, log.relations, log.time_spec, fitted.model, the_abducer, comps.retriever,
                   the_ranker, top_m, config, _jsonable(info), _jsonable(meta))

    # -- prediction ------------------------------------------------------------------------------------
    def history_log(self, history: EventLog | pd.DataFrame, before: float,
                    extra_entities: Sequence[str] = ()) -> tuple[EventLog, dict[str, Any]]:
        """``history`` as an EventLog in this pipeline's vocabulary, cut strictly before ``before``.

        A DataFrame needs columns ``subject``, ``relation``, ``object`` (names) and ``time`` (dataset
        units, or dates / ISO strings when the data has real dates). Entities unseen in training get new
        ids after the training ones, as do ``extra_entities`` (a query's subject with no history).
        """
        frame = _named_frame(history) if isinstance(history, EventLog) else history
        missing = [c for c in ("subject", "relation", "object", "time") if c not in frame.columns]
        if missing:
            raise ConfigError(f"the history table lacks column(s) {missing}; expected subject, relation, object "
                              "(names) and time. Fix: rename the columns or pass an EventLog.")
        times = self._times(frame["time"], "history column 'time'")
        rel_ids = np.array([self.relations.get(str(r)) for r in frame["relation"]], dtype=np.int64)
        unseen_rel = rel_ids < 0
        future = times >= before
        keep = ~unseen_rel & ~future
        names = list(self.entities.names)
        lookup = {n: i for i, n in enumerate(names)}
        new: list[str] = []

        def ent(name: Any) -> int:
            if name is None or (isinstance(name, float) and np.isnan(name)) or name == "":
                return -1  # no object
            key = str(name)
            if key not in lookup:
                lookup[key] = len(names)
                names.append(key)
                new.append(key)
            return lookup[key]

        kept = frame.loc[keep]
        subj = np.array([ent(s) for s in kept["subject"]], dtype=np.int32)
        obj = np.array([ent(o) for o in kept["object"]], dtype=np.int32)
        for name in extra_entities:
            ent(name)
        out = pd.DataFrame({"time": times[keep], "subject": subj, "relation": rel_ids[keep].astype(np.int32),
                            "object": obj})
        out = out.sort_values("time", kind="stable").reset_index(drop=True)
        n = len(out)
        log = EventLog("history", out, Vocab(tuple(names)), self.relations, self.time_spec, (n, n, n),
                       dict(self.dataset_meta))
        report = {"ignored_future": int(future.sum()), "dropped_unseen_relation": int((unseen_rel & ~future).sum()),
                  "new_entities": tuple(new)}
        return log, report

    def predict(self, history: EventLog | pd.DataFrame, subject: str, relation: str,
                time: float | str | date | datetime, *, top_m: int | None = None) -> Prediction:
        """Rank the objects of ``(subject, relation, ?, time)`` given ``history`` (see the module docstring)."""
        from lamp.pipeline.stages import abduction_requests
        from lamp.rank.rerank import apply_ranker
        from lamp.tpp.base import rank_candidates

        t = float(self._times(pd.Series([time]), "time")[0])
        r = self.relations.get(str(relation))
        if r < 0:
            raise ConfigError(f"relation {relation!r} was not seen in training, so nothing can score it. Valid "
                              f"relations are the {len(self.relations)} in the pipeline's vocab.json (e.g. "
                              f"{', '.join(self.relations.names[:3])}).")
        # A subject with no history at all is still a valid query (it gets an id like any unseen entity).
        log, report = self.history_log(history, t, extra_entities=(str(subject),))
        s = log.entities.get(str(subject))
        new = report["new_entities"]
        if new and getattr(type(self.base_model), "vocabulary_bound", False):
            raise ConfigError(f"base model {self.base_model.name!r} learned one embedding per training entity and "
                              f"cannot score {len(new)} unseen one(s): {', '.join(new[:5])}. Fix: leave them out of "
                              "the history or fit a history-based base model (recurrency, frequency, rules).")
        m = min(top_m or self.top_m, log.num_entities)
        queries = _one_query(log, s, r, t)
        table = rank_candidates(self.base_model, log, queries, m)
        requests = abduction_requests(log, table)
        results = self.abducer.abduce(log, requests)
        evidence = self.retriever.retrieve_many(log, requests, [res.causes for res in results])
        order = np.arange(m)[None, :]
        energies = None
        if self.ranker is not None:
            order, _, energies = apply_ranker(self.ranker, log, table, evidence, known_entities=len(self.entities))
        cands = []
        for rank, pos in enumerate(order[0], 1):
            cand = int(table.candidates[0, pos])
            ev = evidence[int(pos)]
            cands.append(CandidatePrediction(
                rank, log.entities.name(cand), render_event(log, s, r, cand, t), int(pos) + 1,
                float(table.scores[0, pos]), None if energies is None else float(energies[0, pos]),
                tuple(results[int(pos)].causes),
                tuple(_evidence_event(log, int(row), float(sc)) for row, sc in zip(ev.event_indices, ev.scores,
                                                                                     strict=True))))
        return Prediction(str(subject), str(relation), t, self.time_spec.format(t), tuple(cands), len(log),
                          report["ignored_future"], report["dropped_unseen_relation"], tuple(new),
                          self.ranker is not None)

    def _times(self, values: pd.Series, where: str) -> np.ndarray:
        """Dataset time units from numbers, or from dates / ISO strings when the data has an origin."""
        if pd.api.types.is_numeric_dtype(values):
            return values.to_numpy(dtype=np.float64)
        ts = self.time_spec
        if ts.origin is None:
            raise ConfigError(f"{where}: this dataset has no calendar (relative times), so times must be numbers "
                              f"in its units; got {values.iloc[0]!r}.")
        try:
            stamps = pd.to_datetime(values)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where}: expected numbers or dates like 2014-03-17; got {values.iloc[0]!r} ({exc}).") \
                from exc
        seconds = (stamps - pd.Timestamp(ts.origin)).dt.total_seconds().to_numpy(dtype=np.float64)
        return seconds / ts.seconds_per_unit

    # -- persistence -----------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the bundle folder atomically (a temporary folder renamed into place); each component
        writes its own subfolder (``base_model/``, ``abducer/``, ``retriever/``, ``ranker/``)."""
        target = Path(path).expanduser()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            manifest: dict[str, Any] = {
                "format": FORMAT, "format_version": FORMAT_VERSION, "lamp_version": lamp.__version__,
                "config": self.config, "fit_info": self.fit_info, "dataset": self.dataset_meta,
                "time_spec": self.time_spec.to_dict(), "top_m": self.top_m,
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
        return cls(Vocab(tuple(vocab["entities"])), Vocab(tuple(vocab["relations"])),
                   TimeSpec.from_dict(manifest["time_spec"]), model, abducer, retriever, ranker,
                   int(manifest["top_m"]), cfg, manifest.get("fit_info", {}), manifest.get("dataset", {}))


# -- helpers -----------------------------------------------------------------------------------------
def _named_frame(log: EventLog) -> pd.DataFrame:
    ents, rels = np.asarray(log.entities.names, dtype=object), np.asarray(log.relations.names, dtype=object)
    return pd.DataFrame({"subject": ents[log.subjects], "relation": rels[log.rels],
                         "object": np.where(log.objects >= 0, ents[np.maximum(log.objects, 0)], ""),
                         "time": log.times})


def _one_query(log: EventLog, s: int, r: int, t: float) -> QuerySet:
    """The query ``(s, r, ?, t)`` over every entity; its 'gold' is a placeholder (no metric is computed)."""
    n = len(log)
    frame = pd.DataFrame({"query_id": [0], "event_index": [n], "time": [t], "subject": [s], "relation": [r],
                          "object": [-1], "direction": ["object"], "target": [s], "history_end": [n]})
    return QuerySet("object", "predict", frame, log.num_entities, log.num_relations, np.array([0, 1], np.int64),
                    np.array([s], np.int64))


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
