"""``send(..., guarantee=...)`` and ``request()`` of ``EventProducer`` (README "Delivery modes")."""

from __future__ import annotations

import concurrent.futures
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, TypeVar, Unpack, overload

from pipeline._errors import ConfigError, RequestError
from pipeline._guarantee import DeliveryGuarantee, parse_guarantee
from pipeline.avro._events import Event

from ._delivery import DeliveryCallback, DeliveryFuture
from ._headers import HeaderInput
from ._modes import DeliveryModes, QuorumFuture, check_guarantee
from ._send_keywords import EventSendKeywords
from ._sending import Key

__all__ = ["ModeSends", "ModeSendsHost"]

R = TypeVar("R", bound=Event)
_FIRE_AND_FORGET = DeliveryGuarantee.FIRE_AND_FORGET
_Encoded = tuple[str, bytes, bytes | None, list[tuple[str, bytes | None]]]


class ModeSendsHost(Protocol):
    """What :class:`ModeSends` needs from the class it is mixed into (``EventProducer``)."""

    modes: DeliveryModes

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
        """Send at least once (the default guarantee)."""

    def _encode(
        self,
        event: Event,
        key: Key,
        topic: str | None,
        headers: HeaderInput,
        deliver_at: datetime | None,
        delay: timedelta | None,
        priority: int | None = None,
    ) -> _Encoded:
        """Validate and encode ``event``: ``(topic, value, key bytes, wire headers)``."""


def _fire_and_forget(
    host: ModeSendsHost,
    event: Event,
    key: Key,
    topic: str | None,
    headers: HeaderInput,
    deliver_at: datetime | None,
    delay: timedelta | None,
    priority: int | None = None,
) -> None:
    """``send(..., guarantee=FIRE_AND_FORGET)`` without the guarantee parsing (its hot path)."""
    target, value, key_bytes, record_headers = host._encode(
        event, key, topic, headers, deliver_at, delay, priority
    )
    ff = host.modes._ff  # built on first use (the property takes a lock)
    (ff or host.modes.fire_and_forget).send(target, value, key_bytes, record_headers)


class ModeSends:
    """The delivery-mode surface of :class:`EventProducer` (a mixin; the producer does the rest).

    Its methods take ``self`` as a :class:`ModeSendsHost`: the producer's own steps.
    """

    @overload
    def send(  # type: ignore[overload-overlap]
        self: ModeSendsHost,
        event: Event,
        *,
        guarantee: Literal[DeliveryGuarantee.QUORUM],
        **options: Unpack[EventSendKeywords],
    ) -> QuorumFuture: ...
    @overload
    def send(
        self: ModeSendsHost,
        event: Event,
        *,
        guarantee: DeliveryGuarantee | str | None = None,
        **options: Unpack[EventSendKeywords],
    ) -> DeliveryFuture | None: ...
    def send(
        self: ModeSendsHost,
        event: Event,
        *,
        key: Key = None,
        topic: str | None = None,
        headers: HeaderInput = None,
        deliver_at: datetime | None = None,
        delay: timedelta | None = None,
        on_delivery: DeliveryCallback | None = None,
        priority: int | None = None,
        guarantee: DeliveryGuarantee | str | None = None,
        required_acks: int | None = None,
        timeout: float = 30.0,
    ) -> DeliveryFuture | QuorumFuture | None:
        """Encode ``event`` and queue it for ``topic`` (default: the event class's topic).

        Args:
            event: a typed event (a :class:`pipeline.Event` subclass instance).
            key: partition key: bytes, str, or a callable of the event.
            topic: destination topic; defaults to ``type(event).topic``.
            headers: extra headers, added after the CloudEvents ones.
            deliver_at: deliver through the scheduler at this (timezone-aware) time.
            delay: deliver through the scheduler after this delay.
            on_delivery: called with ``(result, None)`` or ``(None, error)`` instead of
                returning a future (cheaper when sending many records).
            priority: send to the priority level topic ``<topic>.p<priority>`` (0 highest);
                None: the lowest level of a topic in ``priorities``, else ``topic`` itself.
            guarantee: ``FIRE_AND_FORGET`` (no future, drops counted in
                ``pipeline_producer_records_dropped_total``), ``AT_LEAST_ONCE`` (the default)
                or ``QUORUM`` (with ``required_acks``); README "Delivery modes".
            required_acks: with ``QUORUM``: how many distinct consumer groups (or broadcast
                instances) must acknowledge.
            timeout: with ``QUORUM``: seconds until the future fails with
                ``QuorumNotReached``.

        Returns:
            A future of the delivery result; ``None`` when ``on_delivery`` is given or for
            ``FIRE_AND_FORGET``; a :class:`QuorumFuture` for ``QUORUM``.

        Raises:
            EncodeError: the event does not fit its schema (nothing was queued).
            RecordTooLargeError: the encoded record is over ``message.max.bytes``.
            QueueFullError: the local queue stayed full for ``max_block`` seconds.
            FatalProducerError: the producer hit a fatal error; later sends use a new client.
            ConfigError: a guarantee that is not chosen per send, or ``required_acks``
                without ``QUORUM``; no topic, or ``priority`` is not a level of it.
        """
        if guarantee is _FIRE_AND_FORGET and required_acks is None:  # its hot path, first
            _fire_and_forget(self, event, key, topic, headers, deliver_at, delay, priority)
            return None
        if guarantee is not None or required_acks is not None:
            mode = None if guarantee is None else parse_guarantee(guarantee)
            check_guarantee(mode, required_acks)
            if mode is DeliveryGuarantee.FIRE_AND_FORGET:
                encoded = self._encode(event, key, topic, headers, deliver_at, delay, priority)
                self.modes.fire_and_forget.send(*encoded)
                return None
            if mode is DeliveryGuarantee.QUORUM:
                if deliver_at is not None or delay is not None or on_delivery is not None:
                    raise ConfigError("a QUORUM send takes no deliver_at, delay or on_delivery")
                if priority is not None:
                    raise ConfigError("a QUORUM send takes no priority: pass the level topic")
                assert required_acks is not None
                return self.modes.quorum(event, required_acks, timeout, key=key, topic=topic)
        return self._send_default(
            event, key, topic, headers, deliver_at, delay, on_delivery, priority
        )

    def request(
        self: ModeSendsHost,
        event: Event,
        *,
        reply: type[R],
        timeout: float = 5.0,
        key: Key = None,
        topic: str | None = None,
    ) -> R:
        """Send ``event`` as a request; wait for the handler's typed reply (README "Request-reply").

        The request carries ``pipeline-reply-to`` (this process's reply topic, created on
        first use and deleted on :meth:`close`), ``pipeline-correlation-id`` and
        ``pipeline-deadline``.

        Raises:
            RequestTimeout: no reply within ``timeout`` seconds (a later one is dropped).
            RemoteError: the handler raised (its error type and message).
            DecodeError: the reply could not be decoded as ``reply``.
            DeliveryError: the request itself was not delivered.
        """
        future: concurrent.futures.Future[R] = concurrent.futures.Future()

        def resolve(value: Any, exc: BaseException | None) -> None:
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(value)

        self.modes.request(event, reply, timeout, resolve, key=key, topic=topic)
        # The inbox resolves at the timeout; the margin only guards against a dead inbox. (Not
        # result(timeout): RequestTimeout is a TimeoutError, which result() also raises.)
        concurrent.futures.wait([future], timeout + 10.0)
        if not future.done():
            raise RequestError("the reply inbox stopped answering")
        return future.result()
