"""Exactly-once mode: each consumed batch is handled, produced and committed in one transaction."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from confluent_kafka import TopicPartition

from pipeline._errors import ConsumeError

from ._commits import commit_points
from ._offsets import PartitionState

if TYPE_CHECKING:
    from ._runner import Runner

__all__ = ["TransactionalLoop"]

_LOG = logging.getLogger("consumers")


class TransactionalLoop:
    """Consume a batch, run its handlers (whose sends join the transaction), then commit.

    Handler sends, retry and dead-letter copies and the consumed offsets are committed
    together. Any failure aborts the transaction and stops the worker: the next incarnation
    reads from the last committed offsets, and ``read_committed`` readers never see the
    aborted output.
    """

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self._open = False
        runner.eos_revoke = self._on_revoke  # type: ignore[method-assign]

    def run(self) -> None:
        """Loop until the worker is stopped."""
        runner = self.runner
        consumer = runner._consumer
        options = runner.options
        while not runner._stop.is_set() and runner._error is None:
            runner._heartbeat = time.monotonic()
            messages = consumer.consume(options.batch_size, options.poll_timeout_s)
            if not messages:
                continue
            with runner.producer.transaction():
                self._open = True
                try:
                    runner.dispatch(messages)
                    self._wait_all()
                    self._send_offsets(list(runner._parts.values()))
                finally:
                    self._open = False

    def _wait_all(self) -> None:
        """Wait for every dispatched record, polling (paused) so the group stays joined."""
        runner = self.runner
        consumer = runner._consumer
        assignment = consumer.assignment()
        consumer.pause(assignment)
        try:
            while True:
                runner.drain()
                if runner._in_flight == 0:
                    break
                if runner._error is not None:
                    raise ConsumeError("a handler failed unexpectedly; aborting") from (
                        runner._error
                    )
                runner._heartbeat = time.monotonic()
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
            offsets, runner._consumer.consumer_group_metadata()
        )
        for part, position in points:
            part.committed = position

    def _on_revoke(self, parts: list[PartitionState]) -> None:
        """Inside an open transaction, add the revoked partitions' offsets before they go."""
        if not self._open:
            return
        runner = self.runner
        runner.settle(list(runner._parts.values()), runner.options.revoke_timeout_s)
        if runner._in_flight:
            raise ConsumeError("records still in flight at a revoke in exactly-once mode")
        self._send_offsets(parts)
        _LOG.debug("added offsets of %d revoked partition(s) to the transaction", len(parts))
