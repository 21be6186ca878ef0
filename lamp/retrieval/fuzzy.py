"""Fuzzy string matching (rapidfuzz) of generated causes against the allowed history, as in the paper."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lamp.components import not_in_key
from lamp.errors import ConfigError, MissingDependencyError
from lamp.retrieval.base import Job, PoolRetriever, PoolSettings
from lamp.retrieval.index import HistoryIndex

SCORERS = ("ratio", "partial_ratio", "token_sort_ratio", "token_set_ratio", "WRatio", "QRatio")


def fuzzy_scorer(name: str) -> Any:
    """The rapidfuzz scorer called ``name`` (one of :data:`SCORERS`)."""
    if name not in SCORERS:
        raise ConfigError(f"Invalid fuzzy scorer: {name!r}. Valid choices are: {', '.join(SCORERS)}")
    try:
        from rapidfuzz import fuzz
    except ImportError as exc:  # pragma: no cover - rapidfuzz is a core dependency
        raise MissingDependencyError("rapidfuzz", purpose="fuzzy retrieval") from exc
    return getattr(fuzz, name)


def fuzzy_scores(queries: list[str], choices: list[str], scorer: str = "ratio", workers: int = 1) -> np.ndarray:
    """Similarity ``[len(queries), len(choices)]`` in [0, 1] (rapidfuzz ``process.cdist`` / 100)."""
    from rapidfuzz import process

    if not queries or not choices:
        return np.zeros((len(queries), len(choices)), dtype=np.float32)
    sims = process.cdist(queries, choices, scorer=fuzzy_scorer(scorer), dtype=np.float32, workers=workers)
    return np.asarray(sims, dtype=np.float32) / 100.0


@dataclass(frozen=True)
class FuzzySettings(PoolSettings):
    """Options of ``fuzzy``: the rapidfuzz scorer and its worker threads."""

    scorer: str = "ratio"  # a rapidfuzz.fuzz scorer name
    workers: int = not_in_key(1)

    def __post_init__(self) -> None:
        super().__post_init__()
        fuzzy_scorer(self.scorer)  # fail at construction on a bad name


class FuzzyRetriever(PoolRetriever):
    """Top-k events per cause by fuzzy similarity of dateless texts (default scorer: ``ratio``).

    >>> r = FuzzyRetriever(scorer="token_set_ratio", top_k=5)            # doctest: +SKIP
    >>> evidence = r.retrieve(log, request, causes)                      # doctest: +SKIP
    """

    name = "fuzzy"
    Settings = FuzzySettings

    def __init__(self, settings: Any = None, **overrides: Any) -> None:
        super().__init__(settings, **overrides)
        self.scorer, self.workers = self.settings.scorer, int(self.settings.workers)

    def _score(self, index: HistoryIndex, job: Job) -> np.ndarray:
        return fuzzy_scores(job.texts, index.triple_texts(job.triples), self.scorer, self.workers)
