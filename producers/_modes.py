"""The delivery modes of an ``EventProducer`` beyond at-least-once: fire-and-forget, quorum, RPC.

The producer keeps one ``DeliveryModes``; it builds the fire-and-forget client and the reply
inbox lazily, on first use, so a producer that never uses them opens nothing more.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from confluent_kafka import KafkaError, Message
from prometheus_client import CollectorRegistry

from pipeline._errors import ConfigError, QuorumNotReached
from pipeline._guarantee import DeliveryGuarantee
from pipeline._headers import ACK_TO, CORRELATION_ID, DEADLINE, REPLY_TO
from pipeline._settings import Settings
from pipeline.avro._codec import Codec
from pipeline.avro._events import Event

from ._delivery import delivery_error
from ._fire_and_forget import FireAndForget
from ._headers import new_event_id
from ._inbox import Inbox, Pending, Resolve
from ._metrics import ProducerMetrics
from ._mode_metrics import ModeMetrics, shared_mode_metrics


class Host(Protocol):
    """What the modes need of their ``EventProducer`` (a protocol: no import cycle)."""

    settings: Settings
    metrics: ProducerMetrics

    @property
    def codec(self) -> Codec:
        """The producer's codec."""

    def send_with_report(
        self,
        event: Event,
        report: Callable[[KafkaError | None, Message], None],
        key: Any = None,
        topic: str | None = None,
        headers: Any = None,
    ) -> None:
        """Encode and queue ``event`` with a librdkafka-style delivery callback."""


__all__ = [
    "DeliveryModes",
    "Host",
    "QuorumFuture",
    "QuorumResult",
    "check_guarantee",
    "request_headers",
]

R = TypeVar("R", bound=Event)


class QuorumResult:
    """A quorum send that reached its quorum: who acknowledged, in the order they did."""

    __slots__ = ("acked", "required")

    def __init__(self, acked: list[str], required: int) -> None:
        self.acked = acked
        self.required = required

    def __repr__(self) -> str:
        return f"QuorumResult(acked={self.acked!r}, required={self.required})"


class QuorumFuture(concurrent.futures.Future[QuorumResult]):
    """The future of a quorum send: :class:`QuorumResult`, or ``QuorumNotReached``."""


def request_headers(
    correlation_id: bytes, deadline_ms: int | None
) -> list[tuple[str, bytes | None]]:
    """The correlation (and deadline) headers of a request or of a quorum send."""
    headers: list[tuple[str, bytes | None]] = [(CORRELATION_ID, correlation_id)]
    if deadline_ms is not None:
        headers.append((DEADLINE, str(deadline_ms).encode()))
    return headers


class DeliveryModes:
    """Fire-and-forget client, reply inbox and the request/quorum plumbing of one producer."""

    def __init__(
        self, producer: Host, config: dict[str, Any], registry: CollectorRegistry | None
    ) -> None:
        self._producer = producer
        self._config = config
        self.metrics = ModeMetrics(registry) if registry is not None else shared_mode_metrics()
        self._ff: FireAndForget | None = None
        self._inbox: Inbox | None = None
        self._lock = threading.Lock()

    # -- fire-and-forget ----------------------------------------------------------------------

    @property
    def fire_and_forget(self) -> FireAndForget:
        """The fire-and-forget client (built on first use; connects on first send)."""
        if self._ff is None:
            with self._lock:
                if self._ff is None:
                    self._ff = FireAndForget(self._config, self.metrics)
        return self._ff

    # -- the inbox ----------------------------------------------------------------------------

    @property
    def inbox_started(self) -> bool:
        """Whether the reply inbox runs (its topic exists)."""
        return self._inbox is not None and self._inbox.started

    @property
    def inbox(self) -> Inbox:
        """The reply inbox, started (its topic created) on first use."""
        inbox = self._inbox
        if inbox is None:
            with self._lock:
                if self._inbox is None:
                    producer = self._producer
                    self._inbox = Inbox(producer.settings, lambda: producer.codec, self.metrics)
                inbox = self._inbox
        inbox.start()
        return inbox

    def request(
        self,
        event: Event,
        reply: type[R],
        timeout: float,
        resolve: Resolve,
        *,
        key: Any = None,
        topic: str | None = None,
    ) -> None:
        """Send a request; ``resolve(reply, None)`` or ``resolve(None, error)`` runs once."""
        if not (isinstance(reply, type) and issubclass(reply, Event)):
            raise ConfigError(f"reply= takes an Event class, got {reply!r}")
        if timeout <= 0:
            raise ConfigError(f"timeout must be > 0, got {timeout}")
        inbox = self.inbox
        cid = new_event_id()
        deadline_ms = int((time.time() + timeout) * 1000)
        headers = request_headers(cid, deadline_ms)
        headers.append((REPLY_TO, inbox.topic.encode()))
        inbox.add(cid, Pending(resolve, time.monotonic() + timeout, reply=reply))
        self._send(event, key, topic, headers, cid)

    def quorum(
        self,
        event: Event,
        required: int,
        timeout: float,
        *,
        key: Any = None,
        topic: str | None = None,
    ) -> QuorumFuture:
        """Send ``event`` and resolve once ``required`` distinct groups/instances acked it."""
        if required < 1:
            raise ConfigError(f"required_acks must be >= 1, got {required}")
        if timeout <= 0:
            raise ConfigError(f"timeout must be > 0, got {timeout}")
        future = QuorumFuture()
        future.set_running_or_notify_cancel()

        def done(acked: Any, exc: BaseException | None) -> None:
            if future.done():
                return
            if exc is not None:
                future.set_exception(exc)
            elif len(acked) >= required:
                future.set_result(QuorumResult(acked, required))
            else:
                future.set_exception(QuorumNotReached(acked=acked, required=required))

        inbox = self.inbox
        cid = new_event_id()
        headers = request_headers(cid, None)
        headers.append((ACK_TO, inbox.topic.encode()))
        inbox.add(cid, Pending(done, time.monotonic() + timeout, required=required))
        self._send(event, key, topic, headers, cid)
        return future

    def _send(
        self,
        event: Event,
        key: Any,
        topic: str | None,
        headers: list[tuple[str, bytes | None]],
        cid: bytes,
    ) -> None:
        inbox = self._inbox
        assert inbox is not None
        metrics = self._producer.metrics

        def report(err: KafkaError | None, msg: Message) -> None:
            if err is None:
                metrics.delivered(msg.topic() or "", msg.latency() or 0.0)
                return
            metrics.failed(msg.topic() or "")
            self.metrics.requests.labels("failed").inc()
            inbox.fail(cid, delivery_error(err, msg.topic() or "", msg.key()))

        try:
            self._producer.send_with_report(event, report, key, topic, headers)
        except BaseException as exc:
            inbox.fail(cid, exc)
            raise

    # -- closing ------------------------------------------------------------------------------

    def flush(self, timeout: float) -> int:
        """Flush the fire-and-forget client; how many of its records are left."""
        return self._ff.flush(timeout) if self._ff is not None else 0

    def close(self, timeout: float) -> None:
        """Close the fire-and-forget client and the inbox (deleting the reply topic)."""
        if self._ff is not None:
            self._ff.close(timeout)
        if self._inbox is not None:
            self._inbox.close()


def check_guarantee(guarantee: DeliveryGuarantee | None, required_acks: int | None) -> None:
    """Reject producer arguments that do not fit together."""
    if guarantee is DeliveryGuarantee.QUORUM:
        if required_acks is None:
            raise ConfigError("guarantee=QUORUM needs required_acks=N")
    elif required_acks is not None:
        raise ConfigError("required_acks= is only for guarantee=QUORUM")
    if guarantee in (DeliveryGuarantee.EXACTLY_ONCE, DeliveryGuarantee.BROADCAST):
        raise ConfigError(
            f"guarantee={guarantee.name} is chosen on the worker (or with an "
            "EventProducer(transactional_id=...) for EXACTLY_ONCE), not per send"
        )
