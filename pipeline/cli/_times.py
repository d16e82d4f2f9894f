"""Time and rate arguments of the operations commands: ISO-8601 or relative (``-2h``), ``N/s``."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

import click

__all__ = ["RATE", "TIME", "RateParam", "TimeParam", "format_ms", "parse_rate", "parse_time"]

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_RELATIVE = re.compile(r"^-(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$")
_RATE = re.compile(r"^(\d+(?:\.\d+)?)(?:/s)?$")


def parse_time(text: str, now_ms: int | None = None) -> int:
    """Parse a CLI time into epoch milliseconds.

    Accepted: ``now``; relative to now, ``-30s``, ``-15m``, ``-2h``, ``-1d``, ``-1w``; ISO-8601
    with a timezone (``2024-05-01T12:00:00Z``, ``2024-05-01T14:00+02:00``); epoch milliseconds
    (13 digits or more).

    Raises:
        ValueError: with a one-line explanation of what is accepted.
    """
    value = text.strip()
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if value == "now":
        return now
    relative = _RELATIVE.match(value)
    if relative:
        return now - int(float(relative.group(1)) * _UNITS_MS[relative.group(2)])
    if value.isdigit() and len(value) >= 13:
        return int(value)
    try:
        when = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: use ISO-8601 with a timezone (2024-05-01T12:00:00Z), "
            "a relative time (-30m, -2h, -1d) or 'now'"
        ) from None
    if when.tzinfo is None:
        raise ValueError(f"{text!r} has no timezone: add Z or +HH:MM")
    return int(when.timestamp() * 1000)


def format_ms(ms: int | None) -> str:
    """Epoch milliseconds as ISO-8601 UTC with milliseconds (``-`` when unknown)."""
    if ms is None or ms < 0:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def parse_rate(text: str) -> float:
    """Parse ``500``, ``500/s`` or ``2.5/s`` into records per second (must be > 0).

    Raises:
        ValueError: the text is not a positive rate.
    """
    match = _RATE.match(text.strip())
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a rate: use a positive number of records, like 500/s")
    return float(match.group(1))


class TimeParam(click.ParamType[int]):
    """A click parameter type that turns a CLI time into epoch milliseconds."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_time(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class RateParam(click.ParamType[float]):
    """A click parameter type for ``N/s`` rate limits."""

    name = "rate"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_rate(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


TIME = TimeParam()
RATE = RateParam()
