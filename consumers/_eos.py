"""Exactly-once mode: each consumed batch is handled, produced and committed in one transaction."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from confluent_kafka import Message, TopicPartition

from pipeline._errors import ConsumeError

from ._commits import commit_points
from ._dead_letter import CopyWriter
from ._flow import FlowControl
from ._offsets import PartitionState
from ._options import WorkerOptions

__all__ = ["LoopHost", "TransactionalLoop"]


class LoopHost(Protocol):
    """The poll loop as the transactional loop drives it (``Runner`` satisfies it)."""

    options: WorkerOptions
    consumer: Any
    producer: Any
    writer: CopyWriter
    flow: FlowControl
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


_LOG = logging.getLogger("consumers")


class TransactionalLoop:
    """Consume a batch, run its handlers (whose sends join the transaction), then commit.

    Handler sends, retry and dead-letter copies and the consumed offsets are committed
    together. Any failure aborts the transaction and stops the worker: the next incarnation
    reads from the last committed offsets, and ``read_committed`` readers never see the
    aborted output.
    """

    def __init__(self, runner: LoopHost) -> None:
        self.runner = runner
        self._open = False

    def run(self) -> None:
        """Loop until the worker is stopped."""
        runner = self.runner
        consumer = runner.consumer
        options = runner.options
        while runner.running():
            runner.beat()
            messages = consumer.consume(options.batch_size, options.poll_timeout_s)
            if not messages:
                runner.idle()
                continue
            with runner.producer.transaction():
                self._open = True
                try:
                    runner.dispatch(messages)
                    self._wait_all()
                    self._send_offsets(list(runner.parts.values()))
                finally:
                    self._open = False

    def _wait_all(self) -> None:
        """Wait for every dispatched record, polling (paused) so the group stays joined."""
        runner = self.runner
        consumer = runner.consumer
        assignment = consumer.assignment()
        consumer.pause(assignment)
        try:
            while True:
                runner.drain()
                if runner.flow.in_flight == 0:
                    break
                if runner.error is not None:
                    raise ConsumeError("a handler failed unexpectedly; aborting") from runner.error
                runner.beat()
                more = consumer.consume(runner.options.batch_size, 0.005)
                if more:
                    runner.dispatch(more)
        finally:
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
