"""``python -m bench codec``: our Avro codec against direct fastavro and confluent's AvroSerializer.

What is counted, per record, same record, same process, rounds interleaved:

* ours: ``OrderPlaced`` model -> ``Codec.encode`` (single-object framing, exactness checks) ->
  bytes -> ``Codec.decode`` -> ``OrderPlaced`` model (writer schema found by fingerprint);
* fastavro: the same values as a dict -> ``schemaless_writer`` -> bytes -> ``schemaless_reader``
  -> dict, same parsed schema, no framing;
* confluent: the same dict -> ``AvroSerializer`` (``mock://`` registry, Confluent framing) ->
  bytes -> ``AvroDeserializer`` -> dict.

``ratio`` is the median over rounds of (our round trips per second / fastavro's); 1.0 means no
overhead, the target is >= 0.8 (our time within 1.25x of fastavro's).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from fastavro import schemaless_reader, schemaless_writer

from bench._common import emit, median, timed_rate
from examples.orders.events import Address, LineItem, OrderPlaced, SalesChannel
from pipeline.avro._catalog import Catalog
from pipeline.avro._codec import Codec
from pipeline.avro._registry import registry_client

__all__ = ["main"]


def _event() -> OrderPlaced:
    return OrderPlaced(
        order_id=uuid.uuid4(),
        customer_id="customer-000042",
        placed_at=dt.datetime(2024, 5, 1, 12, 30, 15, 250000, tzinfo=dt.UTC),
        items=[
            LineItem(sku="SKU-1001", quantity=2, unit_price=Decimal("19.99")),
            LineItem(sku="SKU-2002", quantity=1, unit_price=Decimal("5.00")),
        ],
        total=Decimal("44.98"),
        currency="EUR",
        shipping_address=Address(
            line1="Damrak 1", city="Amsterdam", postal_code="1012 LG", country="NL"
        ),
        channel=SalesChannel.MOBILE,
        coupon_code="SPRING",
        attributes={"gift": "yes"},
    )


def _contenders(records: int) -> dict[str, Callable[[], int]]:
    catalog = Catalog.load()
    codec = Codec(catalog, [OrderPlaced])
    event = _event()
    schema = catalog.get(OrderPlaced.subject, OrderPlaced.version)
    parsed = schema.parsed
    datum: dict[str, Any] = _plain_dict(codec.decode_datum(codec.encode(event))[1])
    client = registry_client("mock://bench")
    serializer = AvroSerializer(client, json.dumps(schema.raw))
    deserializer = AvroDeserializer(client, json.dumps(schema.raw))
    ctx = SerializationContext("orders", MessageField.VALUE)
    assert codec.decode(codec.encode(event)) == event

    def ours() -> int:
        encode, decode = codec.encode, codec.decode
        for _ in range(records):
            decode(encode(event))
        return records

    def fastavro_direct() -> int:
        for _ in range(records):
            buffer = io.BytesIO()
            schemaless_writer(buffer, parsed, datum)
            schemaless_reader(io.BytesIO(buffer.getvalue()), parsed)
        return records

    def confluent() -> int:
        for _ in range(records):
            deserializer(serializer(datum, ctx), ctx)
        return records

    return {"ours": ours, "fastavro": fastavro_direct, "confluent": confluent}


def _plain_dict(value: Any) -> Any:
    """Deep-copy a decoded datum into fresh containers (the dict a user would hand fastavro)."""
    if isinstance(value, dict):
        return {k: _plain_dict(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_dict(v) for v in value]
    return value


def main(argv: list[str]) -> int:
    """Run the codec benchmark; the last output line is the JSON summary."""
    parser = argparse.ArgumentParser(prog="python -m bench codec")
    parser.add_argument(
        "--records", type=int, default=5000, help="round trips per contender per round"
    )
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds (median taken)")
    args = parser.parse_args(argv)
    contenders = _contenders(args.records)
    for run in contenders.values():  # warm-up: compile paths, fill caches
        timed_rate(run)
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    ratios: list[float] = []
    versus: list[float] = []
    for _ in range(args.rounds):
        for name, run in contenders.items():
            rates[name].append(timed_rate(run))
        ratios.append(rates["ours"][-1] / rates["fastavro"][-1])
        versus.append(rates["ours"][-1] / rates["confluent"][-1])
    print("counted: model->bytes->model (ours) vs dict->bytes->dict (fastavro, confluent)")
    for name, values in rates.items():
        rate = median(values)
        print(f"{name:<10} {rate:>10.0f} round trips/s  {1e6 / rate:>7.2f} us per encode+decode")
    ratio = median(ratios)
    print(f"ours/fastavro throughput ratio {ratio:.3f} (target >= 0.8, i.e. within 1.25x)")
    emit(
        "codec",
        ratio,
        vs_confluent=median(versus),
        ours_us=1e6 / median(rates["ours"]),
        fastavro_us=1e6 / median(rates["fastavro"]),
        confluent_us=1e6 / median(rates["confluent"]),
        counted="ours: model->bytes->model; fastavro and confluent: dict->bytes->dict",
    )
    return 0
