"""Progress bars: shown only in a terminal, one per stage and description, counters after the bar."""

from __future__ import annotations

import io
import time
from collections.abc import Callable

import pytest

from lamp import progress
from lamp.progress import progress_bar, stage


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _terminal(monkeypatch: pytest.MonkeyPatch, delay: float = 0.0) -> Terminal:
    # patched in the test's body: pytest's output capture resets sys.stderr after fixtures run
    term = Terminal()
    monkeypatch.setattr("sys.stderr", term)
    monkeypatch.setattr(progress, "DELAY_S", delay)
    return term


def test_calls_of_a_stage_share_one_bar_whose_total_grows(monkeypatch: pytest.MonkeyPatch,
                                                           screen: Callable[[str], list[str]]) -> None:
    terminal = _terminal(monkeypatch)
    with stage("abduce[llm]", enabled=True):
        for n in (3, 2):  # e.g. the valid, then the test queries
            bar = progress_bar(total=n, desc="LLM", unit="call")
            for _ in range(n):
                bar.update(1)
                bar.tally(calls=1, cached=0, tokens=50)
            bar.close()
    lines = [line for line in screen(terminal.getvalue()) if line]
    assert len(lines) == 1, lines  # one line stays: the stage's record
    assert lines[0].startswith("abduce[llm]: LLM: 100%") and "5/5" in lines[0] and "calls=5" in lines[0]
    assert "cached=0" in lines[0] and "tok/s=" in lines[0]


def test_no_bar_where_nobody_sees_it_or_when_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = io.StringIO()  # not a terminal: a log file or a pipe
    monkeypatch.setattr("sys.stderr", pipe)
    monkeypatch.setattr(progress, "DELAY_S", 0.0)
    with stage("retrieve[rules]", enabled=True):
        for _ in progress_bar(range(3), desc="retrieval", unit="request"):
            pass
    assert pipe.getvalue() == ""
    term = Terminal()
    monkeypatch.setattr("sys.stderr", term)
    with stage("retrieve[rules]", enabled=False):  # progress=false
        for _ in progress_bar(range(3), desc="retrieval", unit="request"):
            pass
    for _ in progress_bar(range(3), desc="outside any stage", unit="x"):  # a component nobody told: off
        pass
    assert term.getvalue() == ""
    for _ in progress_bar(range(3), desc="asked for", unit="x", enabled=True):
        pass
    assert "asked for: 100%" in term.getvalue()


def test_nested_and_per_epoch_bars_leave_nothing_behind(monkeypatch: pytest.MonkeyPatch,
                                                         screen: Callable[[str], list[str]]) -> None:
    terminal = _terminal(monkeypatch)
    with stage("retrieve[llm]", enabled=True):
        outer = progress_bar(total=2, desc="retrieval", unit="request")
        inner = progress_bar(total=4, desc="embedding", unit="text")  # opened while the outer one shows
        inner.update(4)
        inner.close()
        outer.update(2)
        outer.close()
        for _ in progress_bar(range(2), desc="epoch 1/3", unit="batch", leave=False):
            pass
    lines = [line for line in screen(terminal.getvalue()) if line]
    assert lines == [next(line for line in lines if line.startswith("retrieve[llm]: retrieval: 100%"))], lines


def test_a_quick_loop_prints_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    term = _terminal(monkeypatch, delay=5.0)
    with stage("rank[lamp[rules]]", enabled=True):
        for _ in progress_bar(range(3), desc="ranker training", unit="epoch"):
            time.sleep(0.01)
    with stage("retrieve[rules]", enabled=True):
        for n in (5, 10):  # a shared bar that grows: still nothing before the delay
            bar = progress_bar(total=n, desc="retrieval", unit="request")
            bar.update(n)
            bar.close()
    assert term.getvalue() == ""


def test_a_loop_that_stops_early_says_so(monkeypatch: pytest.MonkeyPatch,
                                         screen: Callable[[str], list[str]]) -> None:
    terminal = _terminal(monkeypatch)
    with stage("rank[lamp[llm]]", enabled=True):
        for epoch in progress_bar(range(1, 31), desc="ranker training", unit="epoch"):
            if epoch == 17:  # early stopping
                break
    [line] = [line for line in screen(terminal.getvalue()) if line]
    assert "| 17/30 " in line and "stopped=early" in line
