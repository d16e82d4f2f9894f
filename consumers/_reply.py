"""The worker side of request-reply and quorum: replies, error replies, acks, deadlines.

A record is a request when it carries ``pipeline-correlation-id`` and ``pipeline-reply-to``;
a quorum send carries ``pipeline-correlation-id`` and ``pipeline-ack-to``. The processor asks
this module before a handler runs (is the deadline past?) and after (reply or acknowledge).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from pipeline._headers import (
    ACK_TO,
    ACKED_BY,
    CORRELATION_ID,
    DEADLINE,
    ERROR_MESSAGE,
    ERROR_TYPE,
    REPLY_TO,
    Headers,
)
from pipeline._labels import GROUP, OUTCOME
from pipeline.avro._events import Event

from ._dead_letter import error_type_of

__all__ = ["REQUEST_OUTCOMES", "Responder", "request_fields"]

_LOG = logging.getLogger("consumers")
_FIELDS = frozenset({CORRELATION_ID, REPLY_TO, ACK_TO, DEADLINE})
_MAX_MESSAGE = 4000  # an error reply's message is cut here (headers are not for essays)

REQUEST_OUTCOMES = (
    "replied",
    "error_replied",
    "expired",
    "no_reply_to",
    "no_reply",
    "acked",
    "reply_failed",
)


def request_fields(headers: Headers) -> dict[str, bytes | None] | None:
    """The request/quorum headers of a record, or None when it has none (the common case)."""
    found: dict[str, bytes | None] | None = None
    for name, value in headers:
        if name in _FIELDS:
            if found is None:
                found = {}
            found[name] = value
    return found


def _deadline_passed(raw: bytes | None, now_ms: int) -> bool:
    if not raw:
        return False
    try:
        return int(raw) <= now_ms
    except ValueError:
        return False  # an unreadable deadline is no deadline: handle it, don't drop it


class Responder:
    """Sends replies and acknowledgements with the worker's producer (in EOS: transactional).

    ``name`` is what acknowledgements carry in ``pipeline-acked-by``: the group, or the
    instance id of a broadcast instance. Counts ``pipeline_worker_requests_total{group,
    outcome}`` with the outcomes in ``REQUEST_OUTCOMES``.
    """

    def __init__(self, producer: Any, group: str, registry: CollectorRegistry) -> None:
        self._producer = producer
        self.group = group
        self.name = group
        self.requests = Counter(
            "pipeline_worker_requests",
            "Requests and quorum sends seen by the worker, by outcome.",
            [GROUP, OUTCOME],
            registry=registry,
        )

        self._counts = {o: self.requests.labels(group, o) for o in REQUEST_OUTCOMES}
        self._delivered_cb = self._delivered  # one object: the producer caches its report

    def count(self, outcome: str) -> None:
        """Count one request outcome."""
        self._counts[outcome].inc()

    def expired(self, fields: dict[str, bytes | None]) -> bool:
        """Whether a request's deadline passed (it is then skipped and counted)."""
        if _deadline_passed(fields.get(DEADLINE), time.time_ns() // 1_000_000):
            self.count("expired")
            return True
        return False

    def succeeded(self, fields: dict[str, bytes | None], result: Any) -> None:
        """After a handler succeeded: reply with its returned event, acknowledge a quorum send."""
        cid = fields.get(CORRELATION_ID)
        if cid is None:
            return
        ack_to = fields.get(ACK_TO)
        if ack_to:
            headers: Headers = [(CORRELATION_ID, cid), (ACKED_BY, self.name.encode())]
            self._producer.send_bytes(
                ack_to.decode(), None, key=cid, headers=headers, on_delivery=self._delivered_cb
            )
            self.count("acked")
        reply_to = fields.get(REPLY_TO)
        if not reply_to:
            if isinstance(result, Event) and not ack_to:
                self.count("no_reply_to")
                _LOG.warning("a request without %s: its reply is dropped", REPLY_TO)
            return
        if not isinstance(result, Event):
            self._error_reply(
                reply_to, cid, "no_reply", f"the handler returned {type(result).__name__}"
            )
            self.count("no_reply")
            return
        self._producer.send(
            result,
            topic=reply_to.decode(),
            key=cid,
            headers=[(CORRELATION_ID, cid)],
            on_delivery=self._delivered_cb,
        )
        self.count("replied")

    def failed(self, fields: dict[str, bytes | None], exc: BaseException) -> bool:
        """After a handler raised on a request: send an error reply; True if it was one.

        A request is not retried: its caller is waiting, and gets a ``RemoteError`` now.
        """
        reply_to = fields.get(REPLY_TO)
        cid = fields.get(CORRELATION_ID)
        if not reply_to or cid is None:
            return False
        self._error_reply(reply_to, cid, error_type_of(exc), str(exc))
        self.count("error_replied")
        return True

    def _error_reply(self, reply_to: bytes, cid: bytes, error_type: str, message: str) -> None:
        headers: Headers = [
            (CORRELATION_ID, cid),
            (ERROR_TYPE, error_type.encode()),
            (ERROR_MESSAGE, message[:_MAX_MESSAGE].encode("utf-8", "replace")),
        ]
        self._producer.send_bytes(
            reply_to.decode(), None, key=cid, headers=headers, on_delivery=self._delivered_cb
        )

    def _delivered(self, result: Any, err: BaseException | None) -> None:
        if err is not None:
            self.count("reply_failed")
            _LOG.warning("a reply or acknowledgement was not delivered: %s", err)
