"""``pipeline replay``: copy a window of a topic to another topic, unchanged, with filters."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click
from confluent_kafka import KafkaError

from pipeline._errors import ConfigError
from pipeline._headers import REPLAYED_FROM, Headers
from pipeline._produce import DeliveryReport
from pipeline._settings import Settings
from pipeline.avro._codec import Codec
from pipeline.ops._forward import Forwarder
from pipeline.ops._replay import PartitionCounts, RecordFilter, TokenBucket, parse_where
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
    parse_offsets,
    progress_bar,
    text_or_hex,
)
from ._output import OUTPUT_OPTION, print_json, print_table
from ._times import RATE, TIME, format_ms

__all__ = ["ReplayResult", "copy_window", "replay"]

MAX_ERRORS_SHOWN = 5


@dataclass
class ReplayResult:
    """What a replay read, matched and wrote, per source partition."""

    counts: dict[int, PartitionCounts]
    dry_run: bool
    sample: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    interrupted: bool = False
    seconds: float = 0.0

    def total(self, name: str) -> int:
        """Sum of one counter over every partition."""
        return sum(int(getattr(c, name)) for c in self.counts.values())


def _delivery_callback(result: ReplayResult, counts: PartitionCounts) -> DeliveryReport:
    """Count a partition's failed deliveries (the forwarder reports failures only)."""

    def on_delivery(err: KafkaError | None, msg: object) -> None:
        if err is not None:
            counts.failed += 1
            if len(result.errors) < MAX_ERRORS_SHOWN:
                result.errors.append(f"partition {counts.partition}: {err.str()}")

    return on_delivery


def copy_window(
    settings: Settings,
    source: str,
    target: str,
    ranges: list[PartitionRange],
    record_filter: RecordFilter,
    *,
    execute: bool,
    rate: float | None = None,
    show: int = 20,
    progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Copy the records of ``ranges`` that pass ``record_filter`` from ``source`` to ``target``.

    Key, value and headers are written unchanged, plus ``pipeline-replayed-from``, through the
    idempotent producer; every delivery is awaited. librdkafka reports failures only, so a
    record counts as written once the producer has drained without reporting it. Ctrl-C stops
    reading, waits for what is in flight and returns with ``interrupted`` set.
    """
    counts = {r.partition: PartitionCounts(r.partition, r.start, r.end) for r in ranges}
    result = ReplayResult(counts, dry_run=not execute)
    consumer = window_consumer(settings)
    forwarder = Forwarder(settings) if execute else None
    queued = dict.fromkeys(counts, 0)
    callbacks = {p: _delivery_callback(result, c) for p, c in counts.items()}
    bucket = None
    if rate and forwarder is not None:
        bucket = TokenBucket(rate, sleep=forwarder.poll)  # serve reports while waiting
    matches = None if record_filter.trivial else record_filter.matches
    send = forwarder.send if forwarder is not None else None
    started = time.monotonic()
    try:
        for batch in WindowReader(consumer, source, ranges).batches():
            for msg in batch:
                partition: int = msg.partition()  # type: ignore[assignment]
                part = counts[partition]
                part.read += 1
                if matches is not None and not matches(msg):
                    continue
                part.matched += 1
                if send is None:
                    if len(result.sample) < show:
                        result.sample.append(_sample(msg))
                    continue
                if bucket is not None:
                    bucket.acquire()
                headers: Headers = msg.headers() or []  # type: ignore[assignment]
                headers.append((REPLAYED_FROM, f"{source}[{partition}]@{msg.offset()}".encode()))
                send(target, msg.value(), msg.key(), headers, callbacks[partition])
                queued[partition] += 1
            if progress is not None:
                progress(len(batch))
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        consumer.close()
        if forwarder is not None:
            _close(forwarder, result, queued)
        result.seconds = time.monotonic() - started
    return result


def _close(forwarder: Forwarder, result: ReplayResult, queued: dict[int, int]) -> None:
    try:
        forwarder.close(60.0)
    except KeyboardInterrupt:  # a second Ctrl-C while waiting: what is left fails, reported
        result.interrupted = True
        forwarder.close(0)
    for partition, count in result.counts.items():  # drained: all but the failed were written
        count.written = queued[partition] - count.failed
    unsent = sum(c.matched - queued[p] for p, c in result.counts.items())
    if unsent > 0 and not result.interrupted:
        result.errors.append(f"{unsent} matching record(s) were never queued for writing")


def _sample(msg: Any) -> dict[str, Any]:
    return {
        "partition": msg.partition(),
        "offset": msg.offset(),
        "timestamp": format_ms(msg.timestamp()[1]),
        "key": text_or_hex(msg.key()),
        "bytes": len(msg.value() or b""),
    }


def _check_options(
    since: int | None,
    until: int | None,
    from_offsets: tuple[str, ...],
    to_offsets: tuple[str, ...],
    from_topic: str,
    to_topic: str,
    allow_same_topic: bool,
) -> None:
    if since is None and not from_offsets:
        raise click.UsageError("give the window start: --since TIME or --from-offset N")
    if since is not None and from_offsets:
        raise click.UsageError("give the window as --since TIME or as --from-offset N, not both")
    if until is not None and since is None:
        raise click.UsageError("--until goes with --since")
    if to_offsets and not from_offsets:
        raise click.UsageError("--to-offset goes with --from-offset")
    if since is not None and until is not None and until <= since:
        raise click.UsageError("--until must be later than --since")
    if from_topic == to_topic and not allow_same_topic:
        raise click.UsageError(
            f"--to-topic is the --from-topic ({from_topic}): every consumer of {from_topic} "
            "would see the window's records a second time; pass --allow-same-topic if that is "
            "what you want"
        )


@click.command()
@click.option("--from-topic", required=True, help="Topic to read.")
@click.option("--since", type=TIME, help="Window start: ISO-8601 or relative (-2h).")
@click.option("--until", type=TIME, help="Window end, exclusive (default: now).")
@click.option("--from-offset", "from_offsets", multiple=True, help="Start offset: N or P:N.")
@click.option("--to-offset", "to_offsets", multiple=True, help="End offset, exclusive: N or P:N.")
@PARTITION_OPTION
@click.option("--key", help="Only records with this key.")
@click.option("--type", "subject", help="Only this event type (schema subject).")
@click.option("--where", multiple=True, help="Only records whose FIELD=VALUE (decodes Avro).")
@click.option("--to-topic", required=True, help="Topic to write to.")
@click.option("--rate", type=RATE, help="At most this many records per second (500/s).")
@click.option("--execute", is_flag=True, help="Write; without it, a dry run writes nothing.")
@click.option("--allow-same-topic", is_flag=True, help="Allow --to-topic = --from-topic.")
@click.option("--show", default=20, show_default=True, help="Dry run: records listed.")
@OUTPUT_OPTION
@click.pass_obj
def replay(
    obj: CliContext,
    from_topic: str,
    since: int | None,
    until: int | None,
    from_offsets: tuple[str, ...],
    to_offsets: tuple[str, ...],
    partitions: tuple[int, ...],
    key: str | None,
    subject: str | None,
    where: tuple[str, ...],
    to_topic: str,
    rate: float | None,
    execute: bool,
    allow_same_topic: bool,
    show: int,
    output: str,
) -> None:
    """Copy a window of --from-topic to --to-topic: key, value and headers unchanged.

    Each copy gets a pipeline-replayed-from header (topic[partition]@offset). Without
    --execute nothing is written: the records that would be are listed. Exits 1 if any record
    was not delivered, 130 when interrupted (after waiting for what was in flight).
    """
    _check_options(since, until, from_offsets, to_offsets, from_topic, to_topic, allow_same_topic)
    start_all, start_per = parse_offsets(from_offsets, "--from-offset")
    end_all, end_per = parse_offsets(to_offsets, "--to-offset")
    try:
        conditions = parse_where(where)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--where") from None
    settings = obj.settings
    consumer = window_consumer(settings)
    try:
        selected = topic_partitions(consumer, from_topic, partitions, settings=settings)
        topic_partitions(consumer, to_topic, settings=settings)
        ranges = resolve_window(
            consumer,
            from_topic,
            selected,
            since_ms=since,
            until_ms=until,
            start_offsets=_per_partition(selected, start_all, start_per),
            end_offsets=_per_partition(selected, end_all, end_per),
        )
    finally:
        consumer.close()
    record_filter = RecordFilter(
        key=key.encode() if key is not None else None,
        subject=subject,
        where=conditions,
        since_ms=since,
        until_ms=until,
        codec=Codec.from_settings(settings) if subject or conditions else None,
    )
    total = sum(r.size for r in ranges)
    with progress_bar(total, f"replay {from_topic}", output != "json") as advance:
        result = copy_window(
            settings, from_topic, to_topic, ranges, record_filter,
            execute=execute, rate=rate, show=show, progress=advance,
        )  # fmt: skip
    _report(result, from_topic, to_topic, record_filter, output)
    if result.interrupted:
        raise click.exceptions.Exit(INTERRUPTED_EXIT)
    if result.errors or result.total("failed"):
        raise click.ClickException(
            f"{result.total('failed')} record(s) were not delivered to {to_topic}: "
            + "; ".join(result.errors[:MAX_ERRORS_SHOWN])
        )


def _per_partition(partitions: list[int], every: int | None, per: dict[int, int]) -> dict[int, int]:
    out = dict.fromkeys(partitions, every) if every is not None else {}
    out.update({p: o for p, o in per.items() if p in partitions})
    return {p: o for p, o in out.items() if o is not None}


def _report(
    result: ReplayResult, source: str, target: str, record_filter: RecordFilter, output: str
) -> None:
    totals = {name: result.total(name) for name in ("read", "matched", "written", "failed")}
    if output == "json":
        print_json(
            {
                "dry_run": result.dry_run,
                "from_topic": source,
                "to_topic": target,
                "interrupted": result.interrupted,
                "seconds": round(result.seconds, 3),
                **totals,
                "undecodable": record_filter.undecodable,
                "partitions": [c.as_dict() for c in result.counts.values()],
                "would_write": result.sample if result.dry_run else [],
                "errors": result.errors,
            }
        )
        return
    if result.dry_run and result.sample:
        rows = [list(s.values()) for s in result.sample]
        print_table(
            f"would write to {target} (first {len(rows)})",
            ["partition", "offset", "timestamp", "key", "bytes"],
            rows,
        )
    print_table(
        f"replay {source} -> {target}" + (" (dry run)" if result.dry_run else ""),
        ["partition", "start", "end", "read", "matched", "written", "failed"],
        [list(c.as_dict().values()) for c in result.counts.values()],
    )
    state = "interrupted: " if result.interrupted else ""
    verb = "would write" if result.dry_run else "written"
    count = totals["matched"] if result.dry_run else totals["written"]
    click.echo(
        f"{state}read {totals['read']}, matched {totals['matched']}, {verb} {count}, "
        f"failed {totals['failed']} in {result.seconds:.1f}s"
        + ("; dry run: pass --execute to write" if result.dry_run else "")
    )
