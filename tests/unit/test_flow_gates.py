"""Circuit breaker and token bucket logic, and both on the test kit's fake clock."""

from __future__ import annotations

import pytest

from consumers import Context, RetryPolicy, Worker, exponential
from consumers._breaker import CLOSED, HALF_OPEN, OPEN, Breaker, BreakerConfig
from consumers.testing import TestPipeline
from examples.orders.events import ReminderDue
from pipeline._errors import ConfigError
from pipeline._ratelimit import RateLimit, TokenBucket
from tests.parity import reminder


def _breaker(**config: float) -> Breaker:
    return Breaker("api", BreakerConfig(**config))  # type: ignore[arg-type]


def test_breaker_opens_on_rate_and_count_then_probes_and_closes() -> None:
    b = _breaker(failure_rate=0.5, min_calls=4, window_s=10, cooldown_s=5)
    assert not b.record(0.0, True)  # 1 call: below min_calls
    assert not b.record(0.1, False)
    assert not b.record(0.2, True)  # 3 calls
    assert b.record(0.3, True)  # 4 calls, 3 failed: opens, the call is held
    assert b.state == OPEN
    assert not b.allow(4.0)  # cooling down
    assert b.allow(5.3)  # half-open: one probe
    assert b.state == HALF_OPEN
    assert not b.allow(5.4)  # only one probe at a time
    assert not b.record(5.5, False)  # the probe succeeded
    assert b.state == CLOSED
    assert [t[1] for t in b.transitions] == [OPEN, HALF_OPEN, CLOSED]


def test_breaker_probe_failure_opens_again_and_window_slides() -> None:
    b = _breaker(failure_rate=0.5, min_calls=2, window_s=1, cooldown_s=1)
    assert not b.record(0.0, True)
    assert not b.record(1.5, True)  # the first failure left the window: 1 call only
    assert b.record(1.6, True)
    assert b.tick(2.7) == HALF_OPEN
    assert b.allow(2.7)
    assert b.record(2.8, True)  # the probe failed: open again, held
    assert b.state == OPEN
    assert not b.allow(3.0)


def test_breaker_config_is_checked() -> None:
    with pytest.raises(ConfigError, match="failure_rate"):
        BreakerConfig(failure_rate=0)
    with pytest.raises(ConfigError, match="min_calls"):
        BreakerConfig(min_calls=0)


def test_token_bucket_rate_and_burst() -> None:
    bucket = TokenBucket(RateLimit(100), now=0.0)  # burst: 10
    taken = sum(bucket.take(0.0) for _ in range(50))
    assert taken == 10
    taken = sum(bucket.take(t / 1000) for t in range(1, 1001))  # one try a millisecond, 1 s
    assert 99 <= taken <= 101
    bucket.give_back(3)
    assert bucket.available(1.0) >= 3
    with pytest.raises(ConfigError, match="> 0 records per second"):
        RateLimit(0)


def test_kit_breaker_parks_then_recovers_without_dead_letters() -> None:
    down = [True]
    calls: list[str] = []
    app = Worker(
        group="g",
        topics=["in"],
        retry=RetryPolicy(max_attempts=2, backoff=exponential(1, 2, 10, 0)),
    )
    app.breaker("api", failure_rate=0.5, min_calls=3, window_s=60, cooldown_s=30)

    @app.handler(ReminderDue, breaker="api")
    def handle(event: ReminderDue, ctx: Context) -> None:
        calls.append(event.message)
        if down[0]:
            raise ConnectionError("api down")

    with TestPipeline(app, partitions=1) as tp:
        for i in range(10):
            tp.send(reminder(f"m{i}"), key=f"k{i}", topic="in")
        tp.run_until_idle()
        runner = tp._runner
        assert runner.status()["breakers"] == {"api": "open"}
        assert runner.gates is not None
        assert runner.gates.parked >= 7
        assert runner.flow.pauses.holds("breaker:api")
        calls_while_open = len(calls)
        tp.advance(10)
        assert len(calls) == calls_while_open  # still cooling down: nothing is called
        down[0] = False
        tp.advance(25)  # past the cool-down: probe, close, let the rest go
        assert runner.status()["breakers"] == {"api": "closed"}
        assert runner.gates.parked == 0
        assert not runner.flow.pauses.holds("breaker:api")
        assert tp.dead_letters() == []
        done = calls[calls_while_open:]
        assert sorted(done) == sorted(f"m{i}" for i in range(10))  # each ran once, recovered


def test_kit_rate_limit_on_the_fake_clock() -> None:
    calls: list[float] = []
    app = Worker(group="g", topics=["in"])

    @app.handler(ReminderDue, rate=5)
    def handle(event: ReminderDue, ctx: Context) -> None:
        calls.append(tp.clock.time())

    with TestPipeline(app, partitions=1) as tp:
        start = tp.clock.time()
        for i in range(30):
            tp.send(reminder(f"m{i}"), key=f"k{i}", topic="in")
        tp.run_until_idle()
        assert len(calls) == 1  # the burst: a tenth of a second's worth, at least 1
        for _ in range(20):
            tp.advance(0.2)
        assert len(calls) == 21  # one every 0.2 s
        assert all(c - start <= 4.0 + 1e-6 for c in calls)


def test_kit_breaker_keeps_each_keys_order_through_parking() -> None:
    down = [True]
    done: list[str] = []
    app = Worker(group="g", topics=["in"], retry=RetryPolicy(max_attempts=5, in_place_attempts=5))
    app.breaker("api", failure_rate=1.0, min_calls=2, window_s=60, cooldown_s=5)

    @app.handler(ReminderDue, breaker="api")
    def handle(event: ReminderDue, ctx: Context) -> None:
        if down[0]:
            raise ConnectionError("api down")
        done.append(event.message)

    with TestPipeline(app, partitions=1) as tp:
        for i in range(5):
            for key in ("a", "b"):
                tp.send(reminder(f"{key}{i}"), key=key, topic="in")
        tp.run_until_idle()
        assert tp._runner.status()["breakers"] == {"api": "open"}
        assert done == []
        down[0] = False
        tp.advance(6)
        assert tp.dead_letters() == []
    assert [m for m in done if m[0] == "a"] == [f"a{i}" for i in range(5)]
    assert [m for m in done if m[0] == "b"] == [f"b{i}" for i in range(5)]


def test_breakers_and_rate_limits_refuse_exactly_once() -> None:
    app = Worker(group="g", topics=["in"], exactly_once=True)

    @app.handler(ReminderDue, rate=10)
    def handle(event: ReminderDue, ctx: Context) -> None: ...

    with pytest.raises(ConfigError, match="exactly-once"):
        app.run()
