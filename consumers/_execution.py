"""Execution strategies: where dispatched records run (worker threads, the poll thread, asyncio).

One small interface, ``Execution``, between the poll loop and the code that runs handlers:

- ``Execution`` (the base): every record goes to the keyed executor's worker threads, one lane
  per key at a time; ``async def`` handlers run on one event loop thread (``EventLoopThread``)
  and the lane waits for them.
- ``SerialExecution``: every record runs on the poll thread, in consumed order, with its
  in-place retries (the test kit: deterministic, no threads).
- ``InlineExecution``: cheap, CPU-bound synchronous handlers run on the poll thread itself,
  which saves a thread hand-off per record. Handlers that wait or are slow, and in-place retry
  backoffs, go to the threads; a watchdog takes over polling when a handler gets stuck.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

from ._flow import FlowControl
from ._keyed import KeyedExecutor
from ._work import Work

__all__ = ["Batch", "EventLoopThread", "Execution", "InlineExecution", "SerialExecution"]

_LOG = logging.getLogger("consumers")
Batch = list[tuple[Any, Work]]
"""Dispatched records: ``(lane key or None, work)`` in consumed order."""

# Handling records on the poll thread (``WorkerOptions.inline``): the handler time one poll may
# spend there; the average run time per record above which records go to the worker threads
# (a batch then fits the budget); the share of that time a handler must spend on the CPU (one
# that waits is better run by several threads; other processes take a share too); how long
# after falling back to the threads to look again; how long to wait for the threads to finish
# their records first.
_INLINE_BUDGET_S = 0.05
_INLINE_ITEM_S = 0.0001
_INLINE_CPU = 0.35
_INLINE_RETRY_S = 1.0
_INLINE_SWITCH_S = 0.1
# A handler running this long on the poll thread is stuck: another thread takes over polling
# (and queues the rest of the batch for the worker threads) until it returns.
_INLINE_STUCK_S = 0.15


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop where it is installed (a dependency on Linux and macOS): its
    timers and task steps cost about a third less per record than the stdlib loop's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class EventLoopThread:
    """One asyncio event loop on a daemon thread, for ``async def`` handlers."""

    def __init__(self) -> None:
        self.loop = loop = _new_loop()

        def serve() -> None:
            loop.run_forever()
            loop.close()

        threading.Thread(target=serve, name="worker-asyncio", daemon=True).start()

    def stop(self) -> None:
        """Stop the loop (it closes itself on its thread)."""
        self.loop.call_soon_threadsafe(self.loop.stop)


class Execution:
    """Run every record on the keyed executor's worker threads.

    Args:
        executor: the per-key lanes.
        events: the event loop of async handlers, if any.
    """

    def __init__(
        self, executor: KeyedExecutor[Work], events: EventLoopThread | None = None
    ) -> None:
        self.executor = executor
        self._events = events

    def hold(self, now: float, flow: FlowControl, timeout: float) -> bool:
        """Before a poll: whether this tick must not consume (the strategy is switching)."""
        return False

    def submit(self, batch: Batch) -> None:
        """Run ``batch`` (poll thread)."""
        self.executor.submit_many(batch)

    def holds(self, key: Hashable) -> bool:
        """Whether ``key`` has a record running or queued."""
        return self.executor.holds(key)

    def shutdown(self) -> None:
        """Stop the threads and the event loop."""
        self.executor.shutdown(timeout=1.0)
        if self._events is not None:
            self._events.stop()


class SerialExecution(Execution):
    """Run every record on the poll thread, one after the other (the test kit).

    Args:
        executor: the per-key lanes (idle here; the poll loop still pokes them).
        run: handle one record completely (the processor: in-place retries included).
        events: the event loop of async handlers, if any (the poll thread waits for them).
    """

    def __init__(
        self,
        executor: KeyedExecutor[Work],
        run: Callable[[Work], None],
        events: EventLoopThread | None = None,
    ) -> None:
        super().__init__(executor, events)
        self._run = run

    def submit(self, batch: Batch) -> None:
        """Handle ``batch`` here, in order."""
        run = self._run
        for _, work in batch:
            run(work)


class InlineExecution(Execution):
    """Run cheap synchronous handlers on the poll thread; the rest on the worker threads.

    Args:
        executor: the per-key lanes (records that turn out slow or waiting go there).
        run: handle one record on the poll thread; False when it must go on on a thread.
        poll: one tick of the poll loop (the watchdog runs it while a handler is stuck).
        running: whether the poll loop should go on.
        fail: report an unexpected error (stops the worker).
        stop: set when the worker stops.
    """

    def __init__(
        self,
        executor: KeyedExecutor[Work],
        run: Callable[[Work], bool],
        poll: Callable[[], None],
        running: Callable[[], bool],
        fail: Callable[[BaseException], None],
        stop: threading.Event,
    ) -> None:
        super().__init__(executor)
        self._run = run
        self._poll = poll
        self._running = running
        self._fail = fail
        self._stop = stop
        self._inline = True  # the poll thread runs handlers now (once the threads are done)
        self._inline_after = 0.0  # when to look again whether it should
        self._switch_until = 0.0  # how long to wait for the threads before going inline
        self._item_s = 0.0  # handler time per record on the poll thread (moving average)
        self._cpu_share = 1.0  # ... and the share of it spent on the CPU
        self._warm = False  # whether a batch ran on the poll thread yet
        # The batch being handled on the poll thread, the index of the record in hand, and
        # when the batch started; the watchdog thread polls instead while a handler is stuck.
        self._role = threading.Lock()
        self._batch: Batch | None = None
        self._pos = 0
        self._batch_since = 0.0
        self._takeover = False
        self._want_back = False
        self._back = threading.Event()
        threading.Thread(target=self._watch, name="worker-watchdog", daemon=True).start()

    def hold(self, now: float, flow: FlowControl, timeout: float) -> bool:
        """Go inline when the threads' handlers prove cheap; wait for the threads to finish."""
        if not self._inline and not self._takeover and now >= self._inline_after:
            if self.executor.cheap(_INLINE_ITEM_S, _INLINE_CPU):
                self._inline = True  # once the threads are done with what they have
                self._switch_until = now + _INLINE_SWITCH_S
            else:
                self._inline_after = now + _INLINE_RETRY_S
        if not (self._inline and self.executor.busy_keys):
            return False
        # Going inline: records of a key must not overtake the ones the threads still have,
        # so wait (briefly: they are cheap) for the threads to finish them.
        if now < self._switch_until:
            flow.wait(timeout)
        else:
            self._fall_back(now)
        return True

    def submit(self, batch: Batch) -> None:
        """Handle ``batch`` here when inline and no lane is busy; else on the threads."""
        if self._inline and not self._takeover and not self.executor.busy_keys:
            self._run_inline(batch)
        else:
            self.executor.submit_many(batch)

    def _run_inline(self, batch: Batch) -> None:
        """Handle a batch on the poll thread, within a time budget; the threads get the rest.

        Falls back to the threads when the handlers turn out slow or waiting, and when a
        record's retry has to wait for a backoff. Should a handler get stuck, the watchdog
        takes the batch over (see :meth:`_take_over`); this thread gets the poll loop back
        when the handler returns.
        """
        run, role = self._run, self._role
        clock = time.perf_counter
        start, cpu = clock(), time.thread_time()
        deadline = start + _INLINE_BUDGET_S
        rest: Batch = []
        i, count, ok, taken = 0, len(batch), True, False
        self._batch_since = start
        self._batch = batch
        while True:
            with role:  # the watchdog takes over between two checks, never during one
                if self._takeover:  # while record i - 1 ran: it queued the rest
                    taken = True
                    break
                if i == count or (i and (not ok or clock() > deadline)):
                    rest = batch[i - 1 :] if not ok else batch[i:]
                    self._batch = None
                    break
                self._pos = i
            ok = run(batch[i][1])  # not ok: it goes on (and its key after it) on a thread
            i += 1
        if taken:
            key, work = batch[i - 1]
            self.executor.release(key, None if ok else work)
            self._want_back = True
            self._back.wait()  # the watchdog finishes its tick (or has stopped polling)
            with role:
                self._takeover = self._want_back = False
                self._back.clear()
            return
        wall = clock() - start
        if rest:
            self.executor.submit_many(rest)  # inline again once the threads are done with it
        ran = count - len(rest)  # records, a batch of a batch handler counting as its records
        self._measure(sum(w.weight for _, w in batch[:ran]), wall, time.thread_time() - cpu)
        if self._item_s > _INLINE_ITEM_S or self._cpu_share < _INLINE_CPU:
            self._fall_back(time.monotonic())
        elif rest:
            self._switch_until = time.monotonic() + _INLINE_SWITCH_S

    def _measure(self, ran: int, wall: float, cpu: float) -> None:
        """Smooth the per-record time and CPU share over batches: one pause does not decide."""
        if not self._warm:  # first calls warm up (decoders are compiled): not a measure
            self._warm = True
            return
        self._item_s += (wall / max(1, ran) - self._item_s) * 0.25
        if wall > 0.002:  # too short to say whether the handlers wait
            self._cpu_share += (cpu / wall - self._cpu_share) * 0.25

    def _watch(self) -> None:
        """The watchdog: take over polling while a handler is stuck on the poll thread."""
        stop = self._stop
        while not stop.wait(_INLINE_STUCK_S / 3):
            if self._batch is not None and time.perf_counter() - self._batch_since > (
                _INLINE_STUCK_S
            ):
                self._take_over()

    def _take_over(self) -> None:
        """Queue the stuck batch's other records for the threads, and poll until it returns."""
        with self._role:
            batch = self._batch
            if batch is None or time.perf_counter() - self._batch_since <= _INLINE_STUCK_S:
                return
            self._batch = None
            self._takeover = True
            stuck = batch[self._pos]
            self.executor.claim(stuck[0])  # its key's later records wait for it
            self.executor.submit_many(batch[self._pos + 1 :])
            self._fall_back(time.monotonic())
        _LOG.warning(
            "%s: handler running for over %.2fs on the poll thread; polling from another "
            "thread until it returns",
            stuck[1].where,
            _INLINE_STUCK_S,
        )
        try:
            while self._running() and not self._want_back:
                self._poll()
        except Exception as exc:  # pragma: no cover - the poll loop raises nothing by design
            self._fail(exc)
        finally:
            self._back.set()  # the stuck thread resets the takeover once it is back

    def _fall_back(self, now: float) -> None:
        """Hand records to the worker threads again (for a while at least)."""
        self._inline = False
        self._inline_after = now + _INLINE_RETRY_S
        self._item_s, self._cpu_share = 0.0, 1.0  # the threads' measure brings it back
