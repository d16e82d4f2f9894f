"""DeliveryFuture: resolution, waiting across threads, callbacks exactly once (no broker)."""

from __future__ import annotations

import threading

import pytest

from pipeline import DeliveryError
from producers import DeliveryFuture


class FakeMessage:
    def topic(self) -> str:
        return "t"

    def partition(self) -> int:
        return 2

    def offset(self) -> int:
        return 41

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_000)


def test_result_after_resolution() -> None:
    future = DeliveryFuture()
    assert not future.done()
    future.set_result(FakeMessage())  # type: ignore[arg-type]
    assert future.done()
    result = future.result(timeout=0)
    assert (result.topic, result.partition, result.offset) == ("t", 2, 41)
    assert future.exception(timeout=0) is None


def test_failure_raises() -> None:
    future = DeliveryFuture()
    future.set_exception(DeliveryError("nope"))
    with pytest.raises(DeliveryError, match="nope"):
        future.result(timeout=0)


def test_timeout_when_unresolved() -> None:
    with pytest.raises(TimeoutError):
        DeliveryFuture().result(timeout=0.01)


def test_waiters_in_other_threads_wake_up() -> None:
    for _ in range(200):  # many rounds to shake out a lost wake-up
        future = DeliveryFuture()
        got: list[int] = []
        waiter = threading.Thread(
            target=lambda f=future, g=got: g.append(f.result(timeout=5).offset)
        )
        waiter.start()
        future.set_result(FakeMessage())  # type: ignore[arg-type]
        waiter.join(timeout=5)
        assert got == [41]


def test_callbacks_run_exactly_once_even_when_racing() -> None:
    for _ in range(200):
        future = DeliveryFuture()
        calls: list[DeliveryFuture] = []
        adder = threading.Thread(target=lambda f=future, c=calls: f.add_done_callback(c.append))
        adder.start()
        future.set_result(FakeMessage())  # type: ignore[arg-type]
        adder.join(timeout=5)
        assert calls == [future]
    late: list[DeliveryFuture] = []
    future.add_done_callback(late.append)  # already resolved: runs at once
    assert late == [future]


def test_as_concurrent_mirrors() -> None:
    future = DeliveryFuture()
    mirror = future.as_concurrent()
    future.set_exception(DeliveryError("x"))
    assert isinstance(mirror.exception(timeout=1), DeliveryError)
