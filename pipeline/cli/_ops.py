"""Helpers shared by the operations commands: progress bars, offset arguments, record display."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import click
from confluent_kafka import Message
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from pipeline._errors import DecodeError
from pipeline._headers import Headers
from pipeline.avro._codec import Codec

from ._output import console
from ._times import format_ms

__all__ = [
    "INTERRUPTED_EXIT",
    "PARTITION_OPTION",
    "compact",
    "decode_value",
    "header_text",
    "jsonable",
    "parse_offsets",
    "progress_bar",
    "record_dict",
    "text_or_hex",
]

INTERRUPTED_EXIT = 130

PARTITION_OPTION = click.option(
    "--partition",
    "-p",
    "partitions",
    type=click.IntRange(min=0),
    multiple=True,
    help="Only this partition (repeatable; default: all).",
)


def parse_offsets(items: Sequence[str], option: str) -> tuple[int | None, dict[int, int]]:
    """Parse ``N`` (every partition) and ``P:N`` (partition P) offset arguments.

    Returns:
        The offset for every partition (or None) and the per-partition offsets.

    Raises:
        click.BadParameter: an item is not ``N`` or ``P:N`` with whole numbers >= 0.
    """
    every: int | None = None
    per: dict[int, int] = {}
    for item in items:
        head, sep, tail = item.partition(":")
        try:
            if sep:
                partition, offset = int(head), int(tail)
                if partition < 0 or offset < 0:
                    raise ValueError
                per[partition] = offset
            else:
                every = int(head)
                if every < 0:
                    raise ValueError
        except ValueError:
            raise click.BadParameter(
                f"{item!r} is not an offset: use N (every partition) or PARTITION:N",
                param_hint=option,
            ) from None
    return every, per


@contextmanager
def progress_bar(total: int, label: str, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr (count, rate-based ETA); a no-op unless ``enabled``.

    Only shown when stderr is a terminal, so scripts and ``--output json`` stay clean.
    """
    if not enabled or not sys.stderr.isatty():
        yield lambda n: None
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console(stderr=True),
        transient=True,
    )
    with progress:
        task = progress.add_task(label, total=total or None)
        yield lambda n: progress.advance(task, n)


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


def record_dict(msg: Message, codec: Codec | None) -> dict[str, Any]:
    """One record as a JSON-ready dict: coordinates, time, key, headers, decoded value."""
    schema, value, error = decode_value(codec, msg.value())
    out: dict[str, Any] = {
        "topic": msg.topic(),
        "partition": msg.partition(),
        "offset": msg.offset(),
        "timestamp": format_ms(msg.timestamp()[1]),
        "key": text_or_hex(msg.key()),
        "headers": header_text(cast(Headers, msg.headers())),
        "schema": schema,
        "value": value,
    }
    if error is not None:
        out["decode_error"] = error
    return out


def compact(value: Any, width: int = 80) -> str:
    """A one-line JSON rendering of ``value``, cut to ``width`` characters."""
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= width else text[: width - 1] + "…"
