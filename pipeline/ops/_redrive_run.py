"""One redrive run, shared by ``pipeline dlq redrive`` and the ops console.

The run reads ``<group>.dlq`` from the saved position (see :mod:`._redrive`), decides per record
with a :class:`RedrivePlan`, sends what it may to ``<group>.retry`` (executed runs only) and
saves the new position when every send was delivered. Sending goes through a ``RedriveSender``
the caller builds (the producer SDK's ``EventProducer``: this package does not import it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import Consumer

from pipeline._errors import PipelineError
from pipeline._names import dlq_topic, redrive_group, retry_topic
from pipeline._settings import Settings

from ._dead_letters import DeadLetter, DeadLetterFilter, redrive_headers
from ._redrive import RedrivePlan, RedrivePosition, Verdict, read_positions, save_positions
from ._replay import TokenBucket
from ._window import PartitionRange, WindowReader, resolve_window, topic_partitions, window_consumer

__all__ = ["RedriveRun", "RedriveSender", "run_redrive"]


class RedriveSender(Protocol):
    """What a redrive needs from a producer (``producers.EventProducer`` fits)."""

    def send_bytes(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = ...,
        headers: Any = ...,
        on_delivery: Any = ...,
    ) -> Any: ...

    def close(self, timeout: float = ...) -> None: ...


@dataclass
class RedriveRun:
    """What one redrive run did."""

    plan: RedrivePlan
    group: str
    execute: bool
    scanned: int = 0
    sent: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    sample: list[DeadLetter] = field(default_factory=list)
    interrupted: bool = False
    committed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def source(self) -> str:
        return dlq_topic(self.group)

    @property
    def target(self) -> str:
        return retry_topic(self.group)

    @property
    def tracker(self) -> str:
        return redrive_group(self.group)

    def on_delivery(self, result: object, error: PipelineError | None) -> None:
        with self.lock:
            if error is None:
                self.sent += 1
            else:
                self.failed += 1
                if len(self.errors) < 5:
                    self.errors.append(str(error))

    def next_positions(self) -> dict[int, RedrivePosition]:
        return self.plan.next_positions() if self.plan.done else {}

    def report(self) -> dict[str, Any]:
        """The run as JSON (``pipeline dlq redrive -o json`` and the console's answer)."""
        counts = self.plan.counts
        positions = sorted(self.next_positions().items())
        return {
            "dry_run": not self.execute,
            "again": self.plan.again,
            "dlq_topic": self.source,
            "retry_topic": self.target,
            "position_group": self.tracker,
            "scanned": self.scanned,
            "matched": self.plan.matched,
            "to_send": counts[Verdict.SEND],
            "skipped_redriven": counts[Verdict.REDRIVEN],
            "skipped_duplicates": counts[Verdict.DUPLICATE],
            "redriven": self.sent,
            "failed": self.failed,
            "interrupted": self.interrupted,
            "position_saved": self.committed,
            "position": {str(p): pos.offset for p, pos in positions},
            "again_position": {str(p): pos.again for p, pos in positions},
            "records": [r.summary() for r in self.sample],
            "errors": self.errors,
        }


def run_redrive(
    settings: Settings,
    group: str,
    selector: DeadLetterFilter,
    *,
    sender: Callable[[], RedriveSender],
    partitions: tuple[int, ...] = (),
    again: bool = False,
    execute: bool = False,
    rate: float = 100.0,
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
    total: Callable[[int], None] | None = None,
) -> RedriveRun:
    """Run one redrive of ``group``'s DLQ: a dry run unless ``execute``.

    ``limit`` stops after that many records would be (or were) sent; the position then saves
    what was scanned so far, so the next run goes on from there. ``total`` is told how many
    records the window holds before reading starts; ``progress`` how many were read since.

    Raises:
        PipelineError: a topic is missing or Kafka cannot be reached (nothing was sent).
    """
    consumer = window_consumer(settings, redrive_group(group))
    try:
        source, target = dlq_topic(group), retry_topic(group)
        selected = topic_partitions(consumer, source, partitions, settings=settings)
        topic_partitions(consumer, target, settings=settings)
        run = RedriveRun(
            RedrivePlan(selector, again, read_positions(consumer, source, selected)),
            group,
            execute,
        )
        ranges = resolve_window(
            consumer, source, selected, start_offsets=run.plan.start_offsets(),
            until_ms=selector.until_ms,
        )  # fmt: skip
        if total is not None:
            total(sum(r.size for r in ranges))
        _send(run, consumer, ranges, rate, limit, sender, progress or (lambda n: None))
        if execute and not run.failed and not run.errors and run.plan.done:
            save_positions(consumer, source, run.plan.next_positions(), run.tracker)
            run.committed = True
    finally:
        consumer.close()
    return run


def _send(
    run: RedriveRun,
    consumer: Consumer,
    ranges: list[PartitionRange],
    rate: float,
    limit: int | None,
    sender: Callable[[], RedriveSender],
    advance: Callable[[int], None],
) -> None:
    producer = sender() if run.execute else None
    bucket = TokenBucket(rate)
    try:
        for batch in WindowReader(consumer, run.source, ranges).batches():
            for msg in batch:
                run.scanned += 1
                record = DeadLetter.from_message(msg)
                if run.plan.decide(record) is Verdict.SEND:
                    if len(run.sample) < 20:
                        run.sample.append(record)
                    if producer is not None:
                        bucket.acquire()
                        producer.send_bytes(
                            run.target, record.value, key=record.key,
                            headers=redrive_headers(record.headers), on_delivery=run.on_delivery,
                        )  # fmt: skip
                run.plan.handled(record)
                if limit is not None and run.plan.counts[Verdict.SEND] >= limit:
                    raise _Limit
            advance(len(batch))
    except _Limit:
        pass  # the position covers what was handled; the rest waits for the next run
    except KeyboardInterrupt:
        run.interrupted = True
    finally:
        if producer is not None:
            try:
                producer.close(60.0)
            except PipelineError as exc:
                run.errors.append(str(exc))


class _Limit(Exception):
    """The run reached its ``limit``."""
