"""Per-key FIFO execution on a pool of threads: same key in order, different keys in parallel."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Hashable
from queue import SimpleQueue
from typing import Generic, TypeVar, cast

__all__ = ["KeyedExecutor"]

_LOG = logging.getLogger("consumers")
T = TypeVar("T")
_STOP = object()


class KeyedExecutor(Generic[T]):
    """Run ``fn(item)`` on ``concurrency`` threads, keeping submission order per key.

    A key whose previous item is still running gets its next items queued in a lane; the
    thread that finishes an item takes the next one of the same lane itself, so a busy key
    costs no extra hand-off. ``key=None`` means unordered: the item runs whenever a thread is
    free. ``fn`` must not raise (it is the caller's error boundary); if it does, the error is
    logged and the lane continues.
    """

    def __init__(self, fn: Callable[[T], None], concurrency: int, name: str = "worker") -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self._fn = fn
        self._lock = threading.Lock()
        self._lanes: dict[Hashable, deque[T]] = {}
        self._ready: SimpleQueue[tuple[Hashable, T] | object] = SimpleQueue()
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
        if key is None:
            self._ready.put((None, item))
            return
        with self._lock:
            lane = self._lanes.get(key)
            if lane is None:
                self._lanes[key] = deque()
            else:
                lane.append(item)
                return
        self._ready.put((key, item))

    def submit_many(self, items: list[tuple[Hashable | None, T]]) -> None:
        """Queue several items under one lock acquisition."""
        start: list[tuple[Hashable | None, T]] = []
        with self._lock:
            lanes = self._lanes
            for key, item in items:
                if key is None:
                    start.append((key, item))
                    continue
                lane = lanes.get(key)
                if lane is None:
                    lanes[key] = deque()
                    start.append((key, item))
                else:
                    lane.append(item)
        put = self._ready.put
        for entry in start:
            put(entry)

    def _loop(self) -> None:
        ready, fn = self._ready, self._fn
        while True:
            entry = ready.get()
            if entry is _STOP:
                return
            key, item = cast(tuple[Hashable, T], entry)
            while True:
                try:
                    fn(item)
                except Exception:  # pragma: no cover - fn is the error boundary
                    _LOG.exception("worker function raised")
                if key is None:
                    break
                with self._lock:
                    lane = self._lanes[key]
                    if not lane:
                        del self._lanes[key]
                        break
                    item = lane.popleft()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop the threads after the items already queued; wait up to ``timeout`` seconds."""
        for _ in self._threads:
            self._ready.put(_STOP)
        for thread in self._threads:
            thread.join(timeout)
