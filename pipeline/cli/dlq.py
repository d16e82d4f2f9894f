"""``pipeline dlq``: list, show, redrive and purge the dead letters of a consumer group."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import click
from confluent_kafka import Consumer, KafkaException, TopicPartition

from pipeline._admin import admin_client, kafka_error, resolve
from pipeline._errors import KafkaOperationError
from pipeline._names import dlq_topic
from pipeline._settings import Settings
from pipeline.avro._codec import Codec
from pipeline.ops._dead_letters import DeadLetter, DeadLetterFilter
from pipeline.ops._redrive import DeadLetterGroup, DeadLetterGroups, origin_of
from pipeline.ops._redrive_run import RedriveRun, run_redrive
from pipeline.ops._window import (
    PartitionRange,
    WindowReader,
    resolve_window,
    topic_partitions,
    window_consumer,
)

from ._context import CliContext
from ._ops import (
    INTERRUPTED_EXIT,
    PARTITION_OPTION,
    compact,
    decode_value,
    header_text,
    progress_bar,
    text_or_hex,
)
from ._output import OUTPUT_OPTION, print_json, print_table
from ._times import RATE, TIME, format_ms

__all__ = ["dlq"]

GROUP_OPTION = click.option(
    "--group", "-g", required=True, help="Consumer group whose <group>.dlq this is."
)


def _filters(func: Any) -> Any:
    for option in reversed(
        [
            click.option("--since", type=TIME, help="Dead-lettered at or after this time."),
            click.option("--until", type=TIME, help="Dead-lettered before this time."),
            click.option("--error-type", help="Error type (qualified or last part)."),
            click.option("--key", help="Only records with this key."),
        ]
    ):
        func = option(func)
    return func


@click.group()
def dlq() -> None:
    """Inspect, redrive and purge a consumer group's dead letters (<group>.dlq)."""


def _read(
    settings: Settings,
    topic: str,
    consumer: Consumer,
    since: int | None,
    until: int | None,
    start_offsets: dict[int, int] | None = None,
    partitions: tuple[int, ...] = (),
) -> tuple[list[PartitionRange], WindowReader]:
    selected = topic_partitions(consumer, topic, partitions, settings=settings)
    ranges = resolve_window(
        consumer, topic, selected, since_ms=since, until_ms=until, start_offsets=start_offsets
    )
    return ranges, WindowReader(consumer, topic, ranges)


@dlq.command("list")
@GROUP_OPTION
@_filters
@click.option("--limit", "-n", default=100, show_default=True, type=click.IntRange(min=1))
@OUTPUT_OPTION
@click.pass_obj
def list_(
    obj: CliContext,
    group: str,
    since: int | None,
    until: int | None,
    error_type: str | None,
    key: str | None,
    limit: int,
    output: str,
) -> None:
    """List dead letters, one row per original record: time, origin, error, attempts, copies.

    A record redriven and dead-lettered again is one row: the latest copy, and how many copies
    the DLQ holds (``copies``). Rows are ordered by when their latest copy was dead-lettered,
    oldest first (then DLQ partition and offset), in the table and in JSON alike; --limit keeps
    the first rows.
    """
    topic = dlq_topic(group)
    selector = DeadLetterFilter(
        since_ms=since, until_ms=until, error_type=error_type, key=_bytes(key)
    )
    consumer = window_consumer(obj.settings)
    found = DeadLetterGroups()
    scanned = 0
    interrupted = False
    try:
        _, reader = _read(obj.settings, topic, consumer, since, until)
        for batch in reader.batches():
            for msg in batch:
                scanned += 1
                record = DeadLetter.from_message(msg)
                if selector.matches(record):
                    found.add(record)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        consumer.close()
    _print_list(topic, found.rows()[:limit], output)
    if interrupted:
        click.echo(f"interrupted after scanning {scanned} record(s)", err=True)
        raise click.exceptions.Exit(INTERRUPTED_EXIT)


def _print_list(topic: str, rows: list[DeadLetterGroup], output: str) -> None:
    if output == "json":
        print_json([g.summary() for g in rows])
        return
    print_table(
        f"{topic}: {len(rows)} dead letter(s), {sum(len(g.copies) for g in rows)} copies",
        ["dlq p:offset", "failed at", "original", "key", "error type", "message", "attempts",
         "copies"],
        [
            (
                f"{r.partition}:{r.offset}", r.failed_at or format_ms(r.timestamp_ms), r.original,
                text_or_hex(r.key), r.error_type, compact(r.error_message or "", 60), r.attempts,
                len(g.copies),
            )
            for g in rows
            for r in (g.latest,)
        ],
    )  # fmt: skip


@dlq.command("show")
@GROUP_OPTION
@click.option("--partition", "-p", default=0, show_default=True, type=click.IntRange(min=0))
@click.option("--offset", required=True, type=click.IntRange(min=0), help="DLQ record offset.")
@OUTPUT_OPTION
@click.pass_obj
def show(obj: CliContext, group: str, partition: int, offset: int, output: str) -> None:
    """Show one dead letter: value decoded (Avro as JSON, else hex) and every header.

    ``copies`` counts the records of the DLQ with the same original coordinates (each redrive
    that failed again adds one), and names where they are.
    """
    topic = dlq_topic(group)
    consumer = window_consumer(obj.settings)
    try:
        everything = topic_partitions(consumer, topic, settings=obj.settings)
        topic_partitions(consumer, topic, (partition,), settings=obj.settings)
        ranges = resolve_window(
            consumer, topic, [partition], start_offsets={partition: offset},
            end_offsets={partition: offset + 1},
        )  # fmt: skip
        msgs = [m for batch in WindowReader(consumer, topic, ranges).batches() for m in batch]
        if not msgs or msgs[0].offset() != offset:
            raise KafkaOperationError(_missing(topic, partition, offset, ranges[0]))
        record = DeadLetter.from_message(msgs[0])
    finally:
        consumer.close()
    copies = _copies(obj.settings, topic, everything, record)
    schema, value, error = decode_value(Codec.from_settings(obj.settings), record.value)
    detail = {
        **record.summary(),
        "timestamp": format_ms(record.timestamp_ms),
        "copies": len(copies),
        "copy_offsets": [f"{p}:{o}" for p, o in copies],
        "schema": schema,
        "value": value,
        "decode_error": error,
        "headers": header_text(record.headers),
    }
    if output == "json":
        print_json(detail)
        return
    for name in ("partition", "offset", "timestamp", "original", "key", "error_type", "attempts"):
        click.echo(f"{name}: {detail[name]}")
    click.echo(f"copies: {len(copies)} (dlq p:offset {', '.join(detail['copy_offsets'])})")
    click.echo(f"schema: {schema or '-'}" + (f" ({error})" if error else ""))
    click.echo("value:")
    click.echo(value if isinstance(value, str) or value is None else _pretty(value))
    print_table("headers", ["name", "value"], detail["headers"])


def _missing(topic: str, partition: int, offset: int, window: PartitionRange) -> str:
    where = f"no record at {topic}[{partition}]@{offset}"
    if window.high <= window.low:
        return f"{where}: the partition is empty (its next offset is {window.high})"
    return f"{where}: the partition holds offsets {window.low} to {window.high - 1}"


def _copies(
    settings: Settings, topic: str, partitions: list[int], record: DeadLetter
) -> list[tuple[int, int]]:
    """Where the DLQ holds records with the same original coordinates (``record`` included)."""
    origin = origin_of(record)
    if origin is None:
        return [(record.partition, record.offset)]
    consumer = window_consumer(settings)
    try:
        ranges = resolve_window(consumer, topic, partitions)
        return sorted(
            (m.partition(), m.offset())  # type: ignore[misc]
            for batch in WindowReader(consumer, topic, ranges).batches()
            for m in batch
            if origin_of(DeadLetter.from_message(m)) == origin
        )
    finally:
        consumer.close()


def _pretty(value: Any) -> str:
    import json

    return json.dumps(value, indent=2, sort_keys=True, default=str)


def _bytes(text: str | None) -> bytes | None:
    return text.encode() if text is not None else None


@dlq.command("redrive")
@GROUP_OPTION
@_filters
@PARTITION_OPTION
@click.option("--rate", type=RATE, default="100/s", show_default=True, help="Records per second.")
@click.option(
    "--again",
    is_flag=True,
    help="Also send records that were redriven before and failed again (copies).",
)
@click.option("--execute", is_flag=True, help="Send; without it, a dry run.")
@OUTPUT_OPTION
@click.pass_obj
def redrive(
    obj: CliContext,
    group: str,
    since: int | None,
    until: int | None,
    error_type: str | None,
    key: str | None,
    partitions: tuple[int, ...],
    rate: float,
    again: bool,
    execute: bool,
    output: str,
) -> None:
    """Send dead letters back through <group>.retry, attempts reset; a dry run by default.

    Safe to run twice. The run starts where the last executed run stopped (a position kept in
    the consumer group <group>.dlq-redrive), and a record that was redriven before and failed
    again (it carries pipeline-redriven-at) is skipped unless --again is given; one run sends
    one record per original coordinates. Records the filters leave out are passed over: a later
    run does not offer them again.
    """
    from producers import EventProducer

    selector = DeadLetterFilter(
        since_ms=since, until_ms=until, error_type=error_type, key=_bytes(key)
    )
    with ExitStack() as stack:
        advance: list[Any] = [lambda n: None]

        def total(n: int) -> None:
            advance[0] = stack.enter_context(
                progress_bar(n, f"redrive {dlq_topic(group)}", output != "json")
            )

        run = run_redrive(
            obj.settings, group, selector, sender=lambda: EventProducer(obj.settings),
            partitions=partitions, again=again, execute=execute, rate=rate,
            total=total, progress=lambda n: advance[0](n),
        )  # fmt: skip
    _redrive_report(run, output)
    if run.failed or run.errors:
        raise click.ClickException(
            f"{run.failed} record(s) were not delivered to {run.target}; the position was not "
            "moved: " + "; ".join(run.errors)
        )
    if run.interrupted:
        raise click.exceptions.Exit(INTERRUPTED_EXIT)


def _redrive_report(run: RedriveRun, output: str) -> None:
    report = run.report()
    if output == "json":
        print_json(report)
        return
    target, tracker, execute = run.target, run.tracker, run.execute
    to_send, copies = report["to_send"], report["skipped_redriven"]
    duplicates = report["skipped_duplicates"]
    if run.sample:
        print_table(
            f"{'redriven' if execute else 'would redrive'} to {target} (first {len(run.sample)})",
            ["dlq p:offset", "original", "key", "error type", "attempts"],
            [
                (f"{r.partition}:{r.offset}", r.original, text_or_hex(r.key), r.error_type,
                 r.attempts)
                for r in run.sample
            ],
        )  # fmt: skip
    state = "interrupted: " if run.interrupted else ""
    skipped = ""
    if copies:
        skipped += f"; skipped {copies} already redriven (pass --again to send them)"
    if duplicates:
        skipped += f"; skipped {duplicates} duplicate(s) of records this run sends"
    if execute:
        saved = f"; position saved in group {tracker}" if run.committed else ""
        click.echo(
            f"{state}scanned {run.scanned}, matched {run.plan.matched}, redriven {run.sent}, "
            f"failed {run.failed}{skipped}{saved}"
        )
    else:
        click.echo(
            f"{state}dry run: scanned {run.scanned}, would redrive {to_send} to {target}"
            f"{skipped}; pass --execute to send"
        )


@dlq.command("purge")
@GROUP_OPTION
@click.option(
    "--before-offset",
    required=True,
    type=click.IntRange(min=0),
    help="Delete every record below this offset (it is kept); clamped to the log end.",
)
@PARTITION_OPTION
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@OUTPUT_OPTION
@click.pass_obj
def purge(
    obj: CliContext,
    group: str,
    before_offset: int,
    partitions: tuple[int, ...],
    yes: bool,
    output: str,
) -> None:
    """Delete dead letters below --before-offset for good (asks for confirmation)."""
    topic = dlq_topic(group)
    consumer = window_consumer(obj.settings)
    try:
        selected = topic_partitions(consumer, topic, partitions, settings=obj.settings)
        ranges = resolve_window(consumer, topic, selected)
    finally:
        consumer.close()
    plan = {r.partition: (r.low, min(before_offset, r.high)) for r in ranges}
    doomed = sum(max(0, end - low) for low, end in plan.values())
    if not yes:
        click.confirm(
            f"Delete {doomed} record(s) of {topic} (partitions {sorted(plan)}, offsets below "
            f"{before_offset})? This cannot be undone",
            abort=True,
            err=True,
        )
    admin = admin_client(obj.settings)
    request = [TopicPartition(topic, p, end) for p, (_, end) in plan.items()]
    try:
        futures = admin.delete_records(request, request_timeout=30)
    except KafkaException as exc:
        raise kafka_error(exc, f"deleting records of {topic}") from exc
    starts = {
        tp.partition: int(resolve(f, f"deleting records of {topic}", 35).low_watermark)
        for tp, f in futures.items()
    }
    if output == "json":
        print_json({"topic": topic, "deleted": doomed, "log_start": starts})
    else:
        click.echo(f"deleted {doomed} record(s) of {topic}; log start now {starts}")
