"""Helpers shared by the operations commands: progress bars, offset arguments, record display."""

from __future__ import annotations

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

from pipeline._headers import Headers
from pipeline.avro._codec import Codec
from pipeline.ops._display import decode_value, header_text, jsonable, text_or_hex

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
