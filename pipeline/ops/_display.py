"""Dead letters and records made readable: text or hex, headers as pairs, Avro values as JSON.

Shared by the ``pipeline`` CLI (``dlq show``, ``consume``) and the ops console.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from pipeline._errors import DecodeError
from pipeline.avro._codec import Codec

__all__ = ["decode_value", "header_text", "jsonable", "text_or_hex"]


def text_or_hex(data: bytes | None) -> str | None:
    """UTF-8 text when the bytes are printable text, else ``0x`` + hex."""
    if data is None:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + data.hex()
    return text if text.isprintable() else "0x" + data.hex()


def header_text(headers: Sequence[tuple[str, bytes | None]] | None) -> list[list[Any]]:
    """Headers as ``[name, text-or-hex]`` pairs, order and repeats kept."""
    return [[k, text_or_hex(v)] for k, v in headers or ()]


def jsonable(value: Any) -> Any:
    """A decoded Avro datum made JSON-ready (bytes as base64, the rest as text)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def decode_value(codec: Codec | None, data: bytes | None) -> tuple[str | None, Any, str | None]:
    """Decode a value for display: ``(schema label, JSON-ready value, decode error)``.

    Avro values become JSON; anything else (or a failure) is shown as text or hex.
    """
    if data is None:
        return None, None, None
    if codec is None:
        return None, text_or_hex(data), None
    try:
        schema, datum = codec.decode_datum(data)
    except DecodeError as exc:
        return None, text_or_hex(data), str(exc)
    return schema.label, jsonable(datum), None
