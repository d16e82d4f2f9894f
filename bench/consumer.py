"""``python -m bench consumer``: the worker against a hand-written loop and other frameworks.

Same broker, same run, medians of alternating rounds, each round on a fresh consumer group,
timed from the first record handled to the last (group joins are not counted):

(a) a ``consumers.Worker`` (Avro decode into the typed model, no-op handler, batched commits)
    against a hand-written loop: ``Consumer.consume(batch)`` + fastavro decode +
    ``store_offsets`` + a commit every second;
(b) the same workload in quixstreams and FastStream (confluent backend), at-least-once with
    manual commits; they are installed for the benchmark only, into a separate virtualenv
    (``--thirdparty-venv``) so the project's pins are untouched, and run in a subprocess;
(c) a handler sleeping 5 ms with per-key concurrency 16 against per-partition ordering;
(d) a no-op batch handler (``batch_handler``, 500 records, 0.2 s) against the no-op per-record
    handler of (a): ``batch_ratio``;
(e) per-key concurrency at scale (``bench/_consumer_scale.py``): efficiency of sync handlers at
    16, 64 and 256 and of ``async def`` ones at 256 and 1,000 against the ideal, and the peak
    RSS of the 1,000 case: ``efficiency_sync_64``, ``efficiency_async_1000``,
    ``rss_mb_async_1000``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from io import BytesIO
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic
from fastavro import schemaless_reader
from prometheus_client import CollectorRegistry

from bench import _consumer_scale as scale
from bench._common import median
from bench.producer import make_events
from consumers import Context, Worker
from examples.orders.events import OrderPlaced
from pipeline import load_settings
from pipeline._settings import Settings
from pipeline.avro._codec import Codec
from producers import EventProducer

_THIRDPARTY = Path(__file__).with_name("_consumer_thirdparty.py")


def _create(settings: Settings, topic: str, partitions: int) -> None:
    admin = AdminClient(settings.admin_config())
    admin.create_topics([NewTopic(topic, partitions)])[topic].result(timeout=30)


def _fill(settings: Settings, codec: Codec, topic: str, n: int, keys: int) -> None:
    events = make_events(min(n, 5000))
    with EventProducer(settings, codec=codec, registry=CollectorRegistry()) as producer:
        encoded = [codec.encode(e) for e in events]
        for i in range(n):
            producer.send_bytes(topic, encoded[i % len(encoded)], key=f"key-{i % keys}")


def raw_loop(settings: Settings, codec: Codec, topic: str, n: int) -> float:
    """Hand-written at-least-once loop; returns records per second."""
    parsed = codec.register(OrderPlaced).schema.parsed
    config = settings.consumer_config(f"bench-raw-{uuid.uuid4().hex[:8]}")
    config.pop("logger", None)
    consumer = Consumer(config)
    consumer.subscribe([topic])
    count, start, last_commit = 0, 0.0, time.monotonic()
    try:
        while count < n:
            for msg in consumer.consume(500, 0.5):
                if msg.error() is not None:
                    continue
                if not start:
                    start = time.perf_counter()
                buf = BytesIO(msg.value())  # type: ignore[arg-type]
                buf.seek(10)
                schemaless_reader(buf, parsed, None)
                consumer.store_offsets(msg)
                count += 1
            if time.monotonic() - last_commit >= 1.0:
                consumer.commit(asynchronous=True)
                last_commit = time.monotonic()
        elapsed = time.perf_counter() - start
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return (n - 1) / elapsed


def ours(
    settings: Settings,
    topic: str,
    n: int,
    *,
    sleep_s: float = 0.0,
    batch: bool = False,
    **options: Any,
) -> float:
    """The worker with a no-op (or sleeping, or batch) handler; returns records per second."""
    worker = Worker(
        group=f"bench-ours-{uuid.uuid4().hex[:8]}",
        topics=[topic],
        settings=settings,
        registry=CollectorRegistry(),
        retry_topic=f"{topic}.retry",
        **options,
    )
    lock = threading.Lock()
    marks = [0, 0.0, 0.0]  # count, first, last
    done = threading.Event()

    def count(records: int) -> None:
        with lock:
            marks[0] += records
            if not marks[1]:
                marks[1] = time.perf_counter()
            elif marks[0] >= n:
                marks[2] = time.perf_counter()
                done.set()

    if batch:

        @worker.batch_handler(OrderPlaced, max_records=500, max_wait=0.2)
        def handle_batch(events: list[OrderPlaced], ctxs: list[Context]) -> None:
            count(len(events))

    else:

        @worker.handler(OrderPlaced)
        def handle(event: OrderPlaced, ctx: Context) -> None:
            if sleep_s:
                time.sleep(sleep_s)
            count(1)

    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    if not done.wait(600):
        raise RuntimeError(f"the worker handled {marks[0]} of {n} records")
    worker.stop()
    thread.join(60)
    return (n - 1) / (marks[2] - marks[1])


def thirdparty(venv: Path, framework: str, bootstrap: str, topic: str, n: int) -> float | None:
    """Run one framework's loop in the benchmark virtualenv; None when it cannot run."""
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    schema = json.dumps(
        Codec.from_settings(load_settings())
        .catalog.get(OrderPlaced.subject, OrderPlaced.version)
        .parsed
    )
    proc = subprocess.run(
        [str(python), str(_THIRDPARTY), framework, bootstrap, topic, str(n)],
        input=schema,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        print(f"{framework} failed: {proc.stderr.strip()[-2000:]}", file=sys.stderr)
        return None
    return float(proc.stdout.strip().splitlines()[-1])


def ensure_venv(venv: Path) -> bool:
    """Create the benchmark virtualenv with quixstreams and FastStream (once)."""
    if (venv / "bin" / "python").exists():
        return True
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [
                str(venv / "bin" / "pip"),
                "install",
                "-q",
                "quixstreams",
                "faststream[confluent]",
                "fastavro",
            ],
            check=True,
            timeout=900,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"cannot install quixstreams/FastStream: {exc}", file=sys.stderr)
        return False
    return True


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench consumer")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--sleep-events", type=int, default=3000)
    parser.add_argument(
        "--faststream-events",
        type=int,
        default=3000,
        help="FastStream commits every record synchronously (~100/s): time a prefix only",
    )
    parser.add_argument("--thirdparty-venv", type=Path, default=Path("/tmp/bench-thirdparty"))
    parser.add_argument("--skip-thirdparty", action="store_true")
    parser.add_argument("--skip-scale", action="store_true", help="leave out (e)")
    parser.add_argument("--scale-case", help=argparse.SUPPRESS)  # a child process of (e)
    parser.add_argument("--scale-topic", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.scale_case:
        return scale.child(args.scale_topic, args.scale_case)

    settings = load_settings(bootstrap_servers=os.environ.get("PIPELINE_BOOTSTRAP_SERVERS"))
    codec = Codec.from_settings(settings, [OrderPlaced])
    topic = f"bench-consumer-{uuid.uuid4().hex[:8]}"
    _create(settings, topic, args.partitions)
    _create(settings, f"{topic}.retry", 1)
    _fill(settings, codec, topic, args.events, keys=10_000)
    has_venv = not args.skip_thirdparty and ensure_venv(args.thirdparty_venv)

    rates: dict[str, list[float]] = {
        "raw": [],
        "ours": [],
        "ours_batch": [],
        "quixstreams": [],
        "faststream": [],
    }
    for round_no in range(args.rounds):
        rates["raw"].append(raw_loop(settings, codec, topic, args.events))
        rates["ours"].append(ours(settings, topic, args.events))
        rates["ours_batch"].append(ours(settings, topic, args.events, batch=True))
        for framework in ("quixstreams", "faststream"):
            if has_venv:
                count = args.events if framework == "quixstreams" else args.faststream_events
                rate = thirdparty(
                    args.thirdparty_venv, framework, settings.bootstrap_servers, topic, count
                )
                if rate is not None:
                    rates[framework].append(rate)
        print(
            f"round {round_no + 1}: "
            + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in rates.items() if len(v) > round_no),
            flush=True,
        )

    sleep_topic = f"{topic}-sleep"
    _create(settings, sleep_topic, args.partitions)
    _create(settings, f"{sleep_topic}.retry", 1)
    _fill(settings, codec, sleep_topic, args.sleep_events, keys=1000)
    by_key, by_partition = [], []
    for _ in range(args.rounds):
        by_key.append(ours(settings, sleep_topic, args.sleep_events, sleep_s=0.005, concurrency=16))
        by_partition.append(
            ours(
                settings,
                sleep_topic,
                args.sleep_events,
                sleep_s=0.005,
                concurrency=16,
                ordering="partition",
            )
        )
    medians = {k: median(v) if v else None for k, v in rates.items()}
    efficiency: dict[str, float | None] = {}
    rss_1000: list[float] = []
    for kind, concurrency in [] if args.skip_scale else scale.CASES:
        raw = medians["raw"] or 1.0
        n = scale.events_for(kind, concurrency, raw, args.events)
        ideal = min(concurrency / scale.HANDLER_S[kind], raw)
        runs = [scale.run_case(topic, kind, concurrency, n) for _ in range(args.rounds)]
        rate = median([r for r, _ in runs])
        efficiency[f"{kind}_{concurrency}"] = round(rate / ideal, 4)
        if (kind, concurrency) == ("async", 1000):
            rss_1000 = [m for _, m in runs]
        print(
            f"{kind} handlers, concurrency {concurrency}: {rate:,.0f}/s of an ideal "
            f"{ideal:,.0f}/s (efficiency {rate / ideal:.2f}; runs "
            + ", ".join(f"{r:,.0f}/s {m:.0f} MB" for r, m in runs)
            + ")",
            flush=True,
        )
    print(f"medians (records/s): {json.dumps({k: v and round(v) for k, v in medians.items()})}")
    print(
        f"5 ms handler: per key {median(by_key):,.0f}/s, per partition "
        f"{median(by_partition):,.0f}/s"
    )
    ours_rate = medians["ours"] or 0.0

    def versus(name: str) -> float | None:
        theirs = medians[name]
        return round(ours_rate / theirs, 4) if theirs else None

    print(
        json.dumps(
            {
                "bench": "consumer",
                "ratio": round(ours_rate / (medians["raw"] or 1.0), 4),
                "vs_quixstreams": versus("quixstreams"),
                "vs_faststream": versus("faststream"),
                "key_concurrency_speedup": round(median(by_key) / median(by_partition), 4),
                "batch_ratio": round((medians["ours_batch"] or 0.0) / (ours_rate or 1.0), 4),
                **{f"efficiency_{k}": v for k, v in efficiency.items()},
                "rss_mb_async_1000": median(rss_1000) if rss_1000 else None,
            }
        )
    )
    return 0
