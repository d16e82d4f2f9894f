"""``python -m bench producer``: EventProducer against a hand-written confluent-kafka loop.

Same broker, same topic layout, same librdkafka config, same events, alternating rounds:

(a) ``EventProducer.send()`` of typed events (futures, CloudEvents headers, metrics) against a
    loop of the same model-to-datum conversion + ``fastavro.schemaless_writer`` + raw
    ``Producer.produce`` with a delivery callback that counts errors;
(b) the pre-encoded bytes path, ``batch().send_bytes()`` (failures reported, successes not),
    against raw ``produce`` of the same bytes with the error-counting delivery callback.
    Also printed: per-record ``send_bytes()`` futures against the same raw loop
    (``bytes_future_ratio``), and the batch against a raw loop on a client with
    ``delivery.report.only.error`` like the batch's (``bytes_vs_raw_errors_only``);
(c) ``AsyncEventProducer`` (queue all, gather: ``async_ratio``; one ``send_many``:
    ``async_send_many_ratio``) against sync ``send()``;
(d) ``send(..., guarantee=FIRE_AND_FORGET)`` against the raw typed loop on a client with the
    same fire-and-forget config (``acks=1``, not idempotent, no retries, failures-only
    reports): ``fire_and_forget_ratio``. ``fire_and_forget_vs_default`` compares it with the
    default at-least-once ``send()``.

``typed_us_per_event`` is the wall time per event of (a), from the first send until all are
acknowledged; ``typed_cpu_us_per_event`` (and ``raw_typed_cpu_us_per_event``) is the CPU time
of the sending thread alone per event (``time.thread_time``), steadier on a shared machine.

Each timing runs from the first send until every record is acknowledged (flush), on a
producer that has already delivered one warm-up record: connecting, fetching metadata and
getting the idempotent producer id happen before the clock starts, on both sides. (Without the
warm-up, that start-up, 0.1-0.5 s on a loaded machine, is most of a 30k-record round.)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from io import BytesIO
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from fastavro import schemaless_writer
from prometheus_client import CollectorRegistry

from bench._common import emit, median
from examples.orders.events import Address, LineItem, OrderPlaced
from pipeline import DeliveryGuarantee, load_settings
from pipeline.avro._codec import SINGLE_OBJECT_MAGIC, Codec
from producers import AsyncEventProducer, EventProducer
from producers._fire_and_forget import fire_and_forget_config


def make_events(n: int) -> list[OrderPlaced]:
    placed = datetime.now(UTC).replace(microsecond=0)
    return [
        OrderPlaced(
            order_id=uuid.uuid4(),
            customer_id=f"customer-{i % 1000}",
            placed_at=placed,
            items=[LineItem(sku=f"sku-{i % 50}", quantity=1 + i % 3, unit_price=Decimal("4.50"))],
            total=Decimal("13.50"),
            shipping_address=Address(
                line1="1 Main St", city="Lyon", postal_code="69001", country="FR"
            ),
        )
        for i in range(n)
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench producer")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--partitions", type=int, default=6)
    args = parser.parse_args(argv)

    settings = load_settings(bootstrap_servers=os.environ.get("PIPELINE_BOOTSTRAP_SERVERS"))
    topic = f"bench-producer-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(settings.admin_config())
    admin.create_topics([NewTopic(topic, args.partitions)])[topic].result(timeout=30)

    codec = Codec.from_settings(settings, [OrderPlaced])
    binding = codec.register(OrderPlaced)
    prefix = SINGLE_OBJECT_MAGIC + binding.schema.fingerprint
    parsed = binding.schema.parsed
    events = make_events(args.events)
    keys = [str(e.order_id) for e in events]
    encoded = [codec.encode(e) for e in events]
    config = settings.producer_config()
    config.pop("logger", None)

    def warm_raw(**extra: Any) -> tuple[Producer, list[int]]:
        producer = Producer({**config, **extra})
        producer.produce(topic, encoded[0], keys[0].encode())
        if producer.flush(30):
            raise RuntimeError("the warm-up record was not delivered")
        return producer, [0]

    def warm_ours() -> EventProducer:
        producer = EventProducer(settings, codec=codec, registry=CollectorRegistry())
        producer.send_bytes(topic, encoded[0], key=keys[0]).result(30)  # type: ignore[union-attr]
        return producer

    cpu: dict[str, list[float]] = {"raw": [], "ours": []}  # sending thread's CPU s per event

    def raw_typed() -> float:
        producer, errors = warm_raw()
        start = time.perf_counter()
        cpu_start = time.thread_time()

        def on_delivery(err: Any, msg: Any) -> None:
            if err is not None:
                errors[0] += 1

        for event, key in zip(events, keys, strict=True):
            buf = BytesIO()
            buf.write(prefix)
            schemaless_writer(buf, parsed, binding.to_datum(event))
            _produce(producer, topic, buf.getvalue(), key.encode(), on_delivery)
        cpu["raw"].append((time.thread_time() - cpu_start) / len(events))
        _finish(producer, errors)
        return len(events) / (time.perf_counter() - start)

    def raw_fire_and_forget() -> float:
        errors = [0]

        def on_delivery(err: Any, msg: Any) -> None:
            if err is not None:
                errors[0] += 1

        producer = Producer({**fire_and_forget_config(config), "on_delivery": on_delivery})
        producer.produce(topic, encoded[0], keys[0].encode())
        producer.flush(30)
        start = time.perf_counter()
        for event, key in zip(events, keys, strict=True):
            buf = BytesIO()
            buf.write(prefix)
            schemaless_writer(buf, parsed, binding.to_datum(event))
            while True:
                try:
                    producer.produce(topic, buf.getvalue(), key.encode())
                    producer.poll(0)
                    break
                except BufferError:
                    producer.poll(0.05)
        _finish(producer, errors)
        return len(events) / (time.perf_counter() - start)

    def ours_fire_and_forget() -> float:
        ff = DeliveryGuarantee.FIRE_AND_FORGET
        with warm_ours() as p:
            p.send(events[0], key=keys[0], topic=topic, guarantee=ff)
            _flushed(p)
            start = time.perf_counter()
            for event, key in zip(events, keys, strict=True):
                p.send(event, key=key, topic=topic, guarantee=ff)
            _flushed(p)
            elapsed = time.perf_counter() - start
        return len(events) / elapsed

    def raw_bytes(**extra: Any) -> float:
        producer, errors = warm_raw(**extra)
        start = time.perf_counter()

        def on_delivery(err: Any, msg: Any) -> None:
            if err is not None:
                errors[0] += 1

        for value, key in zip(encoded, keys, strict=True):
            _produce(producer, topic, value, key.encode(), on_delivery)
        _finish(producer, errors)
        return len(encoded) / (time.perf_counter() - start)

    def ours_typed() -> float:
        with warm_ours() as p:
            start = time.perf_counter()
            cpu_start = time.thread_time()
            futures = [p.send(e, key=k, topic=topic) for e, k in zip(events, keys, strict=True)]
            cpu["ours"].append((time.thread_time() - cpu_start) / len(events))
            _flushed(p)
            elapsed = time.perf_counter() - start
        assert all(f is not None and f.exception() is None for f in futures)
        return len(events) / elapsed

    def raw_bytes_errors_only() -> float:
        return raw_bytes(**{"delivery.report.only.error": True})

    def ours_bytes() -> float:
        with warm_ours() as p:
            with p.batch() as warm:  # the batch client's start-up, as for the others
                warm.send_bytes(topic, encoded[0], key=keys[0])
            start = time.perf_counter()
            with p.batch() as batch:
                for value, key in zip(encoded, keys, strict=True):
                    batch.send_bytes(topic, value, key=key)
            elapsed = time.perf_counter() - start
        if batch.sent != len(encoded):  # a failure would have raised BatchDeliveryError
            raise RuntimeError(f"the batch delivered {batch.sent} of {len(encoded)} records")
        return len(encoded) / elapsed

    def ours_bytes_futures() -> float:
        with warm_ours() as p:
            start = time.perf_counter()
            futures = [p.send_bytes(topic, v, key=k) for v, k in zip(encoded, keys, strict=True)]
            _flushed(p)
            elapsed = time.perf_counter() - start
        assert all(f is not None and f.exception() is None for f in futures)
        return len(encoded) / elapsed

    def ours_async() -> float:
        async def run() -> float:
            async with AsyncEventProducer(warm_ours()) as ap:
                start = time.perf_counter()
                pending = [
                    ap.queue(e, key=k, topic=topic) for e, k in zip(events, keys, strict=True)
                ]
                results = await asyncio.gather(*pending)
                elapsed = time.perf_counter() - start
            return len(results) / elapsed

        return asyncio.run(run())

    def ours_async_many() -> float:
        async def run() -> float:
            async with AsyncEventProducer(warm_ours()) as ap:
                start = time.perf_counter()
                results = await ap.send_many(events, key=lambda e: str(e.order_id), topic=topic)
                elapsed = time.perf_counter() - start
            return len(results) / elapsed

        return asyncio.run(run())

    runs: list[tuple[str, Callable[[], float]]] = [
        ("raw", raw_typed), ("ours", ours_typed), ("raw_b", raw_bytes),
        ("ours_b", ours_bytes), ("ours_bf", ours_bytes_futures),
        ("raw_be", raw_bytes_errors_only), ("async", ours_async), ("async_m", ours_async_many),
        ("raw_ff", raw_fire_and_forget), ("ours_ff", ours_fire_and_forget),
    ]  # fmt: skip
    rates: dict[str, list[float]] = {name: [] for name, _ in runs}
    for rnd in range(args.rounds):
        order = runs if rnd % 2 == 0 else list(reversed(runs))  # alternate to spread drift
        for name, fn in order:
            rates[name].append(fn())
        print(
            f"round {rnd + 1}: " + ", ".join(f"{n}={rates[n][-1]:,.0f}/s" for n, _ in runs),
            flush=True,
        )
    typed = [o / r for o, r in zip(rates["ours"], rates["raw"], strict=True)]
    raw_b = [o / r for o, r in zip(rates["ours_b"], rates["raw_b"], strict=True)]
    futures_b = [o / r for o, r in zip(rates["ours_bf"], rates["raw_b"], strict=True)]
    errors_b = [o / r for o, r in zip(rates["ours_b"], rates["raw_be"], strict=True)]
    asy = [a / s for a, s in zip(rates["async"], rates["ours"], strict=True)]
    asy_many = [a / s for a, s in zip(rates["async_m"], rates["ours"], strict=True)]
    ff = [o / r for o, r in zip(rates["ours_ff"], rates["raw_ff"], strict=True)]
    ff_default = [f / o for f, o in zip(rates["ours_ff"], rates["ours"], strict=True)]
    med = {name: median(values) for name, values in rates.items()}
    lines = [
        ("(a) typed send", med["ours"], med["raw"], median(typed), 1.5),
        ("(b) bytes path (batch)", med["ours_b"], med["raw_b"], median(raw_b), 0.90),
        ("(c) async/sync", med["async"], med["ours"], median(asy), 0.80),
        ("(c) async send_many/sync", med["async_m"], med["ours"], median(asy_many), 0.80),
        ("bytes, per-record futures", med["ours_bf"], med["raw_b"], median(futures_b), None),
        ("batch vs raw errors-only", med["ours_b"], med["raw_be"], median(errors_b), None),
        ("(d) fire-and-forget", med["ours_ff"], med["raw_ff"], median(ff), 0.95),
        ("fire-and-forget vs default send", med["ours_ff"], med["ours"], median(ff_default), None),
    ]
    for label, ours, base, ratio, target in lines:
        goal = "" if target is None else f" (target >= {target})"
        print(f"{label}: {ours:,.0f}/s vs {base:,.0f}/s  ratio {ratio:.3f}{goal}")
    admin.delete_topics([topic])
    emit(
        "producer",
        median(typed),
        bytes_ratio=median(raw_b),
        async_ratio=median(asy),
        async_send_many_ratio=median(asy_many),
        bytes_future_ratio=median(futures_b),
        bytes_vs_raw_errors_only=median(errors_b),
        events_per_s=round(median(rates["ours"])),
        typed_us_per_event=round(1e6 / median(rates["ours"]), 2),
        raw_typed_us_per_event=round(1e6 / median(rates["raw"]), 2),
        typed_cpu_us_per_event=round(median(cpu["ours"]) * 1e6, 2),
        raw_typed_cpu_us_per_event=round(median(cpu["raw"]) * 1e6, 2),
        fire_and_forget_ratio=median(ff),
        fire_and_forget_vs_default=median(ff_default),
        fire_and_forget_events_per_s=round(med["ours_ff"]),
    )
    return 0


def _produce(producer: Producer, topic: str, value: bytes, key: bytes, cb: Any) -> None:
    while True:
        try:
            producer.produce(topic, value, key, on_delivery=cb)
            producer.poll(0)  # serve delivery reports, as the confluent-kafka examples do
            return
        except BufferError:
            producer.poll(0.05)


def _flushed(producer: EventProducer) -> None:
    if producer.flush(60):
        raise RuntimeError("our producer did not deliver every record within 60 s")


def _finish(producer: Producer, errors: list[int]) -> None:
    if producer.flush(60) or errors[0]:
        raise RuntimeError(f"baseline lost records: {errors[0]} failed")
