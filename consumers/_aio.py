"""``AsyncExecution``: ``async def`` handlers run as tasks on one event loop, no thread each.

Used when every handler of a worker is ``async``. The poll thread hands each dispatched batch
to the loop in one call; on the loop, per-key lanes keep a key's records in order and up to
``concurrency`` keys run at once, each as one task that goes on with its key's next record
itself. A record costs a task step, not a thread blocked on a future: a thousand records
waiting on I/O are a thousand suspended coroutines in one thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Hashable
from typing import Any

from ._execution import Batch, EventLoopThread, Execution
from ._keyed import KeyedExecutor, enqueue
from ._work import Work

__all__ = ["AsyncExecution"]

_LOG = logging.getLogger("consumers")


class AsyncExecution(Execution):
    """Run every record on the event loop, keyed lanes in order, ``concurrency`` keys at once.

    Args:
        executor: the (idle) keyed executor the poll loop still pokes.
        events: the event loop thread.
        run: handle one record completely (``Processor.run_async``); it must not raise.
        concurrency: keys whose records run at once.
    """

    def __init__(
        self,
        executor: KeyedExecutor[Work],
        events: EventLoopThread,
        run: Callable[[Work], Coroutine[Any, Any, None]],
        concurrency: int,
    ) -> None:
        super().__init__(executor, events)
        self._loop = events.loop
        self._run = run
        self._concurrency = concurrency
        self._lanes: dict[Hashable, deque[Work]] = {}  # keys running: their queued records
        self._ready: deque[tuple[Hashable | None, Work]] = deque()  # lanes waiting to start
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def busy_keys(self) -> int:
        """Keys with a record running or queued (read from any thread)."""
        return len(self._lanes)

    def holds(self, key: Hashable) -> bool:
        """Whether ``key`` has a record running or queued (read from any thread)."""
        return key in self._lanes

    def submit(self, batch: Batch) -> None:
        """Hand ``batch`` to the event loop (poll thread): one wake-up for the whole batch."""
        self._loop.call_soon_threadsafe(self._accept, batch)

    def _accept(self, batch: Batch) -> None:
        enqueue(batch, self._lanes, self._ready)
        self._start()

    def _start(self) -> None:
        ready, tasks = self._ready, self._tasks
        while ready and self._running < self._concurrency:
            key, work = ready.popleft()
            self._running += 1
            task = self._loop.create_task(self._lane(key, work))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async def _lane(self, key: Hashable | None, work: Work) -> None:
        """Run ``work``, then the key's later records, in order; then the next ready lane.

        A task goes on with another key's lane while any is waiting, so under a backlog a
        record costs a step of a running task, not a task of its own.
        """
        run, lanes, ready = self._run, self._lanes, self._ready
        try:
            while True:
                try:
                    await run(work)
                except Exception:  # pragma: no cover - run is the error boundary
                    _LOG.exception("worker function raised")
                if key is not None:
                    lane = lanes[key]
                    if lane:
                        work = lane.popleft()
                        continue
                    del lanes[key]
                if not ready:
                    return
                key, work = ready.popleft()
        finally:
            self._running -= 1

    def shutdown(self) -> None:
        """Cancel the records still running (they are not committed), then stop the loop."""
        loop = self._loop

        def cancel() -> None:
            self._ready.clear()
            for task in list(self._tasks):
                task.cancel()
            loop.call_soon(loop.stop)  # after the cancelled tasks' last step

        loop.call_soon_threadsafe(cancel)
        self.executor.shutdown(timeout=1.0)
