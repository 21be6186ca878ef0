"""numba access and the small search helpers the rule kernels share."""

from __future__ import annotations

from typing import Any

from lamp.errors import MissingDependencyError

try:
    from numba import njit
except ImportError as exc:  # pragma: no cover - numba is a dependency of the rules
    raise MissingDependencyError("numba", purpose="mining and applying temporal rules") from exc

__all__ = ["jit", "lower_bound", "upper_bound"]


def jit(fn: Any) -> Any:
    """Compile ``fn`` without the GIL (so threads run kernels in parallel), cached on disk."""
    return njit(nogil=True, cache=True)(fn)


@jit
def lower_bound(a: Any, lo: int, hi: int, v: float) -> int:
    """First index in ``[lo, hi)`` with ``a[i] >= v`` (``hi`` if none); ``a`` ascending there."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@jit
def upper_bound(a: Any, lo: int, hi: int, v: float) -> int:
    """First index in ``[lo, hi)`` with ``a[i] > v`` (``hi`` if none); ``a`` ascending there."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] <= v:
            lo = mid + 1
        else:
            hi = mid
    return lo
