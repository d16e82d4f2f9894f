"""A straight-line Avro binary reader generated per schema, giving the datum fastavro gives.

The counterpart of ``_avro_writer``: for a record read with its own writer schema (the common
case: producer and consumer share the model version) the schema is unrolled into code that
reads varints inline and converts logical types with fastavro's own formulas, so the datum is
equal to what ``fastavro.schemaless_reader`` returns (the codec's tests compare them). Records
that need schema resolution (writer and reader versions differ) still go through fastavro.

Corrupt input never reads out of bounds or allocates by a length it has not checked: a length
or count past the end of the data raises ``EOFError``, anything else malformed (a bad union
or enum index, invalid UTF-8, an impossible date) raises ``ValueError`` or the conversion's own
error. The codec turns both into ``DecodeError``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import struct
import uuid
from collections.abc import Callable
from typing import Any

from ._compiler import RecordCompiler, Unsupported

__all__ = ["Reader", "compile_reader"]

Reader = Callable[[bytes, int], tuple[dict[str, Any], int]]

_MAX_VARINT_BYTES = 10


def _long(data: bytes, pos: int) -> tuple[int, int]:
    """A multi-byte zig-zag varint starting at ``pos``: (value, next position)."""
    shift = result = 0
    for index in range(pos, min(pos + _MAX_VARINT_BYTES, len(data))):
        byte = data[index]
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (result >> 1) ^ -(result & 1), index + 1
        shift += 7
    if pos + _MAX_VARINT_BYTES <= len(data):
        raise ValueError("varint longer than 10 bytes")
    raise EOFError("varint runs past the end")


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_DAYS_SHIFT = dt.date(1970, 1, 1).toordinal()


def _timestamp_micros(micros: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=micros)


def _time_millis(millis: int) -> dt.time:
    return dt.time(
        int(millis / 3_600_000),
        int(millis / 60_000) % 60,
        int(millis / 1000) % 60,
        int(millis % 1000) * 1000,
    )


def _time_micros(micros: int) -> dt.time:
    return dt.time(
        int(micros / 3_600_000_000),
        int(micros / 60_000_000) % 60,
        int(micros / 1_000_000) % 60,
        micros % 1_000_000,
    )


def _min_size(avro: Any, named: dict[str, Any], seen: frozenset[str] = frozenset()) -> int:
    """The fewest bytes a value of this type takes (0 would let a count spin without reading)."""
    if isinstance(avro, str) and avro in named:
        if avro in seen:
            return 1  # a recursive reference is reached through a union or a container
        avro, seen = named[avro], seen | {avro}
    if isinstance(avro, list):
        return 1
    kind = avro["type"] if isinstance(avro, dict) else avro
    if kind == "null":
        return 0
    if kind == "float":
        return 4
    if kind == "double":
        return 8
    if kind == "fixed":
        return int(avro["size"])
    if kind == "record":
        return sum(
            _min_size(field["type"], named, seen | {avro["name"]}) for field in avro["fields"]
        )
    return 1


class _Generator(RecordCompiler):
    kind = "reader"

    def __init__(self, named: dict[str, Any]) -> None:
        helpers = {
            "_long": _long,
            "_float": struct.Struct("<f").unpack_from,
            "_double": struct.Struct("<d").unpack_from,
            "_from_bytes": int.from_bytes,
            "_UUID": uuid.UUID,
            "_date": dt.date.fromordinal,
            "_DAYS_SHIFT": _DAYS_SHIFT,
            "_ts": _timestamp_micros,
            "_time_millis": _time_millis,
            "_time_micros": _time_micros,
        }
        super().__init__(named, helpers)

    def record_source(self, name: str, avro: dict[str, Any]) -> list[str]:
        """``name(d, p, L) -> (dict, p)`` reads a record from ``d`` at ``p`` (``L = len(d)``)."""
        lines = [f"def {name}(d, p, L):", "    o = {}"]
        for field in avro["fields"]:
            lines += [f"    {line}" for line in self.value(field["type"], 0)]
            lines.append(f"    o[{field['name']!r}] = v")
        lines.append("    return o, p")
        return lines

    @staticmethod
    def long() -> list[str]:
        """Statements reading a zig-zag varint into ``v``."""
        return [
            "b = d[p]",
            "if b < 128:",
            "    v = (b >> 1) ^ -(b & 1)",
            "    p += 1",
            "else:",
            "    v, p = _long(d, p)",
        ]

    def length(self) -> list[str]:
        """Statements reading a byte length into ``n`` and the slice end into ``e``."""
        return [
            *self.long(),
            "if v < 0: raise ValueError('negative length')",
            "e = p + v",
            "if e > L: raise EOFError('length past the end')",
        ]

    def value(self, avro: Any, depth: int) -> list[str]:
        """Statements reading one value of type ``avro`` into ``v``, advancing ``p``."""
        if isinstance(avro, str) and avro in self.named:
            avro = self.named[avro]
        if isinstance(avro, list):
            return self.union(avro, depth)
        kind = avro["type"] if isinstance(avro, dict) else avro
        logical = avro.get("logicalType") if isinstance(avro, dict) else None
        if logical is not None:
            return self.logical(avro, kind, logical, depth)
        if kind == "string":
            return [*self.length(), "v = d[p:e].decode()", "p = e"]
        if kind == "bytes":
            return [*self.length(), "v = d[p:e]", "p = e"]
        if kind in ("int", "long"):
            return self.long()
        if kind == "boolean":
            return ["v = d[p] != 0", "p += 1"]
        if kind in ("float", "double"):
            size = 4 if kind == "float" else 8
            return [
                f"if p + {size} > L: raise EOFError('{kind} past the end')",
                f"v = _{kind}(d, p)[0]",
                f"p += {size}",
            ]
        if kind == "null":
            return ["v = None"]
        if kind == "fixed":
            size = int(avro["size"])
            return [
                f"e = p + {size}",
                "if e > L: raise EOFError('fixed past the end')",
                "v = d[p:e]",
                "p = e",
            ]
        if kind == "enum":
            symbols = self.bind("sym", tuple(avro["symbols"]))
            return [
                *self.long(),
                f"if not 0 <= v < {len(avro['symbols'])}: raise ValueError('bad enum index')",
                f"v = {symbols}[v]",
            ]
        if kind == "record":
            return [f"v, p = {self.record(avro)}(d, p, L)"]
        if kind in ("array", "map"):
            return self.container(avro, kind, depth)
        raise Unsupported(str(kind))

    def container(self, avro: dict[str, Any], kind: str, depth: int) -> list[str]:
        item_type = avro["items" if kind == "array" else "values"]
        if _min_size(item_type, self.named) == 0:
            raise Unsupported("zero-size items")  # a huge count would spin without reading
        out, count = f"out{depth}", f"n{depth}"
        body = self.value(item_type, depth + 1)
        if kind == "array":
            body.append(f"{out}.append(v)")
            start = f"{out} = []"
        else:
            key = f"k{depth}"
            body = [*self.value("string", depth + 1), f"{key} = v", *body, f"{out}[{key}] = v"]
            start = f"{out} = {{}}"
        return [
            start,
            *self.long(),
            f"{count} = v",
            f"while {count}:",
            f"    if {count} < 0:",  # a negative count is followed by the block's byte size
            f"        {count} = -{count}",
            *(f"        {line}" for line in self.long()),
            f"    if {count} > L - p: raise EOFError('count past the end')",
            f"    for _ in range({count}):",
            *(f"        {line}" for line in body),
            *(f"    {line}" for line in self.long()),
            f"    {count} = v",
            f"v = {out}",
        ]

    def union(self, branches: list[Any], depth: int) -> list[str]:
        if len(branches) != 2 or "null" not in branches:
            raise Unsupported("union")
        null_index = branches.index("null")
        body = self.value(branches[1 - null_index], depth)
        return [
            *self.long(),
            f"if v == {null_index}:",
            "    v = None",
            f"elif v == {1 - null_index}:",
            *(f"    {line}" for line in body),
            "else:",
            "    raise ValueError('bad union index')",
        ]

    def logical(self, avro: dict[str, Any], kind: str, logical: str, depth: int) -> list[str]:
        combo = f"{kind}-{logical}"
        if combo == "bytes-decimal":
            context = self.bind("ctx", decimal.Context(prec=int(avro["precision"])))
            scale = -int(avro.get("scale", 0))
            return [
                *self.value("bytes", depth),
                f"v = {context}.create_decimal(_from_bytes(v, 'big', signed=True))"
                f".scaleb({scale}, {context})",
            ]
        if combo == "string-uuid":
            return [*self.value("string", depth), "v = _UUID(v)"]
        if combo == "int-date":
            return [*self.long(), "v = _date(v + _DAYS_SHIFT)"]
        if combo == "long-timestamp-millis":
            return [*self.long(), "v = _ts(v * 1000)"]
        if combo == "long-timestamp-micros":
            return [*self.long(), "v = _ts(v)"]
        if combo == "int-time-millis":
            return [*self.long(), "v = _time_millis(v)"]
        if combo == "long-time-micros":
            return [*self.long(), "v = _time_micros(v)"]
        raise Unsupported(combo)


def compile_reader(avro: dict[str, Any], named: dict[str, Any]) -> Reader | None:
    """A function ``(data, offset) -> (datum, end)`` reading one record body, or None.

    None means the schema uses something not compiled here; read it with fastavro.

    Args:
        avro: a record schema as fastavro's ``parse_schema`` returns it.
        named: the named types it may refer to by name.
    """
    reader: Reader | None = _Generator(named).entry(
        avro,
        lambda record: ["def read(d, p):", f"    return {record}(d, p, len(d))"],
        "read",
    )
    return reader
