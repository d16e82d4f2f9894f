"""Per-key FIFO execution on a pool of threads: same key in order, different keys in parallel."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["KeyedExecutor"]

_LOG = logging.getLogger("consumers")
T = TypeVar("T")

# A thread measures how much of its wall time is its own CPU time over this many items: a
# handler that mostly waits (I/O, sleep) lets more threads run at once; a CPU-bound handler
# keeps few threads busy, because more of them only fight over the GIL.
_SAMPLE_S = 0.002  # a thread reports its CPU time after this long ...
_SAMPLE_N = 64  # ... or this many items
_WINDOW_S = 0.02  # the threads' CPU time is compared with the wall time of this window
_GROW = 0.2  # CPU share of the threads together below which more threads help (they wait)
_SHRINK = 0.5  # ... above which fewer threads do as well (they fight over the GIL) ...
_PARALLEL = 1.25  # ... unless it is above this: handlers that release the GIL use more cores
_FLOOR = 2  # the fewest threads kept running: with two, GIL-free work shows as above 1
_STALL_S = 0.02  # ready lanes waiting this long with no item started or finished: wake more


class KeyedExecutor(Generic[T]):
    """Run ``fn(item)`` on up to ``concurrency`` threads, keeping submission order per key.

    A key whose previous item is still running gets its next items queued in a lane; the
    thread that finishes an item takes the next one of the same lane itself, so a busy key
    costs no extra hand-off. Lanes ready to start wait in one shared queue; a thread that
    finishes a lane takes the next ready one without going back to sleep, so a batch of
    records costs a few thread wake-ups, not one per record. How many threads are woken
    adapts to the handler: CPU-bound handlers run on few threads (more only contend for the
    GIL), handlers that wait get up to ``concurrency``. ``key=None`` means unordered: the item
    runs whenever a thread is free. ``fn`` must not raise (it is the caller's error boundary);
    if it does, the error is logged and the lane continues.
    """

    def __init__(self, fn: Callable[[T], None], concurrency: int, name: str = "worker") -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self._fn = fn
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._lanes: dict[Hashable, deque[T]] = {}
        self._ready: deque[tuple[Hashable | None, T]] = deque()
        self._concurrency = concurrency
        self._idle = 0  # threads waiting for work
        self._woken = 0  # threads notified that have not woken yet
        self._active = concurrency  # threads not waiting
        self._floor = min(_FLOOR, concurrency)
        self._target = self._floor  # threads worth running at once (adapts)
        self._cpu = 0.0  # CPU time the threads reported in this window
        self._window = time.perf_counter()  # when the window started
        self._beat = self._window  # when a thread last started or finished an item
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._loop, name=f"{name}-{i}", daemon=True)
            for i in range(concurrency)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def busy_keys(self) -> int:
        """Keys with an item running or queued."""
        return len(self._lanes)

    def submit(self, key: Hashable | None, item: T) -> None:
        """Queue ``item``; it runs after every earlier item of the same key."""
        self.submit_many([(key, item)])

    def submit_many(self, items: list[tuple[Hashable | None, T]]) -> None:
        """Queue several items under one lock acquisition."""
        with self._lock:
            lanes, ready = self._lanes, self._ready
            for entry in items:
                key = entry[0]
                if key is None:
                    ready.append(entry)
                    continue
                lane = lanes.get(key)
                if lane is None:
                    lanes[key] = deque()
                    ready.append(entry)
                else:
                    lane.append(entry[1])
            self._wake_some()

    def _wake_some(self) -> None:
        """Wake idle threads, up to the target number running (lock held)."""
        # Threads notified but not yet awake still count as idle, and not as active.
        woken = self._woken
        want = min(self._target - self._active, len(self._ready), self._idle) - woken
        if want > 0:
            self._woken = woken + want
            self._wake.notify(want)

    def _loop(self) -> None:
        fn, lock, wake, ready, lanes = self._fn, self._lock, self._wake, self._ready, self._lanes
        thread_time, clock = time.thread_time, time.perf_counter
        key: Hashable | None = None
        item: T | None = None
        has_item = False
        count, cpu0, wall0 = 0, thread_time(), clock()
        while True:
            with lock:
                if has_item:  # the item of ``key`` just ran: its lane goes on, or ends
                    if key is not None and lanes[key]:
                        item = lanes[key].popleft()
                    else:
                        if key is not None:
                            del lanes[key]
                        has_item = False
                if not has_item:
                    while not ready or self._active > self._target:
                        if self._stopping and not ready:
                            self._active -= 1
                            return
                        self._active -= 1
                        self._idle += 1
                        wake.wait()
                        self._idle -= 1
                        self._active += 1
                        if self._woken:
                            self._woken -= 1
                    key, item = ready.popleft()
                    has_item = True
                    self._beat = clock()
                    if ready:
                        self._wake_some()
            try:
                fn(item)  # type: ignore[arg-type]
            except Exception:  # pragma: no cover - fn is the error boundary
                _LOG.exception("worker function raised")
            count += 1
            self._beat = wall = clock()
            if wall - wall0 >= _SAMPLE_S or count >= _SAMPLE_N:
                cpu = thread_time()
                self._adapt(cpu - cpu0, wall)
                count, cpu0, wall0 = 0, cpu, wall

    def _adapt(self, cpu: float, now: float) -> None:
        """Add a thread's CPU time; once per window, adapt the number of running threads.

        The CPU time of all threads together over the window is about 1 when handlers keep
        the GIL busy (more threads cannot help), well below when they wait, and above when
        they run outside the GIL on several cores.
        """
        with self._lock:
            self._cpu += cpu
            span = now - self._window
            if span < _WINDOW_S:
                return
            busy = self._cpu / span
            self._cpu, self._window = 0.0, now
            if (busy < _GROW or busy > _PARALLEL) and self._target < self._concurrency:
                self._target = min(self._concurrency, self._target * 2)
                if self._ready:
                    self._wake_some()
            elif _SHRINK < busy <= _PARALLEL and self._target > self._floor:
                self._target -= 1

    def poke(self) -> None:
        """Wake more threads when ready lanes wait while no item started or finished lately.

        Called regularly by the poll thread: running threads report only between items, so
        handlers that block for long (a backoff, a slow call) are noticed here.
        """
        if not self._ready or time.perf_counter() - self._beat < _STALL_S:
            return
        with self._lock:
            if self._ready and self._target < self._concurrency:
                self._target = max(self._target, self._active + 1)
                self._beat = time.perf_counter()
                self._wake_some()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop the threads after the items already queued; wait up to ``timeout`` seconds."""
        with self._lock:
            self._stopping = True
            self._target = self._concurrency
            self._woken = 0
            self._wake.notify_all()
        for thread in self._threads:
            thread.join(timeout)
