"""Per-key concurrency at scale, for ``python -m bench consumer`` (issue #21, part 1).

Each case runs the worker in a child process of its own (so its peak RSS is its own) on the
bench topic (6 partitions, 10,000 keys): sync handlers sleeping 5 ms at concurrency 16, 64
and 256, and ``async def`` handlers awaiting ``asyncio.sleep(0.01)`` at 256 and 1,000.
Efficiency is the worker's rate over the ideal: the smaller of concurrency ÷ handler time
and the raw consume loop's rate measured in the same run.
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import threading
import time
import uuid

from prometheus_client import CollectorRegistry

from consumers import Context, Worker
from examples.orders.events import OrderPlaced
from pipeline import load_settings

__all__ = ["CASES", "child", "run_case"]

CASES = [("sync", 16), ("sync", 64), ("sync", 256), ("async", 256), ("async", 1000)]
HANDLER_S = {"sync": 0.005, "async": 0.01}
_RUN_S = 3.0  # each case handles about this many seconds' worth of records at its ideal rate


def events_for(kind: str, concurrency: int, raw_rate: float, available: int) -> int:
    """How many records a case handles: ``_RUN_S`` seconds at its ideal rate, at most all."""
    return min(available, max(3000, int(_RUN_S * min(concurrency / HANDLER_S[kind], raw_rate))))


def run_case(topic: str, kind: str, concurrency: int, n: int) -> tuple[float, float]:
    """Run one case in a child process; return (records per second, peak RSS in MB)."""
    case = f"{kind}:{concurrency}:{n}"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "consumer", "--scale-case", case, "--scale-topic", topic],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"scale case {kind}:{concurrency} failed: {proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return float(out["rate"]), float(out["rss_mb"])


def child(topic: str, case: str) -> int:
    """The child process: one worker, one case; prints its rate and peak RSS as JSON."""
    kind, concurrency_s, n_s = case.split(":")
    concurrency, n = int(concurrency_s), int(n_s)
    sleep_s = HANDLER_S[kind]
    worker = Worker(
        group=f"bench-scale-{uuid.uuid4().hex[:8]}",
        topics=[topic],
        settings=load_settings(),
        registry=CollectorRegistry(),
        retry_topic=f"{topic}.retry",
        concurrency=concurrency,
        max_in_flight=max(2000, 2 * concurrency),
    )
    lock = threading.Lock()
    marks = [0, 0.0, 0.0]  # count, first, last
    done = threading.Event()

    def count() -> None:
        with lock:
            marks[0] += 1
            if not marks[1]:
                marks[1] = time.perf_counter()
            elif marks[0] >= n:
                marks[2] = time.perf_counter()
                done.set()

    if kind == "async":

        @worker.handler(OrderPlaced)
        async def handle_async(event: OrderPlaced, ctx: Context) -> None:
            await asyncio.sleep(sleep_s)
            count()

    else:

        @worker.handler(OrderPlaced)
        def handle(event: OrderPlaced, ctx: Context) -> None:
            time.sleep(sleep_s)
            count()

    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    if not done.wait(600):
        print(f"the worker handled {marks[0]} of {n} records", file=sys.stderr)
        return 1
    worker.stop()
    thread.join(60)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rate": (n - 1) / (marks[2] - marks[1]), "rss_mb": round(rss_mb, 1)}))
    return 0
