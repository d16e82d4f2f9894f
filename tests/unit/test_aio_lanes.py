"""``AsyncExecution``'s lanes on a real event loop thread: order per key, a bound on keys."""

from __future__ import annotations

import asyncio
import random
import threading
from collections import defaultdict
from typing import Any

from consumers._aio import AsyncExecution
from consumers._execution import EventLoopThread
from consumers._keyed import KeyedExecutor
from tests.helpers import wait_until


class Rec:
    def __init__(self, key: str | None, seq: int) -> None:
        self.key, self.seq = key, seq


def test_records_of_a_key_run_in_order_and_at_most_concurrency_keys_at_once() -> None:
    seen: dict[str | None, list[int]] = defaultdict(list)
    running, peak, threads = [0], [0], set()
    rng = random.Random(7)

    async def run(rec: Any) -> None:
        threads.add(threading.get_ident())
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        await asyncio.sleep(rng.random() * 0.002)
        running[0] -= 1
        seen[rec.key].append(rec.seq)

    events = EventLoopThread()
    idle: KeyedExecutor[Any] = KeyedExecutor(lambda _: None, 1)
    execution = AsyncExecution(idle, events, run, concurrency=8)
    try:
        records = [Rec(f"k{i % 20}", i // 20) for i in range(600)]
        records += [Rec(None, i) for i in range(50)]  # unordered: they run whenever
        for start in range(0, len(records), 37):  # batches, as the poll thread hands them over
            execution.submit([(r.key, r) for r in records[start : start + 37]])
        wait_until(lambda: sum(map(len, seen.values())) == len(records), timeout=30)
        wait_until(lambda: execution.busy_keys == 0, timeout=5)
    finally:
        execution.shutdown()
    assert all(seen[f"k{k}"] == list(range(30)) for k in range(20))
    assert sorted(seen[None]) == list(range(50))
    assert 1 < peak[0] <= 8
    assert len(threads) == 1  # one event loop thread, not a thread per record


def test_holds_names_a_key_until_its_last_record_is_done() -> None:
    release = threading.Event()

    async def run(rec: Any) -> None:
        while not release.is_set():
            await asyncio.sleep(0.001)

    events = EventLoopThread()
    idle: KeyedExecutor[Any] = KeyedExecutor(lambda _: None, 1)
    execution = AsyncExecution(idle, events, run, concurrency=4)
    try:
        execution.submit([("a", Rec("a", 0)), ("a", Rec("a", 1))])
        wait_until(lambda: execution.holds("a"), timeout=5)
        assert not execution.holds("b")
        release.set()
        wait_until(lambda: not execution.holds("a"), timeout=5)
    finally:
        execution.shutdown()
