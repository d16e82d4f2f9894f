"""Exactly-once mode: records are handled, produced and committed in size-or-time transactions."""

from __future__ import annotations

import logging
import time
from contextlib import AbstractContextManager
from typing import Any, Protocol

from confluent_kafka import KafkaException, Message, TopicPartition

from pipeline._errors import ConsumeError, ProduceError

from ._commits import commit_points
from ._dead_letter import CopyWriter
from ._flow import FlowControl
from ._metrics import WorkerMetrics
from ._offsets import PartitionState
from ._options import WorkerOptions

__all__ = ["TRANSACTIONAL_PRODUCER_CONFIG", "LoopHost", "TransactionalLoop"]


class LoopHost(Protocol):
    """The poll loop as the transactional loop drives it (``Runner`` satisfies it)."""

    options: WorkerOptions
    consumer: Any
    producer: Any
    writer: CopyWriter
    flow: FlowControl
    metrics: WorkerMetrics
    parts: dict[tuple[str, int], PartitionState]

    @property
    def error(self) -> BaseException | None:
        """The fatal error that stops the worker, if any."""

    def running(self) -> bool:
        """Whether the loop should go on."""

    def beat(self) -> None:
        """Mark the loop as alive."""

    def idle(self) -> None:
        """A poll brought nothing (caught up is progress)."""

    def dispatch(self, messages: list[Message]) -> None:
        """Hand consumed records to the handlers."""

    def drain(self) -> int:
        """Apply finished records."""

    def settle(self, parts: list[PartitionState], timeout: float, *, warn: bool = True) -> None:
        """Wait for in-flight records of ``parts``."""

    def rewind(self) -> int:
        """Forget what was handled since the last commit; consume from the committed offsets."""


_LOG = logging.getLogger("consumers")
# How long a commit waits for busy handlers before it pauses the partitions and polls.
_QUIET_WAIT_S = 0.5
# A transaction stays open at least this many times as long as the last commit blocked (the
# offsets and commit round trips), so commits take at most about a quarter of the loop's
# time on a slow broker too; never longer than _MAX_AGE_S.
_STRETCH = 3.0
_MAX_AGE_S = 2.0
# Aborted transactions in a row (no commit between) after which the worker stops: the cause is
# not a leader moving but lasting (an ACL, a deleted topic), and retrying would only spin.
_MAX_ABORTS = 5
# The transactional producer's retries: after a commit the coordinator still writes the
# markers, and the next transaction's first AddPartitions/AddOffsets call is refused with
# CONCURRENT_TRANSACTIONS until it is done. librdkafka's default backoff (100 ms, doubling)
# made that wait cost more than the transaction itself (Java's client retries it at 20 ms).
TRANSACTIONAL_PRODUCER_CONFIG: dict[str, Any] = {
    "retry.backoff.ms": 20,
    "retry.backoff.max.ms": 200,
}


class TransactionalLoop:
    """Consume, run the handlers (whose sends join the transaction), commit by size or time.

    One transaction holds every record dispatched while it is open, their handler sends,
    retry and dead-letter copies, and the consumed offsets. It commits when it holds
    ``transaction_records`` records, when it is old enough, or when a poll brings nothing
    (caught up), whichever comes first; so a busy worker pays the blocking commit once per
    few thousand records, and a quiet one adds no latency. Old enough is
    ``transaction_interval_s``, stretched to ``_STRETCH`` times the last commit's blocking
    time (at most ``_MAX_AGE_S``) when the broker is slow to commit. Records
    keep flowing into the open transaction between polls: the consumer is not paused for a
    commit (a pause drops librdkafka's prefetched records, and the next transaction would
    wait on a fresh fetch) unless handlers are still busy after ``_QUIET_WAIT_S``.

    A failure that Kafka lets a producer recover from (a partition leader or the transaction
    coordinator moved, a send of the transaction failed) aborts the transaction; the worker
    then consumes again from the last committed offsets (:meth:`LoopHost.rewind`) and goes
    on, and ``read_committed`` readers never see the aborted output. A fatal producer error
    (fenced by a newer instance), a handler bug, or ``_MAX_ABORTS`` aborts in a row stop
    the worker, after aborting; its next incarnation starts from the committed offsets.
    """

    def __init__(self, runner: LoopHost) -> None:
        self.runner = runner
        self._open = False
        self._txn: AbstractContextManager[Any] | None = None
        self._opened_at = 0.0
        self._age = runner.options.transaction_interval_s  # current age trigger
        self._records = 0
        self.committed = 0  # transactions committed (metrics and tests)
        self.aborted = 0  # ... and aborted and handled again (a leader or coordinator moved)
        self._aborts_in_row = 0

    def run(self) -> None:
        """Loop until the worker is stopped; commit the open transaction on the way out."""
        runner = self.runner
        options = runner.options
        try:
            while runner.running():
                try:
                    self._step()
                except (ProduceError, ConsumeError) as exc:
                    if not self._recoverable(exc):
                        raise
                    self._recover(exc)
            if runner.error is not None:
                self._abort()
            elif self._open:
                self._commit(timeout=options.drain_timeout_s)
        except BaseException:
            self._abort()
            raise

    def _step(self) -> None:
        """One poll: consume into the open transaction; commit it when it is due."""
        runner = self.runner
        options, flow = runner.options, runner.flow
        runner.beat()
        now = time.monotonic()
        if flow.full(now):
            flow.wait(options.poll_timeout_s)
            runner.drain()
        else:
            size = flow.fetch_size(options.batch_size)
            messages = runner.consumer.consume(size, options.poll_timeout_s)
            if messages:
                self._begin()
                runner.dispatch(messages)
                self._records += len(messages)
                runner.drain()
            else:
                runner.idle()
                if self._open:
                    self._commit()  # caught up: do not hold the output back
                return
        if self._open and (
            self._records >= options.transaction_records
            or time.monotonic() - self._opened_at >= self._age
        ):
            self._commit()

    def _recoverable(self, exc: BaseException) -> bool:
        """Whether a failed transaction can be aborted and its records handled again: not
        after a handler bug, a fatal producer error (fenced by a newer instance, ...), or
        ``_MAX_ABORTS`` aborts in a row."""
        if self.runner.error is not None or self._aborts_in_row >= _MAX_ABORTS:
            return False
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, KafkaException) and cause.args[0].fatal():
                return False
            cause = cause.__cause__
        return True

    def _recover(self, exc: BaseException) -> None:
        """Abort, go back to the committed offsets, and go on (a leader or coordinator moved)."""
        self._abort()
        self.aborted += 1
        self._aborts_in_row += 1
        self.runner.metrics.transactions_aborted.inc()
        try:
            rewound = self.runner.rewind()
        except KafkaException as error:
            raise ConsumeError(f"rewinding after an aborted transaction failed: {error}") from exc
        _LOG.warning(
            "transaction aborted (%s); %d partition(s) rewound to their committed offsets, "
            "their records are handled again",
            exc,
            rewound,
        )
        self.runner.flow.wait(min(1.0, 0.1 * 2**self._aborts_in_row))  # let the cluster settle

    def _begin(self) -> None:
        if self._open:
            return
        txn = self.runner.producer.transaction()
        txn.__enter__()
        self._txn, self._open = txn, True
        self._opened_at, self._records = time.monotonic(), 0

    def _commit(self, timeout: float | None = None) -> None:
        """Wait for the transaction's records, add the offsets, commit (one blocking call)."""
        self._wait_all(timeout)
        start = time.monotonic()
        self._send_offsets(list(self.runner.parts.values()))
        txn, self._txn, self._open = self._txn, None, False
        if txn is not None:
            txn.__exit__(None, None, None)
            self.committed += 1
            self._aborts_in_row = 0
        blocked = time.monotonic() - start
        floor = self.runner.options.transaction_interval_s
        self._age = max(floor, min(_MAX_AGE_S, _STRETCH * blocked))

    def _abort(self) -> None:
        txn, self._txn, self._open = self._txn, None, False
        if txn is None:
            return
        error = ConsumeError("transaction aborted")
        try:
            txn.__exit__(ConsumeError, error, None)
        except Exception as exc:  # the worker is failing already; keep its own error
            _LOG.warning("aborting the transaction: %s", exc)

    def _wait_all(self, timeout: float | None) -> None:
        """Wait for every dispatched record; past ``_QUIET_WAIT_S``, poll (paused) to stay in
        the group while slow handlers finish."""
        runner = self.runner
        consumer = runner.consumer
        start = time.monotonic()
        paused = False
        try:
            while True:
                runner.drain()
                if runner.flow.in_flight == 0:
                    break
                if runner.error is not None:
                    raise ConsumeError("a handler failed unexpectedly; aborting") from runner.error
                waited = time.monotonic() - start
                if timeout is not None and waited >= timeout:
                    raise ConsumeError(
                        f"{runner.flow.in_flight} record(s) still in flight after {timeout:.1f}s"
                    )
                runner.beat()
                if waited < _QUIET_WAIT_S:
                    runner.flow.wait(0.005)
                    continue
                if not paused:
                    consumer.pause(consumer.assignment())
                    paused = True
                more = consumer.consume(runner.options.batch_size, 0.005)
                if more:
                    runner.dispatch(more)
        finally:
            if paused:
                consumer.resume(consumer.assignment())
        if runner.writer.failed:
            jobs = runner.writer.failed
            raise ConsumeError(f"{len(jobs)} retry/dead-letter write(s) failed; aborting")

    def _send_offsets(self, parts: list[PartitionState]) -> None:
        points = commit_points(parts)
        if not points:
            return
        runner = self.runner
        offsets = [TopicPartition(p.topic, p.partition, pos) for p, pos in points]
        runner.producer.send_offsets_to_transaction(
            offsets, runner.consumer.consumer_group_metadata()
        )
        for part, position in points:
            part.committed = position

    def revoke(self, parts: list[PartitionState]) -> None:
        """Inside an open transaction, add the revoked partitions' offsets before they go."""
        if not self._open:
            return
        runner = self.runner
        runner.settle(list(runner.parts.values()), runner.options.revoke_timeout_s)
        if runner.flow.in_flight:
            raise ConsumeError("records still in flight at a revoke in exactly-once mode")
        self._send_offsets(parts)
        _LOG.debug("added offsets of %d revoked partition(s) to the transaction", len(parts))
