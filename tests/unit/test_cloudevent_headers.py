"""The header set of a typed send, pinned: names, order and value formats (README "Record headers").

The send path builds these headers from cached pieces (per-class ``ce_type``, batched ids, a
per-millisecond ``ce_time``, a per-context ``traceparent``); these tests fail if any cached
piece leaks between classes, contexts or records.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from opentelemetry import context as otel_context
from opentelemetry import trace
from prometheus_client import CollectorRegistry

from examples.orders.events import Address, LineItem, OrderPlaced, PaymentCaptured, PaymentMethod
from pipeline import load_settings
from producers import EventProducer
from producers._headers import cloudevent_headers, new_event_id, traceparent

_CE_TIME = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")
_NAMES = ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type"]


def _order() -> OrderPlaced:
    return OrderPlaced(
        order_id=uuid.uuid4(),
        customer_id="c-1",
        placed_at=datetime.now(UTC).replace(microsecond=0),
        items=[LineItem(sku="s", quantity=1, unit_price=Decimal("1.00"))],
        total=Decimal("1.00"),
        shipping_address=Address(line1="1", city="x", postal_code="1", country="FR"),
    )


def _payment() -> PaymentCaptured:
    return PaymentCaptured(
        payment_id=uuid.uuid4(),
        order_id=uuid.uuid4(),
        amount=Decimal("1.00"),
        currency="EUR",
        method=PaymentMethod.CARD,
        captured_at=datetime.now(UTC).replace(microsecond=0),
    )


def _check_common(headers: list[tuple[str, bytes | None]], source: bytes, ce_type: bytes) -> None:
    assert [name for name, _ in headers[:6]] == _NAMES
    values = dict(headers)
    assert values["ce_specversion"] == b"1.0"
    ce_id = values["ce_id"] or b""
    parsed = uuid.UUID(ce_id.decode())
    assert parsed.version == 4
    assert parsed.variant == uuid.RFC_4122
    assert str(parsed).encode() == ce_id  # canonical, lower-case, hyphenated
    assert values["ce_source"] == source
    assert values["ce_type"] == ce_type
    ce_time = values["ce_time"] or b""
    assert _CE_TIME.match(ce_time), ce_time
    sent = datetime.fromisoformat(ce_time.decode())
    assert abs(datetime.now(UTC) - sent) < timedelta(seconds=5)
    assert values["content-type"] == b"application/avro"


def test_headers_without_a_span_are_exactly_the_cloudevents_set() -> None:
    headers = cloudevent_headers(b"svc", b"orders.OrderPlaced")
    assert len(headers) == 6
    _check_common(headers, b"svc", b"orders.OrderPlaced")


def test_event_ids_are_unique_uuid4s_across_batches() -> None:
    ids = [new_event_id() for _ in range(5000)]  # several refills
    assert len(set(ids)) == len(ids)
    for ce_id in ids[::97]:
        assert uuid.UUID(ce_id.decode()).version == 4


def test_traceparent_follows_the_current_span_context() -> None:
    assert traceparent() is None
    spans = [
        trace.NonRecordingSpan(
            trace.SpanContext(
                trace_id=0x0AF7651916CD43DD8448EB211C80319C + n,
                span_id=0xB7AD6B7169203331 + n,
                is_remote=False,
                trace_flags=trace.TraceFlags(n % 2),
            )
        )
        for n in range(2)
    ]
    seen = []
    for n, span in enumerate(spans):
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            headers = cloudevent_headers(b"svc", b"t")
            assert traceparent() == headers[-1][1]
        finally:
            otel_context.detach(token)
        assert headers[-1][0] == "traceparent"
        ctx = span.get_span_context()
        expected = f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-0{n % 2}".encode()
        assert headers[-1][1] == expected
        seen.append(headers[-1][1])
    assert seen[0] != seen[1]
    assert len(cloudevent_headers(b"svc", b"t")) == 6  # out of the spans again: none


def test_producer_headers_per_class_and_extra_headers() -> None:
    settings = load_settings(client_id="orders-svc")
    producer = EventProducer(settings, registry=CollectorRegistry())
    topic, value, key, headers = producer._encode(_order(), "k", "t", {"x-team": "a"}, None, None)
    assert (topic, key) == ("t", b"k")
    assert value[:2] == b"\xc3\x01"
    _check_common(headers, b"orders-svc", b"orders.OrderPlaced")
    assert headers[6:] == [("x-team", b"a")]
    _, _, _, second = producer._encode(_payment(), None, "t", None, None, None)
    _check_common(second, b"orders-svc", b"payments.PaymentCaptured")
    assert len(second) == 6
    assert dict(second)["ce_id"] != dict(headers)["ce_id"]
