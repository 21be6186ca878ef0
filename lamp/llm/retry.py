"""Retry policy for remote calls: exponential backoff with jitter, honouring Retry-After."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

from lamp.errors import ConfigError


@dataclass(frozen=True)
class RetryPolicy:
    """``max_retries`` retries after the first try; the n-th waits about ``base * 2**n`` seconds
    (half fixed, half random, so parallel clients spread out), at most ``max_s``. A server's
    Retry-After, when given, is waited instead (also capped at ``max_s``)."""

    max_retries: int = 5
    base_s: float = 1.0
    max_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.base_s < 0 or self.max_s < 0:
            raise ConfigError(f"Retry settings must be >= 0, got {self}")

    def delay(self, retry: int, retry_after_s: float | None = None, rng: random.Random | None = None) -> float:
        if retry_after_s is not None:
            return min(max(0.0, retry_after_s), self.max_s)
        cap = min(self.max_s, self.base_s * (2**retry))
        return cap / 2 + (rng or random).uniform(0, cap / 2)


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000.0
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
