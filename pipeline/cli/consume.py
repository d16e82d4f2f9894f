"""``pipeline consume``: read records, decode Avro with the catalog or registry, print them."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from typing import Any

import click
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from pipeline._admin import kafka_error
from pipeline._errors import KafkaOperationError
from pipeline.avro._codec import Codec
from pipeline.ops._window import WindowReader, resolve_window, topic_partitions, window_consumer

from ._context import CliContext
from ._ops import INTERRUPTED_EXIT, PARTITION_OPTION, compact, record_dict
from ._output import print_json
from ._times import TIME

__all__ = ["consume"]


@click.command()
@click.option("--topic", "-t", required=True, help="Topic to read.")
@click.option("--group", "-g", help="Read as this consumer group (from its committed offsets).")
@click.option("--from-beginning", is_flag=True, help="Start at the log start.")
@click.option("--since", type=TIME, help="Start at this time: ISO-8601 or relative (-2h).")
@PARTITION_OPTION
@click.option("--limit", "-n", type=click.IntRange(min=1), help="Stop after N records.")
@click.option("--to-end", is_flag=True, help="Stop at the end offsets seen at start.")
@click.option(
    "--idle", type=click.FloatRange(min=0.1), help="Stop after N seconds without records."
)
@click.option("--commit", is_flag=True, help="With --group: commit what was printed.")
@click.option(
    "--output",
    "-o",
    type=click.Choice(["jsonl", "table", "json"]),
    default="jsonl",
    show_default=True,
    help="One JSON object per line, a human table, or one JSON array at the end.",
)
@click.pass_obj
def consume(
    obj: CliContext,
    topic: str,
    group: str | None,
    from_beginning: bool,
    since: int | None,
    partitions: tuple[int, ...],
    limit: int | None,
    to_end: bool,
    idle: float | None,
    commit: bool,
    output: str,
) -> None:
    """Print the records of --topic, Avro values decoded to JSON (others as text or hex).

    Without --group it reads from the end (or --from-beginning, or --since) and follows until
    --limit, --to-end, --idle or Ctrl-C. It never commits offsets unless --group and --commit
    are both given.
    """
    if sum((group is not None, from_beginning, since is not None)) > 1:
        raise click.UsageError("give at most one of --group, --from-beginning and --since")
    if commit and group is None:
        raise click.UsageError("--commit needs --group")
    if group is not None and (to_end or partitions):
        raise click.UsageError("--to-end and --partition work without --group only")
    settings = obj.settings
    codec = Codec.from_settings(settings)
    consumer = window_consumer(settings, group)
    printed: list[dict[str, Any]] = []
    pending: dict[int, int] = {}
    count = 0
    interrupted = False
    try:
        selected = topic_partitions(consumer, topic, partitions, settings=settings)
        if group is not None:
            records = _group_records(consumer, topic)
        else:
            records = _assigned_records(consumer, topic, selected, since, from_beginning, to_end)
        for msg in _bounded(records, limit, idle):
            if msg is None:  # end of a batch: commit what was printed
                _commit(consumer, topic, pending, commit)
                continue
            count += 1
            _print(record_dict(msg, codec), output, printed)
            pending[msg.partition()] = msg.offset() + 1
        _commit(consumer, topic, pending, commit)
    except KeyboardInterrupt:
        interrupted = True
        _commit(consumer, topic, pending, commit)
    finally:
        consumer.close()
    if output == "json":
        print_json(printed)
    click.echo(
        f"{'interrupted: ' if interrupted else ''}consumed {count} record(s) from {topic}", err=True
    )
    if interrupted:
        raise click.exceptions.Exit(INTERRUPTED_EXIT)


def _print(record: dict[str, Any], output: str, printed: list[dict[str, Any]]) -> None:
    if output == "json":
        printed.append(record)
    elif output == "jsonl":
        click.echo(json.dumps(record, sort_keys=True, default=str))
    else:
        value = compact(record["value"], 100)
        click.echo(
            f"{record['partition']:>3} {record['offset']:>9} {record['timestamp']} "
            f"key={record['key']} {record['schema'] or '-'} {value}"
        )


def _bounded(records: Iterator[Any], limit: int | None, idle: float | None) -> Iterator[Any]:
    """Pass records and batch ends (``None``) until ``limit`` records or ``idle`` seconds."""
    count = 0
    last = time.monotonic()
    for msg in records:
        if msg is None:
            yield None
            if idle is not None and time.monotonic() - last >= idle:
                return
            continue
        last = time.monotonic()
        yield msg
        count += 1
        if limit is not None and count >= limit:
            return


def _assigned_records(
    consumer: Consumer,
    topic: str,
    partitions: list[int],
    since: int | None,
    from_beginning: bool,
    to_end: bool,
) -> Iterator[Any]:
    ranges = resolve_window(consumer, topic, partitions, since_ms=since, follow=not to_end)
    if not from_beginning and since is None:
        ranges = [dataclasses.replace(r, start=r.high) for r in ranges]
        if to_end:
            return
    reader = WindowReader(consumer, topic, ranges, batch=500, stall_timeout=float("inf"))
    if not to_end:
        consumer.assign([TopicPartition(topic, r.partition, r.start) for r in ranges])
        yield from _polled(consumer, topic)
        return
    for batch in reader.batches(poll_timeout=0.2):
        yield from batch
        yield None


def _group_records(consumer: Consumer, topic: str) -> Iterator[Any]:
    try:
        consumer.subscribe([topic])
    except KafkaException as exc:
        raise kafka_error(exc, f"subscribing to {topic}") from exc
    yield from _polled(consumer, topic)


def _polled(consumer: Consumer, topic: str) -> Iterator[Any]:
    """Records one batch at a time, then ``None`` (so idle time and commits can be handled)."""
    while True:
        for msg in consumer.consume(500, 0.2):
            err = msg.error()
            if err is None:
                yield msg
            elif err.fatal() or err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise KafkaOperationError(f"reading {topic}: {err.str()}")
        yield None


def _commit(consumer: Consumer, topic: str, offsets: dict[int, int], enabled: bool) -> None:
    """Commit the printed records' offsets (only with --group --commit)."""
    if not enabled or not offsets:
        return
    try:
        consumer.commit(
            offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False
        )
    except KafkaException as exc:
        raise kafka_error(exc, f"committing offsets of {topic}") from exc
    offsets.clear()
