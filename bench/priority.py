"""``python -m bench priority``: high-priority waits under a low-priority backlog, low throughput.

Same broker, same run, medians of rounds, each worker on a fresh consumer group:

(a) high-priority wait: ``--low`` records queued on ``<topic>.p1``, a worker with 2 levels
    (1 ms handler, concurrency 8) starts, and once it handled 2000 of them ``--high`` records
    go to ``<topic>.p0``, 20 every 100 ms. The wait is handler start minus the record's
    CreateTime. The same with ``max_in_flight=200`` (low records already dispatched delay high
    ones by at most the in-flight limit), and the baseline: one topic, no priorities, where
    the high records queue behind the backlog;
(b) low-priority throughput: ``--events`` records on the lowest level of a 2-level topic
    against the same records on a single-level topic, no-op handler (the scheduler's
    per-tick cost and its smaller prefetch are all that differ). Goal >= 0.8.

The last line is JSON: ``ratio`` (= ``low_throughput_ratio``), ``high_p99_s`` (default
options), ``high_p99_inflight200_s``, ``fifo_high_p99_s`` (no priorities).
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import uuid
from typing import Any

from prometheus_client import CollectorRegistry

from bench._common import emit, median
from bench.consumer import _create, _fill
from bench.producer import make_events
from consumers import Context, Worker
from examples.orders.events import OrderPlaced
from pipeline import load_settings
from pipeline._names import priority_topic
from pipeline._settings import Settings
from pipeline.avro._codec import Codec
from producers import EventProducer


class _Marks:
    """Handled records: count, first and last handler time, and high-priority waits."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.high: list[float] = []
        self.low = 0


def _worker(settings: Settings, topic: str, levels: int, marks: _Marks, **options: Any) -> Worker:
    sleep_s = options.pop("sleep_s", 0.0)
    worker = Worker(
        group=f"bench-prio-{uuid.uuid4().hex[:8]}",
        topics=[topic],
        settings=settings,
        registry=CollectorRegistry(),
        retry_topic=f"{topic}.retry",
        **options,
    )
    if levels:
        worker.priority(topic, levels)

    @worker.handler(OrderPlaced)
    def handle(event: OrderPlaced, ctx: Context) -> None:
        now = time.time()
        high = ctx.topic.endswith(".p0") or (ctx.key or b"").startswith(b"h")
        with marks.lock:
            marks.count += 1
            if marks.count == 1:
                marks.first = time.perf_counter()
            marks.last = time.perf_counter()
            if high:
                marks.high.append(now - ctx.timestamp_ms / 1000)
            else:
                marks.low += 1
        if sleep_s:
            time.sleep(sleep_s)

    return worker


def _until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.01)  # polling a condition, bounded by the deadline


def _run(worker: Worker) -> threading.Thread:
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return thread


def _stop(worker: Worker, thread: threading.Thread) -> None:
    worker.stop()
    thread.join(60)


def _topics(settings: Settings, base: str, levels: int, partitions: int) -> str:
    """Create ``base`` (or its levels) and its retry topic; return the topic low records go to."""
    names = [priority_topic(base, level) for level in range(levels)] if levels else [base]
    for name in names:
        _create(settings, name, partitions)
    _create(settings, f"{base}.retry", 1)
    return names[-1]


def throughput(settings: Settings, codec: Codec, n: int, partitions: int, levels: int) -> float:
    """Records per second of a no-op handler over ``n`` records on the lowest level."""
    base = f"bench-prio-tp-{uuid.uuid4().hex[:8]}"
    _fill(settings, codec, _topics(settings, base, levels, partitions), n, keys=10_000)
    marks = _Marks()
    worker = _worker(settings, base, levels, marks)
    thread = _run(worker)
    try:
        _until(lambda: marks.count >= n, 600, f"{n} records")
    finally:
        _stop(worker, thread)
    return (n - 1) / (marks.last - marks.first)


def high_wait(
    settings: Settings, codec: Codec, low: int, high: int, partitions: int, levels: int, **opts: Any
) -> tuple[float, int]:
    """p99 wait of ``high`` records sent during a ``low`` backlog; low handled by then."""
    base = f"bench-prio-hw-{uuid.uuid4().hex[:8]}"
    low_topic = _topics(settings, base, levels, partitions)
    high_topic = priority_topic(base, 0) if levels else base
    _fill(settings, codec, low_topic, low, keys=1000)
    marks = _Marks()
    worker = _worker(settings, base, levels, marks, sleep_s=0.001, concurrency=8, **opts)
    value = codec.encode(make_events(1)[0])
    _create(settings, f"{base}.warmup", 1)
    producer = EventProducer(settings, codec=codec, registry=CollectorRegistry())
    warm = producer.send_bytes(f"{base}.warmup", value)  # connected, producer id assigned:
    assert warm is not None  # the waits measure the worker, not the producer's start
    warm.result(30)
    thread = _run(worker)
    try:
        _until(lambda: marks.low >= 2000, 120, "the backlog to start")
        with producer:
            for i in range(high):
                producer.send_bytes(high_topic, value, key=f"h{i}")
                if i % 20 == 19:
                    producer.flush(10)
                    time.sleep(0.1)  # pacing the sender
        _until(lambda: len(marks.high) >= high, 300, "the high-priority records")
        low_then = marks.low
    finally:
        _stop(worker, thread)
    waits = sorted(marks.high)
    return waits[min(len(waits) - 1, int(len(waits) * 0.99))], low_then


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench priority")
    parser.add_argument("--events", type=int, default=50_000, help="throughput records")
    parser.add_argument("--low", type=int, default=20_000, help="low-priority backlog")
    parser.add_argument("--high", type=int, default=200, help="high-priority records")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=3)
    args = parser.parse_args(argv)
    settings = load_settings(bootstrap_servers=os.environ.get("PIPELINE_BOOTSTRAP_SERVERS"))
    codec = Codec.from_settings(settings, [OrderPlaced])

    figures: dict[str, list[float]] = {k: [] for k in ("single", "levels", "p99", "p99_200")}
    figures["fifo"] = []
    for round_no in range(args.rounds):
        figures["single"].append(throughput(settings, codec, args.events, args.partitions, 0))
        figures["levels"].append(throughput(settings, codec, args.events, args.partitions, 2))
        p99, low_then = high_wait(settings, codec, args.low, args.high, args.partitions, 2)
        figures["p99"].append(p99)
        p99_200, _ = high_wait(
            settings, codec, args.low, args.high, args.partitions, 2, max_in_flight=200
        )
        figures["p99_200"].append(p99_200)
        fifo, _ = high_wait(settings, codec, args.low, args.high, args.partitions, 0)
        figures["fifo"].append(fifo)
        print(
            f"round {round_no + 1}: single-level {figures['single'][-1]:,.0f}/s, lowest level "
            f"{figures['levels'][-1]:,.0f}/s; high p99 wait {p99:.3f}s (low handled by then "
            f"{low_then}/{args.low}), in-flight 200 {p99_200:.3f}s, no priorities {fifo:.3f}s",
            flush=True,
        )
    ratios = [lv / s for lv, s in zip(figures["levels"], figures["single"], strict=True)]
    low_ratio = median(ratios)
    medians = {k: round(median(v), 4) for k, v in figures.items()}
    print(f"medians: {json.dumps(medians)}; low throughput ratio {low_ratio:.3f} (goal >= 0.8)")
    emit(
        "priority",
        low_ratio,
        low_throughput_ratio=round(low_ratio, 4),
        high_p99_s=medians["p99"],
        high_p99_inflight200_s=medians["p99_200"],
        fifo_high_p99_s=medians["fifo"],
        single_level_per_s=round(medians["single"]),
        lowest_level_per_s=round(medians["levels"]),
    )
    return 0
