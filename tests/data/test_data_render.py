"""render_event / render_row: real dates for ICEWS14 / ICEWS18, relative times for the GDELT slice."""

from __future__ import annotations

from pathlib import Path

import pytest

from lamp.data.load import load_dataset
from lamp.data.render import render_event, render_row


def test_icews14_real_dates(icews14) -> None:
    assert icews14.times[0] == 1.0
    assert render_row(icews14, 0).startswith("2014-01-01 | ")
    assert render_row(icews14, len(icews14) - 1).startswith("2014-12-31 | ")
    t, s, r, o = icews14.event(100)
    text = render_row(icews14, 100)
    assert text == " | ".join([icews14.time_spec.format(t), icews14.entities.name(s), icews14.relations.name(r),
                               icews14.entities.name(o)])
    assert "_" not in icews14.relations.name(r)
    root = render_row(icews14, 100, level="root", with_time=False)
    assert root.split(" | ")[1] in icews14.meta["cameo_roots"]


def test_icews18_real_dates(data_dir: Path) -> None:
    log = load_dataset("icews18", data_root=data_dir, use_cache=False, download=False)
    assert render_row(log, 0).startswith("2018-01-01 | ")
    last = render_row(log, len(log) - 1)
    assert last.startswith("2018-10-31 | ") and ":" not in last.split(" | ")[0]  # daily data: no clock time


def test_gdelt_relative_times(data_dir: Path) -> None:
    log = load_dataset("gdelt", data_root=data_dir, use_cache=False, download=False)
    assert render_row(log, 0).startswith("t=0 min | ")
    row = int((log.times == 1440.0).argmax())
    assert render_row(log, row).startswith("day 1 | ")
    assert render_event(log, 0, 1, 2, 45.0).startswith("t=45 min | ")


def test_text_and_no_object(icews14) -> None:
    with_text = render_event(icews14, 0, 0, -1, 1.0, text="  A   headline\nwith spaces ")
    assert with_text.endswith(" | A headline with spaces") and with_text.count(" | ") == 3
    assert render_event(icews14, 0, 0, 1, None).count(" | ") == 2
    assert render_event(icews14, 0, -1, 1, 1.0, with_time=False).split(" | ")[1] == ""


@pytest.mark.parametrize("t, expected", [(3.0, "t=3"), (0.25, "t=0.25")])
def test_step_time(data_dir: Path, t: float, expected: str) -> None:
    log = load_dataset("amazon-easytpp", data_root=data_dir, use_cache=False, download=False)
    assert render_event(log, 0, 1, -1, t) == f"{expected} | dev-0 | type 1"
