"""``python -m bench rpc``: ``request()`` round trips against a hand-written confluent-kafka loop.

Both sides use the project's librdkafka config (``Settings``: ``linger.ms=5``, lz4,
idempotent producers), as ``bench producer`` does. Two servers run in their own processes for
the whole run, each on its own request topic: ours is a ``Worker`` whose echo handler returns
the request event (decoded, re-encoded, replied through the worker's producer); the baseline is
a raw consumer/producer loop that decodes each request and encodes the same event back to its
reply-to topic with its correlation id. Both clients encode each request and decode each reply
with the same codec: the comparison is the request-reply plumbing, not Avro. The clients run in
this process, in alternating rounds:

- latency: ``--sequential`` requests one after another (one in flight): p50 and p99 of
  ``EventProducer.request()`` against a raw producer + a raw consumer assigned to a private
  reply topic, matching correlation ids;
- throughput: ``--in-flight`` requests at once from one ``AsyncEventProducer``
  (``asyncio.gather`` of ``request()``) against the raw client sending them all, then reading
  until every reply arrived.

Goals (issue 15): p99 <= 1.5x the raw loop's; throughput >= 0.7 of the raw loop's. The last
line has ``ratio`` (our throughput over raw), ``p50_s``, ``p99_s``, ``raw_p99_s``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import time
import uuid
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import CollectorRegistry

from bench._common import emit, median
from examples.orders.events import ReminderDue, ReminderKind
from pipeline import Codec, Settings, load_settings
from pipeline._headers import CORRELATION_ID, REPLY_TO
from producers import AsyncEventProducer, EventProducer


def _event(i: int) -> ReminderDue:
    from datetime import UTC, datetime

    now = datetime.now(UTC).replace(microsecond=0)
    return ReminderDue(
        reminder_id=uuid.uuid4(),
        due_at=now,
        due_date=now.date(),
        kind=ReminderKind.REVIEW_REQUEST,
        message=f"request {i}",
        attempt=i,
    )


# -- servers (child processes) -------------------------------------------------------------


def _serve_ours(bootstrap: str, topic: str, group: str, ready: Any, stop: Any) -> None:
    import threading

    from consumers import Context, Worker, ensure_worker_topics

    settings = Settings(bootstrap_servers=bootstrap)
    ensure_worker_topics(settings, group, partitions=1)
    worker = Worker(group=group, topics=[topic], settings=settings, poll_timeout_s=0.005)

    @worker.handler(ReminderDue)
    def echo(event: ReminderDue, ctx: Context) -> ReminderDue:
        return event

    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    while not worker.ready():
        time.sleep(0.05)
    ready.set()
    stop.wait()
    worker.stop()
    thread.join(30)


def _serve_raw(bootstrap: str, topic: str, group: str, ready: Any, stop: Any) -> None:
    settings = Settings(bootstrap_servers=bootstrap)
    codec = Codec.from_settings(settings, [ReminderDue])
    consumer = Consumer(_plain(settings.consumer_config(group, **{"enable.auto.commit": True})))
    producer = Producer(_plain(settings.producer_config()))
    assigned: list[int] = []
    consumer.subscribe([topic], on_assign=lambda c, ps: assigned.extend(p.partition for p in ps))
    while not stop.is_set():
        for msg in consumer.consume(500, 0.005):
            if msg.error() is not None:
                continue
            headers = dict(msg.headers() or [])
            reply_to = headers.get(REPLY_TO)
            if reply_to:
                event = codec.decode(msg.value(), ReminderDue)  # type: ignore[arg-type]
                producer.produce(
                    reply_to.decode(),
                    codec.encode(event, topic=reply_to.decode()),
                    headers=[(CORRELATION_ID, headers.get(CORRELATION_ID))],
                )
        producer.poll(0)
        if assigned and not ready.is_set():
            ready.set()
    producer.flush(10)
    consumer.close()


# -- raw client ------------------------------------------------------------------------------


class RawClient:
    """A hand-written request-reply client: a producer and a consumer on its reply topic."""

    def __init__(self, settings: Settings, admin: AdminClient) -> None:
        self.reply_topic = f"bench-rpc-raw-reply-{uuid.uuid4().hex[:8]}"
        admin.create_topics([NewTopic(self.reply_topic, 1)])[self.reply_topic].result(30)
        self.producer = Producer(_plain(settings.producer_config()))
        config = settings.consumer_config(self.reply_topic, **{"fetch.wait.max.ms": 5})
        self.consumer = Consumer(_plain(config))
        self.consumer.assign([TopicPartition(self.reply_topic, 0, OFFSET_BEGINNING)])

    def send(self, topic: str, value: bytes, cid: bytes) -> None:
        headers = [(REPLY_TO, self.reply_topic.encode()), (CORRELATION_ID, cid)]
        self.producer.produce(topic, value, cid, headers=headers)
        self.producer.poll(0)

    def replies(self, wanted: set[bytes], codec: Codec, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while wanted:
            if time.monotonic() > deadline:
                raise RuntimeError(f"raw client: {len(wanted)} replies missing")
            for msg in self.consumer.consume(500, 0.005):
                if msg.error() is None:
                    cid = dict(msg.headers() or []).get(CORRELATION_ID, b"")
                    if cid in wanted:
                        codec.decode(msg.value(), ReminderDue)  # type: ignore[arg-type]
                        wanted.discard(cid)
            self.producer.poll(0)

    def close(self, admin: AdminClient) -> None:
        self.consumer.close()
        self.producer.flush(10)
        admin.delete_topics([self.reply_topic])


def _plain(config: dict[str, Any]) -> dict[str, Any]:
    """The project's librdkafka config, as a raw client would be given it (no logger)."""
    config.pop("logger", None)
    return config


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench rpc")
    parser.add_argument("--sequential", type=int, default=300)
    parser.add_argument("--in-flight", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=3)
    args = parser.parse_args(argv)

    settings = load_settings(bootstrap_servers=os.environ.get("PIPELINE_BOOTSTRAP_SERVERS"))
    bootstrap = settings.bootstrap_servers
    admin = AdminClient(settings.admin_config())
    token = uuid.uuid4().hex[:8]
    ours_topic, raw_topic = f"bench-rpc-ours-{token}", f"bench-rpc-raw-{token}"
    futures = admin.create_topics([NewTopic(t, args.partitions) for t in (ours_topic, raw_topic)])
    for future in futures.values():
        future.result(30)

    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    servers = []
    for target, topic in ((_serve_ours, ours_topic), (_serve_raw, raw_topic)):
        ready = ctx.Event()
        proc = ctx.Process(target=target, args=(bootstrap, topic, f"{topic}-g", ready, stop))
        proc.start()
        servers.append((proc, ready))
    for _proc, ready in servers:
        if not ready.wait(60):
            raise RuntimeError("a bench server did not become ready")

    producer = EventProducer(settings, registry=CollectorRegistry())
    codec = producer.codec
    raw = RawClient(settings, admin)
    events = [_event(i) for i in range(max(args.sequential, args.in_flight))]
    for i in range(20):  # warm-up: reply topic created, clients connected, servers warm
        producer.request(events[i], reply=ReminderDue, topic=ours_topic, timeout=30)
        cid = uuid.uuid4().hex.encode()
        raw.send(raw_topic, codec.encode(events[i], topic=raw_topic), cid)
        raw.replies({cid}, codec)

    def ours_latency() -> list[float]:
        out = []
        for event in events[: args.sequential]:
            start = time.perf_counter()
            producer.request(event, reply=ReminderDue, topic=ours_topic, timeout=30)
            out.append(time.perf_counter() - start)
        return out

    def raw_latency() -> list[float]:
        out = []
        for event in events[: args.sequential]:
            start = time.perf_counter()
            cid = uuid.uuid4().hex.encode()
            raw.send(raw_topic, codec.encode(event, topic=raw_topic), cid)
            raw.replies({cid}, codec)
            out.append(time.perf_counter() - start)
        return out

    async def ours_burst() -> float:
        client = AsyncEventProducer(producer)
        start = time.perf_counter()
        await asyncio.gather(
            *(
                client.request(e, reply=ReminderDue, topic=ours_topic, timeout=60)
                for e in events[: args.in_flight]
            )
        )
        return args.in_flight / (time.perf_counter() - start)

    def raw_burst() -> float:
        start = time.perf_counter()
        wanted = set()
        for event in events[: args.in_flight]:
            cid = uuid.uuid4().hex.encode()
            wanted.add(cid)
            raw.send(raw_topic, codec.encode(event, topic=raw_topic), cid)
        raw.replies(wanted, codec, timeout=60)
        return args.in_flight / (time.perf_counter() - start)

    lat: dict[str, list[float]] = {"ours": [], "raw": []}
    p99s: dict[str, list[float]] = {"ours": [], "raw": []}
    rates: dict[str, list[float]] = {"ours": [], "raw": []}
    try:
        for rnd in range(args.rounds):
            order = ["ours", "raw"] if rnd % 2 == 0 else ["raw", "ours"]
            for name in order:
                samples = ours_latency() if name == "ours" else raw_latency()
                lat[name].extend(samples)
                p99s[name].append(_p(samples, 0.99))
                rate = asyncio.run(ours_burst()) if name == "ours" else raw_burst()
                rates[name].append(rate)
            print(
                f"round {rnd + 1}: p50 ours={statistics.median(lat['ours']) * 1000:.2f}ms "
                f"raw={statistics.median(lat['raw']) * 1000:.2f}ms; p99 ours="
                f"{p99s['ours'][-1] * 1000:.2f}ms raw={p99s['raw'][-1] * 1000:.2f}ms; "
                f"{args.in_flight} in flight ours={rates['ours'][-1]:,.0f}/s "
                f"raw={rates['raw'][-1]:,.0f}/s",
                flush=True,
            )
    finally:
        stop.set()
        for proc, _ in servers:
            proc.join(30)
        producer.close()
        raw.close(admin)
        admin.delete_topics([ours_topic, raw_topic])
    ratios = [o / r for o, r in zip(rates["ours"], rates["raw"], strict=True)]
    p50, raw_p50 = median(lat["ours"]), median(lat["raw"])
    p99, raw_p99 = median(p99s["ours"]), median(p99s["raw"])
    print(f"p50: {p50 * 1000:.2f}ms vs raw {raw_p50 * 1000:.2f}ms")
    print(
        f"p99: {p99 * 1000:.2f}ms vs raw {raw_p99 * 1000:.2f}ms ({p99 / raw_p99:.2f}x, goal 1.5x)"
    )
    print(f"throughput ratio (in flight {args.in_flight}): {median(ratios):.3f} (goal >= 0.7)")
    emit(
        "rpc",
        median(ratios),
        p50_s=p50,
        p99_s=p99,
        raw_p50_s=raw_p50,
        raw_p99_s=raw_p99,
        p99_over_raw=p99 / raw_p99,
        requests_per_s=round(median(rates["ours"])),
        raw_requests_per_s=round(median(rates["raw"])),
    )
    return 0
