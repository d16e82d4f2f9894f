"""Offsets, transactions and rebalances of the scheduler (a mixin of ``Scheduler``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from pipeline._delay import format_duration
from pipeline._errors import FatalProducerError
from pipeline._retriable import retry_retriable

from ._records import SchedulerConfig
from ._state import HeldRecords, PartitionState
from ._topics import TopicExistence

__all__ = ["ENTRY_TIER", "CommitMixin", "ProducerFenced"]

_LOG = logging.getLogger("pipeline.scheduler")
ENTRY_TIER = "entry"
# Longest wait for the producer before a periodic at-least-once commit.
_FLUSH_TIMEOUT_S = 10.0

# Transactional producers replaced at most this often (see ``_renew_producer``).
_MAX_RENEWALS = 3
_RENEWAL_WINDOW_S = 300.0


class ProducerFenced(FatalProducerError):
    """The transactional producer failed fatally while a record was produced (exactly-once).

    Raised by the produce path and caught by the loop, which replaces the producer and reads
    every partition again from its committed offsets (``_recover``); it escapes only when the
    replacement fails too.
    """

    def __init__(self, cause: KafkaException) -> None:
        super().__init__(f"transactional producer failed: {cause.args[0].str()}")
        self.cause = cause


class CommitMixin:
    """Commit what is done: batched offset commits, or one transaction per interval.

    Committed offsets carry metadata naming the offsets still pending (see
    ``encode_pending``), so a new owner neither loses held records nor repeats finished ones.
    """

    _config: SchedulerConfig
    _consumer: Any
    _producer: Any
    _parts: dict[tuple[str, int], PartitionState]
    _held: HeldRecords
    _broken: set[PartitionState]
    _tiers: dict[str, int]
    _last_commit: float
    _txn_open: bool = False
    _renewed: list[float]  # when transactional producers were replaced, lately
    _new_producer: Callable[[], Any]  # a producer built like the first one
    _topics: TopicExistence | None

    def _begin(self) -> None:
        while True:
            try:
                self._producer.begin_transaction()
                break
            except KafkaException as exc:
                if not exc.args[0].fatal():
                    raise
                # Fenced between transactions: a late request of the last one, sent with the
                # epoch librdkafka had just bumped. That one committed or was rewound, nothing
                # is open, so a new producer starts the next transaction (``_renew_producer``
                # gives up after a few).
                self._renew_producer(exc)
        self._txn_open = True

    def _abort_open(self) -> None:
        """Abort the open transaction; a producer that cannot abort it is replaced (a new one
        with the same transactional id aborts it on ``init_transactions``)."""
        if self._txn_open:
            try:
                retry_retriable(self._producer.abort_transaction, 60.0)
            except KafkaException as fatal:
                self._renew_producer(fatal)
            self._txn_open = False

    def _recover(self, exc: KafkaException) -> None:
        """After a fatal producer error mid-transaction: a new producer, every partition read
        again from its committed offset, and a new transaction."""
        self._renew_producer(exc)
        self._txn_open = False
        self._rewind()
        self._begin()

    # -- offsets, transactions and rebalances -------------------------------------------------

    def _maybe_commit(self) -> None:
        if time.monotonic() - self._last_commit >= self._config.commit_interval:
            self._commit()

    def _commit_points(self, parts: list[PartitionState]) -> list[TopicPartition]:
        offsets = []
        for part in parts:
            point = part.commit_point()
            if point is not None:
                offsets.append(
                    TopicPartition(part.topic, part.partition, point[0], metadata=point[1])
                )
                part.last_commit = point
        return offsets

    def _commit(self, final: bool = False, parts: list[PartitionState] | None = None) -> None:
        self._last_commit = time.monotonic()
        if self._config.exactly_once:
            # One transaction holds the output of every partition, so it carries all offsets.
            self._commit_transaction(list(self._parts.values()), reopen=not final)
            return
        chosen = list(self._parts.values()) if parts is None else parts
        # Only failed deliveries are reported, so records still in flight are in no ``pending``
        # set: a flush settles them first (acknowledged, or their partition marked broken by a
        # failure report). Unsettled after the timeout: commit nothing this time.
        left = self._producer.flush(30.0 if final or parts is not None else _FLUSH_TIMEOUT_S)
        if left:
            _LOG.warning("%d record(s) not acknowledged yet; offsets not committed", left)
            return
        if self._broken:
            chosen = [p for p in chosen if p not in self._broken]  # their failures are redone
        offsets = self._commit_points(chosen)
        if offsets:
            try:
                self._consumer.commit(offsets=offsets, asynchronous=not (final or parts))
            except KafkaException as exc:
                _LOG.warning("offset commit failed: %s", exc)
                for part in chosen:
                    part.last_commit = None

    def _commit_transaction(self, parts: list[PartitionState], *, reopen: bool) -> None:
        if not self._txn_open:
            if not reopen:
                return
            self._begin()
        points = [(p, p.last_commit) for p in parts]
        offsets = self._commit_points(parts)
        try:
            if offsets:
                meta = self._consumer.consumer_group_metadata()
                retry_retriable(
                    lambda left: self._producer.send_offsets_to_transaction(offsets, meta, left),
                    30.0,
                )
            self._producer.commit_transaction(60.0)
            self._txn_open = False
        except KafkaException as exc:
            err = exc.args[0]
            for part, previous in points:
                part.last_commit = previous
            if err.fatal():
                self._renew_producer(exc)
            else:
                _LOG.warning("transaction failed (%s); aborting and rewinding", err.str())
                self._abort_open()
            self._txn_open = False
            self._rewind()
        if reopen:
            self._begin()

    def _renew_producer(self, exc: KafkaException) -> None:
        """Replace a transactional producer that failed fatally, as Kafka Streams does when a
        task's producer is fenced: librdkafka fails an abort with a fatal ``INVALID_TXN_STATE``
        after the coordinator moved (confluentinc/librdkafka#4849), and fences itself when a
        request with its old epoch lands after it bumped the epoch (the coordinator moved
        mid-transaction). A new producer with the same transactional id aborts the old one's
        transaction (``init_transactions``); the caller then rewinds to the committed offsets.
        More than ``_MAX_RENEWALS`` in ``_RENEWAL_WINDOW_S`` (two instances configured with
        one id fence each other): ``FatalProducerError``."""
        err = exc.args[0]
        now = time.monotonic()
        self._renewed = [t for t in self._renewed if now - t < _RENEWAL_WINDOW_S] + [now]
        if len(self._renewed) > _MAX_RENEWALS:
            raise FatalProducerError(
                f"transactional producer failed {len(self._renewed)} times in "
                f"{_RENEWAL_WINDOW_S:.0f}s (is another scheduler running with instance id "
                f"{self._config.instance_id!r}?): {err.str()}"
            ) from exc
        _LOG.warning("transactional producer failed (%s); replacing it", err.str())
        old = self._producer
        try:
            old.purge()  # its records belong to the doomed transaction: reported now, not later
            old.flush(0)
        except KafkaException as gone:
            # A producer in a fatal state raises its error again from flush: it is let go.
            _LOG.debug("failed producer let go: %s", gone.args[0].str())
        self._broken.clear()  # those reports: the rewind that follows covers every partition
        self._producer = self._new_producer()
        self._topics = TopicExistence(self._producer)  # the old client is let go
        try:
            self._producer.init_transactions(30.0)
        except KafkaException as failed:
            raise FatalProducerError(
                f"a new transactional producer could not start: {failed.args[0].str()}"
            ) from failed

    def _rewind(self) -> None:
        """After an aborted transaction, read every partition again from its committed offset."""
        self._held.clear()
        self._rewind_parts(list(self._parts.values()))

    def _rewind_broken(self) -> None:
        """Read the partitions with a failed delivery again from their committed offsets."""
        broken, self._broken = self._broken, set()
        self._rewind_parts([p for p in broken if p.alive])

    def _rewind_parts(self, parts: list[PartitionState]) -> None:
        if not parts:
            return
        self._drop(parts)  # held and parked records of these go with them
        tps = [TopicPartition(p.topic, p.partition) for p in parts]
        self._adopt(tps)
        self._consumer.resume(tps)
        for tp in self._consumer.committed(tps, timeout=30.0):
            tp.offset = tp.offset if tp.offset >= 0 else -2  # OFFSET_BEGINNING
            self._consumer.seek(tp)

    def _adopt(self, partitions: list[TopicPartition]) -> None:
        committed = self._consumer.committed(partitions, timeout=30.0) if partitions else []
        for tp in committed:
            tier_ms = self._tiers.get(tp.topic)
            tier = ENTRY_TIER if tier_ms is None else format_duration(tier_ms)
            self._parts[(tp.topic, tp.partition)] = PartitionState.restored(
                tp.topic, tp.partition, tier, tier_ms, tp.offset, tp.metadata or ""
            )

    def _drop(self, parts: list[PartitionState]) -> None:
        for part in parts:
            part.alive = False
            self._parts.pop((part.topic, part.partition), None)

    def _on_assign(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        self._adopt(partitions)
        # librdkafka keeps a partition paused across an eager rebalance that gives it back to
        # the same member, but its new state here starts unpaused and would never resume it:
        # the records behind it would wait forever. Start every assigned partition fetching.
        try:
            self._consumer.resume(partitions)
        except KafkaException as exc:
            _LOG.warning("resuming assigned partitions failed: %s", exc)

    def _owned(self, partitions: list[TopicPartition]) -> list[PartitionState]:
        keys = [(tp.topic, tp.partition) for tp in partitions]
        return [self._parts[k] for k in keys if k in self._parts]

    def _on_revoke(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        parts = self._owned(partitions)
        try:
            self._commit(parts=parts)
        finally:
            self._drop(parts)

    def _on_lost(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        self._drop(self._owned(partitions))
        if self._config.exactly_once:
            # Output of lost partitions must not commit without their offsets.
            self._abort_open()
            self._rewind()
            self._begin()
