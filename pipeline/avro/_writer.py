"""A straight-line Avro binary writer generated per schema, byte-for-byte equal to fastavro's.

fastavro's writer interprets the schema for every record and converts logical types through
Python-level hooks, which makes it the most expensive step of sending a typed event. The writer
compiled here walks the same datum (what ``Binding.to_datum`` returns) with the schema unrolled
into code: no type dispatch, varints from lookup tables, logical types converted inline with
fastavro's own formulas, so the bytes are identical (the codec's tests compare them).

Only what typed events can hold is compiled: primitives, records, enums, arrays, maps, fixed,
``["null", T]`` unions, and the logical types decimal (bytes), uuid, date, time-millis/micros
and timestamp-millis/micros. For any other schema :func:`compile_writer` returns None and the
codec keeps using fastavro. Values of the wrong type raise (``TypeError``, ``AttributeError``,
``KeyError``, ``ValueError``); the codec turns that into an ``EncodeError`` naming the field.
"""

from __future__ import annotations

import datetime as dt
import decimal
import struct
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ._compiler import RecordCompiler, Unsupported

__all__ = ["compile_writer"]

Writer = Callable[[dict[str, Any], bytes], bytes]

_TABLE_SIZE = 1 << 14  # zig-zag values below this come from a table (1 or 2 bytes)


def _varint(zigzag: int) -> bytes:
    out = bytearray()
    while zigzag > 0x7F:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return bytes(out)


_VARINTS = [_varint(z) for z in range(_TABLE_SIZE)]


def _long(n: int) -> bytes:
    """Zig-zag varint of any (range-checked elsewhere) integer."""
    zigzag = n << 1 if n >= 0 else (-n << 1) - 1
    return _VARINTS[zigzag] if zigzag < _TABLE_SIZE else _varint(zigzag)


_EXACT = decimal.Context(prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
_QUANTA = [Decimal(1).scaleb(-scale) for scale in range(64)]


def _decimal(value: Decimal, scale: int) -> bytes:
    """fastavro's ``prepare_bytes_decimal``, followed by the bytes length prefix."""
    if scale < len(_QUANTA) and value.same_quantum(_QUANTA[scale]):
        # The usual case: the exponent is exactly -scale, so the coefficient is the unscaled
        # value (scaleb in an unbounded context only moves the exponent: exact).
        unscaled = int(value.scaleb(scale, _EXACT))
        size = (abs(unscaled).bit_length() + 8) // 8  # of the magnitude, as fastavro
        return _long(size) + unscaled.to_bytes(size, "big", signed=True)
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise ValueError(f"{value} is not a finite decimal")
    delta = exponent + scale
    if delta < 0:
        raise ValueError("Scale provided in schema does not match the decimal")
    unscaled = 0
    for digit in digits:
        unscaled = unscaled * 10 + digit
    unscaled *= int(10**delta)  # delta >= 0: an int (int() tells mypy)
    size = (unscaled.bit_length() + 8) // 8
    if sign:
        unscaled = -unscaled
    return _long(size) + unscaled.to_bytes(size, "big", signed=True)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_DAYS = dt.date(1970, 1, 1).toordinal()


def _timestamp(value: dt.datetime, per_second: int) -> int:
    if value.tzinfo is None:  # fastavro would read a naive time as local time: refuse
        raise ValueError(f"{value} is not timezone-aware")
    delta = value - _EPOCH
    seconds = delta.days * 86400 + delta.seconds
    if per_second == 1000:
        return seconds * 1000 + int(delta.microseconds / 1000)
    return seconds * 1_000_000 + delta.microseconds


def _time(value: dt.time, per_second: int) -> int:
    seconds = value.hour * 3600 + value.minute * 60 + value.second
    if per_second == 1000:
        return seconds * 1000 + int(value.microsecond / 1000)
    return seconds * 1_000_000 + value.microsecond


_UUID = uuid.UUID


def _uuid(value: Any) -> str:
    if type(value) is _UUID:
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str):
        return value
    raise TypeError(f"{value!r} is not a UUID")


_CACHED_STRINGS = 4096  # distinct short strings whose encoding one writer keeps
_CACHED_LENGTH = 64  # longer strings are encoded every time


def _string_cache() -> tuple[dict[str, bytes], Callable[[str], bytes]]:
    """A cache of string encodings (length prefix + UTF-8) and the function that fills it.

    Events repeat many short strings (currencies, countries, SKUs, enum-like codes): a hit is
    one dict lookup instead of encoding and framing. The cache stops growing at
    ``_CACHED_STRINGS`` entries, so high-cardinality values cost one failed lookup each.
    """
    cache: dict[str, bytes] = {}

    def miss(value: str) -> bytes:
        b = value.encode()
        n = len(b) << 1
        out = (_VARINTS[n] if n < _TABLE_SIZE else _varint(n)) + b
        if len(cache) < _CACHED_STRINGS and len(value) <= _CACHED_LENGTH and type(value) is str:
            cache[value] = out
        return out

    return cache, miss


class _Generator(RecordCompiler):
    kind = "writer"

    def __init__(self, named: dict[str, Any]) -> None:
        strings, miss = _string_cache()
        helpers = {
            "_SC": strings.get,
            "_smiss": miss,
            "_V": _VARINTS,
            "_T": _TABLE_SIZE,
            "_long": _long,
            "_varint": _varint,
            "_dec": _decimal,
            "_ts": _timestamp,
            "_time": _time,
            "_uuid": _uuid,
            "_EPOCH_DAYS": _EPOCH_DAYS,
            "_float": struct.Struct("<f").pack,
            "_double": struct.Struct("<d").pack,
        }
        super().__init__(named, helpers)

    def record_source(self, name: str, avro: dict[str, Any]) -> list[str]:
        """``name(d, a)`` appends the encoding of record datum ``d`` through ``a``."""
        lines = [f"def {name}(d, a):"]
        for field in avro["fields"]:
            lines.append(f"    v = d[{field['name']!r}]")
            lines += [f"    {line}" for line in self.value(field["type"], "v", 0)]
        if len(lines) == 1:
            lines.append("    pass")
        return lines

    def value(self, avro: Any, var: str, depth: int) -> list[str]:
        """Statements appending the encoding of ``var`` (of type ``avro``) through ``a``."""
        if isinstance(avro, str) and avro in self.named:
            avro = self.named[avro]
        if isinstance(avro, list):
            return self.union(avro, var, depth)
        kind = avro["type"] if isinstance(avro, dict) else avro
        logical = avro.get("logicalType") if isinstance(avro, dict) else None
        if logical is not None:
            return self.logical(avro, kind, logical, var)
        if kind == "string":
            return [
                f"b = _SC({var})",
                f"a(_smiss({var}) if b is None else b)",
            ]
        if kind == "bytes":
            return [
                f"if not isinstance({var}, (bytes, bytearray)): raise TypeError('not bytes')",
                f"n = len({var}) << 1",
                "a(_V[n] if n < _T else _varint(n))",
                f"a({var})",
            ]
        if kind in ("int", "long"):
            return [f"a(_long({var}.__index__()))"]
        if kind == "boolean":
            return [f"a(b'\\x01' if {var} else b'\\x00')"]
        if kind == "float":
            return [f"a(_float({var}))"]
        if kind == "double":
            return [f"a(_double({var}))"]
        if kind == "null":
            return [f"if {var} is not None: raise TypeError('not null')"]
        if kind == "fixed":
            size = int(avro["size"])
            return [
                f"if len({var}) != {size}: raise ValueError('fixed size is {size}')",
                f"a(bytes({var}))",
            ]
        if kind == "enum":
            table = {symbol: _long(i) for i, symbol in enumerate(avro["symbols"])}
            return [f"a({self.bind('sym', table)}[{var}])"]
        if kind == "record":
            return [f"{self.record(avro)}({var}, a)"]
        if kind == "array":
            item = f"x{depth}"
            body = self.value(avro["items"], item, depth + 1)
            return [
                f"if {var}:",
                f"    a(_long(len({var})))",
                f"    for {item} in {var}:",
                *(f"        {line}" for line in body),
                "a(b'\\x00')",
            ]
        if kind == "map":
            key, item = f"k{depth}", f"x{depth}"
            body = self.value(avro["values"], item, depth + 1)
            return [
                f"if {var}:",
                f"    a(_long(len({var})))",
                f"    for {key}, {item} in {var}.items():",
                f"        b = {key}.encode()",
                "        a(_long(len(b)))",
                "        a(b)",
                *(f"        {line}" for line in body),
                "a(b'\\x00')",
            ]
        raise Unsupported(str(kind))

    def union(self, branches: list[Any], var: str, depth: int) -> list[str]:
        if len(branches) != 2 or "null" not in branches:
            raise Unsupported("union")
        null_index = branches.index("null")
        other = branches[1 - null_index]
        body = self.value(other, var, depth)
        return [
            f"if {var} is None:",
            f"    a({_long(null_index)!r})",
            "else:",
            f"    a({_long(1 - null_index)!r})",
            *(f"    {line}" for line in body),
        ]

    def logical(self, avro: dict[str, Any], kind: str, logical: str, var: str) -> list[str]:
        combo = f"{kind}-{logical}"
        if combo == "bytes-decimal":
            return [f"a(_dec({var}, {int(avro.get('scale', 0))}))"]
        if combo == "string-uuid":  # unique values: not worth the string cache
            return [
                f"b = _uuid({var}).encode()",
                "n = len(b) << 1",
                "a(_V[n] if n < _T else _varint(n))",
                "a(b)",
            ]
        if combo == "int-date":
            return [f"a(_long({var}.toordinal() - _EPOCH_DAYS))"]
        per_second = {"millis": 1000, "micros": 1_000_000}
        if combo in ("long-timestamp-millis", "long-timestamp-micros"):
            return [f"a(_long(_ts({var}, {per_second[logical[-6:]]})))"]
        if combo in ("int-time-millis", "long-time-micros"):
            return [f"a(_long(_time({var}, {per_second[logical[-6:]]})))"]
        raise Unsupported(combo)


def compile_writer(avro: dict[str, Any], named: dict[str, Any]) -> Writer | None:
    """A function ``(datum, prefix) -> prefix + Avro body``, or None for unsupported schemas.

    Args:
        avro: a record schema as fastavro's ``parse_schema`` returns it.
        named: the named types it may refer to by name.
    """
    writer: Writer | None = _Generator(named).entry(
        avro,
        lambda record: [
            "def write(d, prefix):",
            "    out = [prefix]",
            f"    {record}(d, out.append)",
            "    return b''.join(out)",
        ],
        "write",
    )
    return writer
