"""Which execution strategy a worker's records get (see ``_execution`` and ``_aio``)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from operator import attrgetter

from ._aio import AsyncExecution
from ._execution import EventLoopThread, Execution, InlineExecution, SerialExecution
from ._keyed import KeyedExecutor
from ._process import Processor
from ._spec import WorkerSpec, all_async
from ._work import Work

__all__ = ["choose_execution"]


def choose_execution(
    processor: Processor,
    worker: WorkerSpec,
    serial: bool,
    events: EventLoopThread | None,
    tick: Callable[[], None],
    running: Callable[[], bool],
    fail: Callable[[BaseException], None],
    stop: threading.Event,
) -> tuple[KeyedExecutor[Work], Execution]:
    """The keyed executor and the strategy that runs the records of ``worker``.

    - serial (the test kit): the poll thread, one record after the other;
    - every handler ``async`` (and not exactly-once): tasks on the event loop, no threads;
    - synchronous handlers with ``inline``: the poll thread while they are cheap, else threads;
    - otherwise the keyed executor's threads (``async`` ones wait there for the event loop).
    """
    options = worker.options
    on_loop = events is not None and not serial and not options.exactly_once
    on_loop = on_loop and all_async(worker)
    executor: KeyedExecutor[Work] = KeyedExecutor(
        processor,
        1 if serial or on_loop else options.concurrency,
        name=f"worker-{worker.group}",
        weigh=attrgetter("weight"),
    )
    if serial:
        return executor, SerialExecution(executor, processor, events)
    if options.inline and events is None and not options.exactly_once:
        inline = InlineExecution(executor, processor.inline, tick, running, fail, stop)
        return executor, inline
    if on_loop and events is not None:
        processor.deferring = True
        return executor, AsyncExecution(executor, events, processor.run_async, options.concurrency)
    return executor, Execution(executor, events)
