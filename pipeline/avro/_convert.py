"""Exact model <-> Avro datum conversion, compiled once per (model, schema) pair.

Both directions are generated as straight-line Python per record (see ``_codegen``), because they
sit on the hot path next to fastavro. Exactness: decimals stay ``Decimal`` (precision checked,
scale checked by fastavro), times stay timezone-aware (sub-millisecond digits that
``timestamp-millis`` would silently drop are rejected), Avro ``int`` values are range-checked.
When anything fails, :func:`diagnose` walks the event slowly to name the field.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from pipeline._errors import EncodeError

from ._catalog import SchemaVersion
from ._events import check_model, resolve_named
from ._model_codegen import compile_reader, compile_writer
from ._writer import Writer
from ._writer import compile_writer as compile_avro_writer

__all__ = ["Binding", "bind", "diagnose"]

_INT_LIMITS = {"int": 2**31, "long": 2**63}
_LOGICAL_TYPES: dict[str, type] = {"uuid": uuid.UUID, "date": dt.date}


@dataclass(frozen=True, slots=True)
class Binding:
    """A model checked against one schema version, with its compiled converters.

    ``write`` is the generated Avro writer of the schema (``(datum, prefix) -> bytes``), or
    None when the schema needs fastavro's general writer.
    """

    model: type[BaseModel]
    schema: SchemaVersion
    to_datum: Callable[[BaseModel], dict[str, Any]]
    from_datum: Callable[[dict[str, Any]], BaseModel]
    write: Writer | None = None


def bind(model: type[BaseModel], schema: SchemaVersion) -> Binding:
    """Check ``model`` against ``schema`` and compile its converters.

    Raises:
        SchemaMismatchError: the model does not match the schema.
    """
    check_model(model, schema)
    return Binding(
        model=model,
        schema=schema,
        to_datum=compile_writer(model, schema.parsed, schema.named),
        from_datum=compile_reader(model, schema.parsed, schema.named),
        write=compile_avro_writer(schema.parsed, schema.named),
    )


def diagnose(binding: Binding, event: BaseModel, cause: BaseException) -> EncodeError:
    """Explain why an event does not fit its schema, naming the first field that does not.

    Args:
        binding: the event's binding.
        event: the event that failed to encode.
        cause: what the fast path raised.
    """
    prefix = f"{binding.model.__qualname__} does not fit {binding.schema.label}"
    problem = _record(event, binding.schema.parsed, binding.schema.named, "")
    return EncodeError(f"{prefix}: {problem or cause}")


def _record(obj: Any, avro: dict[str, Any], named: dict[str, Any], prefix: str) -> str | None:
    if not isinstance(obj, BaseModel):
        return f"`{prefix.rstrip('.') or 'event'}`: expected a record, got {type(obj).__name__}"
    values = obj.__dict__
    for field in avro["fields"]:
        name, where = field["name"], f"{prefix}{field['name']}"
        if name not in values:
            return f"`{where}` is missing"
        problem = _value(values[name], field["type"], named, where)
        if problem is not None:
            return problem
    return None


def _value(value: Any, avro: Any, named: dict[str, Any], where: str) -> str | None:
    avro = resolve_named(avro, named)
    if isinstance(avro, list):
        if value is None and "null" in avro:
            return None
        avro = resolve_named(next(b for b in avro if b != "null"), named)
    if value is None:
        return f"`{where}` is None but the schema does not allow null"
    kind = avro.get("type") if isinstance(avro, dict) else avro
    logical = avro.get("logicalType") if isinstance(avro, dict) else None
    if logical == "decimal":
        return _decimal(value, avro.get("precision", 0), avro.get("scale", 0), where)
    if logical in ("timestamp-millis", "timestamp-micros", "time-millis", "time-micros"):
        return _time(value, logical, where)
    if logical in _LOGICAL_TYPES:
        expected = _LOGICAL_TYPES[logical]
        if not isinstance(value, expected) or isinstance(value, dt.datetime):
            return f"`{where}`: {value!r} is not a {expected.__name__}"
        return None
    if logical is None and kind in _INT_LIMITS:
        if type(value) is not int or not -_INT_LIMITS[kind] <= value < _INT_LIMITS[kind]:
            return f"`{where}`: {value!r} is not an Avro {kind}"
        return None
    if kind == "record":
        return _record(value, avro, named, f"{where}.")
    if kind == "enum":
        symbol = value.value if isinstance(value, enum.Enum) else value
        if symbol not in avro["symbols"]:
            return f"`{where}`: {value!r} is not one of {avro['symbols']}"
        return None
    if kind == "array":
        for i, item in enumerate(value):
            problem = _value(item, avro["items"], named, f"{where}[{i}]")
            if problem is not None:
                return problem
        return None
    if kind == "map":
        for key, item in value.items():
            problem = _value(item, avro["values"], named, f"{where}[{key!r}]")
            if problem is not None:
                return problem
        return None
    return _primitive(value, str(kind), where)


def _decimal(value: Any, precision: int, scale: int, where: str) -> str | None:
    if not isinstance(value, Decimal) or not value.is_finite():
        return f"`{where}`: {value!r} is not a finite Decimal"
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -scale:
        return f"`{where}`: {value} has more than {scale} decimal places"
    if value and value.adjusted() + 1 + scale > precision:
        return f"`{where}`: {value} does not fit decimal({precision},{scale})"
    return None


def _time(value: Any, logical: str, where: str) -> str | None:
    expected = dt.datetime if logical.startswith("timestamp") else dt.time
    if not isinstance(value, expected):
        return f"`{where}`: {value!r} is not a {expected.__name__}"
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return f"`{where}`: {value} is not timezone-aware"
    if logical.endswith("millis") and value.microsecond % 1000:
        return f"`{where}`: {value} has sub-millisecond digits the schema would drop"
    return None


_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "bytes": (bytes,),
    "fixed": (bytes,),
    "boolean": (bool,),
    "float": (float, int),
    "double": (float, int),
}


def _primitive(value: Any, kind: str, where: str) -> str | None:
    expected = _PY_TYPES.get(kind)
    if expected is not None and not isinstance(value, expected):
        return f"`{where}`: {value!r} is not an Avro {kind}"
    return None
