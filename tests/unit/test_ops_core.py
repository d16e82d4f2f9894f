"""Pure parts of the operations CLI: times, rates, offsets, filters, token bucket, DLQ headers."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from uuid import UUID

import click
import pytest

from pipeline._errors import ConfigError
from pipeline._headers import (
    ATTEMPT,
    ERROR_MESSAGE,
    ERROR_TRACE,
    ERROR_TYPE,
    FAILED_AT,
    ORIGINAL_OFFSET,
    ORIGINAL_TOPIC,
    REDRIVEN_AT,
)
from pipeline.cli._ops import parse_offsets, text_or_hex
from pipeline.cli._times import format_ms, parse_rate, parse_time
from pipeline.ops._dead_letters import DeadLetter, DeadLetterFilter, redrive_headers
from pipeline.ops._replay import TokenBucket, field_text, parse_where

NOW = 1_700_000_000_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("-30s", NOW - 30_000),
        ("-15m", NOW - 900_000),
        ("-2h", NOW - 7_200_000),
        ("-1d", NOW - 86_400_000),
        ("-1.5h", NOW - 5_400_000),
        ("2023-11-14T22:13:20Z", NOW),
        ("2023-11-14T23:13:20+01:00", NOW),
        ("2023-11-14T22:13:20.250Z", NOW + 250),
        ("1700000000000", NOW),
    ],
)
def test_parse_time(text: str, expected: int) -> None:
    assert parse_time(text, now_ms=NOW) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("yesterday", "is not a time"),
        ("2h", "is not a time"),
        ("-2x", "is not a time"),
        ("2023-11-14T22:13:20", "has no timezone"),
    ],
)
def test_parse_time_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_time(text, now_ms=NOW)


def test_format_ms() -> None:
    assert format_ms(NOW) == "2023-11-14T22:13:20.000+00:00"
    assert format_ms(-1) == "-"


@pytest.mark.parametrize(("text", "rate"), [("500", 500.0), ("500/s", 500.0), ("2.5/s", 2.5)])
def test_parse_rate(text: str, rate: float) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["0", "-1/s", "fast", "10/m"])
def test_parse_rate_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a rate"):
        parse_rate(text)


def test_parse_offsets() -> None:
    assert parse_offsets(["5", "1:7", "2:0"], "--from-offset") == (5, {1: 7, 2: 0})
    assert parse_offsets([], "--from-offset") == (None, {})
    with pytest.raises(click.BadParameter, match="PARTITION:N"):
        parse_offsets(["1:x"], "--from-offset")
    with pytest.raises(click.BadParameter):
        parse_offsets(["-3"], "--from-offset")


def test_parse_where() -> None:
    assert parse_where(["a=1", "b.c=x=y", "d="]) == (("a", "1"), ("b.c", "x=y"), ("d", ""))
    with pytest.raises(ConfigError, match="FIELD=VALUE"):
        parse_where(["nothing"])


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "null"),
        (True, "true"),
        (Decimal("4.50"), "4.50"),
        (UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        (dt.datetime(2024, 1, 1, tzinfo=dt.UTC), "2024-01-01T00:00:00+00:00"),
        (dt.date(2024, 1, 2), "2024-01-02"),
        (42, "42"),
    ],
)
def test_field_text(value: object, text: str) -> None:
    assert field_text(value) == text


def test_token_bucket_limits_the_rate() -> None:
    clock = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    bucket = TokenBucket(10, clock=lambda: clock[0], sleep=sleep)
    for _ in range(30):
        bucket.acquire()
    # 10 tokens of burst, then 20 more at 10/s: about two seconds of waiting.
    assert clock[0] == pytest.approx(2.0, abs=0.05)


def test_text_or_hex() -> None:
    assert text_or_hex(b"plain") == "plain"
    assert text_or_hex(b"\xff\x00") == "0xff00"
    assert text_or_hex(b"tab\there") == "0x" + b"tab\there".hex()
    assert text_or_hex(None) is None


HEADERS = [
    ("ce_type", b"orders.OrderPlaced"),
    (ERROR_TYPE, b"builtins.ValueError"),
    (ERROR_MESSAGE, b"boom"),
    (ERROR_TRACE, b"..."),
    (ATTEMPT, b"4"),
    (ORIGINAL_TOPIC, b"orders"),
    (ORIGINAL_OFFSET, b"17"),
    (FAILED_AT, b"2024-01-01T00:00:00Z"),
]


def test_redrive_headers_reset_attempts_and_keep_provenance() -> None:
    when = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
    out = redrive_headers([*HEADERS, (REDRIVEN_AT, b"earlier")], when)
    assert out == [
        ("ce_type", b"orders.OrderPlaced"),
        (ORIGINAL_TOPIC, b"orders"),
        (ORIGINAL_OFFSET, b"17"),
        (REDRIVEN_AT, b"2024-05-01T12:00:00.000Z"),
    ]


class _Msg:
    def __init__(self, key: bytes | None, ts: int, headers: list[tuple[str, bytes]]) -> None:
        self._key, self._ts, self._headers = key, ts, headers

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes:
        return b"v"

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 5

    def timestamp(self) -> tuple[int, int]:
        return 1, self._ts


def test_dead_letter_parsing_and_filter() -> None:
    record = DeadLetter.from_message(_Msg(b"k1", 1000, HEADERS))  # type: ignore[arg-type]
    assert record.error_type == "builtins.ValueError"
    assert record.attempts == 4
    assert record.original == "orders[None]@17"
    assert DeadLetterFilter(error_type="ValueError").matches(record)
    assert DeadLetterFilter(error_type="builtins.ValueError").matches(record)
    assert not DeadLetterFilter(error_type="TypeError").matches(record)
    assert not DeadLetterFilter(key=b"k2").matches(record)
    assert DeadLetterFilter(since_ms=1000, until_ms=1001).matches(record)
    assert not DeadLetterFilter(since_ms=1001).matches(record)
    assert not DeadLetterFilter(until_ms=1000).matches(record)
