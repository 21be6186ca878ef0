"""GBDTRanker: LightGBM ``lambdarank`` over the top-M candidates of each query, on :mod:`lamp.rank.features`.

One query is one LightGBM group (its M candidates); the label is 1 for the gold answer and for the
other true answers at the query's time step (the time-aware filter does not count them against the
gold either), 0 otherwise. Groups without any true answer in the top-M cannot teach a reorder and
are left out (counted). Boosting stops early on the held-out part's MAP@M (= MRR within the top-M
with one answer), and the model is saved in LightGBM's own text format plus a JSON sidecar: no pickle.

>>> ranker = GBDTRanker(num_threads=2)                                # doctest: +SKIP
>>> report = ranker.fit(x_train, y_train, x_stop, y_stop, names)       # x: [Q, M, F], y: [Q, M]
>>> scores = ranker.score(x_test)                                      # [Q, M], higher = better
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lamp.errors import ArtifactError, ConfigError, MissingDependencyError

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1


@dataclass(frozen=True)
class GBDTSettings:
    """LightGBM settings (defaults: regularised for a few thousand queries; not tuned on any split)."""

    num_leaves: int = 15
    learning_rate: float = 0.05
    n_estimators: int = 600
    min_data_in_leaf: int = 100
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    bagging_freq: int = 1
    lambda_l2: float = 10.0
    early_stopping: int = 50
    refit: bool = True  # after the stop part has chosen the rounds and w, boost again on train + stop
    num_threads: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_leaves < 2 or self.n_estimators < 1 or not 0 < self.learning_rate <= 1:
            raise ConfigError(f"GBDT settings out of range: num_leaves={self.num_leaves} (>= 2), n_estimators="
                              f"{self.n_estimators} (>= 1), learning_rate={self.learning_rate} (in (0, 1]).")


def _lightgbm() -> Any:
    try:
        import lightgbm
    except ModuleNotFoundError as exc:
        raise MissingDependencyError("lightgbm", purpose="the LightGBM ranker (ranker=lightgbm)") from exc
    return lightgbm


def _groups(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flattened rows, labels and group sizes of the queries with at least one true answer."""
    keep = y.max(axis=1) > 0
    q, m, f = x[keep].shape
    return x[keep].reshape(q * m, f), y[keep].reshape(-1), np.full(q, m, dtype=np.int64)


class GBDTRanker:
    """LightGBM lambdarank over feature blocks ``[Q, M, F]``; higher score = more plausible."""

    kind = "lightgbm"

    def __init__(self, **settings: Any) -> None:
        try:
            self.settings = GBDTSettings(**settings)
        except TypeError as exc:
            raise ConfigError(f"invalid LightGBM ranker settings {sorted(settings)}: {exc}. Valid: "
                              f"{', '.join(GBDTSettings.__dataclass_fields__)}.") from exc
        self.booster: Any = None
        self.feature_names: tuple[str, ...] = ()
        self.weight = 0.0  # final = score + w * base (see lamp.rank.rerank.select_combination); inf: base order

    def _params(self, m: int) -> dict[str, Any]:
        s = self.settings
        return {"objective": "lambdarank", "metric": "map", "eval_at": [m], "num_leaves": s.num_leaves,
                "learning_rate": s.learning_rate, "min_data_in_leaf": s.min_data_in_leaf,
                "feature_fraction": s.feature_fraction, "bagging_fraction": s.bagging_fraction,
                "bagging_freq": s.bagging_freq, "lambda_l2": s.lambda_l2, "num_threads": s.num_threads,
                "seed": s.seed, "deterministic": True, "force_row_wise": True, "verbosity": -1,
                "lambdarank_truncation_level": m, "label_gain": [0.0, 1.0]}

    def fit(self, x_train: np.ndarray, y_train: np.ndarray, x_stop: np.ndarray, y_stop: np.ndarray,
            names: Sequence[str]) -> dict[str, Any]:
        """Boost on the train part, stop early on the stop part; returns the curve and what was used."""
        lgb = _lightgbm()
        m = x_train.shape[1]
        xt, yt, gt = _groups(x_train, y_train)
        xs, ys, gs = _groups(x_stop, y_stop)
        if not len(gt):
            raise ConfigError(f"no training query has a true answer in its top-{m} ({len(x_train)} given); the "
                              "ranker cannot learn. Fix: more valid queries, a larger top_m, or ranker=none.")
        self.feature_names = tuple(names)
        start = time.perf_counter()
        train = lgb.Dataset(xt, yt, group=gt, feature_name=list(names), free_raw_data=True)
        valid_sets, callbacks, record = [train], [], {}  # type: ignore[var-annotated]
        if len(gs):
            valid_sets.append(lgb.Dataset(xs, ys, group=gs, reference=train))
            callbacks = [lgb.early_stopping(self.settings.early_stopping, verbose=False), lgb.record_evaluation(record)]
        self.booster = lgb.train(self._params(m), train, num_boost_round=self.settings.n_estimators,
                                 valid_sets=valid_sets, valid_names=["train", "stop"][: len(valid_sets)],
                                 callbacks=callbacks)
        curve: list[float] = next(iter(record.get("stop", {}).values()), [])
        report = {"train_queries": int(len(gt)), "stop_queries": int(len(gs)),
                  "skipped_train": int(len(x_train) - len(gt)), "skipped_stop": int(len(x_stop) - len(gs)),
                  "best_iteration": int(self.booster.best_iteration or self.booster.current_iteration()),
                  "seconds": time.perf_counter() - start, "rounds": len(curve),
                  "stop_map_first_best": [float(curve[0]), float(max(curve))] if curve else None}
        logger.info("lightgbm ranker: %d train / %d stop queries, best iteration %d, %.1f s", len(gt), len(gs),
                    report["best_iteration"], report["seconds"])
        return report

    def refit(self, x: np.ndarray, y: np.ndarray, rounds: int) -> dict[str, Any]:
        """Boost ``rounds`` rounds afresh on ``x``/``y`` (train + stop parts), no early stopping: the final model
        learns from every query once the held-out part has chosen the rounds and the combination weight."""
        lgb = _lightgbm()
        xa, ya, ga = _groups(x, y)
        start = time.perf_counter()
        data = lgb.Dataset(xa, ya, group=ga, feature_name=list(self.feature_names), free_raw_data=True)
        self.booster = lgb.train(self._params(x.shape[1]), data, num_boost_round=max(1, int(rounds)))
        report = {"refit_queries": int(len(ga)), "refit_rounds": int(rounds),
                  "refit_seconds": time.perf_counter() - start}
        logger.info("lightgbm ranker: refit on %d queries, %d rounds, %.1f s", len(ga), rounds, report["refit_seconds"])
        return report

    def score(self, x: np.ndarray) -> np.ndarray:
        """Scores ``[Q, M]`` (float64; higher = more plausible)."""
        if self.booster is None:
            raise ConfigError("the LightGBM ranker is not fitted; call fit() or load() first.")
        q, m, f = x.shape
        if f != len(self.feature_names):
            raise ConfigError(f"the ranker was trained on {len(self.feature_names)} features, got {f}.")
        if not q:
            return np.zeros((0, m))
        it = self.booster.best_iteration or None
        return np.asarray(self.booster.predict(x.reshape(q * m, f), num_iteration=it), dtype=np.float64).reshape(q, m)

    def importance(self) -> dict[str, float]:
        """Total gain of each feature, largest first."""
        gain = self.booster.feature_importance(importance_type="gain")
        pairs = sorted(zip(self.feature_names, gain.tolist(), strict=True), key=lambda kv: -kv[1])
        return {k: float(v) for k, v in pairs}

    # -- persistence ----------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        """``model.txt`` (LightGBM's text format) and ``ranker.json`` (settings, features, weight)."""
        if self.booster is None:
            raise ConfigError("the LightGBM ranker is not fitted; nothing to save.")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(folder / "model.txt"), num_iteration=self.booster.best_iteration or None)
        meta = {"format_version": FORMAT_VERSION, "kind": self.kind, "settings": asdict(self.settings),
                "feature_names": list(self.feature_names),
                "weight": self.weight if np.isfinite(self.weight) else "inf"}
        (folder / "ranker.json").write_text(json.dumps(meta, indent=2, sort_keys=True))

    @classmethod
    def load(cls, folder: str | Path) -> GBDTRanker:
        """Load what :meth:`save` wrote (LightGBM text model; never a pickle)."""
        lgb = _lightgbm()
        folder = Path(folder)
        try:
            meta = json.loads((folder / "ranker.json").read_text())
            booster = lgb.Booster(model_file=str(folder / "model.txt"))
        except (OSError, ValueError, lgb.basic.LightGBMError) as exc:
            raise ArtifactError(f"could not read a saved LightGBM ranker from {folder}: {exc}. Expected model.txt "
                                "and ranker.json written by GBDTRanker.save. Fix: retrain the ranker.") from exc
        if meta.get("format_version") != FORMAT_VERSION or meta.get("kind") != cls.kind:
            raise ArtifactError(f"{folder / 'ranker.json'} has format {meta.get('format_version')!r} / kind "
                                f"{meta.get('kind')!r}; expected {FORMAT_VERSION} / {cls.kind!r}. Fix: retrain.")
        ranker = cls(**meta["settings"])
        ranker.booster, ranker.feature_names = booster, tuple(meta["feature_names"])
        if list(booster.feature_name()) != list(ranker.feature_names):
            raise ArtifactError(f"{folder}: the model's features {booster.feature_name()[:5]}... differ from its "
                                "sidecar's. Fix: retrain.")
        ranker.weight = float(meta["weight"])
        return ranker
