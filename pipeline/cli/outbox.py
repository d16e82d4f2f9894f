"""``pipeline outbox``: inspect a producer outbox file, or drain it without the service."""

from __future__ import annotations

import time
from pathlib import Path

import click
from confluent_kafka import Producer

from pipeline._admin import check_reachable
from pipeline._errors import OutboxFileError
from producers._outbox_drain import drain_stream
from producers._outbox_file import VERSION, OutboxFile

from ._context import CliContext
from ._ops import progress_bar
from ._output import OUTPUT_OPTION, print_json, print_table

__all__ = ["outbox"]

PATH = click.argument("path", type=click.Path(dir_okay=False, path_type=Path))


@click.group()
def outbox() -> None:
    """The durable producer outbox (a SQLite file): status and drain."""


def _open(path: Path, *, own: bool) -> OutboxFile:
    """Open the file; a damaged, foreign or locked file is a bad PATH argument (exit 2)."""
    if not path.exists():
        raise click.BadParameter(f"no outbox at {path}", param_hint="PATH")
    try:
        return OutboxFile.open(path, own=own)
    except OutboxFileError as exc:
        raise click.BadParameter(str(exc), param_hint="PATH") from None


@outbox.command()
@PATH
@OUTPUT_OPTION
def status(path: Path, output: str) -> None:
    """Records, bytes and the oldest record's age, per topic (reads only; safe while in use)."""
    file = _open(path, own=False)
    try:
        summary = file.summary()
        topics = file.topics()
    except OutboxFileError as exc:
        raise click.BadParameter(str(exc), param_hint="PATH") from None
    finally:
        file.close()
    age = None if summary.oldest_stored_at is None else time.time() - summary.oldest_stored_at
    if output == "json":
        print_json(
            {
                "path": str(path),
                "version": VERSION,
                "records": summary.records,
                "bytes": summary.size_bytes,
                "oldest_age_seconds": None if age is None else round(age, 3),
                "topics": [{"topic": t, "records": n, "bytes": b} for t, n, b in topics],
            }
        )
        return
    shown_age = "-" if age is None else f"{age:.1f}s"
    click.echo(
        f"{path}: {summary.records} record(s), {summary.size_bytes} bytes, oldest {shown_age}"
    )
    if topics:
        print_table(None, ["topic", "records", "bytes"], topics)


@outbox.command()
@PATH
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=300.0,
    show_default=True,
    help="Give up (exit 1) if records are still there after this many seconds.",
)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Records sent per pass (deleted once Kafka acknowledged them).",
)
@click.pass_obj
def drain(obj: CliContext, path: Path, timeout: float, batch: int) -> None:
    """Send every record of the outbox to Kafka, in order, then delete it from the file.

    The outbox must not be in use: stop the producer that owns it first (a locked file exits 2).
    """  # fmt: skip
    file = _open(path, own=True)
    try:
        check_reachable(obj.settings)  # Kafka unreachable: exit 1 in one line
        left = _drain(file, Producer(obj.settings.producer_config()), timeout, batch)
    finally:
        file.close()
    if left:
        raise click.ClickException(
            f"{left} record(s) still in {path} after {timeout:g}s: Kafka did not take them"
        )
    click.echo(f"{path}: drained, 0 records left")


def _drain(file: OutboxFile, client: Producer, timeout: float, batch: int) -> int:
    """Drain passes until the file is empty or ``timeout`` passes; return what is left."""
    total = file.summary().records
    deadline = time.monotonic() + timeout
    left = total
    with progress_bar(total, "draining", enabled=True) as advance:
        while left and time.monotonic() < deadline:
            results = drain_stream(
                file,
                client,
                limit=batch,
                timeout=min(60.0, timeout),
                on_pass=lambda r: advance(len(r.acked)),
            )
            left -= sum(len(r.acked) for r in results)
            failed = [f for r in results for f in r.failed]
            if failed:
                click.echo(f"not taken yet ({len(failed)}): {failed[0][1].str()}", err=True)
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))  # broker not back yet
    return file.summary().records
