"""Send batches: bulk sends that report every failure but no success one by one.

A batch's records go through a client configured with ``delivery.report.only.error``:
librdkafka hands back only the records it could not deliver, so a successful record costs no
Python object and no callback. Failures keep their key, value and headers, and leaving the
batch raises them all at once; nothing is dropped in silence.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from types import TracebackType
from typing import NoReturn

from confluent_kafka import KafkaError, KafkaException, Message

from pipeline._errors import BatchDeliveryError, FailedRecord, ProduceError
from pipeline._headers import Headers
from pipeline._produce import purge_and_report
from pipeline.avro._events import Event

from ._client import INLINE_POLL_MASK, ClientHolder
from ._delivery import delivery_error
from ._headers import HeaderInput
from ._sending import Key, RecordSender

__all__ = ["SendBatch"]


class SendBatch:
    """Records sent together; see :meth:`EventProducer.batch`.

    Use it from one thread: every failure report of the batch runs on that thread (in its
    sends and in :meth:`wait`), so when ``wait`` returns, :attr:`failed` is complete. After
    the ``with`` block, :attr:`sent` holds how many records were delivered and :attr:`failed` the
    ones that were not.
    """

    def __init__(self, producer: RecordSender, holder: ClientHolder, timeout: float) -> None:
        self._producer = producer
        self._holder = holder
        self._timeout = timeout
        self._queued: dict[str, int] = {}
        # The report callback of records without headers; one object for all of them.
        self._on_failure = partial(self._failed, [])
        self._small = producer._size_check_above  # records no bigger skip the size check
        self._inline = 0
        self.failed: list[FailedRecord] = []
        self.sent = 0
        self.closed = False

    def send(
        self,
        event: Event,
        *,
        key: Key = None,
        topic: str | None = None,
        headers: HeaderInput = None,
        deliver_at: datetime | None = None,
        delay: timedelta | None = None,
    ) -> None:
        """Encode and queue ``event``, as :meth:`EventProducer.send` does (same errors)."""
        if self.closed:
            self._refuse_closed()
        producer = self._producer
        target, value, key_bytes, record_headers = producer._encode(
            event, key, topic, headers, deliver_at, delay
        )
        report = partial(self._failed, record_headers)  # reports do not carry headers
        producer._produce(self._holder, target, value, key_bytes, record_headers, report)
        queued = self._queued
        queued[target] = queued.get(target, 0) + 1

    def send_bytes(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | str | None = None,
        headers: HeaderInput = None,
        deliver_at: datetime | None = None,
        delay: timedelta | None = None,
    ) -> None:
        """Queue pre-encoded bytes, as :meth:`EventProducer.send_bytes` does (same errors)."""
        if isinstance(key, str):
            key = key.encode()
        client = self._holder.ready
        if (  # the common case, inline (a tenth faster than one more call per record)
            client is None
            or self.closed
            or headers
            or deliver_at is not None
            or delay is not None
            or len(value or b"") + len(key or b"") > self._small
        ):
            self._send_bytes(topic, value, key, headers, deliver_at, delay)
            return
        try:
            client.produce(topic, value, key, on_delivery=self._on_failure)
        except (BufferError, KafkaException):  # not queued: the general path waits or raises
            self._send_bytes(topic, value, key, headers, deliver_at, delay)
            return
        self._inline += 1
        if not self._inline & INLINE_POLL_MASK:
            self._holder.serve(client)
        queued = self._queued
        queued[topic] = queued.get(topic, 0) + 1

    def _send_bytes(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: HeaderInput,
        deliver_at: datetime | None,
        delay: timedelta | None,
    ) -> None:
        """``send_bytes`` through the producer's general produce step (and its checks)."""
        if self.closed:
            self._refuse_closed()
        topic, record_headers = self._producer._route_bytes(topic, headers, deliver_at, delay)
        report = self._on_failure
        if record_headers is not None:
            report = partial(self._failed, record_headers)  # reports do not carry headers
        self._producer._produce(self._holder, topic, value, key, record_headers, report)
        queued = self._queued
        queued[topic] = queued.get(topic, 0) + 1

    def _failed(self, headers: Headers, err: KafkaError | None, msg: Message) -> None:
        """librdkafka's report of a record it could not deliver (successes never come here).

        ``headers`` are the record's own: delivery reports do not carry them.
        """
        assert err is not None  # the bulk client sets delivery.report.only.error
        topic = msg.topic() or ""
        self._producer.metrics.failed(topic)
        self.failed.append(  # on the batch's own thread: the bulk client has no poll thread
            FailedRecord(
                topic=topic,
                key=msg.key(),
                value=msg.value(),
                headers=headers,
                error=delivery_error(err, topic, msg.key()),
            )
        )

    def _refuse_closed(self) -> NoReturn:
        raise ProduceError("this send batch is closed; start a new one with batch()")

    @property
    def queued(self) -> int:
        """How many records were queued in this batch."""
        return sum(self._queued.values())

    def wait(self, timeout: float | None = None) -> None:
        """Wait until every record of the batch is delivered or has failed, then close it.

        Records still undelivered after ``timeout`` seconds (default: the batch's) are purged
        and reported as failed. Closing a second time does nothing.

        Raises:
            BatchDeliveryError: some records were not delivered (``failed`` lists them).
        """
        if self.closed:
            return
        self.closed = True
        if self._queued:
            client = self._holder.get()
            if client.flush(self._timeout if timeout is None else timeout):
                purge_and_report(client)  # their reports fail them: in self.failed, not lost
        failed_by_topic: dict[str, int] = {}
        for record in self.failed:
            failed_by_topic[record.topic] = failed_by_topic.get(record.topic, 0) + 1
        for topic, count in self._queued.items():
            delivered = count - failed_by_topic.get(topic, 0)
            self.sent += delivered
            self._producer.metrics.delivered_many(topic, delivered)
        if self.failed:
            raise BatchDeliveryError(self.failed, self.queued)

    def __enter__(self) -> SendBatch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.wait()
        except BatchDeliveryError:
            if exc is None:
                raise  # don't hide the body's own exception behind this one
