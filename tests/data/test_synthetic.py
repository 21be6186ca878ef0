"""lamp.data.synthetic: a synthetic log keeps the source's frequency statistics, is seeded, and loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lamp.data.eventlog import EventLog
from lamp.data.load import load_dataset
from lamp.data.synthetic import repeat_profile, source_stats, synthesize, triple_codes, write_renet


def _top_share(values: np.ndarray, n: int, frac: float) -> float:
    counts = np.sort(np.bincount(values, minlength=n))[::-1]
    return float(counts[: max(1, int(len(counts) * frac))].sum() / counts.sum())


@pytest.fixture(scope="module")
def fake(icews14: EventLog) -> EventLog:
    return synthesize(source_stats(icews14), 200_000, seed=3)


def test_frequency_statistics_match_the_source(icews14: EventLog, fake: EventLog) -> None:
    assert len(fake) == 200_000
    for col in ("subject", "object"):
        for frac in (0.01, 0.1):
            src = _top_share(icews14.frame[col].to_numpy(), icews14.num_entities, frac)
            got = _top_share(fake.frame[col].to_numpy(), fake.num_entities, frac)
            assert abs(got - src) < 0.03, (col, frac, src, got)
    r_src = np.bincount(icews14.rels, minlength=icews14.num_relations) / len(icews14)
    r_got = np.bincount(fake.rels, minlength=icews14.num_relations) / len(fake)
    assert 0.5 * np.abs(r_src - r_got).sum() < 0.03  # total variation distance of the relation distribution


def test_events_per_step_splits_and_repetition(icews14: EventLog, fake: EventLog) -> None:
    step = icews14.time_spec.granularity
    per_step_src = len(icews14) / len(np.unique(icews14.times))
    per_step_got = len(fake) / len(np.unique(fake.times))
    assert abs(per_step_got / per_step_src - 1) < 0.1  # more steps, not denser ones
    assert np.all(np.diff(fake.times) >= 0) and np.all(np.isin(np.diff(np.unique(fake.times)), [step]))
    for split, share in zip(("train", "valid"), (0.8245, 0.094), strict=True):  # ICEWS14's own shares
        assert abs(fake.split_sizes()[split] / len(fake) - share) < 0.02
    src_rep, src_gaps = repeat_profile(triple_codes(icews14), np.rint(icews14.times / step).astype(np.int64))
    got_rep, got_gaps = repeat_profile(triple_codes(fake), np.rint(fake.times / step).astype(np.int64))
    half = len(fake) // 2
    assert abs(got_rep[half:].mean() - src_rep[len(icews14) // 2:].mean()) < 0.15  # triples repeat as often
    assert abs(np.median(got_gaps) - np.median(src_gaps)) <= 3  # and as soon (burstiness)


def test_seeded_and_deterministic(icews14: EventLog, fake: EventLog) -> None:
    stats = source_stats(icews14)
    again = synthesize(stats, 200_000, seed=3)
    pd.testing.assert_frame_equal(again.frame, fake.frame)
    other = synthesize(stats, 200_000, seed=4)
    assert not other.frame.equals(fake.frame)


def test_written_folder_loads_with_the_real_loader(icews14: EventLog, tmp_path: Path, tmp_cache: Path) -> None:
    small = synthesize(source_stats(icews14), 5_000, seed=0)
    folder = write_renet(small, tmp_path / "fake")
    back = load_dataset(folder, time_spec=icews14.time_spec, download=False)
    pd.testing.assert_frame_equal(back.frame, small.frame)
    assert back.split_ends == small.split_ends and back.entities == small.entities
