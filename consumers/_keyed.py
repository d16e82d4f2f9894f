"""Per-key FIFO execution on a pool of threads: same key in order, different keys in parallel."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["KeyedExecutor", "enqueue"]

_LOG = logging.getLogger("consumers")
T = TypeVar("T")

# A thread measures how much of its wall time is its own CPU time over this many items: a
# handler that mostly waits (I/O, sleep) lets more threads run at once; a CPU-bound handler
# keeps few threads busy, because more of them only fight over the GIL.
_SAMPLE_S = 0.002  # a thread reports its CPU time after this long ...
_SAMPLE_N = 64  # ... or this many items
_WINDOW_S = 0.02  # the threads' CPU time is compared with the wall time of this window
# The GIL's load is the CPU time of these threads and of the poll thread (which reports its
# own in ``poke``) per second of the window: below _GROW it has room, and threads that wait
# (I/O, sleep) make more progress when there are more of them; above _SHRINK it is saturated,
# and fewer threads do as well (they only fight over it), unless the threads alone are above
# _PARALLEL: handlers that release the GIL use more cores.
_GROW = 0.7
_SHRINK = 0.9
_PARALLEL = 1.25
# Items that spend under this share of their run time on the CPU mostly wait: their threads
# hardly hold the GIL, so the GIL's load (much of it the poll thread's, some of that outside
# the GIL in librdkafka) is no reason to run fewer of them; they get up to ``concurrency``.
_WAITING = 0.5
_FLOOR = 2  # the fewest threads kept running: with two, GIL-free work shows as above 1
_STALL_S = 0.02  # ready lanes waiting this long with no item started or finished: wake more
# Finished keys whose lanes are empty are released (under the lock) in groups: after this many
# of them, this long after the first one, or after every item when items are slow anyway.
_HOLD_N = 64
_HOLD_S = 0.001
_SLOW_S = 0.0002  # items slower than this (moving average) release their key at once


def enqueue(
    items: list[tuple[Hashable | None, T]],
    lanes: dict[Hashable, deque[T]],
    ready: deque[tuple[Hashable | None, T]],
) -> None:
    """Queue items in per-key lanes: the first of an idle key (or a keyless one) is ready to
    start; later ones wait in their key's lane, which its running item's owner goes on with."""
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


class _Slot:
    """One thread's state: keys it finished and has not released yet, and its last beat."""

    __slots__ = ("beat", "done")

    def __init__(self) -> None:
        self.done: deque[Hashable] = deque()
        self.beat = 0.0


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

    The per-item path takes no lock: a thread pops the ready queue and its own lanes with
    atomic deque operations (a key has one owner at a time, so only the owner pops its
    lane). Only ending a lane needs the lock (a submitter may be adding to it); cheap items
    end their lanes in groups, and the poll thread's :meth:`poke` ends the lanes of a thread
    stuck in a slow item, so their next items are not held back for long.
    """

    def __init__(
        self,
        fn: Callable[[T], None],
        concurrency: int,
        name: str = "worker",
        weigh: Callable[[T], int] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self._fn = fn
        self._weigh = weigh  # how many units an item counts for in ``load`` (default 1)
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
        self._poll_cpu = 0.0  # ... and the poll thread (see ``poke``)
        self._poller = (0, 0.0)  # the thread calling ``poke`` and its CPU time then
        self._items = 0  # items they ran in it
        self._spent = 0.0  # ... and the wall time those items took
        # The last window: CPU time of the threads per second, per item, whether the items
        # mostly waited, and when it ended.
        self.load: tuple[float, float, bool, float] = (0.0, 0.0, False, 0.0)
        self._window = time.perf_counter()  # when the window started
        self._beat = self._window  # when a thread last started or finished an item
        self._stopping = False
        self._slots = [_Slot() for _ in range(concurrency)]
        self._threads = [
            threading.Thread(target=self._loop, args=(slot,), name=f"{name}-{i}", daemon=True)
            for i, slot in enumerate(self._slots)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def busy_keys(self) -> int:
        """Keys with an item running or queued."""
        return len(self._lanes)

    def holds(self, key: Hashable) -> bool:
        """Whether ``key`` has an item running or queued."""
        return key in self._lanes

    def submit(self, key: Hashable | None, item: T) -> None:
        """Queue ``item``; it runs after every earlier item of the same key."""
        self.submit_many([(key, item)])

    def submit_many(self, items: list[tuple[Hashable | None, T]]) -> None:
        """Queue several items under one lock acquisition."""
        with self._lock:
            enqueue(items, self._lanes, self._ready)
            self._wake_some()

    def claim(self, key: Hashable | None) -> None:
        """Mark ``key`` busy: its items queue until :meth:`release` (its item runs elsewhere)."""
        if key is not None:
            with self._lock:
                self._lanes.setdefault(key, deque())

    def release(self, key: Hashable | None, item: T | None = None) -> None:
        """End a :meth:`claim`: the key's queued items may run, after ``item`` if given."""
        with self._lock:
            if item is not None:
                self._ready.append((key, item))  # the lane (if any) goes on after it
            elif key is not None:
                self._release(deque([key]))
            self._wake_some()

    def _wake_some(self) -> None:
        """Wake idle threads, up to the target number running (lock held)."""
        # Threads notified but not yet awake still count as idle, and not as active.
        woken = self._woken
        want = min(self._target - self._active, len(self._ready), self._idle) - woken
        if want > 0:
            self._woken = woken + want
            self._wake.notify(want)

    def _release(self, done: deque[Hashable]) -> None:
        """End or requeue the lanes of finished keys (lock held)."""
        lanes, ready = self._lanes, self._ready
        while done:
            key = done.popleft()
            lane = lanes[key]
            if lane:  # items came in since the owner looked: the lane goes on from the queue
                ready.append((key, lane.popleft()))
            else:
                del lanes[key]

    def _next(self, slot: _Slot) -> tuple[Hashable | None, T] | None:
        """Release ``slot``'s keys, then wait for a ready lane; None when stopping."""
        ready, wake = self._ready, self._wake
        with self._lock:
            self._release(slot.done)
            while not ready or self._active > self._target:
                if self._stopping and not ready:
                    self._active -= 1
                    return None
                self._active -= 1
                self._idle += 1
                wake.wait()
                self._idle -= 1
                self._active += 1
                if self._woken:
                    self._woken -= 1
            entry = ready.popleft()
            self._beat = time.perf_counter()
            if ready:
                self._wake_some()
            return entry

    def _loop(self, slot: _Slot) -> None:
        fn, lock, ready, lanes = self._fn, self._lock, self._ready, self._lanes
        done, weigh = slot.done, self._weigh
        thread_time, clock = time.thread_time, time.perf_counter
        entry: tuple[Hashable | None, T] | None = None
        count, cpu0, wall0 = 0, thread_time(), clock()
        held_since = slow = spent = 0.0
        while True:
            if entry is None:
                try:
                    entry = ready.popleft()
                except IndexError:
                    entry = self._next(slot)
                    if entry is None:
                        return
            key, item = entry
            self._beat = slot.beat = start = clock()
            try:
                fn(item)
            except Exception:  # pragma: no cover - fn is the error boundary
                _LOG.exception("worker function raised")
            entry = None
            self._beat = slot.beat = wall = clock()
            spent += wall - start
            slow += (wall - start - slow) * 0.125
            if key is not None:
                lane = lanes[key]  # its owner's: no other thread pops it or drops it
                if lane:
                    entry = (key, lane.popleft())
                else:
                    if not done:
                        held_since = wall
                    done.append(key)
            if done and (slow >= _SLOW_S or len(done) >= _HOLD_N or wall - held_since >= _HOLD_S):
                with lock:
                    self._release(done)
                    if ready:
                        self._wake_some()
                check = True
            else:
                check = False
            count += 1 if weigh is None else weigh(item)
            if wall - wall0 >= _SAMPLE_S or count >= _SAMPLE_N:
                cpu = thread_time()
                self._adapt(cpu - cpu0, wall, count, spent)
                count, cpu0, wall0, spent = 0, cpu, wall, 0.0
                check = True
            if check and entry is None and self._active > self._target:
                entry = self._next(slot)  # fewer threads are worth running: maybe sleep
                if entry is None:
                    return

    def _adapt(self, cpu: float, now: float, items: int, spent: float) -> None:
        """Add a thread's CPU time; once per window, adapt the number of running threads.

        The CPU time of all threads together over the window is about 1 when handlers keep
        the GIL busy (more threads cannot help), well below when they wait, and above when
        they run outside the GIL on several cores. Items that mostly wait (on the CPU for
        under ``_WAITING`` of their run time) always get more threads, up to ``concurrency``.
        """
        with self._lock:
            self._cpu += cpu
            self._items += items
            self._spent += spent
            span = now - self._window
            if span < _WINDOW_S:
                return
            busy = self._cpu / span
            gil = busy + self._poll_cpu / span
            waiting = self._cpu < _WAITING * self._spent
            self.load = (busy, self._cpu / self._items if self._items else 0.0, waiting, now)
            self._cpu, self._poll_cpu, self._items, self._window = 0.0, 0.0, 0, now
            self._spent = 0.0
            grow = waiting or gil < _GROW or busy > _PARALLEL
            if grow and self._target < self._concurrency:
                self._target = min(self._concurrency, self._target * 2)
                if self._ready:
                    self._wake_some()
            elif not grow and gil > _SHRINK and busy <= _PARALLEL and self._target > self._floor:
                self._target -= 1

    def cheap(self, item_s: float, busy_min: float) -> bool:
        """Whether the items lately kept the GIL busy and took under ``item_s`` of CPU each.

        That is when more threads cannot run them faster: the threads together were on the
        CPU at least ``busy_min`` of the time, and not on several cores (see ``load``), and
        the items did not mostly wait (many threads waiting at once add up to a busy GIL).
        """
        busy, per_item, waiting, at = self.load
        return (
            not waiting
            and busy_min <= busy <= _PARALLEL
            and 0.0 < per_item < item_s
            and time.perf_counter() - at < 10 * _WINDOW_S
        )

    def poke(self) -> None:
        """Wake more threads when ready lanes wait while no item started or finished lately.

        Called regularly by the poll thread: running threads report only between items, so
        handlers that block for long (a backoff, a slow call) are noticed here, and the keys
        such a thread finished before it blocked are released for other threads.
        """
        now = time.perf_counter()
        ident, cpu = threading.get_ident(), time.thread_time()
        poller, since = self._poller
        if ident == poller:  # the poll thread's CPU time counts in the GIL's load
            self._poll_cpu += cpu - since
        self._poller = (ident, cpu)
        for slot in self._slots:
            if slot.done and now - slot.beat >= _STALL_S:
                with self._lock:
                    self._release(slot.done)
                    self._wake_some()
        if not self._ready or now - self._beat < _STALL_S:
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
