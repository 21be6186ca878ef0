"""LLM budget caps, prices and the usage totals a run reports (``llm_usage.json``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from lamp.errors import ConfigError

logger = logging.getLogger(__name__)

FREE_BACKENDS = ("local", "transformers")


@dataclass(frozen=True)
class Budget:
    """Caps on real (non-cached) calls; None means no cap. Cache hits never count."""

    max_calls: int | None = None
    max_tokens: int | None = None
    max_cost_usd: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_calls", "max_tokens", "max_cost_usd"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"budget.{name} must be >= 0 or null, got {value}")


@dataclass(frozen=True)
class Price:
    """USD per 1M tokens."""

    prompt: float
    completion: float


class PriceTable:
    """Per-model prices in USD per 1M prompt / completion tokens.

    Example::

        table = PriceTable({"gpt-4o-mini": {"prompt": 0.15, "completion": 0.60}})
        table.cost("openai", "gpt-4o-mini-2024-07-18", 1_000_000, 0)  # 0.15 (longest prefix match)

    Local backends cost 0. An unpriced remote model costs 0 with one warning.
    """

    def __init__(self, prices: Mapping[str, Mapping[str, float]] | None = None) -> None:
        self.prices: dict[str, Price] = {}
        for model, p in (prices or {}).items():
            try:
                prompt = float(p.get("prompt", p.get("input")))  # type: ignore[arg-type]
                completion = float(p.get("completion", p.get("output")))  # type: ignore[arg-type]
            except (TypeError, ValueError, AttributeError) as exc:
                raise ConfigError(f"Invalid price for {model!r}: {p!r}. Expected "
                                  "{prompt: <USD per 1M>, completion: <USD per 1M>}") from exc
            if prompt < 0 or completion < 0:
                raise ConfigError(f"Negative price for {model!r}: {p!r}")
            self.prices[str(model)] = Price(prompt, completion)
        self._warned: set[str] = set()

    def __repr__(self) -> str:
        return f"PriceTable({sorted(self.prices)})"

    def lookup(self, backend: str, model_id: str) -> Price | None:
        """The price of a model (exact name, else the longest table key it starts with)."""
        if backend in FREE_BACKENDS:
            return Price(0.0, 0.0)
        if model_id in self.prices:
            return self.prices[model_id]
        prefixes = [k for k in self.prices if model_id.startswith(k)]
        return self.prices[max(prefixes, key=len)] if prefixes else None

    def cost(self, backend: str, model_id: str, prompt_tokens: int, completion_tokens: int) -> float:
        price = self.lookup(backend, model_id)
        if price is None:
            if model_id not in self._warned:
                self._warned.add(model_id)
                logger.warning("No price for model %r; its cost counts as 0. Add it under llm.prices.", model_id)
            return 0.0
        return (prompt_tokens * price.prompt + completion_tokens * price.completion) / 1e6


@dataclass
class Usage:
    """Totals over a client's life. ``calls`` counts real backend calls, failed ones included."""

    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    failures: int = 0
    retries: int = 0
    wall_time_s: float = 0.0
    estimated_cost_usd: float = 0.0
    budget_stopped: bool = False
    budget_skipped: int = 0
    by_tag: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add_tag(self, tag: str, counter: str, n: int = 1) -> None:
        counts = self.by_tag.setdefault(tag or "untagged", {"calls": 0, "cache_hits": 0, "failures": 0, "tokens": 0})
        counts[counter] += n

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["wall_time_s"] = round(self.wall_time_s, 3)
        out["estimated_cost_usd"] = round(self.estimated_cost_usd, 6)
        out["total_tokens"] = self.total_tokens
        return out
