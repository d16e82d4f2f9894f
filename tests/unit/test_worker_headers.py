"""Unit tests of retry and dead-letter headers (the contract the DLQ tools read)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from consumers._dead_letter import MESSAGE_LIMIT, dead_letter_headers, retry_headers
from consumers._offsets import PartitionState
from consumers._work import Work, attempt_of
from pipeline._headers import (
    ATTEMPT,
    CE_ID,
    CONSUMER_GROUP,
    ERROR_MESSAGE,
    ERROR_TYPE,
    FAILED_AT,
    ORIGINAL_OFFSET,
    ORIGINAL_PARTITION,
    ORIGINAL_TIMESTAMP,
    ORIGINAL_TOPIC,
    REDRIVEN_AT,
    get_header,
)


class FakeMessage:
    def __init__(self, topic: str, partition: int, offset: int, headers: Any) -> None:
        self._t, self._p, self._o, self._h = topic, partition, offset, headers

    def topic(self) -> str:
        return self._t

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def headers(self) -> Any:
        return self._h

    def timestamp(self) -> tuple[int, int]:
        return (1, 1700000000123)


def work(topic: str, headers: Any, partition: int = 2, offset: int = 41) -> Work:
    return Work(
        PartitionState(topic, partition), FakeMessage(topic, partition, offset, headers), offset
    )  # type: ignore[arg-type]


def test_first_retry_carries_attempt_two_and_origin() -> None:
    headers = retry_headers(work("orders", [(CE_ID, b"id-1")]), 2)
    assert get_header(headers, ATTEMPT) == b"2"
    assert get_header(headers, CE_ID) == b"id-1"
    assert get_header(headers, ORIGINAL_TOPIC) == b"orders"
    assert get_header(headers, ORIGINAL_PARTITION) == b"2"
    assert get_header(headers, ORIGINAL_OFFSET) == b"41"
    assert get_header(headers, ORIGINAL_TIMESTAMP) == b"1700000000123"
    assert [k for k, _ in headers].count(ATTEMPT) == 1


def test_retry_hop_keeps_first_origin_and_replaces_attempt() -> None:
    hop = retry_headers(work("orders", []), 2)
    again = retry_headers(work("g.retry", hop, partition=0, offset=7), 3)
    assert get_header(again, ORIGINAL_TOPIC) == b"orders"
    assert get_header(again, ORIGINAL_OFFSET) == b"41"
    assert [v for k, v in again if k == ATTEMPT] == [b"3"]


def test_dead_letter_headers() -> None:
    hop = retry_headers(work("orders", [(CE_ID, b"x")]), 3)
    long = "m" * 5000
    headers = dead_letter_headers(work("g.retry", hop, 0, 9), "g", "app.Boom", long, "tb", 3)
    assert get_header(headers, ERROR_TYPE) == b"app.Boom"
    assert len(get_header(headers, ERROR_MESSAGE) or b"") <= MESSAGE_LIMIT
    assert [v for k, v in headers if k == ATTEMPT] == [b"3"]
    assert get_header(headers, CONSUMER_GROUP) == b"g"
    assert get_header(headers, ORIGINAL_TOPIC) == b"orders"
    assert get_header(headers, CE_ID) == b"x"
    failed_at = datetime.fromisoformat((get_header(headers, FAILED_AT) or b"").decode())
    assert failed_at.utcoffset() is not None


def test_redriven_record_is_attempt_one() -> None:
    assert attempt_of([(REDRIVEN_AT, b"2024-01-01T00:00:00Z")]) == 1
    assert attempt_of([(ATTEMPT, b"4")]) == 4
    assert attempt_of([(ATTEMPT, b"junk")]) == 1
