"""Typed events: pydantic models bound to a schema subject and version, and the model check."""

from __future__ import annotations

import datetime as dt
import enum
import types
import uuid
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Union, get_args, get_origin

from pydantic import AwareDatetime, BaseModel, ConfigDict
from pydantic_core import PydanticUndefined

from pipeline._errors import SchemaMismatchError

from ._catalog import SchemaVersion

__all__ = ["Event", "Record", "check_model", "resolve_named", "split_optional"]

_PRIMITIVES: dict[str, type] = {
    "string": str,
    "int": int,
    "long": int,
    "float": float,
    "double": float,
    "boolean": bool,
    "bytes": bytes,
    "fixed": bytes,
}
_LOGICAL: dict[str, type] = {
    "decimal": Decimal,
    "timestamp-millis": AwareDatetime,
    "timestamp-micros": AwareDatetime,
    "date": dt.date,
    "time-millis": dt.time,
    "time-micros": dt.time,
    "uuid": uuid.UUID,
}


class Record(BaseModel):
    """Base for nested Avro records inside an event: immutable, unknown fields rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Event(Record):
    """Base for a typed event, bound to one version of one schema subject.

    Subclasses set the ClassVars::

        class OrderPlaced(Event):
            subject: ClassVar[str] = "orders.OrderPlaced"
            version: ClassVar[int] = 2
            topic: ClassVar[str | None] = "orders"

            order_id: UUID
            ...

    Fields map to Avro as: ``str``/``int``/``float``/``bool``/``bytes`` to primitives,
    ``Decimal`` to ``decimal``, ``AwareDatetime`` to ``timestamp-millis``/``-micros``, ``date``,
    ``time``, ``UUID`` to the logical types, ``Enum`` (string values) to enums, ``Record``
    subclasses to nested records, ``list``/``dict[str, T]`` to arrays/maps and ``T | None`` to
    ``["null", T]``. :func:`check_model` verifies this against the schema.
    """

    subject: ClassVar[str]
    version: ClassVar[int]
    topic: ClassVar[str | None] = None


def resolve_named(avro: Any, named: dict[str, Any]) -> Any:
    """Replace a reference to a named type by its definition."""
    if isinstance(avro, str) and avro in named:
        return named[avro]
    return avro


def split_optional(annotation: Any) -> tuple[Any, bool]:
    """Return ``(T, True)`` for ``T | None``, else ``(annotation, False)``; strips Annotated."""
    annotation = _strip(annotation)
    if get_origin(annotation) in (Union, types.UnionType):
        args = get_args(annotation)
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and len(args) == 2:
            return _strip(rest[0]), True
    return annotation, False


def _strip(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def check_model(model: type[BaseModel], schema: SchemaVersion) -> None:
    """Verify that a model matches a schema version field by field.

    Compares field names, types (including logical types, enum symbols, nested records, arrays
    and maps), optionality and defaults.

    Args:
        model: the pydantic model (usually an :class:`Event` subclass).
        schema: the schema version it claims to implement.

    Raises:
        SchemaMismatchError: naming the first mismatch.
    """
    problem = _record_problem(model, schema.parsed, schema.named, "")
    if problem is not None:
        raise SchemaMismatchError(f"{model.__qualname__} does not match {schema.label}: {problem}")


def _record_problem(
    model: type[BaseModel], avro: dict[str, Any], named: dict[str, Any], prefix: str
) -> str | None:
    fields = model.model_fields
    avro_names = set()
    for avro_field in avro["fields"]:
        name = avro_field["name"]
        avro_names.add(name)
        where = f"{prefix}{name}"
        if name not in fields:
            return f"field `{where}` is in the schema but not in the model"
        info = fields[name]
        problem = _type_problem(info.annotation, avro_field["type"], named, where)
        if problem is None:
            problem = _default_problem(
                info.get_default(call_default_factory=True), avro_field, where
            )
        if problem is not None:
            return problem
    for name in fields:
        if name not in avro_names:
            return f"field `{prefix}{name}` is in the model but not in the schema"
    return None


def _type_problem(annotation: Any, avro: Any, named: dict[str, Any], where: str) -> str | None:
    inner, optional = split_optional(annotation)
    avro = resolve_named(avro, named)
    if isinstance(avro, list):
        branches = [b for b in avro if b != "null"]
        nullable = len(branches) < len(avro)
        if len(branches) != 1:
            return f"`{where}`: only unions of null and one type are supported"
        if nullable and not optional:
            return f"`{where}` is nullable in the schema but not Optional in the model"
        avro = resolve_named(branches[0], named)
        if nullable:
            return _plain_problem(inner, avro, named, where)
    if optional:
        return f"`{where}` is Optional in the model but not nullable in the schema"
    return _plain_problem(inner, avro, named, where)


def _plain_problem(annotation: Any, avro: Any, named: dict[str, Any], where: str) -> str | None:
    kind = avro.get("type") if isinstance(avro, dict) else avro
    logical = avro.get("logicalType") if isinstance(avro, dict) else None
    if logical in _LOGICAL:
        return _expect(annotation, _LOGICAL[logical], _describe(avro), where)
    if kind == "record":
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return f"`{where}`: schema has record {avro['name']}, model has {_name(annotation)}"
        return _record_problem(annotation, avro, named, f"{where}.")
    if kind == "enum":
        return _enum_problem(annotation, avro, where)
    if kind in ("array", "map"):
        return _container_problem(annotation, avro, named, where)
    if kind in _PRIMITIVES:
        return _expect(annotation, _PRIMITIVES[kind], kind, where)
    return f"`{where}`: unsupported Avro type {kind!r}"


def _expect(annotation: Any, expected: type, avro_text: str, where: str) -> str | None:
    if annotation is expected:
        return None
    hint = " (use AwareDatetime: times must be timezone-aware)" if annotation is dt.datetime else ""
    return f"`{where}`: schema has {avro_text}, model has {_name(annotation)}{hint}"


def _enum_problem(annotation: Any, avro: dict[str, Any], where: str) -> str | None:
    if not (isinstance(annotation, type) and issubclass(annotation, enum.Enum)):
        return f"`{where}`: schema has enum {avro['name']}, model has {_name(annotation)}"
    values = [member.value for member in annotation]
    if values != list(avro["symbols"]):
        return (
            f"`{where}`: enum {_name(annotation)} values {values} differ from the schema's "
            f"symbols {list(avro['symbols'])}"
        )
    return None


def _container_problem(
    annotation: Any, avro: dict[str, Any], named: dict[str, Any], where: str
) -> str | None:
    origin, args = get_origin(annotation), get_args(annotation)
    if avro["type"] == "array":
        if origin is not list or len(args) != 1:
            return f"`{where}`: schema has array, model has {_name(annotation)}"
        return _type_problem(args[0], avro["items"], named, f"{where}[]")
    if origin is not dict or len(args) != 2 or _strip(args[0]) is not str:
        return f"`{where}`: schema has map, model has {_name(annotation)}"
    return _type_problem(args[1], avro["values"], named, f"{where}{{}}")


def _default_problem(default: Any, avro_field: dict[str, Any], where: str) -> str | None:
    has_avro = "default" in avro_field
    has_model = default is not PydanticUndefined
    if has_avro != has_model:
        side = "the schema" if has_avro else "the model"
        return f"`{where}` has a default only in {side}"
    logical = isinstance(avro_field["type"], dict) and "logicalType" in avro_field["type"]
    if not has_avro or logical:
        return None  # logical defaults are encoded JSON; presence is what matters
    model_default = _json_default(default)
    if model_default != avro_field["default"]:
        return f"`{where}` default differs: schema {avro_field['default']!r}, model {default!r}"
    return None


def _json_default(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, BaseModel):
        return {k: _json_default(v) for k, v in value.__dict__.items()}
    if isinstance(value, list):
        return [_json_default(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_default(v) for k, v in value.items()}
    return value


def _describe(avro: dict[str, Any]) -> str:
    if avro.get("logicalType") == "decimal":
        return f"decimal({avro.get('precision')},{avro.get('scale', 0)})"
    return f"{avro['type']} {avro['logicalType']}"


def _name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or repr(annotation)
