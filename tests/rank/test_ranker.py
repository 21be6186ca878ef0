"""The energy ranker learns from evidence, cannot see the future, and round-trips through safetensors."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from rank_synthetic import M, Synthetic

from lamp.errors import ArtifactError, ConfigError, LeakageError
from lamp.rank import (
    EnergyRanker,
    build_examples,
    final_scores,
    gold_ranks,
    reorder,
    select_weight,
    shuffle_evidence,
    split_by_time,
)
from lamp.rank.examples import events_of
from lamp.rank.ranker import weight_to_json
from lamp.types import Evidence


def _accuracy(ranker: EnergyRanker, examples: list) -> float:
    gold = np.array([e.gold for e in examples])
    return float((gold_ranks(ranker.score(examples), gold) == 1).mean())


def test_learns_the_evidence_pattern_and_needs_it(trained) -> None:
    ranker, report, train, stop = trained
    assert report["train_examples"] == len(train) and report["skipped_train"] == 0
    assert [r["epoch"] for r in report["curve"]] == list(range(1, report["epochs_run"] + 1))
    acc = _accuracy(ranker, stop)
    assert acc > 0.8, f"accuracy {acc:.2f} with evidence that decides the answer (chance = {1 / M:.2f})"
    # the control: another query's evidence must bring it back to about chance
    shuffled = _accuracy(ranker, shuffle_evidence(stop, seed=1))
    assert shuffled < 0.45, f"accuracy {shuffled:.2f} on shuffled evidence: the ranker is not using the evidence"


def test_binary_loss_trains(synth: Synthetic) -> None:
    train, stop = split_by_time(synth.examples[:150])
    ranker = EnergyRanker(synth.log.num_entities, synth.log.num_relations, dim=16, layers=1, heads=2,
                          max_evidence=8, lr=3e-3, loss="binary", device="cpu")
    report = ranker.fit(train, stop, epochs=2, patience=2, seed=0)
    assert report["curve"][-1]["train_loss"] < report["curve"][0]["train_loss"] * 1.5
    assert ranker.score(stop).shape == (len(stop), M)


def test_seeded_training_is_reproducible(synth: Synthetic) -> None:
    train, stop = split_by_time(synth.examples[:90])
    energies = []
    for _ in range(2):
        ranker = EnergyRanker(synth.log.num_entities, synth.log.num_relations, dim=16, layers=1, heads=2,
                              max_evidence=4, device="cpu")
        ranker.fit(train, stop, epochs=2, patience=5, seed=7)
        energies.append(ranker.score(stop))
    np.testing.assert_array_equal(energies[0], energies[1])


def test_examples_without_gold_are_skipped_and_counted(synth: Synthetic) -> None:
    train, stop = split_by_time(synth.examples[:60])
    no_gold = [replace(e, gold=-1) for e in train[:5]]
    ranker = EnergyRanker(synth.log.num_entities, synth.log.num_relations, dim=16, layers=1, heads=2, device="cpu")
    report = ranker.fit(train[5:] + no_gold, stop, epochs=1, patience=1, seed=0)
    assert report["skipped_train"] == 5 and report["train_examples"] == len(train) - 5
    with pytest.raises(ConfigError, match="top-M"):
        ranker.fit(no_gold, stop, epochs=1)


def test_future_evidence_is_rejected(synth: Synthetic) -> None:
    ex = synth.examples[0]
    late = np.array([ex.history_end], dtype=np.int64)  # the first row at the query's own time
    rows = (late,) + ex.evidence_rows[1:]
    with pytest.raises(LeakageError):
        replace(ex, evidence_rows=rows, evidence_events=(events_of(synth.log, late),) + ex.evidence_events[1:])
    with pytest.raises(LeakageError):  # a future time alone is enough
        replace(ex, evidence_events=(np.array([[ex.query_time, 0, 0, 0]]),) + ex.evidence_events[1:])
    bad = list(synth.evidences)
    end = int(synth.table.queries.frame["history_end"].to_numpy()[0])  # evidences[0] belongs to query 0
    bad[0] = Evidence(bad[0].query_id, bad[0].candidate, np.array([end], dtype=np.int64), np.ones(1, np.float32),
                      bad[0].query_time)
    with pytest.raises(LeakageError, match="history_end"):
        build_examples(synth.log, synth.table, bad)


def test_built_examples_match_the_table(synth: Synthetic) -> None:
    ex, f = synth.examples[3], synth.table.queries.frame
    assert ex.query_id == int(f["query_id"].to_numpy()[3]) and ex.num_candidates == M
    assert ex.gold == int(synth.table.gold_position()[3]) >= 0
    assert (ex.candidates[:, 2] == synth.table.candidates[3]).all()  # object task: the candidate is the object
    for rows, events in zip(ex.evidence_rows, ex.evidence_events, strict=True):
        assert (rows < ex.history_end).all() and (events[:, 0] < ex.query_time).all()
        assert (np.diff(rows) >= 0).all()


def test_shuffled_evidence_stays_in_the_past_and_moves(synth: Synthetic) -> None:
    shuffled = shuffle_evidence(synth.examples, seed=0)
    moved = 0
    for a, b in zip(synth.examples, shuffled, strict=True):
        assert b.gold == a.gold and (b.candidates == a.candidates).all()
        assert all((r < b.history_end).all() for r in b.evidence_rows)
        moved += any(not np.array_equal(x, y) for x, y in zip(a.evidence_rows, b.evidence_rows, strict=True))
    assert moved > 0.9 * len(shuffled)


def test_split_by_time_never_mixes_times(synth: Synthetic) -> None:
    train, stop = split_by_time(synth.examples)
    assert max(e.query_time for e in train) < min(e.query_time for e in stop)
    assert len(train) + len(stop) == len(synth.examples)
    assert 0.5 < len(train) / len(synth.examples) < 0.75


def test_save_load_round_trip(trained, tmp_path) -> None:
    ranker, _, _, stop = trained
    ranker.weight = 0.25
    ranker.save(tmp_path / "r")
    loaded = EnergyRanker.load(tmp_path / "r", device="cpu")
    np.testing.assert_array_equal(loaded.score(stop), ranker.score(stop))
    assert loaded.weight == 0.25 and loaded.hparams == ranker.hparams
    config = json.loads((tmp_path / "r" / "ranker.json").read_text())
    config["hparams"]["dim"] = 48
    (tmp_path / "r" / "ranker.json").write_text(json.dumps(config))
    with pytest.raises(ArtifactError, match="do not match"):
        EnergyRanker.load(tmp_path / "r", device="cpu")
    with pytest.raises(ArtifactError):
        EnergyRanker.load(tmp_path / "missing")


def test_reorder_and_weight() -> None:
    class Ex:  # the two fields reorder/select_weight read
        def __init__(self, base: list[float], gold: int) -> None:
            self.base_scores, self.gold = np.array(base, np.float32), gold

    examples = [Ex([3.0, 2.0, 1.0], 2), Ex([1.0, 2.0, 3.0], 0)]
    energies = np.array([[0.0, 0.0, -1.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    order = reorder(examples, energies, 0.0)  # type: ignore[arg-type]
    assert order.tolist() == [[2, 0, 1], [0, 1, 2]]  # ties keep the base order
    assert reorder(examples, energies, 10.0).tolist()[1] == [2, 1, 0]  # type: ignore[arg-type]
    w, table = select_weight(examples, energies, grid=[0.0, 10.0])  # type: ignore[arg-type]
    assert w == 0.0 and table[0.0] < table[10.0]


class _Ex:  # the two fields final_scores / select_weight read
    def __init__(self, base: list[float], gold: int) -> None:
        self.base_scores, self.gold = np.array(base, np.float32), gold


def test_infinite_weight_is_the_base_order_with_energy_breaking_ties() -> None:
    examples = [_Ex([3.0, 1.0, 1.0, 1.0, 0.5], 0)]
    energies = np.array([[9.0, 2.0, -5.0, 2.0, -100.0]], dtype=np.float32)  # the energy prefers 4, then 2
    final = final_scores(examples, energies, math.inf)  # type: ignore[arg-type]
    # base first (0 before the three 1.0s before 4), whatever the energy says; among the 1.0s, energy decides;
    # candidates 1 and 3 are equal in both and stay tied
    assert reorder(examples, energies, math.inf).tolist() == [[0, 2, 1, 3, 4]]  # type: ignore[arg-type]
    assert final[0, 1] == final[0, 3] and final[0, 0] > final[0, 2] > final[0, 1] > final[0, 4]
    # a huge finite w is not the same: a large enough energy gap still crosses the base order
    assert reorder(examples, energies, 10.0).tolist()[0][0] == 4  # type: ignore[arg-type]


def test_selection_falls_back_to_the_base_order_when_every_finite_weight_hurts() -> None:
    # the energy is confidently wrong by more than the base gaps: every finite w of the grid puts a wrong
    # candidate first in some query, while the base order has every gold at rank 1
    examples = [_Ex([10.0, 9.999, 0.0], 0), _Ex([0.0, 10.0, 9.999], 1), _Ex([9.999, 0.0, 10.0], 2)]
    energies = np.array([[5.0, -5.0, 0.0], [0.0, 5.0, -5.0], [-5.0, 0.0, 5.0]], dtype=np.float32)
    w, table = select_weight(examples, energies)  # type: ignore[arg-type]
    assert math.isinf(w) and table[math.inf] == 1.0 and all(v > 1.0 for k, v in table.items() if math.isfinite(k))
    # an energy that agrees with the base order ties every w (gold first everywhere): the smallest w wins
    base = np.stack([e.base_scores for e in examples])
    w2, table2 = select_weight(examples, -base)  # type: ignore[arg-type]
    assert w2 == 0.0 and set(table2.values()) == {1.0} and math.inf in table2


def test_base_order_weight_saves_as_valid_json(trained, tmp_path) -> None:
    ranker, _, _, stop = trained
    ranker.weight = math.inf
    ranker.save(tmp_path / "r")
    text = (tmp_path / "r" / "ranker.json").read_text()
    config = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert config["weight"] == "inf" and weight_to_json(0.5) == 0.5
    assert math.isinf(EnergyRanker.load(tmp_path / "r", device="cpu").weight)
