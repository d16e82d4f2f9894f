"""Request-reply (real broker): typed replies, remote errors, timeouts, late or bad replies."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from consumers import Context, Worker
from examples.orders.events import ReminderDue
from pipeline import DecodeError, RemoteError, RequestTimeout
from pipeline._headers import CORRELATION_ID, DEADLINE, REPLY_TO
from producers import AsyncEventProducer, EventProducer
from tests.helpers import wait_until
from tests.integration.test_worker_support import (
    create_topics,
    reminder,
    running,
    settings_for,
    wait_ready,
)

pytestmark = pytest.mark.kafka


def echo_worker(bootstrap: str, group: str, topic: str) -> Worker:
    worker = Worker(group=group, topics=[topic], settings=settings_for(bootstrap))

    @worker.handler(ReminderDue)
    def handle(event: ReminderDue, ctx: Context) -> ReminderDue | None:
        if event.message.startswith("boom"):
            raise ValueError(f"cannot handle {event.message}")
        if event.message.startswith("none"):
            return None
        return event.model_copy(update={"message": f"echo:{event.message}"})

    return worker


def test_request_gets_its_typed_reply_and_remote_errors(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    topic, group = unique("rpc-echo"), unique("rpc-g")
    create_topics(bootstrap_servers, [topic], partitions=3)
    worker = echo_worker(bootstrap_servers, group, topic)
    registry = CollectorRegistry()
    with running(worker) as state:
        wait_ready(state)
        with EventProducer(settings_for(bootstrap_servers), registry=registry) as producer:
            for i in range(5):
                reply = producer.request(reminder("k", i, f"hi{i}"), reply=ReminderDue, topic=topic)
                assert isinstance(reply, ReminderDue)
                assert reply.message == f"echo:hi{i}"
            with pytest.raises(RemoteError) as caught:
                producer.request(reminder("k", 9, "boom!"), reply=ReminderDue, topic=topic)
            assert caught.value.error_type == "builtins.ValueError"
            assert "cannot handle boom!" in caught.value.message
            with pytest.raises(RemoteError) as none:
                producer.request(reminder("k", 9, "none"), reply=ReminderDue, topic=topic)
            assert none.value.error_type == "no_reply"
            inbox_topic = producer.modes.inbox.topic
        assert state.sample("pipeline_worker_requests_total", outcome="replied") == 5
        assert state.sample("pipeline_worker_requests_total", outcome="error_replied") == 1
    # the reply topic is deleted on close
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    wait_until(lambda: inbox_topic not in admin.list_topics(timeout=10).topics, timeout=30)


def test_timeout_then_late_reply_is_counted_and_dropped(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    topic = unique("rpc-late")
    create_topics(bootstrap_servers, [topic], partitions=1)
    registry = CollectorRegistry()
    with EventProducer(settings_for(bootstrap_servers), registry=registry) as producer:
        # nobody serves the topic: the request times out
        with pytest.raises(RequestTimeout):
            producer.request(reminder("k", 1), reply=ReminderDue, topic=topic, timeout=0.5)
        # the request on the topic names its correlation id; answer it now, too late
        from tests.helpers import read_topic

        records = read_topic(bootstrap_servers, topic, 1)
        cid = dict(records[0].headers() or [])[CORRELATION_ID]
        reply_to = dict(records[0].headers() or [])[REPLY_TO]
        assert dict(records[0].headers() or [])[DEADLINE]
        raw = Producer({"bootstrap.servers": bootstrap_servers})
        value = producer.codec.encode(reminder("k", 2))
        raw.produce(reply_to.decode(), value, headers=[(CORRELATION_ID, cid)])
        raw.produce(reply_to.decode(), value, headers=[(CORRELATION_ID, b"nobody-asked")])
        raw.produce(reply_to.decode(), value)  # no correlation id at all
        raw.flush(10)

        def replies(outcome: str) -> float:
            sample = registry.get_sample_value("pipeline_rpc_replies_total", {"outcome": outcome})
            return sample or 0.0

        wait_until(lambda: replies("late") == 1 and replies("unknown") == 2, timeout=20)
        # a fresh request still gets nothing but its own outcome
        with pytest.raises(RequestTimeout):
            producer.request(reminder("k", 3), reply=ReminderDue, topic=topic, timeout=0.3)


def test_malformed_reply_fails_the_request_with_a_decode_error(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    topic, group = unique("rpc-bad"), unique("rpc-bad-g")
    create_topics(bootstrap_servers, [topic], partitions=1)
    worker = Worker(group=group, topics=[topic], settings=settings_for(bootstrap_servers))
    raw = Producer({"bootstrap.servers": bootstrap_servers})

    @worker.handler(ReminderDue)
    def handle(event: ReminderDue, ctx: Context) -> None:
        # a hand-written "reply" whose bytes are not Avro
        reply_to = ctx.header(REPLY_TO)
        assert reply_to is not None
        raw.produce(
            reply_to.decode(), b"not avro", headers=[(CORRELATION_ID, ctx.header(CORRELATION_ID))]
        )
        raw.flush(10)

    registry = CollectorRegistry()
    with running(worker) as state:
        wait_ready(state)
        with (
            EventProducer(settings_for(bootstrap_servers), registry=registry) as producer,
            pytest.raises(DecodeError, match="malformed reply"),
        ):
            producer.request(reminder("k", 1), reply=ReminderDue, topic=topic, timeout=10)
    assert registry.get_sample_value("pipeline_rpc_replies_total", {"outcome": "malformed"}) == 1


def test_expired_request_is_skipped_and_counted(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    topic, group = unique("rpc-exp"), unique("rpc-exp-g")
    create_topics(bootstrap_servers, [topic], partitions=1)
    handled: list[str] = []
    worker = Worker(group=group, topics=[topic], settings=settings_for(bootstrap_servers))

    @worker.handler(ReminderDue)
    def handle(event: ReminderDue, ctx: Context) -> ReminderDue:
        handled.append(event.message)
        return event

    with EventProducer(settings_for(bootstrap_servers), registry=CollectorRegistry()) as producer:
        headers = [(DEADLINE, b"1000"), (CORRELATION_ID, b"c1"), (REPLY_TO, b"nowhere")]
        producer.send(reminder("k", 1, "stale"), topic=topic, headers=headers).result(10)  # type: ignore[union-attr]
        # a record with a correlation id but no reply-to: handled, its reply counted as dropped
        producer.send(
            reminder("k", 2, "fresh"), topic=topic, headers=[(CORRELATION_ID, b"c2")]
        ).result(10)  # type: ignore[union-attr]
    with running(worker) as state:
        wait_until(lambda: handled == ["fresh"], timeout=30)
        wait_until(
            lambda: (
                state.sample("pipeline_worker_requests_total", outcome="expired") == 1
                and state.sample("pipeline_worker_requests_total", outcome="no_reply_to") == 1
            ),
            timeout=10,
        )


def test_async_requests_in_flight_each_get_their_own_reply(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    topic, group = unique("rpc-async"), unique("rpc-async-g")
    create_topics(bootstrap_servers, [topic], partitions=3)
    worker = echo_worker(bootstrap_servers, group, topic)

    async def main() -> list[str]:
        async with AsyncEventProducer(
            settings=settings_for(bootstrap_servers), registry=CollectorRegistry()
        ) as producer:
            replies = await asyncio.gather(
                *(
                    producer.request(reminder(f"k{i}", i, f"m{i}"), reply=ReminderDue, topic=topic)
                    for i in range(200)
                )
            )
            return [r.message for r in replies]

    with running(worker) as state:
        wait_ready(state)
        assert asyncio.run(main()) == [f"echo:m{i}" for i in range(200)]
