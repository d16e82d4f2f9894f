"""``python -m bench scheduler``: lateness, memory with many pending records, and throughput."""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from bench._common import emit
from pipeline._delay import scheduled_headers
from pipeline._headers import DELIVERED_AT, get_header
from pipeline._settings import Settings
from pipeline.scheduler._records import DEFAULT_TIERS, SchedulerConfig
from pipeline.scheduler._topics import ensure_scheduler_topics, scheduler_topics

TIERS = ",".join(DEFAULT_TIERS)
# Where the scheduler subprocess imports ``pipeline`` from (another checkout, for A/B runs).
_ROOT: str | None = os.environ.get("BENCH_SCHEDULER_ROOT") or None


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Bed:
    """A private set of scheduler topics, a target topic and a scheduler subprocess."""

    def __init__(self, servers: str, partitions: int) -> None:
        self.servers = servers
        base = f"bench-sched-{uuid.uuid4().hex[:8]}"
        self.config = SchedulerConfig(
            topic=base, tiers=tuple(TIERS.split(",")), dlq_topic=f"{base}.dlq", group=base
        )
        self.target = f"{base}-target"
        ensure_scheduler_topics(
            Settings(bootstrap_servers=servers), self.config, partitions=partitions
        )
        admin = AdminClient({"bootstrap.servers": servers})
        for fut in admin.create_topics([NewTopic(self.target, num_partitions=partitions)]).values():
            fut.result(30)
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, exactly_once: bool = False) -> None:
        cmd = [sys.executable, "-m", "pipeline", "--bootstrap-servers", self.servers,
               "scheduler", "run", "--topic", self.config.topic, "--tiers", TIERS,
               "--dlq-topic", self.config.dlq_topic, "--group", self.config.group,
               "--no-create-topics", "--metrics-host", "127.0.0.1",
               "--metrics-port", str(self.port)]  # fmt: skip
        if exactly_once:
            cmd.append("--exactly-once")
        env = None
        if _ROOT:
            env = {**os.environ, "PYTHONPATH": _ROOT}
        self.proc = subprocess.Popen(cmd, cwd=_ROOT, env=env)
        self.wait(lambda: self.metric("pipeline_scheduler_held") is not None, 60)

    def metric(self, name: str) -> float | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as r:
                text = r.read().decode()
        except OSError:
            return None
        found = re.findall(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M)
        return sum(float(v) for v in found) if found else None

    def rss_mb(self) -> float:
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def wait(self, cond, timeout: float) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not cond():
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"scheduler exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError("benchmark condition not met")
            time.sleep(0.2)

    def close(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(30)
        admin = AdminClient({"bootstrap.servers": self.servers})
        topics = [*scheduler_topics(self.config), self.target]
        for fut in admin.delete_topics(topics).values():
            with contextlib.suppress(Exception):  # best-effort cleanup
                fut.result(30)


@contextmanager
def bed(servers: str, partitions: int) -> Iterator[Bed]:
    b = Bed(servers, partitions)
    try:
        yield b
    finally:
        b.close()


def _producer(servers: str) -> Producer:
    # Idempotent: a retried request must not write a record twice, or the lateness part would
    # count the bench's own duplicates against the scheduler.
    conf = {"bootstrap.servers": servers, "linger.ms": 20, "batch.size": 1_000_000,
            "enable.idempotence": True}  # fmt: skip
    return Producer({**conf, "queue.buffering.max.messages": 1_000_000})


def _produce(p: Producer, topic: str, key: bytes, value: bytes, headers: object) -> None:
    while True:
        try:
            p.produce(topic, key=key, value=value, headers=headers)
            return
        except BufferError:
            p.poll(0.05)


def _consumer(servers: str, topic: str) -> Consumer:
    c = Consumer({"bootstrap.servers": servers, "group.id": uuid.uuid4().hex,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "topic.metadata.refresh.interval.ms": 1000})  # fmt: skip
    c.subscribe([topic])
    return c


def lateness(servers: str, count: int, rate: float, max_delay: float) -> dict[str, float]:
    """(a) produce ``count`` records at ``rate``/s with delays 1..max_delay s; measure lateness.

    A reader thread consumes the target while records are still being produced, so a record
    due during the produce phase is timed when it arrives, not when the producing ends. Each
    record carries a unique id: a second copy counts as a duplicate, not as a delivery.
    """
    with bed(servers, 3) as b:
        b.start()
        reader = _consumer(servers, b.target)
        # Join the group and get the assignment before producing, so nothing waits on it.
        while not reader.assignment():
            reader.consume(1, 0.1)
        late: dict[int, float] = {}
        sched_late: list[float] = []
        counts = {"early": 0, "duplicates": 0}
        done = threading.Event()

        def read() -> None:
            while not done.is_set() and len(late) < count:
                for msg in reader.consume(1000, 0.05):
                    if msg.error():
                        continue
                    arrived = _now_ms()
                    hdrs = msg.headers()
                    rid = int(get_header(hdrs, "x-id") or -1)  # type: ignore[arg-type]
                    due = int(get_header(hdrs, "x-due") or 0)  # type: ignore[arg-type]
                    delivered = int(get_header(hdrs, DELIVERED_AT) or 0)  # type: ignore[arg-type]
                    counts["early"] += arrived < due or delivered < due
                    if rid in late:
                        counts["duplicates"] += 1
                        continue
                    late[rid] = (arrived - due) / 1000
                    sched_late.append((delivered - due) / 1000)

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        producer = _producer(servers)
        start = time.monotonic()
        for i in range(count):
            while time.monotonic() < start + i / rate:
                producer.poll(0.001)
            due = _now_ms() + int(random.uniform(1.0, max_delay) * 1000)
            hdrs = [("x-due", str(due).encode()), ("x-id", str(i).encode()),
                    *scheduled_headers(b.target, due)]  # fmt: skip
            _produce(producer, b.config.topic, f"k{i % 500}".encode(), b"x" * 64, hdrs)
        producer.flush(30)
        thread.join(max_delay + 60)
        # Duplicates that arrive right after the last first copy still count.
        drain_until = time.monotonic() + 3
        while time.monotonic() < drain_until:
            for msg in reader.consume(1000, 0.2):
                if not msg.error():
                    counts["duplicates"] += 1
        done.set()
        thread.join(5)
        reader.close()
    values = sorted(late.values())
    sched_late.sort()
    q = statistics.quantiles(values, n=100)
    qs = statistics.quantiles(sched_late, n=100)
    return {"p50": q[49], "p99": q[98], "max": values[-1], "early": counts["early"],
            "missing": count - len(values), "duplicates": counts["duplicates"],
            "sched_p50": qs[49], "sched_p99": qs[98]}  # fmt: skip


def rss(servers: str, small: int, large: int) -> dict[str, float]:
    """(b) RSS of the scheduler with ``small`` and then ``large`` records pending for an hour."""
    with bed(servers, 3) as b:
        b.start()
        producer = _producer(servers)
        value = b"x" * 100

        def fill(n: int) -> None:
            due = _now_ms() + 3_600_000
            hdrs = scheduled_headers(b.target, due)
            for i in range(n):
                _produce(producer, b.config.topic, str(i).encode(), value, hdrs)
                if i % 10_000 == 0:
                    producer.poll(0)
            producer.flush(120)

        def settle(total: int) -> float:
            b.wait(lambda: (b.metric("pipeline_scheduler_tier_hops_total") or 0) >= total, 1800)
            time.sleep(5)  # let queues drain before sampling
            return max(b.rss_mb() for _ in range(5) if time.sleep(0.5) is None)

        fill(small)
        base = settle(small)
        print(f"  rss with {small} pending: {base:.1f} MB", flush=True)
        fill(large - small)
        full = settle(large)
        print(f"  rss with {large} pending: {full:.1f} MB", flush=True)
    return {"small_mb": base, "large_mb": full, "growth_mb": full - base}


def _copy_rate(servers: str, source: str, dest: str, count: int) -> float:
    """Raw consume+produce copy loop; rate from first to last output timestamp."""
    consumer = _consumer(servers, source)
    producer = Producer({"bootstrap.servers": servers, "linger.ms": 5, "enable.idempotence": True,
                         "compression.type": "lz4"})  # fmt: skip
    copied = 0
    while copied < count:
        for msg in consumer.consume(500, 1.0):
            if msg.error():
                continue
            _produce(producer, dest, msg.key(), msg.value(), msg.headers())  # type: ignore[arg-type]
            copied += 1
        producer.poll(0)
    producer.flush(60)
    consumer.close()
    return _output_rate(servers, dest, count)


def _output_rate(servers: str, topic: str, count: int) -> float:
    reader = _consumer(servers, topic)
    stamps: list[int] = []
    deadline = time.monotonic() + 600
    while len(stamps) < count and time.monotonic() < deadline:
        stamps += [m.timestamp()[1] for m in reader.consume(5000, 0.5) if not m.error()]
    reader.close()
    return len(stamps) / max((max(stamps) - min(stamps)) / 1000, 1e-3)


def throughput(servers: str, count: int) -> dict[str, float]:
    """(c) due records forwarded per second, against a raw copy loop on the same broker."""
    with bed(servers, 3) as b:
        producer = _producer(servers)
        due = _now_ms() - 1000
        hdrs = scheduled_headers(b.target, due)
        for i in range(count):
            _produce(producer, b.config.topic, str(i).encode(), b"x" * 100, hdrs)
        producer.flush(120)
        b.start()
        # Read the output only once it is all there: the raw copy loop below also runs with
        # nothing else reading, and on a small machine a concurrent reader slows the writer.
        b.wait(lambda: (b.metric("pipeline_scheduler_forwarded_total") or 0) >= count, 600)
        sched = _output_rate(servers, b.target, count)
        copy_dest = b.target + "-copy"
        admin = AdminClient({"bootstrap.servers": servers})
        admin.create_topics([NewTopic(copy_dest, num_partitions=3)])[copy_dest].result(30)
        try:
            raw = _copy_rate(servers, b.config.topic, copy_dest, count)
        finally:
            admin.delete_topics([copy_dest])
    return {"scheduler": sched, "raw": raw, "ratio": sched / raw}


def _set_root(root: str | None) -> None:
    global _ROOT
    _ROOT = root or None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench scheduler")
    default_servers = os.environ.get("PIPELINE_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    parser.add_argument("--bootstrap-servers", default=default_servers)
    parser.add_argument("--lateness-records", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=1_000.0)
    parser.add_argument("--max-delay", type=float, default=30.0)
    parser.add_argument("--pending-small", type=int, default=10_000)
    parser.add_argument("--pending-large", type=int, default=1_000_000)
    parser.add_argument("--throughput-records", type=int, default=100_000)
    parser.add_argument(
        "--parts", default="cab", help="which measurements to run, any of a, b and c"
    )
    parser.add_argument(
        "--scheduler-root",
        default=_ROOT,
        help="run the scheduler from this checkout (PYTHONPATH), for A/B comparisons",
    )
    args = parser.parse_args(argv)
    _set_root(args.scheduler_root)
    servers = args.bootstrap_servers
    nan = float("nan")
    thr = {"scheduler": nan, "raw": nan, "ratio": nan}
    late = {"p50": nan, "p99": nan, "max": nan, "early": 0, "missing": 0, "duplicates": 0}
    mem = {"growth_mb": nan}
    if "c" in args.parts:
        print(f"(c) throughput, {args.throughput_records} due records", flush=True)
        thr = throughput(servers, args.throughput_records)
        print(f"  scheduler {thr['scheduler']:.0f}/s, raw copy {thr['raw']:.0f}/s, "
              f"ratio {thr['ratio']:.2f}", flush=True)  # fmt: skip
    if "a" in args.parts:
        print(f"(a) lateness, {args.lateness_records} records at {args.rate:.0f}/s", flush=True)
        late = lateness(servers, args.lateness_records, args.rate, args.max_delay)
        print(f"  p50 {late['p50']:.3f}s p99 {late['p99']:.3f}s max {late['max']:.3f}s "
              f"early {late['early']} missing {late['missing']} duplicates {late['duplicates']}; "
              f"scheduler clock p50 {late.get('sched_p50', nan):.3f}s "
              f"p99 {late.get('sched_p99', nan):.3f}s", flush=True)  # fmt: skip
    if "b" in args.parts:
        print(f"(b) rss, {args.pending_small} vs {args.pending_large} pending", flush=True)
        mem = rss(servers, args.pending_small, args.pending_large)
        print(f"  growth {mem['growth_mb']:.1f} MB", flush=True)
    emit(
        "scheduler",
        thr["ratio"],
        lateness_p50_s=late["p50"],
        lateness_p99_s=late["p99"],
        lateness_max_s=late["max"],
        early=int(late["early"]),
        missing=int(late["missing"]),
        duplicates=int(late["duplicates"]),
        rss_growth_mb=mem["growth_mb"],
        scheduler_per_s=thr["scheduler"],
        raw_per_s=thr["raw"],
    )
    return 0
