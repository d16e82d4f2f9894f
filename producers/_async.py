"""``AsyncEventProducer``: an asyncio facade that wakes the loop once per delivery batch."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Iterable
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Literal, TypeVar, Unpack, overload

from confluent_kafka import KafkaError, Message

from pipeline._errors import DeliveryError
from pipeline._guarantee import DeliveryGuarantee, parse_guarantee
from pipeline.avro._events import Event

from ._delivery import DeliveryResult, MetricsSink, delivery_error, result_of
from ._headers import HeaderInput
from ._modes import QuorumResult, check_guarantee
from ._producer import EventProducer
from ._send_keywords import SendKeywords
from ._sending import Key

__all__ = ["AsyncEventProducer"]

R = TypeVar("R", bound=Event)
_Done = tuple[asyncio.Future[Any], KafkaError | None, Any]  # Any: a Message, or a _Many


class _Report:
    """One record's delivery callback: count the outcome, queue it for the event loop.

    It runs on the poll thread, so it does the least it can: the result or error object is
    built later, on the loop, by ``_drain``.
    """

    __slots__ = ("done", "future", "metrics")

    def __init__(
        self, future: asyncio.Future[DeliveryResult], done: deque[_Done], metrics: MetricsSink
    ) -> None:
        self.future = future
        self.done = done
        self.metrics = metrics

    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            if type(msg) is Message:  # not an outbox-stored record
                self.metrics.delivered(msg.topic() or "", msg.latency() or 0.0)
        else:
            self.metrics.failed(msg.topic() or "")
        self.done.append((self.future, err, msg))  # deque.append is thread-safe


class _Many:
    """The records of one ``send_many``: reports arrive in any order, the future resolves once.

    Reports append ``(index, err, msg)`` (list.append is thread-safe); the one that completes
    the set hands the batch to the loop through the producer's done queue.
    """

    __slots__ = ("arrived", "count", "done", "future", "metrics")

    def __init__(
        self, future: asyncio.Future[Any], done: deque[_Done], metrics: MetricsSink
    ) -> None:
        self.future = future
        self.done = done
        self.metrics = metrics
        self.arrived: list[tuple[int, KafkaError | None, Message]] = []
        self.count = -1  # set once every record is queued

    def complete_if_all(self) -> None:
        if len(self.arrived) == self.count:
            self.done.append((self.future, None, self))

    def results(self) -> list[DeliveryResult]:
        """Results in send order; raises the first failed record's ``DeliveryError``."""
        ordered = sorted(self.arrived, key=lambda item: item[0])
        for _, err, msg in ordered:
            if err is not None:
                raise delivery_error(err, msg.topic() or "", msg.key())
        return [result_of(msg) for _, _, msg in ordered]


class _ManyReport:
    __slots__ = ("index", "many")

    def __init__(self, many: _Many, index: int) -> None:
        self.many = many
        self.index = index

    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        many = self.many
        if err is None:
            if type(msg) is Message:  # not an outbox-stored record
                many.metrics.delivered(msg.topic() or "", msg.latency() or 0.0)
        else:
            many.metrics.failed(msg.topic() or "")
        many.arrived.append((self.index, err, msg))
        if len(many.arrived) == many.count:
            many.done.append((many.future, None, many))


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
        # not `producer or ...`: an idle EventProducer has len() 0, so it is falsy
        self.producer = producer if producer is not None else EventProducer(**producer_kwargs)
        self._loop = loop
        self._done: deque[_Done] = deque()  # appended on the poll thread, popped on the loop
        self._lock = threading.Lock()
        self._scheduled = False
        self._resolved: deque[tuple[asyncio.Future[Any], Any, BaseException | None]] = deque()
        self._resolving = False
        self.wakeups = 0
        self.producer.add_poll_hook(self._after_poll)

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    @overload
    async def send(  # type: ignore[overload-overlap]
        self,
        event: Event,
        *,
        guarantee: Literal[DeliveryGuarantee.QUORUM],
        **options: Unpack[SendKeywords],
    ) -> QuorumResult: ...
    @overload
    async def send(
        self,
        event: Event,
        *,
        guarantee: DeliveryGuarantee | str | None = None,
        **options: Unpack[SendKeywords],
    ) -> DeliveryResult: ...
    async def send(
        self,
        event: Event,
        *,
        key: Key = None,
        topic: str | None = None,
        headers: HeaderInput = None,
        deliver_at: datetime | None = None,
        delay: timedelta | None = None,
        priority: int | None = None,
        guarantee: DeliveryGuarantee | str | None = None,
        required_acks: int | None = None,
        timeout: float = 30.0,
    ) -> DeliveryResult | QuorumResult | None:
        """Send and wait for the delivery result; raises ``ProduceError`` on failure.

        ``guarantee`` as in :meth:`EventProducer.send`: ``FIRE_AND_FORGET`` returns None at
        once; ``QUORUM`` (with ``required_acks`` and ``timeout``) returns the
        :class:`QuorumResult` or raises ``QuorumNotReached``. ``priority`` as in
        :meth:`EventProducer.send` (the level topic ``<topic>.p<N>``).
        """
        if guarantee is not None or required_acks is not None:
            mode = None if guarantee is None else parse_guarantee(guarantee)
            check_guarantee(mode, required_acks)
            if mode is DeliveryGuarantee.FIRE_AND_FORGET:
                self.producer.send(
                    event,
                    key=key,
                    topic=topic,
                    headers=headers,
                    deliver_at=deliver_at,
                    delay=delay,
                    priority=priority,
                    guarantee=mode,
                )
                return None
            if mode is DeliveryGuarantee.QUORUM:
                modes = self.producer.modes
                await self._inbox_ready()
                assert required_acks is not None
                quorum = modes.quorum(event, required_acks, timeout, key=key, topic=topic)
                return await asyncio.wrap_future(quorum)
        future = self.queue(
            event,
            key=key,
            topic=topic,
            headers=headers,
            deliver_at=deliver_at,
            delay=delay,
            priority=priority,
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
        priority: int | None = None,
    ) -> asyncio.Future[DeliveryResult]:
        """Queue an event now and return an awaitable of its delivery result.

        Raises:
            ConfigError: ``priority`` is not a level of the topic (nothing was queued).
        """
        future: asyncio.Future[DeliveryResult] = self._bind_loop().create_future()
        report = _Report(future, self._done, self.producer.metrics)
        self.producer.send_with_report(
            event, report, key, topic, headers, deliver_at, delay, priority
        )
        return future

    async def send_many(
        self,
        events: Iterable[Event],
        *,
        key: Key = None,
        topic: str | None = None,
    ) -> list[DeliveryResult]:
        """Send several events (same key rule and topic); their results, in order.

        One awaitable for the whole set instead of one future per record (cheaper than
        ``gather`` over :meth:`queue`). Waits until every record has its delivery report;
        if any failed, raises the first failed record's ``DeliveryError`` (in send order).

        Raises:
            EncodeError: an event does not fit its schema. The events before it are queued
                and still delivered; their results are not returned.
        """
        future: asyncio.Future[list[DeliveryResult]] = self._bind_loop().create_future()
        many = _Many(future, self._done, self.producer.metrics)
        send = self.producer.send_with_report
        queued = 0
        try:
            for event in events:
                send(event, _ManyReport(many, queued), key, topic)
                queued += 1
        finally:
            many.count = queued
            many.complete_if_all()  # all reports may be in already (or nothing was sent)
        self._after_poll()
        return await future

    async def request(
        self,
        event: Event,
        *,
        reply: type[R],
        timeout: float = 5.0,
        key: Key = None,
        topic: str | None = None,
    ) -> R:
        """:meth:`EventProducer.request` without blocking the loop; same errors."""
        loop = self._bind_loop()
        await self._inbox_ready()
        future: asyncio.Future[R] = loop.create_future()
        resolved = self._resolved

        def resolve(value: Any, exc: BaseException | None) -> None:
            resolved.append((future, value, exc))  # on the inbox thread
            self._wake_resolved()

        self.producer.modes.request(event, reply, timeout, resolve, key=key, topic=topic)
        return await future

    async def _inbox_ready(self) -> None:
        """Create the reply topic off the loop (first use only)."""
        modes = self.producer.modes
        if not modes.inbox_started:
            await asyncio.to_thread(lambda: modes.inbox)

    def _wake_resolved(self) -> None:
        with self._lock:
            if self._resolving:
                return
            self._resolving = True
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._drain_resolved)

    def _drain_resolved(self) -> None:
        with self._lock:
            self._resolving = False
        resolved = self._resolved
        while resolved:
            future, value, exc = resolved.popleft()
            if future.done():  # cancelled by the caller
                continue
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(value)

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
        done = self._done
        while done:
            future, err, msg = done.popleft()
            if future.done():  # cancelled by the caller (or a send_many completed twice)
                continue
            if type(msg) is _Many:
                try:
                    future.set_result(msg.results())
                except DeliveryError as exc:
                    future.set_exception(exc)
            elif err is not None:
                future.set_exception(delivery_error(err, msg.topic() or "", msg.key()))
            else:
                future.set_result(result_of(msg))

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
