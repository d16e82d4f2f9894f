"""``python -m bench eos``: what exactly-once costs, for the worker and for the scheduler.

Same broker, same run, alternating rounds, medians; each round on fresh groups and topics:

(a) worker: a ``consumers.Worker`` that consumes ``OrderPlaced``, transforms it and sends it
    to an output topic, with ``exactly_once=True`` against the same worker at-least-once.
(b) scheduler: ``pipeline scheduler run --exactly-once`` forwarding due records against the
    same scheduler at-least-once (its default mode), both in a subprocess.

Each rate is taken from the first record handled (worker) or forwarded (scheduler) to the
moment the last output record is visible to a ``read_committed`` reader: exactly-once
output only counts once its transaction has committed.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import uuid
from typing import Any

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient
from prometheus_client import CollectorRegistry

from bench._common import emit, median
from bench.consumer import _create, _fill
from bench.scheduler import _now_ms, _produce, _producer, bed
from consumers import Context, Worker
from examples.orders.events import OrderPlaced
from pipeline import load_settings
from pipeline._delay import scheduled_headers
from pipeline._settings import Settings
from pipeline.avro._codec import Codec


class Reader:
    """Counts the records of ``topic`` a ``read_committed`` reader sees; stamps the last one."""

    def __init__(self, servers: str, topic: str, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.last = 0.0
        self.done = threading.Event()
        self._consumer = Consumer(
            {
                "bootstrap.servers": servers,
                "group.id": f"bench-eos-reader-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "topic.metadata.refresh.interval.ms": 1000,
            }
        )
        self._consumer.subscribe([topic])
        while not self._consumer.assignment():  # join before the clock starts
            self._consumer.consume(1, 0.1)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while self.count < self.expected:
            got = sum(m.error() is None for m in self._consumer.consume(10_000, 0.05))
            if got:
                self.count += got
                self.last = time.perf_counter()
        self.done.set()

    def wait(self, timeout: float) -> float:
        """Wait for every expected record; return when the last one was seen."""
        if not self.done.wait(timeout):
            raise RuntimeError(f"only {self.count} of {self.expected} output records arrived")
        self._thread.join(5)
        self._consumer.close()
        return self.last


def worker_rate(settings: Settings, source: str, n: int, *, exactly_once: bool) -> float:
    """Consume-transform-produce through a Worker; records per second, output visible."""
    tag = uuid.uuid4().hex[:8]
    output = f"{source}-out-{tag}"
    _create(settings, output, 6)
    reader = Reader(settings.bootstrap_servers, output, n)
    options: dict[str, Any] = {"exactly_once": True, "instance_id": tag} if exactly_once else {}
    worker = Worker(
        group=f"bench-eos-{'txn' if exactly_once else 'alo'}-{tag}",
        topics=[source],
        settings=settings,
        registry=CollectorRegistry(),
        retry_topic=f"{source}.retry",
        **options,
    )
    first = [0.0]

    @worker.handler(OrderPlaced)
    def transform(event: OrderPlaced, ctx: Context) -> None:
        if not first[0]:
            first[0] = time.perf_counter()
        out = event.model_copy(update={"customer_id": event.customer_id.upper()})
        ctx.producer.send(out, key=ctx.key, topic=output)

    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        last = reader.wait(600)
    finally:
        worker.stop()
        thread.join(60)
        AdminClient(settings.admin_config()).delete_topics([output])
    return n / (last - first[0])


def scheduler_rate(servers: str, n: int, *, exactly_once: bool) -> float:
    """Due records forwarded by a scheduler subprocess; records per second, output visible."""
    with bed(servers, 3) as b:
        producer = _producer(servers)
        hdrs = scheduled_headers(b.target, _now_ms() - 1000)
        for i in range(n):
            _produce(producer, b.config.topic, str(i).encode(), b"x" * 100, hdrs)
        producer.flush(120)
        reader = Reader(servers, b.target, n)
        b.start(exactly_once=exactly_once)
        started = 0.0
        while not started:  # the first forwarded record starts the clock (50 ms resolution)
            if (b.metric("pipeline_scheduler_forwarded_total") or 0) > 0:
                started = time.perf_counter()
            elif reader.count:
                raise RuntimeError("output arrived before the first forward was seen")
            else:
                time.sleep(0.05)
        last = reader.wait(600)
    return n / (last - started)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench eos")
    parser.add_argument("--events", type=int, default=50_000, help="worker records per round")
    parser.add_argument("--records", type=int, default=100_000, help="scheduler records")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--parts", default="ab", help="a: worker, b: scheduler")
    args = parser.parse_args(argv)

    settings = load_settings(bootstrap_servers=os.environ.get("PIPELINE_BOOTSTRAP_SERVERS"))
    rates: dict[str, list[float]] = {"worker_eos": [], "worker_alo": [], "sched_eos": [],
                                     "sched_alo": []}  # fmt: skip
    if "a" in args.parts:
        codec = Codec.from_settings(settings, [OrderPlaced])
        source = f"bench-eos-{uuid.uuid4().hex[:8]}"
        _create(settings, source, args.partitions)
        _create(settings, f"{source}.retry", 1)
        _fill(settings, codec, source, args.events, keys=10_000)
        for round_no in range(args.rounds):
            # Alternate which goes first, so drift in the machine's load hits both alike.
            order = (True, False) if round_no % 2 == 0 else (False, True)
            for eos in order:
                rate = worker_rate(settings, source, args.events, exactly_once=eos)
                rates["worker_eos" if eos else "worker_alo"].append(rate)
            print(f"(a) worker round {round_no + 1}: exactly-once {rates['worker_eos'][-1]:,.0f}/s"
                  f", at-least-once {rates['worker_alo'][-1]:,.0f}/s", flush=True)  # fmt: skip
        AdminClient(settings.admin_config()).delete_topics([source, f"{source}.retry"])
    if "b" in args.parts:
        for round_no in range(args.rounds):
            order = (True, False) if round_no % 2 == 0 else (False, True)
            for eos in order:
                rate = scheduler_rate(settings.bootstrap_servers, args.records, exactly_once=eos)
                rates["sched_eos" if eos else "sched_alo"].append(rate)
            print(f"(b) scheduler round {round_no + 1}: exactly-once "
                  f"{rates['sched_eos'][-1]:,.0f}/s, at-least-once "
                  f"{rates['sched_alo'][-1]:,.0f}/s", flush=True)  # fmt: skip
    med = {k: median(v) if v else float("nan") for k, v in rates.items()}
    worker_ratio = med["worker_eos"] / med["worker_alo"]
    scheduler_ratio = med["sched_eos"] / med["sched_alo"]
    print(f"medians (records/s): {json.dumps({k: round(v) for k, v in med.items() if v == v})}")
    print(f"exactly-once over at-least-once: worker {worker_ratio:.2f}, "
          f"scheduler {scheduler_ratio:.2f}", flush=True)  # fmt: skip
    ratios = [r for r in (worker_ratio, scheduler_ratio) if r == r]
    emit(
        "eos",
        min(ratios) if ratios else float("nan"),
        worker_ratio=round(worker_ratio, 4),
        scheduler_ratio=round(scheduler_ratio, 4),
        worker_eos_per_s=med["worker_eos"],
        worker_alo_per_s=med["worker_alo"],
        scheduler_eos_per_s=med["sched_eos"],
        scheduler_alo_per_s=med["sched_alo"],
    )
    return 0
