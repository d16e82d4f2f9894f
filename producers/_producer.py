"""``EventProducer``: typed events to Kafka, idempotent, with a result for every send."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition
from prometheus_client import CollectorRegistry

from pipeline._delay import scheduled_headers
from pipeline._errors import (
    ConfigError,
    RateLimitExceeded,
    UndeliveredRecordsError,
)
from pipeline._headers import CE_SOURCE, CE_TYPE
from pipeline._names import SCHEDULER_TOPIC
from pipeline._produce import produce_bounded, refused
from pipeline._ratelimit import RateLimit, TokenBucket
from pipeline._settings import Settings, load_settings
from pipeline.avro._codec import Codec
from pipeline.avro._events import Event

from ._batch import SendBatch
from ._client import INLINE_POLL_MASK, ClientHolder
from ._delivery import DeliveryCallback, DeliveryFuture, UserReport
from ._headers import HeaderInput, cloudevent_headers_of
from ._metrics import ProducerMetrics
from ._mode_sends import ModeSends
from ._modes import DeliveryModes
from ._outbox import Outbox
from ._outbox_metrics import OutboxMetrics
from ._outbox_records import OutboxConfig
from ._priority import check_levels, priority_target
from ._record_size import check_record_size
from ._sending import Key
from ._txn import call, commit, retrying

__all__ = ["EventProducer"]

_Wire = list[tuple[str, str | bytes | None]]
_DEFAULT_MAX_BYTES = 1_000_000
_HEADER_SLACK = 4096  # below max - slack, headers cannot push a record over: skip counting
_default_metrics: ProducerMetrics | None = None
_default_outbox_metrics: OutboxMetrics | None = None
_default_metrics_lock = threading.Lock()


def _shared_metrics() -> ProducerMetrics:
    """One collector on the global registry, shared by producers built without a registry."""
    global _default_metrics
    with _default_metrics_lock:
        if _default_metrics is None:
            _default_metrics = ProducerMetrics()
        return _default_metrics


def _shared_outbox_metrics() -> OutboxMetrics:
    """The global registry's outbox collector (its gauges follow the latest outbox opened)."""
    global _default_outbox_metrics
    with _default_metrics_lock:
        if _default_outbox_metrics is None:
            _default_outbox_metrics = OutboxMetrics()
        return _default_outbox_metrics


class EventProducer(ModeSends):
    """Send typed events to Kafka with the idempotent producer.

    Thread-safe. No connection is made until the first send. Use it as a context manager (or
    call :meth:`close`) so queued records are flushed and any that were not delivered are
    reported. Every send either raises before queueing (validation, encoding, size), or its
    future/callback receives a :class:`DeliveryResult` or a ``ProduceError``.

    Args:
        settings: connection settings (default: read from the environment).
        codec: the Avro codec (default: built from ``settings``).
        source: the CloudEvents ``ce_source`` (default: ``settings.client_id``).
        max_block: seconds ``send`` waits for room in a full local queue before raising
            ``QueueFullError``.
        transactional_id: enables :meth:`transaction`.
        config: librdkafka overrides on top of the settings' producer config.
        registry: where metrics go (default: the global Prometheus registry).
        scheduler_topic: where delayed sends go.
        outbox: a SQLite file path (or an ``OutboxConfig``) for the durable outbox; default
            ``settings.producer_outbox`` (``PIPELINE_PRODUCER_OUTBOX``), unset: no outbox.
            Records Kafka can't take are stored there and sent back later (README "The
            producer outbox"); their futures resolve with ``DeliveryStatus.STORED``.
        priorities: priority levels of topics (``{"orders": 3}``): ``send(priority=None)``
            to such a topic goes to its lowest level, and ``priority`` must be below the count.
        rate_limit: records per second (a token bucket): a send waits for a token up to
            ``max_block`` seconds, then raises ``RateLimitExceeded`` (nothing is queued).

    Raises:
        ConfigError: an outbox with ``transactional_id`` (stored records can't join a
            transaction).
        OutboxFileError: the outbox file is damaged, not an outbox, or held by another process.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        codec: Codec | None = None,
        source: str | None = None,
        max_block: float = 10.0,
        transactional_id: str | None = None,
        config: Mapping[str, Any] | None = None,
        registry: CollectorRegistry | None = None,
        scheduler_topic: str = SCHEDULER_TOPIC,
        outbox: str | os.PathLike[str] | OutboxConfig | None = None,
        priorities: Mapping[str, int] | None = None,
        rate_limit: float | RateLimit | None = None,
    ) -> None:
        self.settings = settings or load_settings()
        self.priorities = check_levels(priorities)
        self._codec = codec
        self._source = (source or self.settings.client_id).encode()
        self._max_block = max_block
        if isinstance(rate_limit, int | float):
            rate_limit = RateLimit(float(rate_limit))
        self._rate = None if rate_limit is None else TokenBucket(rate_limit, time.monotonic())
        self._scheduler_topic = scheduler_topic
        overrides = dict(config or {})
        if transactional_id is not None:
            overrides["transactional.id"] = transactional_id
        client_config = self.settings.producer_config(**overrides)
        self._max_bytes = int(client_config.get("message.max.bytes", _DEFAULT_MAX_BYTES))
        self._size_check_above = self._max_bytes - _HEADER_SLACK
        self._sends = 0
        self.metrics = ProducerMetrics(registry) if registry is not None else _shared_metrics()
        self.metrics.queue_depth = self.__len__
        self._poll_hooks: list[Callable[[], None]] = []
        self.outbox = self._open_outbox(outbox, client_config, registry)
        self._holder = ClientHolder(
            client_config,
            after_poll=self._after_poll,
            on_error=self._on_client_error if self.outbox is not None else None,
        )
        # batch() sends go through a second client that reports failures only (built lazily).
        # No background poll thread: a batch's failure reports all run on the batch's thread.
        self._bulk = ClientHolder(
            {**client_config, "delivery.report.only.error": True}, background=False
        )
        self._batch: SendBatch | None = None
        self._batch_lock = threading.Lock()
        self._type_headers: dict[type[Event], bytes] = {}
        self._per_class: dict[type, tuple[str, bytes]] = {}  # ce_type header per event class
        self._source_header = (CE_SOURCE, self._source)
        self._last_report: UserReport | None = None
        self._clock: Callable[[], float] = time.time  # epoch seconds: due times of delays
        self.modes = DeliveryModes(self, client_config, registry)  # README "Delivery modes"

    # -- public API -------------------------------------------------------------------------

    @property
    def codec(self) -> Codec:
        """The codec used to encode events (built from settings on first use)."""
        if self._codec is None:
            self._codec = Codec.from_settings(self.settings)
        return self._codec

    def _send_default(
        self,
        event: Event,
        key: Key,
        topic: str | None,
        headers: HeaderInput,
        deliver_at: datetime | None,
        delay: timedelta | None,
        on_delivery: DeliveryCallback | None,
        priority: int | None = None,
    ) -> DeliveryFuture | None:
        """:meth:`send` at least once (the default guarantee); see :meth:`send`."""
        if on_delivery is None:
            future = DeliveryFuture(self.metrics)
            report: Any = future.report
        else:
            report = self._user_report(on_delivery)
        self.send_with_report(event, report, key, topic, headers, deliver_at, delay, priority)
        return future if on_delivery is None else None

    def send_with_report(
        self,
        event: Event,
        report: Callable[[KafkaError | None, Message], None],
        key: Key = None,
        topic: str | None = None,
        headers: HeaderInput = None,
        deliver_at: datetime | None = None,
        delay: timedelta | None = None,
        priority: int | None = None,
    ) -> None:
        """:meth:`send` with a librdkafka-style ``report(err, msg)`` delivery callback.

        For adapters (the asyncio facade) that resolve their own futures. ``report`` runs on
        the poll thread and must count the outcome in :attr:`metrics` itself.
        """
        target, value, key_bytes, record_headers = self._encode(
            event, key, topic, headers, deliver_at, delay, priority
        )
        self._produce(self._holder, target, value, key_bytes, record_headers, report)

    def send_bytes(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | str | None = None,
        headers: HeaderInput = None,
        deliver_at: datetime | None = None,
        delay: timedelta | None = None,
        on_delivery: DeliveryCallback | None = None,
    ) -> DeliveryFuture | None:
        """Queue pre-encoded bytes exactly as given (no CloudEvents headers are added).

        This is the path for forwarding records that already carry their headers (replay,
        redrive). Same guarantees and errors as :meth:`send`. For many records, a
        :meth:`batch` is cheaper: it reports failures only.
        """
        if isinstance(key, str):
            key = key.encode()
        topic, record_headers = self._route_bytes(topic, headers, deliver_at, delay)
        if on_delivery is None:
            future = DeliveryFuture(self.metrics)
            self._produce(self._holder, topic, value, key, record_headers, future.report)
            return future
        report = self._user_report(on_delivery)
        self._produce(self._holder, topic, value, key, record_headers, report)
        return None

    def send_many(
        self,
        events: Iterable[Event],
        *,
        key: Key = None,
        topic: str | None = None,
    ) -> list[DeliveryFuture]:
        """Send several events (same key rule and topic); returns their futures in order."""
        futures = []
        for event in events:
            future = self.send(event, key=key, topic=topic)
            assert future is not None
            futures.append(future)
        return futures

    def batch(self, timeout: float = 60.0) -> SendBatch:
        """Bulk sends whose successes are not reported one by one; failures all are.

        ``with producer.batch() as batch:`` then ``batch.send(...)`` or ``batch.send_bytes(...)``
        as often as needed; leaving the block waits up to ``timeout`` seconds for every record
        and raises :class:`pipeline.BatchDeliveryError` listing each one that failed (with its
        key, value and headers, ready to send again). No future or callback is created per
        record, so this is the fast path for bulk loads, replays and copies.

        Batches use a second client of this producer (same settings, idempotent, but not
        transactional): per-key order holds within and across batches, not between a batch
        and :meth:`send`. One batch is open at a time per producer; use another producer for
        parallel bulk loads. Batched records count in ``pipeline_producer_records_sent`` once
        their batch completes, and are not in the delivery-latency histogram.

        Raises:
            ConfigError: the producer is transactional (use :meth:`send` in a transaction), or
                another batch of this producer is still open.
        """
        if self._holder.transactional:
            raise ConfigError(
                "batch() sends are not transactional; use send() inside transaction() instead"
            )
        with self._batch_lock:
            if self._batch is not None and not self._batch.closed:
                raise ConfigError(
                    "another send batch of this producer is still open: finish it first "
                    "(one batch at a time; use a second EventProducer for parallel loads)"
                )
            self._batch = SendBatch(self, self._bulk, timeout)
            return self._batch

    def flush(self, timeout: float = 30.0) -> int:
        """Wait up to ``timeout`` seconds for queued records; return how many are still pending."""
        deadline = time.monotonic() + timeout
        remaining = 0
        for holder in (self._holder, self._bulk):
            if holder.started:
                left = max(0.0, deadline - time.monotonic())
                remaining += int(holder.get().flush(left))
        if self.outbox is not None:  # stored records' futures resolve once they are written
            self.outbox.flush_writes(max(0.0, deadline - time.monotonic()))
        return remaining + self.modes.flush(max(0.0, deadline - time.monotonic()))

    def close(self, timeout: float = 30.0) -> None:
        """Flush, then release the client (and the outbox file).

        With an outbox, records still undelivered after ``timeout`` are stored in it (their
        futures resolve as stored), so only a send batch's records can be left undelivered.

        Raises:
            UndeliveredRecordsError: records were still undelivered after ``timeout``; their
                futures fail with ``DeliveryError``.
        """
        deadline = time.monotonic() + timeout
        remaining = self._holder.close(timeout)
        if self.outbox is not None:
            remaining = 0  # purged records were stored, or failed (outbox full) to their futures
            self.outbox.close(max(1.0, deadline - time.monotonic()))
        remaining += self._bulk.close(max(0.0, deadline - time.monotonic()))
        self.modes.close(max(0.0, deadline - time.monotonic()))
        if remaining:
            raise UndeliveredRecordsError(remaining, timeout)

    def __len__(self) -> int:
        """Records queued locally or in flight."""
        return sum(len(h.get()) for h in (self._holder, self._bulk) if h.started)

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.close()
        except UndeliveredRecordsError:
            if exc is None:
                raise  # don't hide the body's own exception behind this one

    # -- transactions -------------------------------------------------------------------------

    @contextmanager
    def transaction(self, timeout: float = 30.0) -> Iterator[EventProducer]:
        """Send atomically: everything sent inside is committed together, or aborted.

        Raises:
            ConfigError: the producer was built without ``transactional_id``.
            ProduceError: the commit failed (the transaction was aborted).
        """
        if not self._holder.transactional:
            raise ConfigError("transaction() needs EventProducer(transactional_id=...)")
        client = self._holder.get()
        call(client.begin_transaction, "beginning a transaction")
        try:
            yield self
        except BaseException:
            retrying(client.abort_transaction, "aborting a transaction", timeout)
            raise
        commit(client, timeout)

    def send_offsets_to_transaction(
        self, offsets: list[TopicPartition], group_metadata: object, timeout: float = 30.0
    ) -> None:
        """Add a consumer's offsets to the open transaction (consume-transform-produce)."""
        client = self._holder.get()
        retrying(
            lambda left: client.send_offsets_to_transaction(offsets, group_metadata, left),
            "sending offsets to the transaction",
            timeout,
        )

    # -- internals ----------------------------------------------------------------------------

    def _open_outbox(
        self,
        outbox: str | os.PathLike[str] | OutboxConfig | None,
        client_config: dict[str, Any],
        registry: CollectorRegistry | None,
    ) -> Outbox | None:
        if outbox is None:
            outbox = self.settings.producer_outbox
        if outbox is None:
            return None
        if "transactional.id" in client_config:
            raise ConfigError("an outbox can't be used with transactional_id")
        config = outbox if isinstance(outbox, OutboxConfig) else OutboxConfig(path=Path(outbox))
        metrics = OutboxMetrics(registry) if registry is not None else _shared_outbox_metrics()
        return Outbox(config, client_config, metrics, self._after_poll)

    def _on_client_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._ALL_BROKERS_DOWN and self.outbox is not None:
            self.outbox.down = True

    def add_poll_hook(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` in the poll thread after each batch of delivery callbacks."""
        self._poll_hooks.append(hook)

    def _after_poll(self) -> None:
        for hook in self._poll_hooks:
            hook()

    def _encode(
        self,
        event: Event,
        key: Key,
        topic: str | None,
        headers: HeaderInput,
        deliver_at: datetime | None,
        delay: timedelta | None,
        priority: int | None = None,
    ) -> tuple[str, bytes, bytes | None, list[tuple[str, bytes | None]]]:
        """Validate and encode ``event``: its topic, value, key and headers (nothing is queued)."""
        cls = type(event)
        per_class = self._per_class.get(cls)
        if per_class is None:
            per_class = self._class_info(cls)
        target = topic or cls.topic
        if not target:
            raise ConfigError(
                f"no topic for {cls.__name__}: pass topic= or set `topic` on the class"
            )
        if priority is not None or self.priorities:
            target = priority_target(target, priority, self.priorities)
        value = (self._codec or self.codec).encode(event, topic=target)
        record_headers = cloudevent_headers_of(self._source_header, per_class)
        if headers:
            record_headers.extend(_normalise_headers(headers))
        if type(key) is str:  # the common case first
            key_bytes: bytes | None = key.encode()
        else:
            key_bytes = _key_bytes(key, event)
        if deliver_at is not None or delay is not None:
            target = self._to_scheduler(target, record_headers, deliver_at, delay)
        return target, value, key_bytes, record_headers

    def _class_info(self, cls: type[Event]) -> tuple[str, bytes]:
        """The ``ce_type`` header of an event class, checked and built once per class."""
        if not issubclass(cls, Event):
            raise ConfigError(f"send() takes a pipeline Event, got {cls.__name__}")
        info = self._per_class[cls] = (CE_TYPE, self._ce_type(cls))
        return info

    def _route_bytes(
        self,
        topic: str,
        headers: HeaderInput,
        deliver_at: datetime | None,
        delay: timedelta | None,
    ) -> tuple[str, list[tuple[str, bytes | None]] | None]:
        """The topic of pre-encoded bytes (the scheduler's if delayed) and their wire headers.

        The headers are None when there are none to send.
        """
        if not headers and deliver_at is None and delay is None:
            return topic, None
        record_headers = _normalise_headers(headers) if headers else []
        if deliver_at is not None or delay is not None:
            topic = self._to_scheduler(topic, record_headers, deliver_at, delay)
        return topic, record_headers

    def _user_report(self, user: DeliveryCallback) -> UserReport:
        report = self._last_report
        if report is None or report.user is not user:  # senders usually reuse one callback
            report = self._last_report = UserReport(user, self.metrics)
        return report

    def _ce_type(self, cls: type[Event]) -> bytes:
        value = self._type_headers.get(cls)
        if value is None:
            value = self._type_headers[cls] = cls.subject.encode()
        return value

    def _to_scheduler(
        self,
        topic: str,
        headers: list[tuple[str, bytes | None]],
        deliver_at: datetime | None,
        delay: timedelta | None,
    ) -> str:
        """Add the scheduler headers for ``topic`` and return the scheduler topic."""
        headers.extend(scheduled_headers(topic, _due_ms(deliver_at, delay, self._clock())))
        return self._scheduler_topic

    def _produce(
        self,
        holder: ClientHolder,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: list[tuple[str, bytes | None]] | None,
        report: Callable[[KafkaError | None, Message], None],
    ) -> None:
        if self._rate is not None and not self._rate.wait(self._max_block):
            limit = self._rate.limit.per_second
            raise RateLimitExceeded(f"no send allowed at {limit:g}/s within {self._max_block}s")
        check_record_size(topic, value, key, headers, self._size_check_above, self._max_bytes)
        if self.outbox is not None and holder is self._holder:
            self.outbox.send(topic, value, key, headers, report, self._queue_live)
            return
        self._queue(holder, topic, value, key, headers, report)

    def _queue_live(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: list[tuple[str, bytes | None]] | None,
        report: Callable[[KafkaError | None, Message], None],
    ) -> None:
        self._queue(self._holder, topic, value, key, headers, report)

    def _queue(
        self,
        holder: ClientHolder,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: list[tuple[str, bytes | None]] | None,
        report: Callable[[KafkaError | None, Message], None],
    ) -> None:
        client = holder.ready or holder.get()  # get(): first use, or a fatal error to raise
        try:  # the common case, inline; produce_bounded waits when the queue is full
            if headers:
                client.produce(topic, value, key, headers=headers, on_delivery=report)  # type: ignore[arg-type]
            else:  # an explicit headers=None costs confluent-kafka about a microsecond
                client.produce(topic, value, key, on_delivery=report)
        except BufferError:
            produce_bounded(client, topic, value, key, headers, report, self._max_block)
        except KafkaException as exc:
            raise refused(exc, topic, len(value or b"")) from exc
        self._sends += 1
        if not self._sends & INLINE_POLL_MASK:
            holder.serve(client)


def _key_bytes(key: Key, event: Event) -> bytes | None:
    if callable(key):
        key = key(event)
    if isinstance(key, str):
        return key.encode()
    if key is None or isinstance(key, bytes):
        return key
    raise ConfigError(f"key must be bytes, str or a callable returning them, got {type(key)}")


def _normalise_headers(headers: HeaderInput) -> list[tuple[str, bytes | None]]:
    items = headers.items() if isinstance(headers, Mapping) else headers or ()
    return [(k, v.encode() if isinstance(v, str) else v) for k, v in items]


def _due_ms(deliver_at: datetime | None, delay: timedelta | None, now: float) -> int:
    if deliver_at is not None and delay is not None:
        raise ConfigError("pass deliver_at or delay, not both")
    if delay is not None:
        if delay < timedelta(0):
            raise ConfigError(f"delay must not be negative, got {delay}")
        return int((now + delay.total_seconds()) * 1000)
    assert deliver_at is not None
    if deliver_at.tzinfo is None:
        raise ConfigError("deliver_at must be timezone-aware (for example datetime.now(UTC))")
    return int(deliver_at.astimezone(UTC).timestamp() * 1000)
