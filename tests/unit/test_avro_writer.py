"""The generated Avro writer against fastavro: byte-for-byte equal on every compiled type."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from io import BytesIO
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.avro._convert import bind
from pipeline.avro._writer import compile_writer
from tests.unit.codec_samples import catalog, samples

KITCHEN_SINK: dict[str, Any] = {
    "type": "record",
    "name": "test.Sink",
    "fields": [
        {"name": "s", "type": "string"},
        {"name": "b", "type": "bytes"},
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "t", "type": "boolean"},
        {"name": "n", "type": "null"},
        {"name": "fx", "type": {"type": "fixed", "name": "test.Four", "size": 4}},
        {"name": "e", "type": {"type": "enum", "name": "test.Color", "symbols": ["R", "G", "B"]}},
        {"name": "e2", "type": "test.Color"},
        {
            "name": "dec",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 3},
        },
        {"name": "u", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "tm", "type": {"type": "int", "logicalType": "time-millis"}},
        {"name": "tu", "type": {"type": "long", "logicalType": "time-micros"}},
        {"name": "tsm", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "tsu", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "opt", "type": ["null", "string"]},
        {"name": "opt_last", "type": ["long", "null"]},
        {"name": "arr", "type": {"type": "array", "items": ["null", "int"]}},
        {"name": "m", "type": {"type": "map", "values": {"type": "array", "items": "string"}}},
        {
            "name": "inner",
            "type": {
                "type": "record",
                "name": "test.Inner",
                "fields": [
                    {"name": "x", "type": "long"},
                    {"name": "next", "type": ["null", "test.Inner"]},
                ],
            },
        },
    ],
}

_TZ = st.sampled_from(
    [dt.UTC, dt.timezone(dt.timedelta(hours=-5)), dt.timezone(dt.timedelta(hours=9, minutes=30))]
)
_DATETIMES = st.datetimes(
    min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30), timezones=_TZ
)


def _inner(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    nxt = st.none() if depth == 0 else st.none() | _inner(depth - 1)
    return st.fixed_dictionaries({"x": st.integers(-(2**63), 2**63 - 1), "next": nxt})


SINK_DATUMS = st.fixed_dictionaries(
    {
        "s": st.text(),
        "b": st.binary(),
        "i": st.integers(-(2**31), 2**31 - 1),
        "l": st.integers(-(2**63), 2**63 - 1),
        "f": st.floats(width=32, allow_nan=False),
        "d": st.floats(allow_nan=False),
        "t": st.booleans(),
        "n": st.none(),
        "fx": st.binary(min_size=4, max_size=4),
        "e": st.sampled_from(["R", "G", "B"]),
        "e2": st.sampled_from(["R", "G", "B"]),
        "dec": st.decimals(
            min_value=Decimal("-999999999.999"),
            max_value=Decimal("999999999.999"),
            places=3,
            allow_nan=False,
            allow_infinity=False,
        ),
        "u": st.uuids() | st.uuids().map(str),
        "day": st.dates(),
        "tm": st.times().map(lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000)),
        "tu": st.times(),
        "tsm": _DATETIMES.map(lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000)),
        "tsu": _DATETIMES,
        "opt": st.none() | st.text(),
        "opt_last": st.none() | st.integers(-(2**63), 2**63 - 1),
        "arr": st.lists(st.none() | st.integers(-(2**31), 2**31 - 1), max_size=70),
        "m": st.dictionaries(st.text(), st.lists(st.text(), max_size=3), max_size=5),
        "inner": _inner(3),
    }
)


VALID: dict[str, Any] = {
    "s": "x",
    "b": b"y",
    "i": 1,
    "l": -1,
    "f": 0.5,
    "d": 1e300,
    "t": True,
    "n": None,
    "fx": b"abcd",
    "e": "G",
    "e2": "B",
    "dec": Decimal("-12.5"),
    "u": uuid.uuid4(),
    "day": dt.date(2024, 2, 29),
    "tm": dt.time(23, 59, 59, 999000),
    "tu": dt.time(0, 0, 0, 1),
    "tsm": dt.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=dt.UTC),
    "tsu": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    "opt": None,
    "opt_last": 3,
    "arr": [1, None],
    "m": {"k": ["v"]},
    "inner": {"x": 1, "next": {"x": 2, "next": None}},
}


def one_field(field_type: Any, name: str = "x") -> tuple[dict[str, Any], dict[str, Any]]:
    """A parsed record schema with one field of ``field_type``, and its named types."""
    named: dict[str, Any] = {}
    record = {"type": "record", "name": "test.One", "fields": [{"name": name, "type": field_type}]}
    return parse_schema(record, named_schemas=named), named


def _fastavro(schema: dict[str, Any], datum: dict[str, Any]) -> bytes:
    buffer = BytesIO()
    schemaless_writer(buffer, schema, datum)
    return buffer.getvalue()


@settings(max_examples=300, deadline=None)
@given(SINK_DATUMS)
def test_kitchen_sink_matches_fastavro(datum: dict[str, Any]) -> None:
    named: dict[str, Any] = {}
    schema = parse_schema(KITCHEN_SINK, named_schemas=named)
    writer = compile_writer(schema, named)
    assert writer is not None
    assert writer(datum, b"\xc3\x01") == b"\xc3\x01" + _fastavro(schema, datum)


@pytest.mark.parametrize("event", samples(), ids=lambda e: type(e).__name__)
def test_example_events_match_fastavro(event: Any) -> None:
    version = catalog().get(event.subject, event.version)
    binding = bind(type(event), version)
    writer = compile_writer(version.parsed, version.named)
    assert writer is not None
    datum = binding.to_datum(event)
    assert writer(datum, b"") == _fastavro(version.parsed, datum)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("s", b"bytes"),
        ("b", "text"),
        ("i", 1.5),
        ("fx", b"abc"),
        ("fx", 4),
        ("e", "PURPLE"),
        ("dec", Decimal("1.0001")),
        ("u", 42),
        ("tsm", dt.datetime(2024, 1, 1)),
        ("n", 0),
        ("opt", 7),
    ],
)
def test_wrong_values_raise(field: str, value: Any) -> None:
    named: dict[str, Any] = {}
    schema = parse_schema(KITCHEN_SINK, named_schemas=named)
    writer = compile_writer(schema, named)
    assert writer is not None
    datum = {**VALID, field: value}
    assert writer(VALID, b"")  # the datum is valid without the wrong value
    with pytest.raises((TypeError, ValueError, KeyError, AttributeError)):
        writer(datum, b"")


@pytest.mark.parametrize(
    "field_type",
    [
        ["null", "string", "long"],
        ["string", "long"],
        {
            "type": "fixed",
            "name": "test.Money",
            "size": 8,
            "logicalType": "decimal",
            "precision": 10,
        },
        {"type": "long", "logicalType": "local-timestamp-millis"},
    ],
)
def test_unsupported_schemas_fall_back(field_type: Any) -> None:
    schema, named = one_field(field_type)
    assert compile_writer(schema, named) is None


def test_uuid_objects_and_strings_write_alike() -> None:
    schema, named = one_field({"type": "string", "logicalType": "uuid"}, name="u")
    writer = compile_writer(schema, named)
    assert writer is not None
    value = uuid.uuid4()
    assert (
        writer({"u": value}, b"")
        == writer({"u": str(value)}, b"")
        == _fastavro(schema, {"u": value})
    )
