"""``AsyncEventProducer``: an asyncio facade that wakes the loop once per delivery batch."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from pipeline._errors import PipelineError
from pipeline._events import Event

from ._delivery import DeliveryResult
from ._producer import EventProducer, HeaderInput, Key

__all__ = ["AsyncEventProducer"]

_Done = tuple[asyncio.Future[DeliveryResult], DeliveryResult | None, PipelineError | None]


class AsyncEventProducer:
    """``await producer.send(event, key=...)`` on top of :class:`EventProducer`.

    Delivery reports arrive on the producer's poll thread; they are collected and handed to
    the event loop with one ``call_soon_threadsafe`` per poll batch, not one per record.
    Construct it inside a running event loop (or pass ``loop``).
    """

    def __init__(
        self,
        producer: EventProducer | None = None,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        **producer_kwargs: Any,
    ) -> None:
        self.producer = producer or EventProducer(**producer_kwargs)
        self._loop = loop
        self._done: list[_Done] = []
        self._lock = threading.Lock()
        self._scheduled = False
        self.wakeups = 0
        self.producer.add_poll_hook(self._after_poll)

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    async def send(
        self,
        event: Event,
        *,
        key: Key = None,
        topic: str | None = None,
        headers: HeaderInput = None,
        deliver_at: datetime | None = None,
        delay: timedelta | None = None,
    ) -> DeliveryResult:
        """Send and wait for the delivery result; raises ``ProduceError`` on failure."""
        future = self.queue(
            event, key=key, topic=topic, headers=headers, deliver_at=deliver_at, delay=delay
        )
        return await future

    def queue(
        self,
        event: Event,
        *,
        key: Key = None,
        topic: str | None = None,
        headers: HeaderInput = None,
        deliver_at: datetime | None = None,
        delay: timedelta | None = None,
    ) -> asyncio.Future[DeliveryResult]:
        """Queue an event now and return an awaitable of its delivery result."""
        future: asyncio.Future[DeliveryResult] = self._bind_loop().create_future()

        def collect(result: DeliveryResult | None, error: PipelineError | None) -> None:
            self._done.append((future, result, error))  # list.append is atomic under the GIL

        self.producer.send(
            event,
            key=key,
            topic=topic,
            headers=headers,
            deliver_at=deliver_at,
            delay=delay,
            on_delivery=collect,
        )
        return future

    def _after_poll(self) -> None:
        if not self._done or self._loop is None:
            return
        with self._lock:
            if self._scheduled:
                return
            self._scheduled = True
        self.wakeups += 1
        self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            self._scheduled = False
            done, self._done = self._done, []
        for future, result, error in done:
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)  # type: ignore[arg-type]

    async def flush(self, timeout: float = 30.0) -> int:
        """Flush without blocking the loop; returns how many records are still pending."""
        return await asyncio.to_thread(self.producer.flush, timeout)

    async def close(self, timeout: float = 30.0) -> None:
        """Flush and close without blocking the loop (raises ``UndeliveredRecordsError``)."""
        await asyncio.to_thread(self.producer.close, timeout)
        self._drain()

    async def __aenter__(self) -> AsyncEventProducer:
        self._bind_loop()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
