"""The Avro codec with single-object framing: round trips, cross-reads, bytes and errors."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from confluent_kafka.serialization import MessageField, SerializationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from examples.orders.events import (
    OrderPlaced,
    OrderPlacedV1,
    PaymentCaptured,
    ReminderDue,
    ReminderKind,
    SalesChannel,
)
from pipeline._errors import (
    BadMagicByteError,
    DecodeError,
    EncodeError,
    RecordCoordinates,
    SchemaResolutionError,
    TruncatedRecordError,
    UnknownSchemaError,
)
from pipeline.avro._codec import Codec
from pipeline.avro._events import Event
from tests.unit.codec_samples import MODELS, catalog, order_v1, order_v2, samples
from tests.unit.test_catalog import _reference_crc64

CODEC = Codec(catalog(), MODELS)
WHERE = RecordCoordinates(topic="orders", partition=3, offset=42, key=b"k")


def _avro_long(n: int) -> bytes:
    """Avro zig-zag varint, written from the spec rather than taken from fastavro."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z & ~0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _avro_string(s: str) -> bytes:
    raw = s.encode()
    return _avro_long(len(raw)) + raw


@pytest.mark.parametrize("event", samples(), ids=lambda e: type(e).__name__)
def test_round_trip_every_example_schema(event: Event) -> None:
    data = CODEC.encode(event)
    decoded = CODEC.decode(data, type(event))
    assert type(decoded) is type(event)
    assert decoded == event
    # The fast constructor builds what pydantic validation would build from the same values.
    assert decoded == type(event).model_validate(decoded.model_dump())
    assert decoded.model_dump() == event.model_dump()


def test_logical_types_are_exact() -> None:
    event = order_v1()
    decoded = CODEC.decode(CODEC.encode(event), OrderPlacedV1)
    assert decoded.placed_at == event.placed_at
    assert decoded.placed_at.utcoffset() == dt.timedelta(0)  # aware, normalised to UTC
    assert decoded.placed_at.microsecond == 999000
    assert isinstance(decoded.total, Decimal)
    assert decoded.total == Decimal("9999999999.99")
    assert decoded.items[1].unit_price == Decimal("-0.01")
    assert decoded.order_id == uuid.UUID("1b4e28ba-2fa1-11d2-883f-0016d3cca427")


def test_single_object_framing_byte_for_byte() -> None:
    event = ReminderDue(
        reminder_id=uuid.UUID("12345678-1234-5678-1234-567812345678"),
        due_at=dt.datetime(2024, 1, 1, 0, 0, 0, 500000, tzinfo=dt.UTC),
        due_date=dt.date(1970, 1, 2),
        kind=ReminderKind.REVIEW_REQUEST,
        message="hi",
        tags=["x"],
    )
    schema = catalog().get("reminders.ReminderDue", 1)
    fingerprint = _reference_crc64(schema.canonical.encode()).to_bytes(8, "little")
    body = (
        _avro_string("12345678-1234-5678-1234-567812345678")
        + b"\x00"  # order_id: union branch 0 (null)
        + _avro_long(1704067200500)  # due_at in epoch millis
        + _avro_long(1)  # due_date in epoch days
        + _avro_long(2)  # kind: symbol index
        + _avro_string("hi")
        + _avro_long(0)  # attempt
        + _avro_long(1)
        + _avro_string("x")
        + b"\x00"  # tags: one block of one, then end
    )
    assert CODEC.encode(event) == b"\xc3\x01" + fingerprint + body


def test_v1_records_decode_into_v2_and_back() -> None:
    v1 = order_v1()
    as_v2 = CODEC.decode(CODEC.encode(v1), OrderPlaced)
    assert isinstance(as_v2, OrderPlaced)
    assert as_v2.model_dump(exclude={"channel", "coupon_code", "attributes"}) == v1.model_dump()
    assert (as_v2.channel, as_v2.coupon_code, as_v2.attributes) == (SalesChannel.WEB, None, {})

    v2 = order_v2()
    as_v1 = CODEC.decode(CODEC.encode(v2), OrderPlacedV1)
    assert isinstance(as_v1, OrderPlacedV1)
    assert as_v1.model_dump() == v2.model_dump(exclude={"channel", "coupon_code", "attributes"})


def test_default_reader_is_the_newest_registered_model() -> None:
    assert isinstance(CODEC.decode(CODEC.encode(order_v1())), OrderPlaced)
    only_v1 = Codec(catalog(), [OrderPlacedV1])
    assert isinstance(only_v1.decode(CODEC.encode(order_v2())), OrderPlacedV1)
    assert CODEC.subject_of(CODEC.encode(order_v1())) == "orders.OrderPlaced"
    writer, datum = CODEC.decode_datum(CODEC.encode(order_v1()))
    assert (writer.version, datum["customer_id"]) == (1, "cust-42")


def test_serializer_contract() -> None:
    ctx = SerializationContext("orders", MessageField.VALUE)
    event = order_v2()
    data = CODEC(event, ctx)
    assert data == CODEC.encode(event)
    assert CODEC(None, ctx) is None
    deserialize = CODEC.deserializer(OrderPlaced)
    assert deserialize(data, ctx) == event
    assert deserialize(None, ctx) is None
    with pytest.raises(BadMagicByteError) as info:
        deserialize(b"\x00\x00", ctx)
    assert info.value.coordinates.topic == "orders"


def _decode_error(data: bytes, reader: type[Event] | None = None) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        CODEC.decode(data, reader, coordinates=WHERE)
    assert info.value.data == data
    assert info.value.coordinates == WHERE
    assert "orders[3]@42" in str(info.value)
    return info.value


def test_decode_errors_carry_bytes_and_coordinates() -> None:
    good = CODEC.encode(order_v2())
    assert isinstance(_decode_error(b"\x00\x00\x00\x00\x01" + good[10:]), BadMagicByteError)
    assert isinstance(_decode_error(b""), BadMagicByteError)
    assert isinstance(_decode_error(good[:6]), TruncatedRecordError)
    unknown = _decode_error(b"\xc3\x01" + bytes(8) + good[10:])
    assert isinstance(unknown, UnknownSchemaError)
    assert "0000000000000000" in str(unknown)
    assert isinstance(_decode_error(good[:-1]), TruncatedRecordError)
    assert "trailing" in str(_decode_error(good + b"\x00"))
    resolution = _decode_error(good, PaymentCaptured)
    assert isinstance(resolution, SchemaResolutionError)


def test_decode_without_a_registered_model() -> None:
    bare = Codec(catalog())
    with pytest.raises(UnknownSchemaError, match="no event model is registered"):
        bare.decode(CODEC.encode(order_v2()))


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"total": Decimal("1.234")}, "`total`: 1.234 has more than 2 decimal places"),
        ({"total": Decimal("1e12")}, r"`total`: 1E\+12 does not fit decimal\(12,2\)"),
        ({"total": Decimal("NaN")}, "`total`: Decimal\\('NaN'\\) is not a finite Decimal"),
        (
            {"placed_at": dt.datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=dt.UTC)},
            "`placed_at`: .* sub-millisecond digits",
        ),
        ({"attributes": {"a": 1}}, r"`attributes\['a'\]`: 1 is not an Avro string"),
    ],
)
def test_encode_error_names_the_field(update: dict[str, object], message: str) -> None:
    event = order_v2().model_copy(update=update)
    with pytest.raises(EncodeError, match=message):
        CODEC.encode(event)


def test_encode_error_names_nested_fields() -> None:
    event = order_v2()
    item = event.items[0].model_copy(update={"quantity": 2**31})
    with pytest.raises(EncodeError, match=r"`items\[0\]\.quantity`: 2147483648 is not an Avro int"):
        CODEC.encode(event.model_copy(update={"items": [item]}))


HEADERS = [b"\xc3\x01" + sv.fingerprint for sv in catalog()]
VALID = [CODEC.encode(event) for event in samples()]
FUZZ = settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _only_decode_errors(data: bytes) -> None:
    try:
        CODEC.decode(data)
    except DecodeError as exc:
        error: DecodeError | None = exc
    else:
        error = None
    assert error is None or error.data == data


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_decode_error(data: bytes) -> None:
    _only_decode_errors(data)


@FUZZ
@given(st.sampled_from(HEADERS), st.binary(max_size=300))
def test_arbitrary_bodies_behind_known_headers_raise_only_decode_error(
    header: bytes, body: bytes
) -> None:
    _only_decode_errors(header + body)


@FUZZ
@given(st.sampled_from(VALID), st.data())
def test_corrupted_records_raise_only_decode_error(valid: bytes, data: st.DataObject) -> None:
    position = data.draw(st.integers(10, len(valid) - 1))
    replacement = data.draw(st.binary(min_size=0, max_size=4))
    _only_decode_errors(valid[:position] + replacement + valid[position + 1 :])
