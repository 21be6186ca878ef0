"""The LightGBM ranker: learns a planted signal, saves and loads exactly (text format, no pickle)."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest

from lamp.errors import ArtifactError, ConfigError, MissingDependencyError
from lamp.rank.gbdt import GBDTRanker

pytest.importorskip("lightgbm")


def planted(n: int, m: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features [n, m, 4]: column 2 is highest for the true candidate (plus noise); the others are noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, m, 4)).astype(np.float32)
    gold = rng.integers(0, m, n)
    x[np.arange(n), gold, 2] += 2.5
    y = np.zeros((n, m))
    y[np.arange(n), gold] = 1.0
    y[: n // 10] = 0.0  # queries without a true answer in the top-M: left out, counted
    return x, y


def accuracy(scores: np.ndarray, y: np.ndarray) -> float:
    has = y.max(axis=1) > 0
    return float((y[has].argmax(axis=1) == scores[has].argmax(axis=1)).mean())


@pytest.fixture(scope="module")
def fitted() -> tuple[GBDTRanker, dict, np.ndarray, np.ndarray]:
    x, y = planted(1500)
    ranker = GBDTRanker(n_estimators=80, num_threads=1, min_data_in_leaf=20)
    report = ranker.fit(x[:1000], y[:1000], x[1000:], y[1000:], ["a", "b", "signal", "d"])
    return ranker, report, x[1000:], y[1000:]


def test_learns_the_planted_signal(fitted) -> None:
    ranker, report, x, y = fitted
    assert accuracy(ranker.score(x), y) > 0.85  # chance is 1/6
    assert next(iter(ranker.importance())) == "signal"
    assert report["skipped_train"] == 150 and report["train_queries"] == 850  # the first tenth has no answer
    assert report["stop_queries"] == 500 and 1 <= report["best_iteration"] <= 80
    fresh_x, fresh_y = planted(400, seed=7)
    assert accuracy(ranker.score(fresh_x), fresh_y) > 0.85


def test_save_load_round_trips_exactly(fitted, tmp_path) -> None:
    ranker, _, x, _ = fitted
    ranker.weight = math.inf
    ranker.save(tmp_path / "r")
    assert (tmp_path / "r" / "model.txt").read_text().startswith("tree")
    assert json.loads((tmp_path / "r" / "ranker.json").read_text())["weight"] == "inf"
    loaded = GBDTRanker.load(tmp_path / "r")
    np.testing.assert_array_equal(loaded.score(x), ranker.score(x))
    assert loaded.weight == math.inf and loaded.feature_names == ranker.feature_names
    assert loaded.settings == ranker.settings


def test_load_rejects_a_broken_folder(fitted, tmp_path) -> None:
    ranker, *_ = fitted
    ranker.save(tmp_path / "r")
    meta = json.loads((tmp_path / "r" / "ranker.json").read_text())
    (tmp_path / "r" / "ranker.json").write_text(json.dumps({**meta, "kind": "energy"}))
    with pytest.raises(ArtifactError, match="kind"):
        GBDTRanker.load(tmp_path / "r")
    with pytest.raises(ArtifactError, match="model.txt"):
        GBDTRanker.load(tmp_path / "missing")


def test_bad_input_and_missing_library(fitted, monkeypatch) -> None:
    ranker, *_ = fitted
    with pytest.raises(ConfigError, match="4 features"):
        ranker.score(np.zeros((2, 6, 3), np.float32))
    with pytest.raises(ConfigError, match="invalid LightGBM ranker settings"):
        GBDTRanker(leaves=3)
    x, y = planted(50)
    with pytest.raises(ConfigError, match="no training query"):
        GBDTRanker().fit(x, np.zeros_like(y), x, y, ["a", "b", "c", "d"])
    monkeypatch.setitem(sys.modules, "lightgbm", None)
    with pytest.raises(MissingDependencyError, match="pip install lightgbm"):
        GBDTRanker().fit(x, y, x, y, ["a", "b", "c", "d"])


def test_refit_boosts_the_given_rounds_on_every_query() -> None:
    x, y = planted(1500)
    ranker = GBDTRanker(n_estimators=80, num_threads=1, min_data_in_leaf=20)
    ranker.fit(x[:600], y[:600], x[600:1000], y[600:1000], ["a", "b", "signal", "d"])
    early = ranker.score(x[1000:])
    report = ranker.refit(x[:1000], y[:1000], 40)
    assert report["refit_queries"] == 850 and report["refit_rounds"] == 40  # the first 150 have no answer
    assert ranker.booster.current_iteration() == 40 and not ranker.booster.best_iteration
    refit = ranker.score(x[1000:])
    assert not np.array_equal(refit, early) and accuracy(refit, y[1000:]) > 0.8  # chance is 1/6
