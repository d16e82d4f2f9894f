"""``python -m bench console``: ``GET /api/v1/stats`` latency, 20 groups x 2,000 partitions.

The console serves its snapshot (the lag poller's, plus dead-letter counts and the scheduler
backlog) over real HTTP (uvicorn, one connection per request). Baseline: ``pipeline lag show
-o json`` over the same groups, the CLI way to get the same numbers (process start included, as
an operator would run it). Both sides see every group on the cluster. ``ratio`` is the CLI's
median time over the API's p50.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

from bench._common import emit, median
from bench.lag import _setup
from pipeline._settings import Settings
from pipeline.cli.console import build_services, close_services
from pipeline.lag import LagOptions

REPO = Path(__file__).resolve().parents[1]


def _serve(app: object) -> tuple[object, str]:
    import socket

    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)  # type: ignore[arg-type]
    )
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}"


def _cli_seconds(servers: str, runs: int) -> float:
    cmd = [sys.executable, "-m", "pipeline", "--bootstrap-servers", servers, "lag", "show",
           "-o", "json"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True, env=env)
        times.append(time.perf_counter() - start)
    return median(times)


def main(argv: list[str]) -> int:
    from pipeline.console import create_app

    parser = argparse.ArgumentParser(prog="python -m bench console")
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--partitions", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--cli-runs", type=int, default=3)
    args = parser.parse_args(argv)
    servers = os.environ.get("PIPELINE_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    tag = uuid.uuid4().hex[:8]
    print(f"setting up {args.groups} groups over {args.partitions} partitions on {servers} ...")
    topics = _setup(servers, tag, args.groups, args.partitions)
    groups = [f"bench-lag-{tag}-g{i}" for i in range(args.groups)]
    admin = AdminClient({"bootstrap.servers": servers})
    dlqs = [f"{g}.dlq" for g in groups]  # empty DLQs: their counts are read and served too
    for future in admin.create_topics([NewTopic(t, 1, 1) for t in dlqs]).values():
        future.result(timeout=60)
    services = build_services(
        Settings(bootstrap_servers=servers), token=None, interval=10.0, options=LagOptions()
    )
    state = services.state
    server = None
    try:
        state.start()
        deadline = time.monotonic() + 120
        while not (state.ready() and set(groups) <= set(state.snapshot.groups)):
            if time.monotonic() > deadline:
                raise RuntimeError("the console saw no snapshot of every group")
            time.sleep(0.1)
        parts = sum(g.partitions for g in state.snapshot.groups.values())
        print(f"snapshot: {len(state.snapshot.groups)} groups ({args.groups} of the bench), "
              f"{parts} partitions")  # fmt: skip
        server, url = _serve(create_app(services))
        for _ in range(20):  # warm-up
            urllib.request.urlopen(f"{url}/api/v1/stats", timeout=10).read()
        latency = []
        for _ in range(args.requests):
            start = time.perf_counter()
            with urllib.request.urlopen(f"{url}/api/v1/stats", timeout=10) as response:
                size = len(response.read())
            latency.append(time.perf_counter() - start)
        cli = _cli_seconds(servers, args.cli_runs)
    finally:
        if server is not None:
            server.should_exit = True  # type: ignore[attr-defined]
        close_services(services)
        for future in admin.delete_consumer_groups(groups).values():
            future.exception(timeout=60)
        for future in admin.delete_topics([*topics, *dlqs]).values():
            future.exception(timeout=60)  # waited for, so a next run sees only its own
    p50 = median(latency)
    p99 = statistics.quantiles(latency, n=100)[98]
    print(f"GET /api/v1/stats ({size} bytes): p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms "
          "(target p99 <= 50 ms)")  # fmt: skip
    print(f"pipeline lag show -o json: median {cli:.2f} s over {args.cli_runs} runs")
    emit("console", cli / p50, p99_s=p99, p50_s=p50, cli_lag_show_s=cli, partitions=parts,
         groups=args.groups)  # fmt: skip
    return 0
