"""``python -m bench replay``: ``pipeline replay``'s copy loop against a raw consume+produce loop.

Same broker, same source topic, same librdkafka configs (the settings' consumer and idempotent
producer configs), alternating rounds. Both loops read the whole source topic from the log start
to the high watermark and write every record (key, value, headers plus one provenance header)
to their own destination topic; a timing ends when every record is acknowledged.
"""

from __future__ import annotations

import argparse
import os
import uuid
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from bench._common import emit, median, timed_rate
from pipeline import load_settings
from pipeline._settings import Settings
from pipeline.cli.replay import copy_window
from pipeline.ops._replay import RecordFilter
from pipeline.ops._window import resolve_window, topic_partitions, window_consumer


def _fill(settings: Settings, topic: str, records: int, value_bytes: int) -> None:
    producer = Producer(settings.producer_config())
    value = os.urandom(value_bytes)
    for i in range(records):
        headers = [("ce_type", b"orders.OrderPlaced"), ("ce_id", uuid.uuid4().bytes)]
        while True:
            try:
                producer.produce(topic, value, f"key-{i % 1000}".encode(), headers=headers)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(60) == 0


def raw_copy(settings: Settings, source: str, target: str, partitions: int) -> int:
    """The hand-written loop: assign, consume batches, produce with one callback, flush."""
    consumer = Consumer(
        settings.consumer_config(f"bench-raw-{uuid.uuid4().hex[:8]}", **{"fetch.wait.max.ms": 100})
    )
    producer = Producer(settings.producer_config())
    ends = {}
    for p in range(partitions):
        ends[p] = consumer.get_watermark_offsets(TopicPartition(source, p), timeout=10)[1]
    consumer.assign([TopicPartition(source, p, 0) for p in range(partitions)])
    errors = [0]

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            errors[0] += 1

    copied = 0
    remaining = {p for p, end in ends.items() if end > 0}
    while remaining:
        for msg in consumer.consume(1000, 1.0):
            if msg.error() is not None:
                continue
            headers = msg.headers() or []
            # The same provenance header replay writes, so both loops put the same bytes out.
            headers.append(
                ("pipeline-replayed-from", f"{source}[{msg.partition()}]@{msg.offset()}".encode())
            )
            while True:
                try:
                    producer.produce(target, msg.value(), msg.key(), headers=headers,
                                     on_delivery=on_delivery)  # fmt: skip
                    break
                except BufferError:
                    producer.poll(0.05)
            copied += 1
            if msg.offset() + 1 >= ends[msg.partition()]:
                remaining.discard(msg.partition())
        producer.poll(0)
    assert producer.flush(60) == 0
    consumer.close()
    assert errors[0] == 0
    return copied


def ours(settings: Settings, source: str, target: str) -> int:
    """``pipeline replay --execute`` without the click layer (same function the CLI calls)."""
    consumer = window_consumer(settings)
    try:
        ranges = resolve_window(consumer, source, topic_partitions(consumer, source))
    finally:
        consumer.close()
    result = copy_window(settings, source, target, ranges, RecordFilter(), execute=True)
    assert result.total("failed") == 0
    assert not result.errors
    return result.total("written")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench replay")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--value-bytes", type=int, default=300)
    args = parser.parse_args(argv)

    settings = load_settings(bootstrap_servers=os.environ.get("PIPELINE_BOOTSTRAP_SERVERS"))
    run_id = uuid.uuid4().hex[:8]
    source, raw_dst, ours_dst = (f"bench-replay-{n}-{run_id}" for n in ("src", "raw", "ours"))
    admin = AdminClient(settings.admin_config())
    for _topic, future in admin.create_topics(
        [NewTopic(t, args.partitions) for t in (source, raw_dst, ours_dst)]
    ).items():
        future.result(timeout=30)
    _fill(settings, source, args.records, args.value_bytes)

    raw_rates, our_rates = [], []
    for round_ in range(args.rounds):
        raw = timed_rate(lambda: raw_copy(settings, source, raw_dst, args.partitions))
        mine = timed_rate(lambda: ours(settings, source, ours_dst))
        raw_rates.append(raw)
        our_rates.append(mine)
        print(f"round {round_ + 1}: raw {raw:,.0f} rec/s, replay {mine:,.0f} rec/s")
    admin.delete_topics([source, raw_dst, ours_dst])
    raw_median, our_median = median(raw_rates), median(our_rates)
    print(f"median: raw {raw_median:,.0f} rec/s, replay {our_median:,.0f} rec/s")
    emit(
        "replay",
        our_median / raw_median,
        records=args.records,
        rounds=args.rounds,
        raw_records_per_s=round(raw_median),
        replay_records_per_s=round(our_median),
    )
    return 0
