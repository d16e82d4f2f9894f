"""``python -m bench lag``: snapshot refresh and scrape latency, 20 groups x 2,000 partitions.

Baseline: the Kafka consumer-groups CLI's ``--describe --all-groups`` on the same cluster (JVM
start included, as an operator would run it). Both sides see every group on the cluster.
"""

from __future__ import annotations

import argparse
import os
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


def _setup(servers: str, tag: str, groups: int, partitions: int) -> list[str]:
    """``groups`` topics of ``partitions / groups`` partitions; one committed group per topic."""
    admin = AdminClient({"bootstrap.servers": servers})
    per_topic = partitions // groups
    topics = [f"bench-lag-{tag}-{i}" for i in range(groups)]
    for future in admin.create_topics([NewTopic(t, per_topic, 1) for t in topics]).values():
        future.result(timeout=120)
    deadline = time.monotonic() + 60
    while not set(topics) <= set(admin.list_topics(timeout=10).topics):
        if time.monotonic() > deadline:
            raise RuntimeError("topics did not appear")
        time.sleep(0.2)
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
    return topics


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


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench lag")
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--partitions", type=int, default=2000)
    parser.add_argument("--polls", type=int, default=7)
    parser.add_argument("--scrapes", type=int, default=300)
    parser.add_argument("--cli-runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="Keep the bench topics.")
    args = parser.parse_args(argv)
    servers = os.environ.get("PIPELINE_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    tag = uuid.uuid4().hex[:8]
    print(f"setting up {args.groups} groups over {args.partitions} partitions on {servers} ...")
    topics = _setup(servers, tag, args.groups, args.partitions)
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
        snap = poller.snapshot
        ours = sum(len(g.partitions) for n, g in snap.groups.items() if tag in n)
        print(f"snapshot: {len(snap.groups)} groups, {ours} bench partitions with lag series")
        server.start()
        scrape = []
        for _ in range(args.scrapes):
            start = time.perf_counter()
            with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as response:
                size = len(response.read())
            scrape.append(time.perf_counter() - start)
        scrape_p99 = statistics.quantiles(scrape, n=100)[98]
        cli = _cli_seconds(servers, args.cli_runs)
    finally:
        server.stop()
        poller.stop()
        if not args.keep:
            admin = AdminClient({"bootstrap.servers": servers})
            admin.delete_consumer_groups([f"bench-lag-{tag}-g{i}" for i in range(args.groups)])
            admin.delete_topics(topics)
    refresh_s = median(refresh)
    print(f"snapshot refresh: median {refresh_s:.3f} s, max {max(refresh):.3f} s (target <= 2 s)")
    print(
        f"scrape ({size} bytes): p50 {median(scrape) * 1000:.1f} ms, p99 {scrape_p99 * 1000:.1f} ms"
    )
    print(f"kafka consumer-groups --describe --all-groups: median {cli:.2f} s over {args.cli_runs}")
    emit(
        "lag",
        cli / refresh_s,
        refresh_s=refresh_s,
        scrape_p99_s=scrape_p99,
        partitions=ours,
        groups=args.groups,
    )
    return 0
