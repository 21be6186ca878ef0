"""The feature ranking stage in one call: learn on every valid query, reorder the test top-M.

>>> out = rerank_top_m(log, {"valid": valid_table, "test": test_table},
...                    {"valid": valid_evidence, "test": test_evidence}, ranker="lightgbm")   # doctest: +SKIP
>>> table = apply_reorder(test_table, out.order, "lamp[rules]", tie_keys=out.tie_keys)         # doctest: +SKIP

Steps: features of every (query, top-M candidate) (:mod:`lamp.rank.features`: base score and rank,
history counts, the evidence found, optionally other base models' scores as a named ensemble); the
valid queries divided by time (the first ``train_fraction`` trains, the rest early-stops and chooses
the combination ``final = score + w * base_score``, ``w = inf`` being the base order with the ranker
only breaking its ties, chosen when no finite ``w`` beats it there: a ranker never makes the base
order worse on the held-out valid queries); the test queries are only scored. The evidence control
scores the held-out part again with every query given another (earlier) query's evidence: a ranker
that uses the evidence gets worse.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lamp.data.eventlog import EventLog
from lamp.errors import ArtifactError, ConfigError
from lamp.rank.features import Features, build_features, evidence_features
from lamp.types import CandidateTable, Evidence

logger = logging.getLogger(__name__)

FEATURE_RANKERS = ("lightgbm", "energy")
Ensemble = Mapping[str, tuple[np.ndarray, np.ndarray]]  # base model name -> (scores [Q, M], ranks [Q, M])
# a fitted ranker's scores [Q, M] (higher = better) of a table's queries from their evidence and features [Q, M, F]
Scorer = Callable[[CandidateTable, Sequence[Evidence], np.ndarray], np.ndarray]


@dataclass(frozen=True)
class RerankOutcome:
    """The test top-M's new order, its tie keys (equal = tied, see ``eval.apply_reorder``) and what was learned."""

    order: np.ndarray  # [Q, M] positions in the base top-M, best first
    tie_keys: np.ndarray  # [Q, M] final scores aligned with the base positions
    scores: np.ndarray  # [Q, M] the ranker's own scores (higher = better)
    info: dict[str, Any]
    ranker: Any
    stop_positions: np.ndarray | None = None  # valid queries (positions) of the held-out part
    stop_order: np.ndarray | None = None  # their order and final scores, as for the test queries
    stop_final: np.ndarray | None = None


# -- labels and the held-out measure ----------------------------------------------------------------------
def true_cells(table: CandidateTable) -> np.ndarray:
    """[Q, M] bool: the candidate is the gold or another true answer at the query's time step."""
    q = table.queries
    n, m = table.candidates.shape
    lengths = np.diff(q.filter_ptr)
    owner = np.repeat(np.arange(n), lengths)
    width = int(max(q.num_candidates, int(table.candidates.max(initial=0)) + 1))
    true_keys = np.sort(owner.astype(np.int64) * width + q.filter_ids.astype(np.int64))
    cell = np.arange(n)[:, None].astype(np.int64) * width + table.candidates
    if not len(true_keys):
        out = np.zeros((n, m), dtype=bool)
    else:
        idx = np.minimum(np.searchsorted(true_keys, cell), len(true_keys) - 1)
        out = true_keys[idx] == cell
    return out | (table.candidates == q.frame["target"].to_numpy()[:, None])


def filtered_top_m_rr(final: np.ndarray, gold: np.ndarray, is_true: np.ndarray) -> np.ndarray:
    """1 / (filtered, average-tie rank of the gold within the top-M by ``final``); NaN where gold < 0.

    Other true answers are not counted (the time-aware filter), so the mean over queries is the change
    a reorder makes to the filtered MRR, up to the queries whose gold is outside the top-M.
    """
    has = gold >= 0
    rows = np.arange(len(gold))
    g = final[rows, np.maximum(gold, 0)][:, None]
    other = ~is_true
    rank = 1.0 + ((final > g) & other).sum(axis=1) + ((final == g) & other).sum(axis=1) / 2.0
    return np.where(has, 1.0 / rank, np.nan)


def combine(scores: np.ndarray, base: np.ndarray, w: float) -> np.ndarray:
    """``scores + w * base``; ``w = inf``: the base order with ``scores`` only breaking its ties."""
    if math.isinf(w) and w > 0:
        from lamp.rank.ranker import base_then

        return base_then(base.astype(np.float64), scores.astype(np.float64))
    return scores.astype(np.float64) + float(w) * base.astype(np.float64)


def select_combination(scores: np.ndarray, base: np.ndarray, gold: np.ndarray, is_true: np.ndarray,
                       grid: Sequence[float] | None = None) -> tuple[float, dict[float, float]]:
    """The ``w`` with the best held-out filtered top-M MRR (ties: the smaller ``|w|``; ``inf`` only when better).

    Default grid: 0, multiples 0.1 .. 100 of the ratio of within-query spreads of ranker and base
    scores, and ``inf`` (the base order). Returns (w, {w: MRR}).
    """
    keep = gold >= 0
    if not keep.any():
        return math.inf, {}
    s, b, g, t = scores[keep], base[keep], gold[keep], is_true[keep]
    if grid is None:
        ratio = float(np.std(s, axis=1).mean()) / max(float(np.std(b, axis=1).mean()), 1e-12)
        grid = [0.0] + [ratio * f for f in (0.1, 0.3, 1.0, 3.0, 10.0, 100.0)] + [math.inf]
    table = {float(w): float(np.mean(filtered_top_m_rr(combine(s, b, w), g, t))) for w in grid}
    best = max(table, key=lambda w: (table[w], -abs(w)))
    return best, table


def order_of(final: np.ndarray) -> np.ndarray:
    """Positions by ``final`` descending, ties in base order."""
    pos = np.broadcast_to(np.arange(final.shape[1]), final.shape)
    return np.lexsort((pos, -final), axis=1)


def split_positions(table: CandidateTable, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the earlier ``fraction`` of the queries by time and of the rest (a time step is never cut)."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"train_fraction must be in (0, 1), got {fraction}.")
    times = table.queries.frame["time"].to_numpy(np.float64)
    if not len(times):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    cut = np.sort(times)[min(len(times) - 1, int(len(times) * fraction))]
    return np.flatnonzero(times < cut), np.flatnonzero(times >= cut)


def shuffled_evidence(table: CandidateTable, evidences: Sequence[Evidence], seed: int = 0) -> list[Evidence]:
    """Control: each query's candidates get the evidence of another query with no later ``history_end``
    (so it is still strictly in the past), candidate ``j`` that of the donor's candidate ``j``."""
    f = table.queries.frame
    qids, ends = f["query_id"].to_numpy(np.int64), f["history_end"].to_numpy(np.int64)
    by_key = {(int(e.query_id), int(e.candidate)): e for e in evidences}
    order = np.lexsort((qids, ends))
    sorted_ends = ends[order]
    rng = np.random.default_rng(seed)
    out = []
    for pos_sorted, i in enumerate(order):
        eligible = int(np.searchsorted(sorted_ends, ends[i], side="right"))
        donor = None
        if eligible >= 2:
            k = int(rng.integers(eligible - 1))
            donor = order[k + 1 if k >= pos_sorted else k]
        for j, c in enumerate(table.candidates[i]):
            src = by_key.get((int(qids[donor]), int(table.candidates[donor, j]))) if donor is not None else None
            rows = src.event_indices if src is not None else np.zeros(0, np.int64)
            scores = src.scores if src is not None else np.zeros(0, np.float32)
            out.append(Evidence(int(qids[i]), int(c), rows, scores, float(f["time"].iloc[i])))
    return out


def _evidence_control(log: EventLog, table: CandidateTable, evidences: Sequence[Evidence], feats: Features,
                      stop: np.ndarray, w: float, gold: np.ndarray, is_true: np.ndarray, seed: int,
                      scorer: Scorer) -> dict[str, Any]:
    """Paired change of the held-out filtered top-M RR when the stop queries get other queries' evidence."""
    keep = stop[gold[stop] >= 0]
    if len(keep) < 2 or not any(n.startswith("ev_") for n in feats.names):
        return {"evidence_control": "not measured (no evidence features or too few held-out queries)"}
    sub = _take_table(table, keep)
    swapped = shuffled_evidence(sub, evidences, seed=seed)
    shuffled = evidence_features(log, sub, swapped)
    x = feats.values[keep]
    x_shuf = x.copy()
    x_shuf[:, :, [feats.names.index(n) for n in shuffled.names]] = shuffled.values
    base = table.scores[keep]
    rr = filtered_top_m_rr(combine(scorer(sub, evidences, x), base, w), gold[keep], is_true[keep])
    rr_shuf = filtered_top_m_rr(combine(scorer(sub, swapped, x_shuf), base, w), gold[keep], is_true[keep])
    diff = rr - rr_shuf
    se = float(diff.std(ddof=1) / np.sqrt(len(diff)))
    uses = diff.mean() > 2 * se and diff.mean() > 0
    verdict = "uses evidence" if uses else "no measurable use of the evidence"
    return {"evidence_control": f"{verdict} (held-out filtered top-M MRR {rr.mean():.4f} with its own evidence, "
                                f"{rr_shuf.mean():.4f} with another query's; difference {diff.mean():+.4f} +- {se:.4f}, "
                                f"{len(diff)} queries)",
            "evidence_control_mrr": float(rr.mean()), "evidence_control_mrr_shuffled": float(rr_shuf.mean()),
            "evidence_control_diff": float(diff.mean()), "evidence_control_se": se}


def _stop_mean_ranks(base: np.ndarray, final: np.ndarray, gold: np.ndarray) -> dict[str, float | None]:
    """The paper's metric on the held-out valid queries (gold in the top-M): mean rank of the gold by the base
    order and by the final order (average ties), as the report's selection on valid reads it."""
    from lamp.rank.ranker import gold_ranks

    keep = gold >= 0
    if not keep.any():
        return {"stop_mean_rank_base": None, "stop_mean_rank_combined": None}
    return {"stop_mean_rank_base": float(gold_ranks(-base[keep].astype(np.float64), gold[keep]).mean()),
            "stop_mean_rank_combined": float(gold_ranks(-final[keep], gold[keep]).mean())}


def _take_table(table: CandidateTable, pos: np.ndarray) -> CandidateTable:
    return CandidateTable(table.method, table.queries.take(pos), table.top_m, table.candidates[pos],
                          table.scores[pos], table.gold_rank_filtered[pos])


class FittedRanker:
    """A fitted feature ranker as the pipeline keeps and applies it: the model (LightGBM or the energy
    ranker), the combination weight ``w`` chosen on the held-out valid queries and what its features were.

    >>> order, final = fitted.order(log, table, evidence)        # doctest: +SKIP
    """

    def __init__(self, kind: str, model: Any, weight: float, feature_names: Sequence[str], use_evidence: bool) -> None:
        self.kind, self.model, self.weight = kind, model, float(weight)
        self.feature_names, self.use_evidence = tuple(feature_names), bool(use_evidence)

    def scores(self, log: EventLog, table: CandidateTable, evidences: Sequence[Evidence], *,
               known_entities: int | None = None) -> np.ndarray:
        """The ranker's own scores [Q, M] (higher = better) of ``table``'s top-M (``known_entities``: see
        :func:`apply_ranker`)."""
        feats = build_features(log, table, evidences if self.use_evidence else None)
        if feats.names != self.feature_names:
            raise ConfigError(f"the ranker was trained on features {list(self.feature_names)} but gets "
                              f"{list(feats.names)} (an ensemble ranker needs the other base models' scores). "
                              "Fix: apply it through the run that trained it, or refit it.")
        if self.kind == "lightgbm":
            return np.asarray(self.model.score(feats.values), dtype=np.float64)
        from lamp.rank.examples import build_examples, clamp_entities

        examples = [clamp_entities(e, known_entities) for e in build_examples(log, table, evidences,
                                                                             features=feats.values)]
        return -self.model.score(examples).astype(np.float64)

    def order(self, log: EventLog, table: CandidateTable, evidences: Sequence[Evidence], *,
              known_entities: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(order [Q, M] of base positions, best first; the final scores [Q, M] as tie keys)."""
        final = combine(self.scores(log, table, evidences, known_entities=known_entities), table.scores, self.weight)
        return order_of(final), final

    def save(self, folder: str | os.PathLike[str]) -> None:
        target = Path(folder)
        self.model.save(target / "model")
        record = {"kind": self.kind, "weight": self.weight if math.isfinite(self.weight) else "inf",
                  "features": list(self.feature_names), "use_evidence": self.use_evidence}
        (target / "fitted.json").write_text(json.dumps(record, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> FittedRanker:
        target = Path(folder)
        try:
            record = json.loads((target / "fitted.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{target} holds no fitted ranker ({exc}); expected fitted.json written by "
                                "FittedRanker.save. Fix: refit.") from exc
        if record.get("kind") == "lightgbm":
            from lamp.rank.gbdt import GBDTRanker

            model: Any = GBDTRanker.load(target / "model")
        else:
            from lamp.rank.ranker import EnergyRanker

            model = EnergyRanker.load(target / "model")
        weight = math.inf if record["weight"] == "inf" else float(record["weight"])
        return cls(str(record["kind"]), model, weight, record["features"], bool(record["use_evidence"]))


def apply_ranker(model: Any, log: EventLog, table: CandidateTable, evidences: Sequence[Evidence], *,
                 known_entities: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """A fitted ranker (a :class:`FittedRanker`, or the paper's :class:`~lamp.rank.ranker.EnergyRanker`) on
    ``table``'s top-M: (order [Q, M] of base positions, best first; final scores as tie keys; energies, lower =
    more plausible, for the energy ranker only). ``known_entities``: entity ids from it on were unseen in
    training and share the ranker's "unknown entity" row."""
    if isinstance(model, FittedRanker):
        order, final = model.order(log, table, evidences, known_entities=known_entities)
        return order, final, None
    from lamp.rank.examples import build_examples, clamp_entities
    from lamp.rank.ranker import final_scores, reorder

    examples = [clamp_entities(e, known_entities) for e in build_examples(log, table, evidences)]
    energies = model.score(examples)
    return reorder(examples, energies, model.weight), final_scores(examples, energies, model.weight), energies


# -- the stage ----------------------------------------------------------------------------------------
def rerank_top_m(log: EventLog, tables: Mapping[str, CandidateTable], evidences: Mapping[str, Sequence[Evidence]],
                 *, ranker: str = "lightgbm", ensemble: Mapping[str, Ensemble] | None = None, seed: int = 0,
                 train_fraction: float = 2 / 3, use_evidence: bool = True, progress: bool = False,
                 **hparams: Any) -> RerankOutcome:
    """Fit ``ranker`` (``lightgbm`` or ``energy``) on the valid queries and reorder the test top-M.

    ``evidences``: per split, the evidence of each (query, candidate) (from any abducer + retriever;
    the valid split's may come from a cheaper abducer than the test split's, and ``info`` then should
    say so). ``ensemble``: per split, other base models' (scores, ranks) of the same candidates.
    ``hparams`` go to the ranker (:class:`~lamp.rank.gbdt.GBDTSettings` or
    :class:`~lamp.rank.ranker.EnergyRanker`; ``epochs``/``patience`` for the energy ranker's fit; a
    config file's ``name`` is ignored, so ``rerank_top_m(log, tables, evidences, **conf_ranker)`` works).
    """
    ens = ensemble or {}
    test = tables["test"]
    start = time.perf_counter()
    test_feats = build_features(log, test, evidences["test"] if use_evidence else None, ensemble=ens.get("test"))
    fit = _fit_on_valid(log, tables["valid"], evidences["valid"], ranker=ranker, ensemble=ens.get("valid"),
                        seed=seed, train_fraction=train_fraction, use_evidence=use_evidence, progress=progress,
                        hparams=hparams)
    info = {**fit.info, "test_queries": len(test.queries),
            "feature_seconds": fit.info["feature_seconds"] + time.perf_counter() - start - fit.seconds}
    if fit.ranker is None or fit.scorer is None or fit.stop_final is None:
        base = test.scores.astype(np.float64)
        m = test.candidates.shape[1]
        return RerankOutcome(np.broadcast_to(np.arange(m), base.shape).copy(), base, np.zeros_like(base), info, None)
    test_scores = fit.scorer(test, evidences["test"], test_feats.values)
    final = combine(test_scores, test.scores, fit.ranker.weight)
    return RerankOutcome(order_of(final), final, test_scores, info, fit.ranker, fit.stop, order_of(fit.stop_final),
                         fit.stop_final)


def fit_reranker(log: EventLog, valid: CandidateTable, evidences: Sequence[Evidence], *, ranker: str = "lightgbm",
                 seed: int = 0, train_fraction: float = 2 / 3, use_evidence: bool = True, progress: bool = False,
                 **hparams: Any) -> tuple[FittedRanker | None, dict[str, Any]]:
    """The ranker fitted on the valid queries alone (no ensemble), and what it learned; apply it to any
    table with :func:`apply_ranker`. None when no training query has its gold in the top-M."""
    fit = _fit_on_valid(log, valid, evidences, ranker=ranker, ensemble=None, seed=seed, train_fraction=train_fraction,
                        use_evidence=use_evidence, progress=progress, hparams=hparams)
    return fit.ranker, fit.info


@dataclass(frozen=True)
class _Fit:
    ranker: FittedRanker | None
    scorer: Scorer | None
    info: dict[str, Any]
    stop: np.ndarray
    stop_final: np.ndarray | None
    seconds: float


def _fit_on_valid(log: EventLog, valid: CandidateTable, evidences: Sequence[Evidence], *, ranker: str,
                  ensemble: Ensemble | None, seed: int, train_fraction: float, use_evidence: bool, progress: bool,
                  hparams: Mapping[str, Any]) -> _Fit:
    """Features of the valid queries, the fit on their earlier part, ``w`` and the evidence control on the rest."""
    if ranker not in FEATURE_RANKERS:
        raise ConfigError(f"Invalid feature ranker: {ranker!r}. Valid choices are: {', '.join(FEATURE_RANKERS)}")
    began = time.perf_counter()
    feats = build_features(log, valid, evidences if use_evidence else None, ensemble=ensemble)
    is_true, gold = true_cells(valid), valid.gold_position()
    train, stop = split_positions(valid, train_fraction)
    m = valid.candidates.shape[1]
    info: dict[str, Any] = {"ranker": ranker, "valid_queries": len(valid.queries), "top_m": m,
                            "train_part": len(train), "stop_part": len(stop),
                            # a query teaches a feature ranker when any true answer (the gold or another one at
                            # its time) is in the top-M: exactly the queries its fit keeps; the held-out queries
                            # that choose w and measure it are those with the gold in the top-M
                            "train_used": int(is_true[train].any(axis=1).sum()), "stop_used": int((gold[stop] >= 0).sum()),
                            "train_rule": "a true answer (the gold or another one at its time) in the base top-M",
                            "features": list(feats.names), "ensemble": sorted(ensemble or {}),
                            "use_evidence": use_evidence, "feature_seconds": time.perf_counter() - began}
    if not info["train_used"]:
        logger.warning("ranker: no training query has its gold in the top-%d; keeping the base order", m)
        info["fallback"] = "no training query with its gold in the top-M; base order kept"
        return _Fit(None, None, info, stop, None, time.perf_counter() - began)
    start = time.perf_counter()
    model, scorer, report = _fit(ranker, log, valid, evidences, feats, is_true.astype(np.float64), train, stop, seed,
                                 {**hparams, "progress": progress})
    info["train_seconds"] = time.perf_counter() - start
    info.update(report)
    stop_scores = scorer(_take_table(valid, stop), evidences, feats.values[stop])
    base_stop = valid.scores[stop]
    w, grid = select_combination(stop_scores, base_stop, gold[stop], is_true[stop])
    model.weight = w
    rr = {name: filtered_top_m_rr(combine(stop_scores, base_stop, ww), gold[stop], is_true[stop])
          for name, ww in (("ranker", 0.0), ("base", math.inf), ("combined", w))}
    info.update({"weight": w if math.isfinite(w) else "inf", "weight_grid": {str(k): v for k, v in grid.items()},
                 **{f"stop_top_m_mrr_{k}": float(np.nanmean(v)) if np.isfinite(v).any() else None
                    for k, v in rr.items()}})
    if use_evidence:
        info.update(_evidence_control(log, valid, evidences, feats, stop, w, gold, is_true, seed + 1, scorer))
    stop_final = combine(stop_scores, base_stop, w)
    info.update(_stop_mean_ranks(base_stop, stop_final, gold[stop]))
    if ranker == "lightgbm" and model.settings.refit and info.get("stop_queries"):
        # the stop part has chosen the rounds and w (and measured the ranker above); the model that scores new
        # queries then learns from every valid query, its rounds scaled by the queries added
        both = np.concatenate([train, stop])
        rounds = round(info["best_iteration"] * (info["train_queries"] + info["stop_queries"]) / info["train_queries"])
        info.update(model.refit(feats.values[both], is_true[both].astype(np.float64), rounds))
    fitted = FittedRanker(ranker, model, w, feats.names, use_evidence)
    return _Fit(fitted, scorer, info, stop, stop_final, time.perf_counter() - began)


ENERGY_DEFAULTS: dict[str, Any] = {"dim": 32, "layers": 1, "heads": 2, "dropout": 0.1, "max_evidence": 16,
                                   "lr": 2e-3, "weight_decay": 0.05, "batch_size": 64, "loss": "listnet",
                                   "entity_embeddings": False}


def _fit(ranker: str, log: EventLog, table: CandidateTable, evidences: Sequence[Evidence], feats: Features,
         labels: np.ndarray, train: np.ndarray, stop: np.ndarray, seed: int,
         hparams: dict[str, Any]) -> tuple[Any, Scorer, dict[str, Any]]:
    """The fitted model, its :data:`Scorer` and its training report."""
    hparams = {k: v for k, v in hparams.items() if k != "name"}
    progress = bool(hparams.pop("progress", False))
    if ranker == "lightgbm":
        from lamp.rank.gbdt import GBDTRanker

        gb = GBDTRanker(**{"seed": seed, **hparams})
        report = gb.fit(feats.values[train], labels[train], feats.values[stop], labels[stop], feats.names)
        report["importance"] = dict(list(gb.importance().items())[:12])
        return gb, lambda _t, _e, x: gb.score(x), report
    from lamp.rank.examples import build_examples
    from lamp.rank.ranker import EnergyRanker

    fit_kw = {k: hparams.pop(k) for k in ("epochs", "patience") if k in hparams}
    try:
        energy = EnergyRanker(log.num_entities, log.num_relations, num_features=len(feats.names),
                              **{**ENERGY_DEFAULTS, **hparams})
    except TypeError as exc:
        raise ConfigError(f"ranker 'energy' got invalid arguments {sorted(hparams)}: {exc}.") from exc

    def examples(t: CandidateTable, ev: Sequence[Evidence], x: np.ndarray, y: np.ndarray | None = None) -> list[Any]:
        return build_examples(log, t, ev, features=x, relevant=None if y is None else y > 0)

    sub_train, sub_stop = _take_table(table, train), _take_table(table, stop)
    report = energy.fit(examples(sub_train, evidences, feats.values[train], labels[train]),
                        examples(sub_stop, evidences, feats.values[stop], labels[stop]),
                        epochs=int(fit_kw.get("epochs", 20)), patience=int(fit_kw.get("patience", 3)), seed=seed,
                        progress=progress)
    report = {"train_queries": report["train_examples"], "stop_queries": report["valid_examples"],
              "best_epoch": report["best_epoch"], "epochs_run": report["epochs_run"],
              "curve": [{k: round(float(v), 4) for k, v in row.items()} for row in report["curve"]]}
    return energy, lambda t, ev, x: -energy.score(examples(t, ev, x)).astype(np.float64), report
