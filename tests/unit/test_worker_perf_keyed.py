"""The keyed executor keeps keys in parallel when handlers block, whatever it learned before."""

from __future__ import annotations

import threading
import time

from consumers._keyed import KeyedExecutor


def _busy(item: int) -> None:
    total = 0
    for i in range(2000):
        total += i


def test_blocked_handler_does_not_starve_other_keys() -> None:
    gate = threading.Event()
    done: list[int] = []
    lock = threading.Lock()

    def run(item: int) -> None:
        if item < 0:
            gate.wait(10)  # a handler that blocks (a long backoff, a slow call)
        else:
            _busy(item)
        with lock:
            done.append(item)

    executor: KeyedExecutor[int] = KeyedExecutor(run, concurrency=4)
    try:
        # CPU-bound work first, so the executor settles on few threads ...
        executor.submit_many([(i, i) for i in range(2000)])
        deadline = time.monotonic() + 20
        while len(done) < 2000 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(done) == 2000
        # ... then blocking handlers: other keys still go on while they wait.
        executor.submit_many([("slow-a", -1), ("slow-b", -2)])
        executor.submit_many([(f"k{i}", 10_000 + i) for i in range(20)])
        deadline = time.monotonic() + 5
        while len(done) < 2020 and time.monotonic() < deadline:
            executor.poke()  # what the poll thread does on every tick
            time.sleep(0.005)
        assert len(done) == 2020
        assert -1 not in done
    finally:
        gate.set()
        executor.shutdown()
    assert sorted(done)[:2] == [-2, -1]
    assert executor.busy_keys == 0


def test_order_per_key_with_chunked_submissions() -> None:
    seen: dict[int, list[int]] = {}
    lock = threading.Lock()
    finished = threading.Event()
    total = 50 * 40

    def run(item: tuple[int, int]) -> None:
        with lock:
            seen.setdefault(item[0], []).append(item[1])
            if sum(map(len, seen.values())) == total:
                finished.set()

    executor: KeyedExecutor[tuple[int, int]] = KeyedExecutor(run, concurrency=8)
    for i in range(40):
        executor.submit_many([(k, (k, i)) for k in range(50)])  # type: ignore[misc]
    assert finished.wait(20)
    executor.shutdown()
    assert all(seq == list(range(40)) for seq in seen.values())
