"""The poll loop: the only thread touching the consumer. It never waits on handlers."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from pipeline._errors import ConsumeError, KafkaOperationError
from pipeline._settings import Settings, load_settings
from pipeline.avro._codec import Codec
from producers import EventProducer

from ._app import Worker
from ._commits import Committer
from ._dead_letter import CopyWriter
from ._dedup import DedupWindow
from ._keyed import KeyedExecutor
from ._metrics import WorkerMetrics
from ._offsets import PartitionState
from ._process import Processor
from ._work import Work

__all__ = ["Runner"]

_LOG = logging.getLogger("consumers")
_HEALTH_STALE_S = 30.0
# Handling records on the poll thread (``WorkerOptions.inline``): the handler time one poll may
# spend there; the average run time per record above which records go to the worker threads
# (a batch then fits the budget); the share of that time a handler must spend on the CPU (one
# that waits is better run by several threads; other processes take a share too); how long
# after falling back to the threads to look again; how long to wait for the threads to finish
# their records first.
_INLINE_BUDGET_S = 0.05
_INLINE_ITEM_S = 0.0001
_INLINE_CPU = 0.35
_INLINE_RETRY_S = 1.0
_INLINE_SWITCH_S = 0.1
# A handler running this long on the poll thread is stuck: another thread takes over polling
# (and queues the rest of the batch for the worker threads) until it returns.
_INLINE_STUCK_S = 0.15


class Runner:
    """Runs one worker: consume, dispatch per key, track offsets, commit, pause and resume."""

    def __init__(self, worker: Worker, stop: threading.Event) -> None:
        self.worker = worker
        self.options = worker.options
        self._stop = stop
        self._settings: Settings = worker.settings or load_settings()
        self.metrics = WorkerMetrics(worker.registry, worker.group)
        self._parts: dict[tuple[str, int], PartitionState] = {}
        self._done: deque[tuple[Work, bool]] = deque()
        self._in_flight = 0
        self._paused = False
        self._pause_new = False
        self._full_since = 0.0
        self._room = threading.Event()
        self._heartbeat = 0.0
        self._assigned = False
        self._error: BaseException | None = None
        self._consumer: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inline_on = False  # the poll thread may run handlers (set up in _build)
        self._inline = False  # ... and does now (once the threads have nothing left)
        self._inline_after = 0.0  # when to look again whether it should
        self._switch_until = 0.0  # how long to wait for the threads before going inline
        self._item_s = 0.0  # handler time per record on the poll thread (moving average)
        self._cpu_share = 1.0  # ... and the share of it spent on the CPU
        self._warm = False  # whether a batch ran on the poll thread yet
        # The batch being handled on the poll thread, the index of the record in hand, and
        # when the batch started; a watchdog thread polls instead while a handler is stuck.
        self._role = threading.Lock()
        self._batch: list[tuple[Any, Work]] | None = None
        self._pos = 0
        self._batch_since = 0.0
        self._takeover = False
        self._want_back = False
        self._back = threading.Event()

    # -- health -------------------------------------------------------------------------------

    def healthy(self) -> bool:
        """The loop went round recently and nothing fatal happened."""
        return self._error is None and time.monotonic() - self._heartbeat < _HEALTH_STALE_S

    def ready(self) -> bool:
        """Joined the group and owns at least one partition."""
        return self.healthy() and bool(self._parts)

    # -- setup --------------------------------------------------------------------------------

    def _build(self) -> None:
        worker, options = self.worker, self.options
        models = [s.model for s in worker.handlers.values() if s.model is not None]
        codec = Codec.from_settings(self._settings, models)
        transactional_id = None
        if options.exactly_once:
            instance = options.instance_id or f"{worker.group}-{id(self):x}"
            transactional_id = f"{worker.group}.worker.{instance}"
        self.producer = EventProducer(
            self._settings,
            codec=codec,
            registry=worker.registry,
            transactional_id=transactional_id,
            config={"message.timeout.ms": 30000, **options.producer_config},
            scheduler_topic=options.scheduler_topic,
        )
        self.writer = CopyWriter(
            self.producer, self.metrics, options.write_backoff, give_up=options.exactly_once
        )
        if any(s.is_async for s in [*worker.handlers.values(), worker.fallback_handler] if s):
            self._loop = loop = asyncio.new_event_loop()

            def serve() -> None:
                loop.run_forever()
                loop.close()

            threading.Thread(target=serve, name="worker-asyncio", daemon=True).start()
        self.processor = Processor(
            worker,
            codec,
            self.producer,
            self.writer,
            self.metrics,
            self._finish,
            self._stop,
            self._loop,
        )
        self.processor.on_error = self._fail
        self.executor: KeyedExecutor[Work] = KeyedExecutor(
            self.processor, options.concurrency, name=f"worker-{worker.group}"
        )
        self._inline_on = self._inline = (
            options.inline and self._loop is None and not options.exactly_once
        )
        if self._inline_on:
            threading.Thread(target=self._watch, name="worker-watchdog", daemon=True).start()
        self._consumer = Consumer(self._consumer_config())
        self.committer = Committer(self._consumer, self.metrics)
        self.committer.lookup = self._parts.get

    def _consumer_config(self) -> dict[str, Any]:
        options = self.options
        extra: dict[str, Any] = {"on_commit": self._on_commit, "error_cb": self._on_error}
        if options.exactly_once:
            extra["isolation.level"] = "read_committed"
        if options.static_membership and options.instance_id:
            extra["group.instance.id"] = options.instance_id
        extra.update(options.consumer_config)
        return self._settings.consumer_config(self.worker.group, **extra)

    def _subscribe(self) -> None:
        worker = self.worker
        topics = [worker.pattern] if worker.pattern else list(worker.topics)
        topics.append(worker.retry_topic)
        self._consumer.subscribe(
            topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> None:
        """Consume until stopped; then drain, commit and leave the group."""
        self._build()
        self._subscribe()
        _LOG.info("worker %s started (concurrency %d)", self.worker.group, self.options.concurrency)
        try:
            if self.options.exactly_once:
                from ._eos import TransactionalLoop

                TransactionalLoop(self).run()
            else:
                while not self._stop.is_set() and self._error is None:
                    self._tick()
        finally:
            self._shutdown()
        if self._error is not None:
            raise ConsumeError(f"worker {self.worker.group} failed: {self._error}") from (
                self._error
            )

    def _tick(self) -> None:
        self._heartbeat = now = time.monotonic()
        options = self.options
        room = options.max_in_flight - self._in_flight
        if (
            self._inline_on
            and not self._inline
            and not self._takeover
            and now >= self._inline_after
        ):
            if self.executor.cheap(_INLINE_ITEM_S, _INLINE_CPU):
                self._inline = True  # once the threads are done with what they have
                self._switch_until = now + _INLINE_SWITCH_S
            else:
                self._inline_after = now + _INLINE_RETRY_S
        if self._inline and self.executor.busy_keys:
            # Going inline: records of a key must not overtake the ones the threads still
            # have, so wait (briefly: they are cheap) for the threads to finish them.
            if now < self._switch_until:
                self._room.wait(options.poll_timeout_s)
                self._room.clear()
            else:
                self._fall_back(now)
        elif room <= 0 and not self._paused:
            # Full: wait for room without consuming, so prefetched records stay queued in
            # librdkafka. Only a stall longer than pause_after_s pauses the partitions (pausing
            # drops what was prefetched); the loop then polls again, so the group never waits.
            self._room.wait(options.poll_timeout_s)
            self._room.clear()
            self._full_since = self._full_since or now
        else:
            if room > 0:
                self._full_since = 0.0
            # Never consume(timeout=0) in a loop: a spinning poll thread hogs the GIL and
            # starves the handlers. Lanes hand over to the next record of a key by themselves.
            size = max(1, min(options.batch_size, room))
            messages = self._consumer.consume(size, options.poll_timeout_s)
            if messages:
                self.dispatch(messages)
        self.drain()
        self.writer.resend_due()
        self._backpressure(now)
        self.committer.maybe_commit(self._parts.values(), options)

    def dispatch(self, messages: list[Message]) -> None:
        """Hand records to the keyed executor, or handle them here (poll thread)."""
        parts = self._parts
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
            if part is None:  # pragma: no cover - librdkafka delivers only assigned partitions
                continue
            offset: int = msg.offset()  # type: ignore[assignment]
            part.tracker.add(offset)
            part.in_flight += 1
            key = part if by_partition else msg.key()
            append((None if key is None else (part, key), Work(part, msg, offset)))
        self._in_flight += len(batch)
        if self._inline and not self._takeover and not self.executor.busy_keys:
            self._run_inline(batch)
        else:
            self.executor.submit_many(batch)

    def _run_inline(self, batch: list[tuple[Any, Work]]) -> None:
        """Handle a batch on the poll thread, within a time budget; the threads get the rest.

        Falls back to the threads when the handlers turn out slow or waiting, and when a
        record's retry has to wait for a backoff. Should a handler get stuck, the watchdog
        takes the batch over (see :meth:`_take_over`); this thread gets the poll loop back
        when the handler returns.
        """
        run, role = self.processor.inline, self._role
        clock = time.perf_counter
        start, cpu = clock(), time.thread_time()
        deadline = start + _INLINE_BUDGET_S
        rest: list[tuple[Any, Work]] = []
        i, count, ok, taken = 0, len(batch), True, False
        self._batch_since = start
        self._batch = batch
        while True:
            with role:  # the watchdog takes over between two checks, never during one
                if self._takeover:  # while record i - 1 ran: it queued the rest
                    taken = True
                    break
                if i == count or (i and (not ok or clock() > deadline)):
                    rest = batch[i - 1 :] if not ok else batch[i:]
                    self._batch = None
                    break
                self._pos = i
            ok = run(batch[i][1])  # not ok: it goes on (and its key after it) on a thread
            i += 1
        if taken:
            key, work = batch[i - 1]
            self.executor.release(key, None if ok else work)
            self._want_back = True
            self._back.wait()  # the watchdog finishes its tick (or has stopped polling)
            with role:
                self._takeover = self._want_back = False
                self._back.clear()
            return
        wall = clock() - start
        if rest:
            self.executor.submit_many(rest)  # inline again once the threads are done with it
        ran = count - len(rest)
        if not self._warm:  # first calls warm up (decoders are compiled): not a measure
            self._warm = True
        else:  # smoothed over batches: one pause does not decide
            self._item_s += (wall / max(1, ran) - self._item_s) * 0.25
            if wall > 0.002:  # too short to say whether the handlers wait
                share = (time.thread_time() - cpu) / wall
                self._cpu_share += (share - self._cpu_share) * 0.25
        if self._item_s > _INLINE_ITEM_S or self._cpu_share < _INLINE_CPU:
            self._fall_back(time.monotonic())
        elif rest:
            self._switch_until = time.monotonic() + _INLINE_SWITCH_S

    def _watch(self) -> None:
        """The watchdog: take over polling while a handler is stuck on the poll thread."""
        stop = self._stop
        while not stop.wait(_INLINE_STUCK_S / 3):
            if self._batch is not None and time.perf_counter() - self._batch_since > (
                _INLINE_STUCK_S
            ):
                self._take_over()

    def _take_over(self) -> None:
        """Queue the stuck batch's other records for the threads, and poll until it returns."""
        with self._role:
            batch = self._batch
            if batch is None or time.perf_counter() - self._batch_since <= _INLINE_STUCK_S:
                return
            self._batch = None
            self._takeover = True
            stuck = batch[self._pos]
            self.executor.claim(stuck[0])  # its key's later records wait for it
            self.executor.submit_many(batch[self._pos + 1 :])
            self._fall_back(time.monotonic())
        _LOG.warning(
            "%s: handler running for over %.2fs on the poll thread; polling from another "
            "thread until it returns",
            stuck[1].where,
            _INLINE_STUCK_S,
        )
        try:
            while not self._stop.is_set() and self._error is None and not self._want_back:
                self._tick()
        except Exception as exc:  # pragma: no cover - the poll loop raises nothing by design
            self._fail(exc)
        finally:
            self._back.set()  # the stuck thread resets the takeover once it is back

    def _fall_back(self, now: float) -> None:
        """Hand records to the worker threads again (for a while at least)."""
        self._inline = False
        self._inline_after = now + _INLINE_RETRY_S
        self._item_s, self._cpu_share = 0.0, 1.0  # the threads' measure brings it back

    def _finish(self, work: Work, dropped: bool) -> None:
        """Called from worker and delivery threads: hand the completion to the poll thread."""
        self._done.append((work, dropped))
        room = self._room
        if not room.is_set():  # the poll thread clears it before draining: no lost wake-up
            room.set()

    def drain(self) -> int:
        """Apply completions (poll thread); return how many.

        Records handled successfully are counted here too (outcome ``ok`` and handler run
        time), once per batch of completions rather than once per record on every thread.
        """
        done, parts, count = self._done, self._parts, 0
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
        if count:
            self._in_flight -= count
            self.committer.finished(count)
            if handled:
                self.metrics.handled_ok(handled)
        self.executor.poke()
        self.metrics.in_flight.set(self._in_flight)
        return count

    def _backpressure(self, now: float) -> None:
        limit = self.options.max_in_flight
        consumer = self._consumer
        stalled = self._full_since and now - self._full_since >= self.options.pause_after_s
        if not self._paused and self._in_flight >= limit and stalled:
            self._paused = True
            self._pause_new = False
            assignment = consumer.assignment()
            consumer.pause(assignment)
            self.metrics.paused.set(len(assignment))
            _LOG.debug(
                "paused %d partition(s): %d records in flight", len(assignment), self._in_flight
            )
        elif self._paused and self._in_flight <= limit // 2:
            self._paused = False
            assignment = consumer.assignment()
            consumer.resume(assignment)
            self.metrics.paused.set(0)
        elif self._paused and self._pause_new:
            self._pause_new = False
            assignment = consumer.assignment()
            consumer.pause(assignment)
            self.metrics.paused.set(len(assignment))

    def _consume_error(self, msg: Message) -> None:
        err: KafkaError = msg.error()  # type: ignore[assignment]
        if err.fatal() or err.code() == KafkaError._FATAL:
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

    def _on_assign(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        dedup = self.options.dedup
        for tp in partitions:
            part = PartitionState(tp.topic, tp.partition)
            self._parts[(tp.topic, tp.partition)] = part
            if dedup is not None:
                self.processor.dedup[part] = DedupWindow(dedup)
        self.metrics.assigned.set(len(self._parts))
        self.metrics.rebalanced("assigned", len(partitions))
        self._pause_new = self._paused
        _LOG.info("assigned %s", _names(partitions))

    def _on_revoke(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        # Let queued work of these partitions finish first: dropping it would leave completed
        # records above the commit position, and the next owner would handle them again.
        parts = self._owned(partitions)
        self.settle(parts, self.options.revoke_timeout_s)
        self._release(partitions)
        self.settle(parts, 0.5, warn=False)  # dropped records report back at once
        if not self.options.exactly_once:
            self.committer.commit(parts, sync=True)
        else:
            self.eos_revoke(parts)
        self._forget(parts)
        self.metrics.rebalanced("revoked", len(partitions))
        _LOG.info("revoked %s", _names(partitions))

    def _on_lost(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        parts = self._release(partitions)
        self._forget(parts)
        self.metrics.rebalanced("lost", len(partitions))
        _LOG.warning("lost %s (not committed; they will be redelivered)", _names(partitions))

    def eos_revoke(self, parts: list[PartitionState]) -> None:
        """Hook of the exactly-once loop: commit the open transaction before a revoke."""

    def _owned(self, partitions: list[TopicPartition]) -> list[PartitionState]:
        keys = [(tp.topic, tp.partition) for tp in partitions]
        return [self._parts[k] for k in keys if k in self._parts]

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
            self._parts.pop((part.topic, part.partition), None)
            self.processor.dedup.pop(part, None)
        gone = set(map(id, parts))
        for job in self.writer.abandon(lambda j: id(j.work.part) not in gone):
            self._finish(job.work, True)
        self.metrics.assigned.set(len(self._parts))

    # -- shutdown -----------------------------------------------------------------------------

    def _shutdown(self) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        _LOG.info(
            "worker %s stopping: draining %d in-flight record(s)",
            self.worker.group,
            self._in_flight,
        )
        parts = list(self._parts.values())
        try:
            if parts and self._error is None:
                consumer.pause([TopicPartition(p.topic, p.partition) for p in parts])
                self.settle(parts, self.options.drain_timeout_s)
                self.final_commit(parts)
            consumer.close()  # leaves the group; the revoke callback commits nothing new
        except KafkaException as exc:
            _LOG.warning("closing the consumer: %s", exc)
        finally:
            self._stop.set()
            self.executor.shutdown(timeout=1.0)
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._loop.stop)
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
