"""Helpers shared by the benchmarks: medians, ratios and the closing JSON line."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from typing import Any

__all__ = ["emit", "median", "timed_rate"]


def median(values: list[float]) -> float:
    """The median of a non-empty list."""
    return float(statistics.median(values))


def timed_rate(fn: Callable[[], int]) -> float:
    """Run ``fn`` (which returns how many items it processed) and return items per second."""
    start = time.perf_counter()
    count = fn()
    return count / (time.perf_counter() - start)


def emit(bench: str, ratio: float, **figures: Any) -> None:
    """Print the closing JSON line: ``bench``, ``ratio`` and the other named figures."""
    out: dict[str, Any] = {"bench": bench, "ratio": _number(ratio, 4)}
    out.update({k: (_number(v, 6) if isinstance(v, float) else v) for k, v in figures.items()})
    print(json.dumps(out, allow_nan=False))


def _number(value: float, digits: int) -> float | None:
    """A rounded figure, or None (JSON null) for one that was not measured (NaN)."""
    return None if value != value else round(value, digits)
