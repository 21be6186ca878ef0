"""Progress bars: one line per long stage, shown only where a person can see it.

Library code asks for a bar with :func:`progress_bar`; whether it shows is decided by ``enabled``:

- ``False``: never; ``True``: when stderr is a terminal (or in a notebook): a log file or a pipe gets no
  bars, so CI logs stay readable;
- ``None`` (the default of components that are not told): as the enclosing :func:`stage` says, else never.

Inside ``stage(name)`` (the pipeline's :class:`~lamp.pipeline.timing.StageClock` opens one per stage)
bars are labelled with the stage's name, and bars with the same description share one line whose total
grows: a stage that calls the LLM for the valid and then the test queries shows one bar. The stage's
first bar stays on screen when the stage ends, a one-line record of it; bars opened while another is
showing are transient. A bar appears only after :data:`DELAY_S` seconds, so a quick loop prints nothing.

>>> for epoch in progress_bar(range(30), desc="train", unit="epoch", enabled=True):   # doctest: +SKIP
...     ...
>>> bar = progress_bar(total=300, desc="LLM", unit="call")
>>> bar.tally(calls=1, cached=0, tokens=185)   # counters shown after the bar; "tokens" as tokens/s
>>> bar.update(1); bar.close()
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
DELAY_S = 0.5
_RATES = {"tokens": "tok/s"}  # tallies shown as a rate over the bar's elapsed time
_lock = threading.Lock()


@dataclass
class _Stage:
    name: str
    enabled: bool | None
    bars: dict[str, Bar] = field(default_factory=dict)


_stages: list[_Stage] = []


def visible() -> bool:
    """Whether a person can see bars written to stderr: a terminal or a notebook."""
    if "ipykernel" in sys.modules:
        return True
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


class Bar:
    """A tqdm bar (or nothing, when disabled) with named counters shown after it."""

    def __init__(self, total: int | None, desc: str, unit: str, show: bool, *, shared: bool = False,
                 leave: bool | None = None) -> None:
        self.shared = shared
        self.counts: dict[str, float] = {}
        self.notes: dict[str, str] = {}
        # leave=None: a bar stays on screen if it is the outermost one when it closes
        self._tqdm = tqdm(total=total, desc=desc, unit=unit, disable=not show, delay=DELAY_S, leave=leave,
                          dynamic_ncols=True, file=sys.stderr)

    def extend(self, total: int | None) -> None:
        """Add ``total`` more steps (a later call in the same stage)."""
        if total is not None and self._tqdm.total is not None:
            self._tqdm.total += total  # shown at the next update: a refresh now would ignore the delay

    def update(self, n: float = 1) -> None:
        self._tqdm.update(n)

    def tally(self, **increments: float) -> None:
        """Add to the named counters shown after the bar (``tokens`` is shown as tokens per second)."""
        for key, value in increments.items():
            self.counts[key] = self.counts.get(key, 0) + value
        self._postfix()

    def note(self, **values: str) -> None:
        """Set named values shown after the bar (e.g. the running loss)."""
        self.notes.update(values)
        self._postfix()

    def _postfix(self) -> None:
        if self._tqdm.disable:
            return
        elapsed = max(float(self._tqdm.format_dict.get("elapsed") or 0.0), 1e-9)
        shown = {_RATES.get(k, k): (f"{v / elapsed:.0f}" if k in _RATES else f"{v:g}") for k, v in self.counts.items()}
        self._tqdm.set_postfix({**shown, **self.notes}, refresh=False)

    def close(self) -> None:
        """Close the bar, unless its stage shares it with later calls (the stage closes it)."""
        if not self.shared:
            self._tqdm.close()

    def _finish(self) -> None:
        self._tqdm.close()

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _IterBar(Bar):
    def __init__(self, iterable: Iterable[T], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._iterable = iterable

    def __iter__(self) -> Iterator[Any]:
        try:
            for item in self._iterable:
                yield item
                self.update(1)
        except GeneratorExit:  # the loop left early (e.g. early stopping) after using the last item: count it
            self.update(1)
            self.note(stopped="early")
            raise
        finally:
            self.close()


def progress_bar(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str, unit: str = "it",
                 enabled: bool | None = None, leave: bool | None = None) -> Any:
    """A progress bar over ``total`` steps, or over ``iterable`` (iterate the returned object).

    ``leave=False``: the bar disappears when closed (e.g. one bar per epoch); ``None``: it stays if it is
    the outermost bar then."""
    if iterable is not None and total is None:
        total = len(iterable) if hasattr(iterable, "__len__") else None  # type: ignore[arg-type]
    with _lock:
        current = _stages[-1] if _stages else None
    wanted = enabled if enabled is not None else (current.enabled if current is not None else False)
    show = bool(wanted) and visible()
    label = desc if current is None else f"{current.name}: {desc}"
    if current is None or iterable is not None or leave is False:  # not shared: closed by their user
        kwargs: dict[str, Any] = {"total": total, "desc": label, "unit": unit, "show": show, "leave": leave}
        return _IterBar(iterable, **kwargs) if iterable is not None else Bar(**kwargs)
    with _lock:
        bar = current.bars.get(desc)
        if bar is not None:
            bar.extend(total)
            return bar
        bar = current.bars[desc] = Bar(total, label, unit, show, shared=True)
        return bar


@contextmanager
def stage(name: str, enabled: bool | None = None) -> Iterator[None]:
    """Label the bars opened inside with ``name``; ``enabled`` is their default (see the module doc)."""
    st = _Stage(name, enabled)
    with _lock:
        _stages.append(st)
    try:
        yield
    finally:
        with _lock:
            _stages.remove(st)
        for bar in reversed(st.bars.values()):  # inner bars first: the outermost one is redrawn last
            bar._finish()
