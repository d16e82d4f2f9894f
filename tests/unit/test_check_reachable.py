"""``check_reachable`` asks again when a broker fails while it answers (one of several bouncing).

A fake admin client stands in for librdkafka here: the race it replays (the broker that got
the DescribeCluster request dies before it answers) cannot be timed on a real cluster. The
real-broker paths (reachable, unreachable, refused credentials) are in the integration tests.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from pipeline import _admin
from pipeline._errors import KafkaUnavailableError
from pipeline._settings import Settings


class _Admin:
    """Fails the first ``failures`` describe_cluster calls with a transport failure."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def describe_cluster(self, request_timeout: float) -> Future[Any]:
        self.calls += 1
        future: Future[Any] = Future()
        if self.calls <= self.failures:
            err = KafkaError(KafkaError._TRANSPORT, "Failed while waiting for response")
            future.set_exception(KafkaException(err))
        else:
            future.set_result(object())
        return future

    def poll(self, timeout: float) -> int:
        return 0


def _with(monkeypatch: pytest.MonkeyPatch, admin: _Admin) -> None:
    monkeypatch.setattr(_admin, "admin_client", lambda settings, **kw: admin)


def test_a_transport_failure_is_asked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    admin = _Admin(failures=2)
    _with(monkeypatch, admin)
    _admin.check_reachable(Settings(bootstrap_servers="b1:9092,b2:9092"), timeout=10.0)
    assert admin.calls == 3


def test_unreachable_until_the_timeout_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    admin = _Admin(failures=10**9)
    _with(monkeypatch, admin)
    clock = iter(t / 4 for t in range(1000))  # a quarter second a look
    monkeypatch.setattr(_admin.time, "monotonic", lambda: next(clock))
    with pytest.raises(KafkaUnavailableError, match="cannot reach Kafka at b1:9092"):
        _admin.check_reachable(Settings(bootstrap_servers="b1:9092"), timeout=3.0)
    assert 1 < admin.calls < 10


def test_each_attempt_is_short(monkeypatch: pytest.MonkeyPatch) -> None:
    """A request stuck on a dead broker (the controller) times out and is asked again."""
    timeouts: list[float] = []

    class _Timing(_Admin):
        def describe_cluster(self, request_timeout: float) -> Future[Any]:
            timeouts.append(request_timeout)
            return super().describe_cluster(request_timeout)

    admin = _Timing(failures=1)
    _with(monkeypatch, admin)
    _admin.check_reachable(Settings(bootstrap_servers="b1:9092"), timeout=10.0)
    assert len(timeouts) == 2
    assert max(timeouts) <= 3.0
