"""The generated Avro reader against fastavro: equal datums, and only clean errors on junk."""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
from io import BytesIO
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.avro._convert import bind
from pipeline.avro._reader import compile_reader
from tests.unit.codec_samples import catalog, samples
from tests.unit.test_avro_writer import KITCHEN_SINK, SINK_DATUMS, VALID, one_field

_NAMED: dict[str, Any] = {}
_SINK = parse_schema(KITCHEN_SINK, named_schemas=_NAMED)
_READ = compile_reader(_SINK, _NAMED)


def _strict(value: Any) -> Any:
    """Make equal-but-different values unequal: a Decimal's exponent, a datetime's zone."""
    if isinstance(value, decimal.Decimal):
        return ("decimal", str(value))
    if isinstance(value, dt.datetime):
        return ("datetime", value.isoformat(), value.tzinfo)
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strict(v) for v in value]
    return (type(value).__name__, value)


def _encode(schema: dict[str, Any], datum: dict[str, Any]) -> bytes:
    buffer = BytesIO()
    schemaless_writer(buffer, schema, datum)
    return buffer.getvalue()


def _fastavro(schema: dict[str, Any], data: bytes) -> Any:
    return schemaless_reader(BytesIO(data), schema, None)


@settings(max_examples=300, deadline=None)
@given(SINK_DATUMS)
def test_kitchen_sink_reads_like_fastavro(datum: dict[str, Any]) -> None:
    assert _READ is not None
    data = b"\x00\x01" + _encode(_SINK, datum)
    ours, end = _READ(data, 2)
    assert end == len(data)
    assert _strict(ours) == _strict(_fastavro(_SINK, data[2:]))


@pytest.mark.parametrize("event", samples(), ids=lambda e: type(e).__name__)
def test_example_schemas_read_like_fastavro(event: Any) -> None:
    version = catalog().get(event.subject, event.version)
    reader = compile_reader(version.parsed, version.named)
    assert reader is not None
    data = _encode(version.parsed, bind(type(event), version).to_datum(event))
    datum, end = reader(data, 0)
    assert end == len(data)
    assert _strict(datum) == _strict(_fastavro(version.parsed, data))


def test_negative_block_counts_are_read() -> None:
    schema, named = one_field({"type": "array", "items": "long"}, name="a")
    reader = compile_reader(schema, named)
    assert reader is not None
    # one block of -2 items with its byte size (2), then the end marker
    data = bytes([0x03, 0x04, 0x02, 0x04, 0x00])
    assert reader(data, 0) == ({"a": [1, 2]}, 5) == (_fastavro(schema, data), 5)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_junk_raises_only_clean_errors(data: bytes) -> None:
    assert _READ is not None
    with contextlib.suppress(EOFError, IndexError, ValueError, OverflowError, ArithmeticError):
        _READ(data, 0)  # anything else (TypeError, KeyError, a hang) fails the test


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_truncated_records_raise_eof(data: st.DataObject) -> None:
    assert _READ is not None
    full = _encode(_SINK, VALID)
    cut = data.draw(st.integers(0, len(full) - 1))
    with pytest.raises((EOFError, IndexError)):
        _READ(full[:cut], 0)


def test_huge_counts_are_refused_before_allocating() -> None:
    schema, named = one_field({"type": "array", "items": "string"}, name="a")
    reader = compile_reader(schema, named)
    assert reader is not None
    with pytest.raises(EOFError):
        reader(bytes([0xFE, 0xFF, 0xFF, 0xFF, 0x0F]), 0)  # 2**31 - 1 items in 5 bytes


def test_zero_size_items_fall_back_to_fastavro() -> None:
    schema, named = one_field({"type": "array", "items": "null"}, name="a")
    assert compile_reader(schema, named) is None
