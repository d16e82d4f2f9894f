"""Generate straight-line model -> datum and datum -> model functions for one record schema."""

from __future__ import annotations

import enum
from collections.abc import Callable
from decimal import Decimal
from typing import Any, get_args

from pydantic import BaseModel

from ._events import resolve_named, split_optional

__all__ = ["Unfit", "compile_reader", "compile_writer"]

Namespace = dict[str, Any]


class Unfit(Exception):
    """Raised by generated writers when a value would not encode exactly; the codec diagnoses."""


_INT_LIMITS = {"int": 2**31, "long": 2**63}


class _Builder:
    """Collects generated functions and the objects they reference in one namespace."""

    def __init__(self) -> None:
        self.ns: Namespace = {"_Unfit": Unfit, "_new": object.__new__, "_set": object.__setattr__}
        self.count = 0

    def bind(self, prefix: str, value: Any) -> str:
        self.count += 1
        name = f"{prefix}{self.count}"
        self.ns[name] = value
        return name

    def define(self, prefix: str, lines: list[str]) -> str:
        self.count += 1
        name = f"{prefix}{self.count}"
        source = "\n".join([f"def {name}({lines[0]}):", *(f"    {line}" for line in lines[1:])])
        exec(compile(source, f"<pipeline codec {name}>", "exec"), self.ns)
        return name


# -- model -> datum -----------------------------------------------------------------------------


def compile_writer(
    model: type[BaseModel], avro: dict[str, Any], named: dict[str, Any]
) -> Callable[[BaseModel], dict[str, Any]]:
    """A function turning a checked model instance into the datum fastavro writes."""
    builder = _Builder()
    name = _record_writer(builder, model, avro, named)
    if name is None:
        return _fields_of
    function: Callable[[BaseModel], dict[str, Any]] = builder.ns[name]
    return function


def _fields_of(obj: BaseModel) -> dict[str, Any]:
    return obj.__dict__


def _record_writer(
    builder: _Builder, model: type[BaseModel], avro: dict[str, Any], named: dict[str, Any]
) -> str | None:
    """Name of a generated ``(obj) -> dict`` function, or None when ``obj.__dict__`` will do."""
    checks: list[str] = []
    updates: list[str] = []
    for field in avro["fields"]:
        key = field["name"]
        annotation = model.model_fields[key].annotation
        branch, nullable = _branch(field["type"], named)
        guard = _guard(builder, branch)
        if guard is not None:
            test = f"v is not None and ({guard})" if nullable else guard
            checks += [f"v = d[{key!r}]", f"if {test}: raise _Unfit({key!r})"]
        convert = _converter(builder, split_optional(annotation)[0], branch, named)
        if convert is not None:
            value = f"d[{key!r}]"
            expr = convert.replace("@V", value)
            if nullable:
                expr = f"None if {value} is None else {expr}"
            updates.append(f"{key!r}: {expr}")
    if not checks and not updates:
        return None
    result = f"{{**d, {', '.join(updates)}}}" if updates else "d"
    return builder.define("w", ["o", "d = o.__dict__", *checks, f"return {result}"])


def _branch(avro: Any, named: dict[str, Any]) -> tuple[Any, bool]:
    avro = resolve_named(avro, named)
    if isinstance(avro, list):
        rest = [b for b in avro if b != "null"]
        return resolve_named(rest[0], named), len(rest) < len(avro)
    return avro, False


def _guard(builder: _Builder, avro: Any) -> str | None:
    """A condition on ``v`` that is true when fastavro would write ``v`` inexactly."""
    kind = avro.get("type") if isinstance(avro, dict) else avro
    logical = avro.get("logicalType") if isinstance(avro, dict) else None
    if logical == "decimal":
        limit = Decimal(10) ** (avro.get("precision", 0) - avro.get("scale", 0))
        return f"abs(v) >= {builder.bind('lim', limit)}"  # scale is checked by fastavro
    if logical in ("timestamp-millis", "time-millis"):
        return "v.microsecond % 1000 or v.tzinfo is None"
    if logical == "timestamp-micros":
        return "v.tzinfo is None"
    if logical is None and kind in _INT_LIMITS:
        limit = _INT_LIMITS[kind]
        return f"not -{limit} <= v < {limit}"
    return None


def _converter(builder: _Builder, annotation: Any, avro: Any, named: dict[str, Any]) -> str | None:
    """A template on ``@V`` converting a non-null value, or None when it passes unchanged."""
    kind = avro.get("type") if isinstance(avro, dict) else avro
    if kind == "enum":
        return None if issubclass(annotation, str) else "@V.value"
    if kind == "record":
        name = _record_writer(builder, annotation, avro, named)
        return "@V.__dict__" if name is None else f"{name}(@V)"
    if kind in ("array", "map"):
        element = get_args(annotation)[0 if kind == "array" else 1]
        item = _element_writer(
            builder, element, avro["items" if kind == "array" else "values"], named
        )
        if item is None:
            return None
        if kind == "array":
            return f"[{item}(x) for x in @V]"
        return f"{{k: {item}(x) for k, x in @V.items()}}"
    return None


def _element_writer(
    builder: _Builder, annotation: Any, avro: Any, named: dict[str, Any]
) -> str | None:
    branch, nullable = _branch(avro, named)
    guard = _guard(builder, branch)
    convert = _converter(builder, split_optional(annotation)[0], branch, named)
    if guard is None and convert is None:
        return None
    lines = ["v"]
    if nullable:
        lines.append("if v is None: return None")
    if guard is not None:
        lines.append(f"if {guard}: raise _Unfit()")
    lines.append(f"return {(convert or '@V').replace('@V', 'v')}")
    return builder.define("e", lines)


# -- datum -> model -----------------------------------------------------------------------------


def compile_reader(
    model: type[BaseModel], avro: dict[str, Any], named: dict[str, Any]
) -> Callable[[dict[str, Any]], BaseModel]:
    """A function turning a datum fastavro read with the model's schema into the model.

    Values are already exactly typed by fastavro (the schema was checked against the model),
    so pydantic validation is skipped unless the model declares validators or constraints.
    """
    builder = _Builder()
    function: Callable[[dict[str, Any]], BaseModel] = builder.ns[
        _record_reader(builder, model, avro, named)
    ]
    return function


def _validates(model: type[BaseModel]) -> bool:
    decorators = model.__pydantic_decorators__
    if decorators.field_validators or decorators.model_validators or decorators.validators:
        return True
    return any(info.metadata for info in model.model_fields.values())


def _record_reader(
    builder: _Builder, model: type[BaseModel], avro: dict[str, Any], named: dict[str, Any]
) -> str:
    if _validates(model):
        # Custom validators or constraints must run; pydantic also builds the nested values.
        return builder.bind("validate", model.model_validate)
    lines = ["d, _new=_new, _set=_set"]  # defaults: fast local lookups on the hot path
    for field in avro["fields"]:
        key = field["name"]
        branch, nullable = _branch(field["type"], named)
        annotation = split_optional(model.model_fields[key].annotation)[0]
        convert = _reader_converter(builder, annotation, branch, named)
        if convert is not None:
            expr = convert.replace("@V", "v")
            if nullable:
                expr = f"None if v is None else {expr}"
            lines += [f"v = d[{key!r}]", f"d[{key!r}] = {expr}"]
    if model.__private_attributes__ or model.model_config.get("extra") == "allow":
        lines.append(f"return {builder.bind('construct', model.model_construct)}(**d)")
        return builder.define("r", lines)
    cls = builder.bind("cls", model)
    # What model_construct does for a frozen model without extras or private attributes; a
    # frozen instance never mutates its fields-set, so all instances share one.
    fields_set = builder.bind("fs", set(model.model_fields))
    if not model.model_config.get("frozen"):
        fields_set = f"set({fields_set})"
    lines += [
        f"o = _new({cls})",
        "_set(o, '__dict__', d)",
        f"_set(o, '__pydantic_fields_set__', {fields_set})",
        "_set(o, '__pydantic_extra__', None)",
        "_set(o, '__pydantic_private__', None)",
        "return o",
    ]
    return builder.define("r", lines)


def _reader_converter(
    builder: _Builder, annotation: Any, avro: Any, named: dict[str, Any]
) -> str | None:
    kind = avro.get("type") if isinstance(avro, dict) else avro
    if kind == "enum":
        assert issubclass(annotation, enum.Enum)
        members = builder.bind("sym", {member.value: member for member in annotation})
        return f"{members}[@V]"
    if kind == "record":
        return f"{_record_reader(builder, annotation, avro, named)}(@V)"
    if kind in ("array", "map"):
        element = get_args(annotation)[0 if kind == "array" else 1]
        branch, nullable = _branch(avro["items" if kind == "array" else "values"], named)
        convert = _reader_converter(builder, split_optional(element)[0], branch, named)
        if convert is None:
            return None
        expr = convert.replace("@V", "x")
        if nullable:
            expr = f"None if x is None else {expr}"
        if kind == "array":
            return f"[{expr} for x in @V]"
        return f"{{k: {expr} for k, x in @V.items()}}"
    return None
