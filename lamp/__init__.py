"""lamp: event-sequence prediction with LLM abductive reasoning.

>>> import lamp
>>> result = lamp.run(dataset="icews14", abducers=["rules"], n_test_queries=50)   # doctest: +SKIP
>>> pipe = lamp.Pipeline.fit(lamp.load_dataset("icews14"), abducer="rules")        # doctest: +SKIP

Heavy parts (torch models, LLM backends, sentence-transformers) load only when used.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["Pipeline", "__version__", "load_dataset", "named_events", "run"]


def __getattr__(name: str) -> Any:
    if name == "Pipeline":  # imported on first use: it pulls in pandas and the pipeline modules
        from lamp.pipeline.predictor import Pipeline

        return Pipeline
    raise AttributeError(f"module 'lamp' has no attribute {name!r}")


def run(**kwargs: Any) -> Any:
    """Run the pipeline end to end; see :func:`lamp.pipeline.api.run` for the arguments."""
    from lamp.pipeline.api import run as _run

    return _run(**kwargs)


def load_dataset(name_or_path: str, **kwargs: Any) -> Any:
    """Load a dataset into an :class:`~lamp.data.eventlog.EventLog`; see :func:`lamp.data.load.load_dataset`."""
    from lamp.data.load import load_dataset as _load

    return _load(name_or_path, **kwargs)


def named_events(log: Any, split: str | None = None) -> Any:
    """A log's events (or one split's) as a table of names and dates, the form ``Pipeline.observe`` takes; see
    :func:`lamp.pipeline.history.named_events`."""
    from lamp.pipeline.history import named_events as _named

    return _named(log, split)
