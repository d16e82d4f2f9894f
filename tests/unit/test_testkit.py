"""The in-memory test kit: a worker's own processing code over memory, on a fake clock."""

from __future__ import annotations

import asyncio
import time

import pytest

from consumers import Context, DeadLetter, Dedup, RetryLater, RetryPolicy, Worker, exponential
from consumers.testing import TestPipeline
from consumers.testing._memory import murmur2
from examples.orders.events import ReminderDue
from pipeline._errors import (
    ConfigError,
    ConsumeError,
    RecordTooLargeError,
    RemoteError,
    RequestTimeout,
)
from pipeline._headers import CE_ID, DELIVERED_AT
from tests.parity import reminder


def _app(**options: object) -> tuple[Worker, list[tuple[str, int, str]]]:
    calls: list[tuple[str, int, str]] = []
    options.setdefault("retry", RetryPolicy(max_attempts=3, backoff=exponential(10, 2, 60, 0)))
    app = Worker(group="g", topics=["in"], **options)  # type: ignore[arg-type]

    @app.handler(ReminderDue)
    def handle(event: ReminderDue, ctx: Context) -> None:
        calls.append((event.message, ctx.attempt, ctx.topic))
        if event.message.startswith("fail") and ctx.attempt < int(event.message[4:] or 99):
            raise ValueError(f"attempt {ctx.attempt}")
        if event.message == "dead":
            raise DeadLetter("not for us")
        if event.message == "later" and ctx.attempt == 1:
            raise RetryLater(5)
        if event.message == "forward":
            ctx.producer.send(reminder("forwarded"), key=ctx.key, topic="out")

    return app, calls


def test_murmur2_matches_the_java_client() -> None:
    assert murmur2(b"21") == 0xFFFFFFFF & -973932308
    assert murmur2(b"foobar") == 0xFFFFFFFF & -790332482
    assert murmur2(b"a-little-bit-long-string") == 0xFFFFFFFF & -985981536


def test_keys_go_to_their_murmur2_partition() -> None:
    app, _ = _app()
    with TestPipeline(app, partitions=6) as tp:
        for key in ("a", "b", "order-17"):
            result = tp.send(reminder(key), key=key, topic="in")
            assert result.partition == (murmur2(key.encode()) & 0x7FFFFFFF) % 6


def test_a_record_over_message_max_bytes_is_refused_as_by_the_producer() -> None:
    app, _ = _app()
    with TestPipeline(app) as tp:
        with pytest.raises(RecordTooLargeError, match=r"for in is \d+ bytes, over .*=1000000"):
            tp.send_bytes("in", b"x" * 1_000_001)
        with pytest.raises(RecordTooLargeError):  # under the limit alone, over with its headers
            tp.send_bytes("in", b"x" * 999_000, headers={"h": b"y" * 2_000})
        tp.send_bytes("in", b"x" * 990_000, headers={"h": b"y"})
        assert sum(len(part) for part in tp.broker.topics["in"]) == 1  # only the one that fits


def test_success_retry_on_the_fake_clock_and_dead_letter() -> None:
    app, calls = _app()
    started = time.monotonic()
    with TestPipeline(app) as tp:
        tp.send(reminder("ok"), key="a", topic="in")
        tp.send(reminder("fail2"), key="b", topic="in")
        tp.send(reminder("fail"), key="c", topic="in")
        tp.run_until_idle()
        assert sorted(calls) == [("fail", 1, "in"), ("fail2", 1, "in"), ("ok", 1, "in")]
        assert tp.scheduled == 2
        tp.advance(seconds=9.9)  # the first backoff is 10 s: nothing is due yet
        assert len(calls) == 3
        tp.advance(seconds=0.1)
        assert ("fail2", 2, "g.retry") in calls
        assert ("fail", 2, "g.retry") in calls
        assert tp.dead_letters() == []
        tp.advance(seconds=20)  # the second backoff: 20 s
        assert ("fail", 3, "g.retry") in calls
        [dead] = tp.dead_letters("g")
        retried = tp.topic("g.retry")
    assert time.monotonic() - started < 5  # no wall-clock waits
    assert isinstance(dead.event, ReminderDue)
    assert dead.event.message == "fail"
    assert (dead.error_type, dead.attempt, dead.original_topic) == ("builtins.ValueError", 3, "in")
    assert dead.key == b"c"
    assert dead.header("pipeline-consumer-group") == b"g"
    assert len(retried) == 3
    assert all(r.header(DELIVERED_AT) for r in retried)


def test_in_place_retries_pass_fake_time_only() -> None:
    policy = RetryPolicy(max_attempts=3, in_place_attempts=3, backoff=exponential(60, 1, 60, 0))
    app, calls = _app(retry=policy)
    with TestPipeline(app, start=1000.0) as tp:
        tp.send(reminder("fail3"), key="a", topic="in")
        started = time.monotonic()
        tp.run_until_idle()
        assert time.monotonic() - started < 5
        assert [a for _, a, _ in calls] == [1, 2, 3]
        assert tp.clock.time() == 1120.0  # two 60 s backoffs passed on the fake clock
        assert tp.topic("g.retry") == []
        assert tp.dead_letters() == []


def test_signals_dedup_and_follow_up_sends() -> None:
    app, calls = _app(dedup=Dedup(window_s=60))
    with TestPipeline(app) as tp:
        tp.send(reminder("dead"), key="a", topic="in")
        tp.send(reminder("later"), key="b", topic="in")
        for _ in range(2):
            tp.send(reminder("forward"), key="c", topic="in", headers={CE_ID: "same"})
        tp.run_until_idle()
        tp.advance(seconds=5)
        assert ("later", 2, "g.retry") in calls
        assert [c for c in calls if c[0] == "forward"] == [("forward", 1, "in")]
        [out] = tp.topic("out")
        assert isinstance(out.event, ReminderDue)
        assert out.event.message == "forwarded"
        assert out.key == b"c"
        assert out.header("ce_type") == b"reminders.ReminderDue"
        [dead] = tp.dead_letters()
        assert (dead.error_type, dead.error_message) == ("dead_letter", "not for us")
        tp.advance(seconds=61)  # the dedup window ends on the fake clock too
        tp.send(reminder("forward"), key="c", topic="in", headers={CE_ID: "same"})
        tp.run_until_idle()
        assert len(tp.topic("out")) == 2


def test_delayed_sends_wait_for_the_clock_and_undecodable_bytes_are_dead_lettered() -> None:
    app, calls = _app()
    with TestPipeline(app) as tp:
        tp.send(reminder("ok"), key="a", topic="in", delay=30)
        tp.send_bytes("in", b"\x00garbage", key="x")
        tp.run_until_idle()
        assert calls == []
        [dead] = tp.dead_letters()
        assert dead.error_type == "undecodable"
        assert dead.value == b"\x00garbage"
        assert dead.event is None
        tp.advance(seconds=30)
        assert calls == [("ok", 1, "in")]


def test_async_handlers() -> None:
    app = Worker(group="g", topics=["in"])
    seen: list[str] = []

    @app.handler(ReminderDue)
    async def handle(event: ReminderDue, ctx: Context) -> None:
        await asyncio.sleep(0)
        seen.append(event.message)

    with TestPipeline(app) as tp:
        for message in ("one", "two", "three"):
            tp.send(reminder(message), key="k", topic="in")
        tp.run_until_idle()
    assert seen == ["one", "two", "three"]


def test_offsets_are_committed() -> None:
    app, _ = _app()
    tp = TestPipeline(app, partitions=1)
    for i in range(5):
        tp.send(reminder(f"m{i}"), key="k", topic="in")
    tp.run_until_idle()
    tp.close()
    assert tp.broker.committed[("g", "in", 0)] == 5


def test_a_handler_feeding_its_own_input_is_reported() -> None:
    app = Worker(group="g", topics=["in"])

    @app.handler(ReminderDue)
    def handle(event: ReminderDue, ctx: Context) -> None:
        ctx.producer.send(event, key=ctx.key, topic="in")

    with TestPipeline(app, max_rounds=50) as tp:
        tp.send(reminder("loop"), key="k", topic="in")
        with pytest.raises(ConsumeError, match="still busy after 50 rounds"):
            tp.run_until_idle()


def test_exactly_once_workers_are_refused() -> None:
    app, _ = _app(exactly_once=True)
    with pytest.raises(ConfigError, match="exactly-once"):
        TestPipeline(app)


def _echo_app() -> Worker:
    app = Worker(group="echo", topics=["in"], retry=RetryPolicy(max_attempts=1))

    @app.handler(ReminderDue)
    def echo(event: ReminderDue, ctx: Context) -> ReminderDue | None:
        if event.message == "boom":
            raise ValueError("the downstream said no")
        if event.message == "silent":
            return None
        return reminder(f"re: {event.message}")

    return app


def test_request_gets_the_handlers_typed_reply() -> None:
    with TestPipeline(_echo_app()) as tp:
        answer = tp.request(reminder("ping"), ReminderDue, key="k", topic="in")
        assert isinstance(answer, ReminderDue)
        assert answer.message == "re: ping"
        again = tp.request(reminder("pong"), ReminderDue, key="k", topic="in")
        assert again.message == "re: pong"  # matched by its own correlation id


def test_request_to_a_raising_or_silent_handler_is_a_remote_error() -> None:
    with TestPipeline(_echo_app()) as tp:
        with pytest.raises(RemoteError, match="the downstream said no") as info:
            tp.request(reminder("boom"), ReminderDue, key="k", topic="in")
        assert info.value.error_type.endswith("ValueError")
        with pytest.raises(RemoteError):
            tp.request(reminder("silent"), ReminderDue, key="k", topic="in")
        assert tp.dead_letters() == []  # a request is answered, never dead-lettered


def test_request_with_a_passed_deadline_gets_no_reply() -> None:
    with TestPipeline(_echo_app()) as tp, pytest.raises(RequestTimeout):
        tp.request(reminder("late"), ReminderDue, key="k", topic="in", timeout=-1)
