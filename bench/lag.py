"""``python -m bench lag``: snapshot refresh, scrape latency and exporter memory.

``--groups G --partitions P`` creates G topics of P / G partitions (in batches of about 1,000
partitions, so one broker on a small machine keeps up), 4 records per partition, and one
committed group per topic; the bench deletes them (topics and groups) at the end. The setup runs
in a child process, so ``rss_mb`` (the bench process's peak resident set) is the exporter's own:
poller, snapshot, pre-rendered ``/metrics`` and its HTTP server.

Baseline: the Kafka consumer-groups CLI's ``--describe --all-groups`` on the same cluster (JVM
start included, as an operator would run it). Both sides see every group on the cluster.
"""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing
import os
import pstats
import resource
import statistics
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from bench._common import emit, median
from pipeline._settings import Settings
from pipeline.lag import LagExposition, LagHTTPServer, LagOptions, LagPoller

CLI_CLASS = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"


BATCH_PARTITIONS = 1000
"""Partitions created per CreateTopics round (one broker on two cores)."""


def _topics(tag: str, groups: int) -> list[str]:
    return [f"bench-lag-{tag}-{i}" for i in range(groups)]


def _setup(servers: str, tag: str, groups: int, partitions: int) -> None:
    """``groups`` topics of ``partitions / groups`` partitions; one committed group per topic."""
    admin = AdminClient({"bootstrap.servers": servers})
    per_topic = partitions // groups
    topics = _topics(tag, groups)
    step = max(1, BATCH_PARTITIONS // per_topic)
    for start in range(0, len(topics), step):
        batch = topics[start : start + step]
        for future in admin.create_topics(
            [NewTopic(t, per_topic, 1) for t in batch], operation_timeout=120
        ).values():
            future.result(timeout=180)
    deadline = time.monotonic() + 600
    while True:  # every partition has a leader
        meta = admin.list_topics(timeout=30).topics
        ready = sum(
            1
            for t in topics
            if t in meta
            for p in meta[t].partitions.values()
            if p.leader >= 0 and p.error is None
        )
        if ready == per_topic * groups:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {ready} of {per_topic * groups} partitions have a leader")
        time.sleep(0.5)
    producer = Producer({"bootstrap.servers": servers, "linger.ms": 20})
    for t in topics:
        for p in range(per_topic):
            for _ in range(4):
                producer.produce(t, b"x" * 32, partition=p)
            producer.poll(0)
    producer.flush(120)
    for i, t in enumerate(topics):
        consumer = Consumer({"bootstrap.servers": servers, "group.id": f"bench-lag-{tag}-g{i}"})
        consumer.commit(
            offsets=[TopicPartition(t, p, p % 4) for p in range(per_topic)], asynchronous=False
        )
        consumer.close()


def _cleanup(servers: str, tag: str, groups: int) -> None:
    admin = AdminClient({"bootstrap.servers": servers})
    names = [f"bench-lag-{tag}-g{i}" for i in range(groups)]
    for future in admin.delete_consumer_groups(names, request_timeout=60).values():
        try:
            future.result(timeout=90)
        except Exception as exc:  # a group that was never created
            print(f"delete group: {exc}")
    topics = _topics(tag, groups)
    for start in range(0, len(topics), 20):
        for future in admin.delete_topics(
            topics[start : start + 20], operation_timeout=120
        ).values():
            try:
                future.result(timeout=180)
            except Exception as exc:  # a topic that was never created
                print(f"delete topic: {exc}")


def _peak_rss_mb() -> float:
    """Peak resident set of this process (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cli_seconds(servers: str, runs: int) -> float:
    cache = Path(os.environ.get("KAFKA_LOCAL_CACHE", Path.home() / ".cache" / "event-pipeline"))
    jars = sorted(cache.glob("kafka-*/"))[-1] / "*"
    cmd = ["java", "-Xmx256m", "-cp", str(jars), CLI_CLASS, "--bootstrap-server", servers]
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([*cmd, "--describe", "--all-groups"], capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return median(times)


def _scrapes(url: str, count: int, *, gzip: bool) -> tuple[list[float], int]:
    headers = {"Accept-Encoding": "gzip"} if gzip else {}
    times, size = [], 0
    for _ in range(count):
        start = time.perf_counter()
        request = urllib.request.Request(f"{url}/metrics", headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            size = len(response.read())
        times.append(time.perf_counter() - start)
    return times, size


def _profile(poller: LagPoller) -> None:
    profiler = cProfile.Profile()
    profiler.runcall(poller.poll_once)
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(20)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench lag")
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--partitions", type=int, default=2000)
    parser.add_argument("--polls", type=int, default=7)
    parser.add_argument("--scrapes", type=int, default=300)
    parser.add_argument("--cli-runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="Keep the bench topics.")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile one extra refresh and print its top."
    )
    args = parser.parse_args(argv)
    servers = os.environ.get("PIPELINE_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    tag = uuid.uuid4().hex[:8]
    print(f"setting up {args.groups} groups over {args.partitions} partitions on {servers} ...")
    start = time.perf_counter()
    child = multiprocessing.get_context("spawn").Process(
        target=_setup, args=(servers, tag, args.groups, args.partitions)
    )
    child.start()
    child.join()
    if child.exitcode != 0:
        _cleanup(servers, tag, args.groups)
        raise SystemExit(f"setup failed (exit {child.exitcode})")
    print(f"setup took {time.perf_counter() - start:.1f} s")
    holder: list[LagPoller] = []
    exposition = LagExposition(lambda: holder[0].snapshot, compat_kafka_exporter=True)
    poller = LagPoller(
        Settings(bootstrap_servers=servers), LagOptions(interval=10), on_snapshot=exposition.refresh
    )
    holder.append(poller)
    server = LagHTTPServer(exposition, lambda: True, lambda: True, port=0)
    try:
        poller.poll_once()  # warm-up: connections, metadata
        refresh = []  # the poll plus the /metrics pre-render, as the exporter runs it
        for _ in range(args.polls):
            start = time.perf_counter()
            poller.poll_once()
            refresh.append(time.perf_counter() - start)
        if args.profile:
            _profile(poller)
        snap = poller.snapshot
        ours = sum(len(g.partitions) for n, g in snap.groups.items() if tag in n)
        print(f"snapshot: {len(snap.groups)} groups, {ours} bench partitions with lag series")
        server.start()
        # As Prometheus scrapes: Accept-Encoding gzip (the body is pre-compressed per refresh).
        scrape, size = _scrapes(server.url, args.scrapes, gzip=True)
        identity, text_size = _scrapes(server.url, max(10, args.scrapes // 4), gzip=False)
        scrape_p99 = statistics.quantiles(scrape, n=100)[98]
        identity_p99 = statistics.quantiles(identity, n=100)[98]
        cli = _cli_seconds(servers, args.cli_runs)
    finally:
        server.stop()
        poller.stop()
        rss_mb = _peak_rss_mb()
        if not args.keep:
            _cleanup(servers, tag, args.groups)
    refresh_s = median(refresh)
    print(f"snapshot refresh: median {refresh_s:.3f} s, max {max(refresh):.3f} s (target <= 2 s)")
    print(
        f"scrape, gzip as Prometheus asks ({size} bytes): p50 {median(scrape) * 1000:.1f} ms, "
        f"p99 {scrape_p99 * 1000:.1f} ms (target <= 50 ms)"
    )
    print(
        f"scrape, no gzip ({text_size} bytes): p50 {median(identity) * 1000:.1f} ms, "
        f"p99 {identity_p99 * 1000:.1f} ms"
    )
    print(f"kafka consumer-groups --describe --all-groups: median {cli:.2f} s over {args.cli_runs}")
    print(f"exporter peak RSS: {rss_mb:.0f} MB (target <= 300 MB)")
    emit(
        "lag",
        cli / refresh_s,
        refresh_s=refresh_s,
        scrape_p99_s=scrape_p99,
        scrape_identity_p99_s=identity_p99,
        rss_mb=rss_mb,
        partitions=ours,
        groups=args.groups,
    )
    return 0
