"""``python -m bench outbox``: the producer outbox's store and drain rates vs raw produce.

Same records (Avro-encoded OrderPlaced values, 1,000 keys, CloudEvents-size headers), same
machine, rounds alternating:

- **raw**: a confluent-kafka ``Producer`` (the settings' producer config) producing every
  record, with an error-counting delivery callback, until ``flush`` returns;
- **store**: ``EventProducer(outbox=...)`` with Kafka down (nothing listens on its port):
  ``send_bytes`` of every record until every future resolved ``STORED`` (committed with
  ``synchronous=FULL``);
- **drain**: that outbox sent back to the real broker by the drain engine the producer's
  drainer and ``pipeline outbox drain`` use (passes of 1,000, two in flight, each deleted once
  acknowledged), until it is empty.

Each side is warmed first (one delivered record on a connected client; one stored record,
which also flips the producer into "Kafka down"). The last line is JSON with ``ratio`` (drain
over raw), ``store_per_s`` and ``drain_per_s`` (medians over the rounds).
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import CollectorRegistry

from bench._common import emit, median
from bench.producer import make_events
from examples.orders.events import OrderPlaced
from pipeline import load_settings
from pipeline.avro._codec import Codec
from producers import EventProducer
from producers._outbox_drain import drain_stream
from producers._outbox_file import OutboxFile

Record = tuple[bytes, bytes, list[tuple[str, bytes | None]]]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench outbox")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=6)
    args = parser.parse_args(argv)

    settings = load_settings(bootstrap_servers=os.environ.get("PIPELINE_BOOTSTRAP_SERVERS"))
    topic = f"bench-outbox-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(settings.admin_config())
    admin.create_topics([NewTopic(topic, args.partitions)])[topic].result(timeout=30)
    codec = Codec.from_settings(settings, [OrderPlaced])
    records: list[Record] = [
        (
            codec.encode(event, topic=topic),
            f"customer-{i % 1000}".encode(),
            [
                ("ce_id", str(event.order_id).encode()),
                ("ce_type", b"orders.OrderPlaced"),
                ("ce_source", b"bench"),
                ("ce_specversion", b"1.0"),
            ],
        )
        for i, event in enumerate(make_events(args.events))
    ]
    down = f"127.0.0.1:{_closed_port()}"

    def raw() -> float:
        producer = Producer(settings.producer_config())
        errors = [0]

        def on_delivery(err: Any, _msg: Any) -> None:
            if err is not None:
                errors[0] += 1

        producer.produce(topic, records[0][0], records[0][1], on_delivery=on_delivery)
        if producer.flush(30):
            raise RuntimeError("the warm-up record was not delivered")
        start = time.perf_counter()
        for i, (value, key, headers) in enumerate(records):
            while True:
                try:
                    producer.produce(topic, value, key, headers=headers, on_delivery=on_delivery)  # type: ignore[arg-type]
                    break
                except BufferError:
                    producer.poll(0.01)
            if not i & 255:
                producer.poll(0)
        producer.flush(120)
        elapsed = time.perf_counter() - start
        assert errors[0] == 0, f"{errors[0]} raw deliveries failed"
        return len(records) / elapsed

    def store(path: Path) -> float:
        producer = EventProducer(
            load_settings(bootstrap_servers=down),
            registry=CollectorRegistry(),
            outbox=path,
            config={"message.timeout.ms": 1000},
        )
        warm = producer.send_bytes(topic, records[0][0], key=records[0][1])
        assert warm is not None
        assert warm.result(timeout=30).stored
        start = time.perf_counter()
        futures = [producer.send_bytes(topic, v, key=k, headers=h) for v, k, h in records]
        for future in futures:
            assert future is not None
            assert future.result(timeout=120).stored
        elapsed = time.perf_counter() - start
        producer.close()
        return len(records) / elapsed

    def drain(path: Path) -> float:
        producer = Producer(settings.producer_config())
        producer.produce(topic, records[0][0], records[0][1])
        if producer.flush(30):
            raise RuntimeError("the warm-up record was not delivered")
        file = OutboxFile.open(path)
        total = file.summary().records
        start = time.perf_counter()
        drained = 0
        while drained < total:
            results = drain_stream(file, producer, limit=1000, timeout=60)
            failed = [f for r in results for f in r.failed]
            if failed:
                raise RuntimeError(f"drain failed: {failed[0][1].str()}")
            drained += sum(len(r.acked) for r in results)
        elapsed = time.perf_counter() - start
        file.close()
        return total / elapsed

    raws, stores, drains = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.rounds):
            path = Path(tmp) / f"outbox-{n}.db"
            raws.append(raw())
            stores.append(store(path))
            drains.append(drain(path))
            print(
                f"round {n + 1}: raw {raws[-1]:,.0f}/s, store {stores[-1]:,.0f}/s, "
                f"drain {drains[-1]:,.0f}/s ({drains[-1] / raws[-1]:.2f}x raw)",
                flush=True,
            )
    raw_m, store_m, drain_m = median(raws), median(stores), median(drains)
    emit(
        "outbox",
        drain_m / raw_m,
        store_per_s=round(store_m),
        drain_per_s=round(drain_m),
        raw_per_s=round(raw_m),
        events=args.events,
        rounds=args.rounds,
        synchronous="FULL",
        goals={"store_per_s": 20_000, "ratio": 0.5},
    )
    return 0
