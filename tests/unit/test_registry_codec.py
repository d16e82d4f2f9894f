"""The Confluent wire format through confluent-kafka's Schema Registry client (``mock://``)."""

from __future__ import annotations

import json

import pytest
from confluent_kafka.schema_registry import Schema, topic_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from examples.orders.events import OrderPlaced, OrderPlacedV1
from pipeline._errors import (
    BadMagicByteError,
    SchemaNotFoundError,
    TruncatedRecordError,
    UnknownSchemaError,
)
from pipeline._settings import Settings
from pipeline.avro._codec import Codec
from pipeline.avro._registry import RegistryFraming, registry_client, registry_latest
from tests.unit.codec_samples import MODELS, catalog, order_v1, order_v2

CTX = SerializationContext("orders", MessageField.VALUE)


def _codec(client: object, models: list[type] | None = None, **options: object) -> Codec:
    cat = catalog()
    return Codec(cat, models or MODELS, framing=RegistryFraming(client, cat, **options))  # type: ignore[arg-type]


def test_wire_format_and_auto_registration() -> None:
    client = registry_client("mock://wire")
    codec = _codec(client)
    event = order_v2()
    data = codec.encode(event)
    registered = client.get_latest_version("orders.OrderPlaced")
    assert data[:5] == b"\x00" + registered.schema_id.to_bytes(4, "big")
    assert json.loads(registered.schema.schema_str)["name"] == "OrderPlaced"
    assert codec.decode(data) == event


def test_cross_reads_between_producers_and_consumers() -> None:
    client = registry_client("mock://cross")
    producer = _codec(client, [OrderPlacedV1])
    consumer = _codec(client, [OrderPlaced])  # a separate process: fetches schemas by id
    as_v2 = consumer.decode(producer.encode(order_v1()))
    assert isinstance(as_v2, OrderPlaced)
    assert as_v2.customer_id == "cust-42"
    assert consumer.subject_of(producer.encode(order_v1())) == "orders.OrderPlaced"
    back = producer.decode(consumer.encode(order_v2()), OrderPlacedV1)
    assert back.customer_id == "cust-7"


def test_interoperates_with_confluent_avro_serde() -> None:
    client = registry_client("mock://interop")
    codec = _codec(client)
    ours = codec.encode(order_v1())
    theirs = AvroDeserializer(client)(ours, CTX)
    assert theirs["customer_id"] == "cust-42"
    schema_str = json.dumps(catalog().get("orders.OrderPlaced", 2).raw)
    serializer = AvroSerializer(client, schema_str, conf={"subject.name.strategy": lambda c, n: n})
    decoded = codec.decode(serializer(order_v2().model_dump(mode="python"), CTX), OrderPlaced)
    assert decoded.coupon_code == "SPRING"


def test_subject_naming_strategy_and_lookup_only() -> None:
    client = registry_client("mock://strategy")
    codec = _codec(client, subject_name_strategy=topic_subject_name_strategy)
    codec.encode(order_v2(), topic="orders")
    assert client.get_subjects() == ["orders-value"]
    strict = _codec(registry_client("mock://strict"), auto_register=False)
    with pytest.raises(SchemaNotFoundError, match="auto-registration is off"):
        strict.encode(order_v2())


def test_lookup_only_uses_registered_ids() -> None:
    client = registry_client("mock://lookup")
    schema = Schema(json.dumps(catalog().get("orders.OrderPlaced", 2).raw), "AVRO")
    schema_id = client.register_schema("orders.OrderPlaced", schema)
    data = _codec(client, auto_register=False).encode(order_v2())
    assert data[:5] == b"\x00" + schema_id.to_bytes(4, "big")


def test_registry_decode_errors() -> None:
    codec = _codec(registry_client("mock://errors"))
    with pytest.raises(BadMagicByteError):
        codec.decode(b"\xc3\x01" + bytes(20))
    with pytest.raises(TruncatedRecordError):
        codec.decode(b"\x00\x00\x01")
    with pytest.raises(UnknownSchemaError, match="schema id 99 is not in the registry") as info:
        codec.decode(b"\x00\x00\x00\x00\x63\x02")
    assert info.value.data == b"\x00\x00\x00\x00\x63\x02"


def test_from_settings_picks_the_framing() -> None:
    plain = Codec.from_settings(Settings(), MODELS)
    assert plain.encode(order_v2())[:2] == b"\xc3\x01"
    registry = Codec.from_settings(Settings(schema_registry_url="mock://settings"), MODELS)
    assert registry.encode(order_v2())[:1] == b"\x00"


def test_registry_latest() -> None:
    client = registry_client("mock://latest")
    assert registry_latest(client, "orders.OrderPlaced") is None
    _codec(client).encode(order_v1())
    latest = registry_latest(client, "orders.OrderPlaced")
    assert latest is not None
    assert latest.fingerprint == catalog().get("orders.OrderPlaced", 1).fingerprint
