"""The poll loop: the only thread touching the consumer. It never waits on handlers."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from pipeline._errors import ConfigError, ConsumeError, KafkaOperationError
from pipeline._settings import Settings, load_settings
from pipeline.avro._codec import Codec

from ._batch import Batcher
from ._broadcast import Broadcast
from ._commits import Committer
from ._dead_letter import CopyWriter
from ._dedup import DedupWindow
from ._eos import TRANSACTIONAL_PRODUCER_CONFIG, TransactionalLoop
from ._execution import EventLoopThread, InlineExecution
from ._flow import FlowControl
from ._gate_metrics import GateMetrics
from ._gates import Gates
from ._keyed import KeyedExecutor
from ._metrics import WorkerMetrics
from ._offsets import PartitionState
from ._orphans import OrphanWatch
from ._priority import PREFETCH, PriorityScheduler, subscription
from ._process import Processor
from ._spec import WorkerSpec
from ._strategy import choose_execution
from ._transport import KafkaTransport, Transport
from ._work import Work

__all__ = ["Runner"]

_LOG = logging.getLogger("consumers")
_HEALTH_STALE_S = 30.0


class Runner:
    """Runs one worker: consume, dispatch per key, track offsets, commit, pause and resume.

    ``transport`` builds the clients (default: the Kafka ones); the test kit passes its
    in-memory one and drives the loop itself (:meth:`start`, :meth:`step`, :meth:`close`).
    """

    def __init__(
        self, worker: WorkerSpec, stop: threading.Event, transport: Transport | None = None
    ) -> None:
        self.worker = worker
        self.transport: Transport = transport or KafkaTransport()
        self.options = worker.options
        self._stop = stop
        self._settings: Settings = worker.settings or load_settings()
        self.metrics = WorkerMetrics(worker.registry, worker.group)
        self.parts: dict[tuple[str, int], PartitionState] = {}
        self._done: deque[tuple[Work, bool]] = deque()
        self.flow = FlowControl(self.options, self.metrics)
        self._room = self.flow.room
        self._heartbeat = 0.0
        self._progress = time.monotonic()  # a record finished, or caught up with nothing to do
        self._error: BaseException | None = None
        self.consumer: Any = None
        self.transactional: TransactionalLoop | None = None
        self.broadcast = Broadcast(worker.group, self.options) if self.options.broadcast else None
        self.priority: PriorityScheduler | None = None
        self.gates: Gates | None = None
        self.batcher: Batcher | None = None
        self.batch_executor: KeyedExecutor[Work] | None = None

    # -- health -------------------------------------------------------------------------------

    def healthy(self) -> bool:
        """The loop went round recently and nothing fatal happened."""
        return self._error is None and time.monotonic() - self._heartbeat < _HEALTH_STALE_S

    def ready(self) -> bool:
        """Joined the group and owns at least one partition."""
        return self.healthy() and bool(self.parts)

    def since_progress(self) -> float:
        """Seconds since a record finished or the worker was caught up with nothing to do."""
        return time.monotonic() - self._progress

    def status(self) -> dict[str, object]:
        """What ``/healthz`` shows besides ok/unavailable."""
        return {
            "seconds_since_progress": round(self.since_progress(), 3),
            "in_flight": self.flow.in_flight,
            "assigned_partitions": len(self.parts),
            "paused": self.flow.paused,
            "paused_partitions": len(self.flow.pauses.paused),
            **({} if self.gates is None else self.gates.status()),
        }

    # -- setup --------------------------------------------------------------------------------

    def _build(self) -> None:
        worker, options = self.worker, self.options
        if options.exactly_once and Gates.needed(worker):  # a transaction waits for its records
            raise ConfigError("circuit breakers and rate limits don't work in exactly-once mode")
        models = [s.model for s in worker.handlers.values() if s.model is not None]
        codec = Codec.from_settings(self._settings, models)
        transactional_id = None
        if options.exactly_once:
            instance = options.instance_id or f"{worker.group}-{id(self):x}"
            transactional_id = f"{worker.group}.worker.{instance}"
        serial = self.transport.serial
        tuning = TRANSACTIONAL_PRODUCER_CONFIG if transactional_id else {}
        self.producer = self.transport.producer(
            self._settings,
            codec=codec,
            registry=worker.registry,
            transactional_id=transactional_id,
            config={"message.timeout.ms": 30000, **tuning, **options.producer_config},
            scheduler_topic=options.scheduler_topic,
        )
        self.writer = CopyWriter(
            self.producer, self.metrics, options.write_backoff, give_up=options.exactly_once
        )
        specs = [*worker.handlers.values(), worker.fallback_handler]
        events = EventLoopThread() if any(s.is_async for s in specs if s) else None
        self.processor = Processor(
            worker,
            codec,
            self.producer,
            self.writer,
            self.metrics,
            self._finish,
            self._stop,
            None if events is None else events.loop,
        )
        self.processor.on_error = self._fail
        if self.broadcast is not None:  # acknowledgements name the instance, not the group
            self.processor.responder.name = self.broadcast.identity
        self.processor.finish_ok = self._finish_ok
        if Gates.needed(worker):
            metrics = GateMetrics(worker.registry, worker.group)
            self.gates = Gates(worker, self.transport.monotonic, self._finish, metrics)
            self.processor.gates = self.gates
        self.executor, self.execution = choose_execution(
            self.processor, worker, serial, events, self._tick, self.running, self._fail, self._stop
        )
        if any(s.batch for s in worker.handlers.values()):
            self.batcher = Batcher(self.processor.spec_of, self.transport.monotonic)
            if not serial and not isinstance(self.execution, InlineExecution):
                # threads of their own: batch lanes never hold back the other records. Run
                # inline, batches take the poll thread's path (a thread once they turn slow).
                self.batch_executor = KeyedExecutor(
                    self.processor, min(4, options.concurrency), name=f"batch-{worker.group}"
                )
        config = self._consumer_config()
        self._earliest = config.get("auto.offset.reset") in ("earliest", "smallest")
        self.consumer = self.transport.consumer(config)
        if worker.priorities:
            self.priority = PriorityScheduler(
                worker.priorities.values(), self.flow.pauses, options.concurrency
            )
        self.transactional = TransactionalLoop(self) if options.exactly_once else None
        self.committer = Committer(self.consumer, self.metrics)
        self.committer.lookup = self.parts.get
        self.orphans: OrphanWatch | None = None
        if options.orphan_check_s > 0 and isinstance(self.transport, KafkaTransport):
            topics = [] if worker.pattern else [*worker.topics, worker.retry_topic]
            self.orphans = OrphanWatch(self._settings, worker.group, topics, options.orphan_check_s)
        self.metrics.since_progress.set_function(self.since_progress)

    def _consumer_config(self) -> dict[str, Any]:
        options = self.options
        extra: dict[str, Any] = {
            "on_commit": self._on_commit,
            "error_cb": self._on_error,
            "enable.partition.eof": True,  # tells "caught up" from "stuck" (progress metric)
        }
        if options.exactly_once:
            extra["isolation.level"] = "read_committed"
        if options.static_membership and options.instance_id:
            extra["group.instance.id"] = options.instance_id
        group = self.worker.group
        if self.broadcast is not None:
            group = self.broadcast.group_id
            extra["auto.offset.reset"] = "latest"
        if self.worker.priorities:
            extra.update(PREFETCH)
        extra.update(options.consumer_config)
        return self._settings.consumer_config(group, **extra)

    def _subscribe(self) -> None:
        worker = self.worker
        topics = subscription(worker.topics, worker.priorities)
        if self.broadcast is not None:  # no group: every partition, no retry topic
            self.broadcast.assign(self.consumer, topics, self._on_assign)
            return
        if worker.pattern:
            topics = [worker.pattern]
        topics.append(worker.retry_topic)
        self.consumer.subscribe(
            topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> None:
        """Consume until stopped; then drain, commit and leave the group."""
        self.start()
        try:
            if self.transactional is not None:
                self.transactional.run()
            else:
                while self.running():
                    self._tick()
        finally:
            self._shutdown()
        self.raise_error()

    def start(self) -> None:
        """Build the clients and subscribe (what :meth:`run` does before its loop)."""
        self._build()
        self._subscribe()
        _LOG.info("worker %s started (concurrency %d)", self.worker.group, self.options.concurrency)

    def step(self) -> None:
        """One round of the loop: consume, dispatch, apply completions, commit (test kit)."""
        self._tick()

    def close(self) -> None:
        """Drain, commit and leave the group (what :meth:`run` does after its loop)."""
        self._shutdown()

    def raise_error(self) -> None:
        """Raise the fatal error that stopped the worker, if any.

        Raises:
            ConsumeError: wrapping that error.
        """
        if self._error is not None:
            raise ConsumeError(f"worker {self.worker.group} failed: {self._error}") from (
                self._error
            )

    def running(self) -> bool:
        """Whether the loop should go on: not stopped, nothing fatal."""
        return not self._stop.is_set() and self._error is None

    @property
    def error(self) -> BaseException | None:
        """The fatal error that stops the worker, if any."""
        return self._error

    def beat(self) -> None:
        """Mark the loop as alive (``/healthz``)."""
        self._heartbeat = time.monotonic()

    def _tick(self) -> None:
        self._heartbeat = now = time.monotonic()
        options, flow = self.options, self.flow
        if self.execution.hold(now, flow, options.poll_timeout_s):
            pass  # the execution strategy is switching modes: no new records this tick
        elif flow.full(now):
            # Full: wait for room without consuming, so prefetched records stay queued in
            # librdkafka (flow control pauses only after a long stall).
            flow.wait(options.poll_timeout_s)
        else:
            # Never consume(timeout=0) in a loop: a spinning poll thread hogs the GIL and
            # starves the handlers. Lanes hand over to the next record of a key by themselves.
            size = flow.fetch_size(options.batch_size)
            messages = self.consumer.consume(size, options.poll_timeout_s)
            if messages:
                self.dispatch(messages)
            else:
                self.idle()
        self.drain()
        if self.batcher is not None:
            self._due_batches(now)
        self.writer.resend_due()
        if self.priority is not None:  # which priority levels wait (applied just below)
            self.priority.tick(self.consumer, self.parts)
        if self.gates is not None:
            self.gates.tick(self.execution.submit, self.execution.holds, flow.pauses)
        flow.backpressure(now, self.consumer, self.parts)
        self.committer.maybe_commit(self.parts.values(), options)
        if self.orphans is not None and (lost := self.orphans.due(now, {t for t, _ in self.parts})):
            _LOG.warning(
                "group %s left %d partition(s) unowned; rejoining", self.worker.group, len(lost)
            )
            self.consumer.unsubscribe()  # revokes (and commits) what it owns, as a rebalance
            self._subscribe()

    def idle(self) -> None:
        """Nothing came: caught up (every partition at its end, nothing in flight) is progress."""
        parts = self.parts
        if parts and not self.flow.in_flight and all(p.at_end for p in parts.values()):
            self._progress = time.monotonic()

    def dispatch(self, messages: list[Message]) -> None:
        """Hand records to the keyed executor, or handle them here (poll thread)."""
        parts = self.parts
        by_partition = self.options.ordering == "partition"
        batch: list[tuple[Any, Work]] = []
        append = batch.append
        where: Any = None
        part: PartitionState | None = None
        for msg in messages:
            if msg.error() is not None:
                self._consume_error(msg)
                continue
            here: Any = (msg.topic(), msg.partition())
            if here != where:  # a batch holds runs of one partition: look it up once a run
                where, part = here, parts.get(here)
                if part is not None:
                    part.at_end = False
            if part is None:  # pragma: no cover - librdkafka delivers only assigned partitions
                continue
            offset: int = msg.offset()  # type: ignore[assignment]
            part.tracker.add(offset)
            part.in_flight += 1
            key = part if by_partition else msg.key()
            append((None if key is None else (part, key), Work(part, msg, offset)))
        if batch:  # a batch of partition-EOF events only brings no work
            self.flow.in_flight += len(batch)
            if self.batcher is not None:  # records of batch handlers wait for their batch
                batch, full = self.batcher.split(batch)
                self.submit_batches(full)
                if self.transactional is not None:  # a transaction waits for all it consumed
                    self.flush_batches()
            if batch:
                self.execution.submit(batch)

    def submit_batches(self, batches: list[tuple[Any, Work]]) -> None:
        """Run batches of batch handlers (on the threads; on this thread in serial mode)."""
        if batches:
            pool = self.batch_executor
            (self.execution.submit if pool is None else pool.submit_many)(batches)

    def _due_batches(self, now: float) -> None:
        """Run the batches that are due (poll thread, once a tick)."""
        assert self.batcher is not None
        flow = self.flow  # at the in-flight limit no more records come: they all go now
        full = flow.in_flight >= flow.limit
        self.submit_batches(self.batcher.due(float("inf") if full else now))
        if self.batch_executor is not None:
            self.batch_executor.poke()

    def flush_batches(self) -> None:
        """Run every batch still filling, now (before a revoke or shutdown; the test kit)."""
        if self.batcher is not None:
            self.submit_batches(self.batcher.due(float("inf")))

    def _finish(self, work: Work, dropped: bool) -> None:
        """Called from worker and delivery threads: hand the completion to the poll thread."""
        self._done.append((work, dropped))
        room = self._room
        if not room.is_set():  # the poll thread clears it before draining: no lost wake-up
            room.set()

    def _finish_ok(self, works: list[Work]) -> None:
        """Hand over many completed records at once (a batch): one wake-up, not one each."""
        self._done.extend((work, False) for work in works)
        self._room.set()

    def drain(self) -> int:
        """Apply completions (poll thread); return how many.

        Records handled successfully are counted here too (outcome ``ok`` and handler run
        time), once per batch of completions rather than once per record on every thread.
        """
        done, parts, count = self._done, self.parts, 0
        handled: dict[tuple[str, str], list[float]] = {}
        last: PartitionState | None = None
        owned = False
        while done:
            work, dropped = done.popleft()
            part = work.part
            part.in_flight -= 1
            count += 1
            label = work.label
            if label is not None:
                times = handled.get((part.topic, label))
                if times is None:
                    handled[(part.topic, label)] = [work.took]
                else:
                    times.append(work.took)
            if part is not last:
                last, owned = part, parts.get((part.topic, part.partition)) is part
            if not dropped and owned:
                part.tracker.complete(work.offset)
        flow = self.flow
        if count:
            self._progress = time.monotonic()
            flow.in_flight -= count
            self.committer.finished(count)
            if handled:
                self.metrics.handled_ok(handled)
        self.executor.poke()
        self.metrics.in_flight.set(flow.in_flight)
        return count

    def _consume_error(self, msg: Message) -> None:
        err: KafkaError = msg.error()  # type: ignore[assignment]
        if err.code() == KafkaError._PARTITION_EOF:
            part = self.parts.get((msg.topic(), msg.partition()))  # type: ignore[arg-type]
            if part is not None:
                part.at_end = True
                if self.priority is not None:
                    self.priority.at_end((part.topic, part.partition), msg.offset() or 0)
        elif err.fatal() or err.code() == KafkaError._FATAL:
            self._fail(KafkaOperationError(f"fatal consumer error: {err.str()}"))
        elif err.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
            _LOG.warning("consume: %s (is the topic created?)", err.str())
        else:
            _LOG.warning("consume: %s", err.str())

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal() or err.code() == KafkaError._FATAL:
            self._fail(KafkaOperationError(f"fatal consumer error: {err.str()}"))
        else:
            _LOG.debug("consumer error (librdkafka retries it): %s", err.str())

    def _on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        self.committer.on_commit(err, partitions)

    # -- rebalances ---------------------------------------------------------------------------

    def _track(self, partitions: list[TopicPartition]) -> None:
        """A fresh state for each partition: nothing dispatched, an empty dedup window."""
        dedup = self.options.dedup
        for tp in partitions:
            part = self.parts[(tp.topic, tp.partition)] = PartitionState(tp.topic, tp.partition)
            if dedup is not None:
                self.processor.dedup[part] = DedupWindow(dedup, self.transport.monotonic)
        self.metrics.assigned.set(len(self.parts))

    def _on_assign(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        self._track(partitions)
        self.metrics.rebalanced("assigned", len(partitions))
        _LOG.info("assigned %s", _names(partitions))

    def _on_revoke(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        # Let queued work of these partitions finish first: dropping it would leave completed
        # records above the commit position, and the next owner would handle them again.
        parts = self._owned(partitions)
        if self.gates is not None:
            self.gates.drop(parts)  # parked records are not committed: the next owner runs them
        self.flush_batches()
        self.settle(parts, self.options.revoke_timeout_s)
        self._release(partitions)
        self.settle(parts, 0.5, warn=False)  # dropped records report back at once
        if not self.options.exactly_once:
            self.committer.commit(parts, sync=True)
        elif self.transactional is not None:
            self.transactional.revoke(parts)
        self._forget(parts)
        self.metrics.rebalanced("revoked", len(partitions))
        _LOG.info("revoked %s", _names(partitions))

    def _on_lost(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        parts = self._release(partitions)
        if self.gates is not None:
            self.gates.drop(parts)
        self._forget(parts)
        self.metrics.rebalanced("lost", len(partitions))
        _LOG.warning("lost %s (not committed; they will be redelivered)", _names(partitions))

    def rewind(self) -> int:
        """Exactly-once, after an aborted transaction: forget what was handled since the last
        commit and consume again from the committed offsets; returns the partitions rewound.

        Raises:
            KafkaException: the committed offsets could not be read, or a seek failed.
        """
        tps = [TopicPartition(p.topic, p.partition) for p in self.parts.values()]
        parts = self._release(tps)
        if self.gates is not None:
            self.gates.drop(parts)
        self.flush_batches()
        self.settle(parts, self.options.revoke_timeout_s, warn=False)
        if any(p.in_flight for p in parts):
            raise ConsumeError("records still in flight after an aborted transaction")
        self._forget(parts)
        committed = self.consumer.committed(tps, timeout=10)
        self._track(tps)
        self.consumer.resume(tps)  # flow-control pauses were forgotten with the old states
        unset = OFFSET_BEGINNING if self._earliest else OFFSET_END
        for tp in committed:
            offset = tp.offset if tp.offset >= 0 else unset
            self.consumer.seek(TopicPartition(tp.topic, tp.partition, offset))
        return len(tps)

    def _owned(self, partitions: list[TopicPartition]) -> list[PartitionState]:
        keys = [(tp.topic, tp.partition) for tp in partitions]
        return [self.parts[k] for k in keys if k in self.parts]

    def _release(self, partitions: list[TopicPartition]) -> list[PartitionState]:
        parts = self._owned(partitions)
        for part in parts:
            part.revoked = True  # queued work of these partitions is dropped, not run
        return parts

    def settle(self, parts: list[PartitionState], timeout: float, *, warn: bool = True) -> None:
        """Wait up to ``timeout`` for in-flight work of ``parts`` (poll thread, no polling)."""
        deadline = time.monotonic() + timeout
        while True:
            self.drain()
            self.writer.resend_due()
            if not any(p.in_flight for p in parts) or time.monotonic() >= deadline:
                break
            time.sleep(0.002)
        left = sum(p.in_flight for p in parts)
        if left and warn:
            _LOG.warning(
                "%d record(s) still in flight after %.1fs; they will be redelivered", left, timeout
            )

    def _forget(self, parts: list[PartitionState]) -> None:
        for part in parts:
            self.parts.pop((part.topic, part.partition), None)
            self.processor.dedup.pop(part, None)
        self.flow.pauses.forget((p.topic, p.partition) for p in parts)
        if self.priority is not None:
            self.priority.forget((p.topic, p.partition) for p in parts)
        gone = set(map(id, parts))
        for job in self.writer.abandon(lambda j: id(j.work.part) not in gone):
            self._finish(job.work, True)
        self.metrics.assigned.set(len(self.parts))

    # -- shutdown -----------------------------------------------------------------------------

    def _shutdown(self) -> None:
        consumer = self.consumer
        if consumer is None:
            return
        _LOG.info(
            "worker %s stopping: draining %d in-flight record(s)",
            self.worker.group,
            self.flow.in_flight,
        )
        parts = list(self.parts.values())
        if self.priority is not None:
            self.priority.close()
        if self.orphans is not None:
            self.orphans.close()
        try:
            if self.gates is not None:
                self.gates.drop()  # parked records are not committed: redelivered later
            self.flush_batches()
            if parts and self._error is None:
                consumer.pause([TopicPartition(p.topic, p.partition) for p in parts])
                self.settle(parts, self.options.drain_timeout_s)
                self.final_commit(parts)
            consumer.close()  # leaves the group; the revoke callback commits nothing new
        except KafkaException as exc:
            _LOG.warning("closing the consumer: %s", exc)
        finally:
            self._stop.set()
            self.execution.shutdown()
            if self.batch_executor is not None:
                self.batch_executor.shutdown(timeout=1.0)
            try:
                self.producer.close(timeout=10)
            except Exception as exc:  # shutdown must finish; the offsets are safe
                _LOG.warning("closing the producer: %s", exc)

    def final_commit(self, parts: list[PartitionState]) -> None:
        """Commit what is complete, synchronously (overridden in exactly-once mode)."""
        if not self.options.exactly_once:
            self.committer.commit(parts, sync=True)


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"
