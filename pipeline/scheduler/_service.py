"""The delayed-delivery scheduler service: a consumer group that moves records through tiers."""

from __future__ import annotations

import gc
import logging
import threading
import time
from functools import partial
from typing import Any, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from prometheus_client import CollectorRegistry

from pipeline._delay import format_duration, parse_schedule
from pipeline._errors import ConsumeError, DecodeError
from pipeline._headers import (
    DELIVER_AT,
    DELIVERED_AT,
    SCHEDULER_HEADERS,
    SCHEDULER_SEQ,
    TARGET_TOPIC,
    Headers,
)
from pipeline._settings import Settings

from ._commit import CommitMixin, ProducerFenced
from ._lag import LagProbe
from ._metrics import SchedulerMetrics
from ._records import SchedulerConfig
from ._state import (
    HeldRecords,
    Outgoing,
    PartitionState,
    dead_letter_headers,
    forward_headers,
    hop_headers,
)
from ._topics import TopicExistence, translate

__all__ = ["Scheduler"]

_LOG = logging.getLogger("pipeline.scheduler")
_PARTITION_EOF = KafkaError._PARTITION_EOF
# A paused tier partition resumes this long before its last parked record exits, so the next
# fetch (fetch.wait.max.ms plus a round trip) is back before that record has gone.
_PREFETCH_MS = 250
# How often the cache of valid, existing target topics is emptied (TopicExistence answers again).
_LIVE_TARGETS_S = 1.0
# Client settings for a loop that pauses and resumes tier partitions all the time: a resumed
# partition must not wait behind a long-polling fetch or a fetch-queue backoff (1 s by default
# in librdkafka 2.x), and little is prefetched because a pause throws the prefetch away.
_CONSUMER_TUNING: dict[str, Any] = {
    "fetch.wait.max.ms": 50,
    "fetch.queue.backoff.ms": 10,
    "fetch.error.backoff.ms": 100,
    "queued.min.messages": 5000,
    "queued.max.messages.kbytes": 16384,
}


def _headers_of(msg: Message) -> Headers:
    # A consumed record's headers are always a list of (str, bytes | None).
    return cast(Headers, msg.headers() or [])


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Scheduler(CommitMixin):
    """Deliver each record of the scheduler topic to its target topic when it is due.

    Construction touches no network; ``run()`` connects, works until ``stop()`` and closes.
    All progress lives in Kafka (tier topics and committed offsets with metadata), so any
    number of instances share the partitions and a restarted one resumes where the group was.
    """

    def __init__(
        self,
        settings: Settings,
        config: SchedulerConfig | None = None,
        *,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._settings = settings
        self._config = config or SchedulerConfig()
        self.metrics = SchedulerMetrics(registry or CollectorRegistry())
        self._tiers = dict(self._config.tier_topics)
        self._tier_topic = {ms: t for t, ms in self._tiers.items()}
        self._stop = threading.Event()
        self._parts: dict[tuple[str, int], PartitionState] = {}
        self._held = HeldRecords()
        self._paused: set[PartitionState] = set()
        self._parking: set[PartitionState] = set()
        self._park_limit = max(self._config.batch_size, 1)
        self._eos = self._config.exactly_once
        # Raw target-topic header values already validated and seen to exist, and their names.
        self._live: dict[bytes, str] = {}
        self._live_until = 0.0
        # The delivered-at header of records forwarded at ``_stamp_ms``.
        self._stamp_ms = -1
        self._stamp: tuple[str, bytes] = (DELIVERED_AT, b"")
        # Partitions with a failed delivery: read again from their last commit.
        self._broken: set[PartitionState] = set()
        self._partition_counts: dict[str, int] = {}
        self._heartbeat = 0.0
        self._last_commit = 0.0
        self._running = False
        self._consumer: Any = None
        self._producer: Any = None
        self._topics: TopicExistence | None = None
        self._lag: LagProbe | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def healthy(self) -> bool:
        """Alive: the loop went round within the last 30 seconds (or has not started yet)."""
        return not self._running or time.monotonic() - self._heartbeat < 30.0

    def ready(self) -> bool:
        """Ready: running with at least one partition assigned."""
        return self._running and bool(self._parts)

    @property
    def assignment(self) -> list[tuple[str, int]]:
        """Partitions this instance owns right now."""
        return sorted(self._parts)

    def stop(self) -> None:
        """Ask ``run()`` to finish: it commits what is done and returns (thread-safe)."""
        self._stop.set()

    def run(self) -> None:
        """Connect, subscribe and forward records until ``stop()`` is called.

        Raises:
            KafkaUnavailableError: the cluster cannot be reached at start.
            FatalProducerError: the transactional producer was fenced or failed fatally.
        """
        self._connect()
        self._running = True
        # Every batch leaves a few thousand container objects (records, header lists) to the
        # cyclic collector's older generations, and each full pass then walks every object the
        # process has loaded as well. Those live as long as the process: keep them out of it.
        gc.freeze()
        try:
            while not self._stop.is_set():
                self._tick()
        finally:
            gc.unfreeze()
            self._running = False
            self._shutdown()

    def _connect(self) -> None:
        cfg = self._config
        # Bounded local queues keep memory flat when a burst of records is hopped at once.
        producer_conf: dict[str, Any] = {"queue.buffering.max.kbytes": 32768}
        if not cfg.exactly_once:
            # A delivery report per record costs more than the rest of forwarding it. Only
            # failures are reported: a commit first flushes the producer, so every record
            # sent before it is acknowledged or has reported its failure (see _commit).
            producer_conf["delivery.report.only.error"] = True
        # Passthrough settings (PIPELINE_CONSUMER__*) still win over the tuning.
        consumer_conf: dict[str, Any] = {
            k: v
            for k, v in _CONSUMER_TUNING.items()
            if k not in self._settings.consumer and k not in self._settings.kafka
        }
        if cfg.exactly_once:
            producer_conf["transactional.id"] = cfg.transactional_id
            producer_conf["transaction.timeout.ms"] = 15000
            # The next transaction's first request waits on the previous one's markers
            # (CONCURRENT_TRANSACTIONS): retry it at 20 ms, not librdkafka's doubling 100 ms.
            producer_conf["retry.backoff.ms"] = 20
            producer_conf["retry.backoff.max.ms"] = 200
            consumer_conf["isolation.level"] = "read_committed"
        if self._settings.group_protocol == "consumer":
            consumer_conf["group.remote.assignor"] = "range"
        else:
            consumer_conf["partition.assignment.strategy"] = "range"
        self._renewed = []
        self._new_producer = lambda: Producer(self._settings.producer_config(**producer_conf))
        self._producer = self._new_producer()
        self._consumer = Consumer(self._settings.consumer_config(cfg.group, **consumer_conf))
        self._topics = TopicExistence(self._producer)
        self._lag = LagProbe(self._settings, self.metrics)
        try:
            self._partition_counts = self._await_topics([cfg.topic, *self._tiers])
            if cfg.exactly_once:
                self._producer.init_transactions(30.0)
                self._begin()
        except KafkaException as exc:
            raise translate(exc, "starting the scheduler") from exc
        self._consumer.subscribe(
            [cfg.topic, *self._tiers],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )

    def _await_topics(self, topics: list[str], timeout: float = 30.0) -> dict[str, int]:
        """Partition counts of ``topics``, waiting a little for freshly created ones."""
        deadline = time.monotonic() + timeout
        while True:
            meta = self._consumer.list_topics(timeout=15.0)
            counts = {
                t: len(meta.topics[t].partitions)
                for t in topics
                if t in meta.topics and meta.topics[t].error is None
            }
            missing = [t for t in topics if not counts.get(t)]
            if not missing:
                return counts
            if time.monotonic() > deadline:
                raise ConsumeError(f"scheduler topic(s) missing: {', '.join(missing)}")
            time.sleep(0.5)

    def _shutdown(self) -> None:
        try:
            self._commit(final=True)
            self._consumer.close()
        except KafkaException as exc:
            _LOG.warning("scheduler shutdown: %s", exc)
        finally:
            if self._lag is not None:
                self._lag.close()
            remaining = self._producer.flush(10.0)
            if remaining:
                _LOG.warning("%d scheduler record(s) unacknowledged at shutdown", remaining)

    # -- the loop -----------------------------------------------------------------------------

    def _tick(self) -> None:
        try:
            self._turn()
        except ProducerFenced as fenced:
            # Exactly-once only: the records of the doomed transaction are read again.
            self._recover(fenced.cause)

    def _turn(self) -> None:
        """One round of the loop: forward what is due, consume a batch, commit when it is time."""
        self._heartbeat = time.monotonic()
        now = _now_ms()
        if self._held.next_due_before(now):
            self._forward_due(now)
        if self._parking:
            self._drain_parked(now)
        if self._paused:
            self._resume_due(now)
        if self._broken:
            self._rewind_broken()
        self.metrics.flush()
        timeout = self._config.poll_interval_s
        due = self._held.next_due()
        if due is not None:
            timeout = min(timeout, max(0.0, (due - _now_ms()) / 1000))
        try:
            batch = self._consumer.consume(self._config.batch_size, timeout)
        except KafkaException as exc:
            raise translate(exc, "consuming") from exc
        if batch:
            now = _now_ms()
            self._take(batch, now)
            if self._parking:
                self._drain_parked(now)
                self._pause_parked(now)
            self.metrics.flush()
        self._producer.poll(0)
        self._maybe_commit()
        if self._lag is not None:
            self._lag.maybe_probe(list(self._parts.values()))
        self.metrics.held(len(self._held))

    def _take(self, batch: list[Message], now: int) -> None:
        """Handle one consumed batch: the hot path, one short pass per record.

        A record that is due, names a known target and carries a well-formed due time is
        forwarded right here; every other one goes through ``_route``.
        """
        if self._held.next_due_before(now):
            # Held records due by now go before the batch's due ones; records held while the
            # batch is handled are due after ``now``, so this stays true to the end.
            self._forward_due(now)
        if self._heartbeat > self._live_until:
            self._live.clear()  # ask TopicExistence again: a target may have been deleted
            self._live_until = self._heartbeat + _LIVE_TARGETS_S
        stamp, live, route = self._delivered_stamp(now), self._live, self._route
        produce = self._producer.produce
        scheduler_headers = SCHEDULER_HEADERS
        dues: list[int] = []
        parts = self._parts
        max_held = self._config.max_held_per_partition
        last_topic: str | None = None
        last_partition: int | None = -1
        part: PartitionState | None = None
        callback = None
        for msg in batch:
            if msg.error() is not None:
                self._consume_error(msg)
                continue
            topic, partition = msg.topic(), msg.partition()
            if partition != last_partition or topic != last_topic:
                last_topic, last_partition = topic, partition
                part = parts.get((topic or "", partition or 0))
                callback = None if part is None else self._errback(part)
            if part is None:
                continue
            offset: int = msg.offset()  # type: ignore[assignment]  # consumed: never None
            if part.paused or offset < part.next_offset:
                continue  # fetched before a pause, seek or revoke: it will be read again
            if offset < part.restore_next and part.already_done(offset):
                part.next_offset = offset + 1
                continue
            tier_ms = part.tier_ms
            if tier_ms is not None:
                exit_ms = msg.timestamp()[1] + tier_ms
                if exit_ms > now or part.parked:
                    self._park(part, msg, offset, exit_ms)
                    continue
            if part.held >= max_held:
                self._pause(part, offset, None)
                continue
            part.next_offset = offset + 1
            headers: Headers | None = msg.headers()  # type: ignore[assignment]
            if headers:
                # One C-speed pass over the headers; the last value of a repeated name wins.
                found = dict(headers)
                raw_due = found.get(DELIVER_AT)
                target = live.get(found.get(TARGET_TOPIC))  # type: ignore[arg-type]
                if (
                    target is not None
                    and raw_due is not None
                    and len(raw_due) <= 16
                    and raw_due.isdigit()
                    and int(raw_due) <= now
                ):
                    kept = [h for h in headers if h[0] not in scheduler_headers]
                    kept.append(stamp)
                    dues.append(int(raw_due))
                    key, value = msg.key(), msg.value()
                    try:
                        produce(target, value, key, on_delivery=callback, headers=kept)
                    except (BufferError, KafkaException):
                        self._produce(target, value, key, kept, -1, 0, callback)
                    continue
            route(part, msg, offset, now)
        if dues:
            self.metrics.forwarded_all(now, dues)

    def _consume_error(self, msg: Message) -> None:
        err = msg.error()
        if err is not None and err.code() != _PARTITION_EOF:
            _LOG.warning("consume error: %s", err.str())

    # -- tier records fetched before they exit -----------------------------------------------

    def _park(self, part: PartitionState, msg: Message, offset: int, exit_ms: int) -> None:
        """Keep a tier record that is not due to leave yet in memory, in partition order."""
        if len(part.parked) >= self._park_limit:
            self._pause(part, offset, None)
            return
        part.parked.append((exit_ms, offset, msg))
        part.pending.add(offset)
        part.next_offset = offset + 1
        self._parking.add(part)

    def _drain_parked(self, now: int) -> None:
        """Route the parked tier records whose exit time has come, in partition order."""
        max_held = self._config.max_held_per_partition
        for part in list(self._parking):
            queue = part.parked
            if not part.alive:
                queue.clear()
                self._parking.discard(part)
                continue
            while queue and queue[0][0] <= now:
                if part.held >= max_held:
                    break  # resumes routing when held records have gone out
                _, offset, msg = queue.popleft()
                part.pending.discard(offset)  # _route marks it pending again until done
                self._route(part, msg, offset, now)
            if not queue:
                self._parking.discard(part)

    def _pause_parked(self, now: int) -> None:
        """Stop fetching a tier partition whose parked records reach well into the future."""
        for part in self._parking:
            if part.paused or not part.alive or not part.parked:
                continue
            last_exit = part.parked[-1][0]
            if last_exit > now + _PREFETCH_MS:
                self._pause(part, part.next_offset, last_exit - _PREFETCH_MS)

    # -- routing ------------------------------------------------------------------------------

    def _route(self, part: PartitionState, msg: Message, offset: int, now: int) -> None:
        headers: Headers | None = msg.headers()  # type: ignore[assignment]
        # One C-speed pass over the headers; the last value of a repeated name wins.
        found = dict(headers) if headers else {}
        raw_due = found.get(DELIVER_AT)
        raw_target = found.get(TARGET_TOPIC)
        target = self._live.get(raw_target) if raw_target is not None else None
        if target is None or raw_due is None or len(raw_due) > 16 or not raw_due.isdigit():
            try:
                target, due = parse_schedule(headers)
            except DecodeError as exc:
                self._dead_letter(part, msg, offset, "invalid-schedule", str(exc), now)
                return
            assert self._topics is not None
            if self._topics.exists(target):
                if raw_target is not None and len(self._live) < 10_000:
                    self._live[raw_target] = target
            elif part.tier_ms is None or due <= now:
                text = f"no topic {target}"
                self._dead_letter(part, msg, offset, "unknown-target-topic", text, now)
                return
        else:
            due = int(raw_due)
        if due <= now:
            if self._held.next_due_before(now):
                self._forward_due(now)  # held records due earlier (or equal, entered first) first
            kept = [h for h in headers if h[0] not in SCHEDULER_HEADERS] if headers else []
            kept.append(self._delivered_stamp(now))
            self.metrics.forwarded((now - due) / 1000)
            key, value = msg.key(), msg.value()
            self._produce(target, value, key, kept, -1, 0, self._errback(part))
            return
        raw_seq = found.get(SCHEDULER_SEQ)
        seq = int(raw_seq) if raw_seq is not None and raw_seq.isdigit() else offset
        tier_ms = self._config.choose_tier(due - now)
        if tier_ms is None:
            out = Outgoing("forward", target, msg.key(), msg.value(), headers or [], part, offset)
            out.due_ms = due
            self._held.push(out, seq)
            return
        if raw_seq is None:
            hopped = headers or []
            hopped.append((SCHEDULER_SEQ, str(seq).encode()))
        elif headers and headers[-1] == (SCHEDULER_SEQ, raw_seq) and raw_seq.isdigit():
            hopped = headers  # already carries its sequence last: nothing to rewrite
        else:
            hopped = hop_headers(headers, seq)
        topic = self._tier_topic[tier_ms]
        out = Outgoing("hop", topic, msg.key(), msg.value(), hopped, part, offset)
        out.due_ms = due
        out.partition = part.partition % self._partition_counts[topic]
        out.timestamp = now
        self.metrics.hopped(format_duration(tier_ms))
        self._send(out)

    def _forward_due(self, now: int) -> None:
        assert self._topics is not None
        for out in self._held.pop_due(now):
            out.source.pending.discard(out.offset)  # in flight now (see _send)
            origin = (out.source.topic, out.source.partition, out.offset)
            if not self._topics.exists(out.topic):
                reason, text = "unknown-target-topic", f"no topic {out.topic}"
                self._send(self._as_dead_letter(out, origin, reason, text, now))
                continue
            self._forward(out)

    def _delivered_stamp(self, now: int) -> tuple[str, bytes]:
        """The delivered-at header for records forwarded at ``now`` (built once per ms)."""
        if self._stamp_ms != now:
            self._stamp_ms, self._stamp = now, (DELIVERED_AT, str(now).encode())
        return self._stamp

    def _forward(self, out: Outgoing) -> None:
        sent = _now_ms()
        out.headers = forward_headers(out.headers, sent)
        self.metrics.forwarded((sent - out.due_ms) / 1000)
        self._send(out)

    def _resume_due(self, now: int) -> None:
        if not self._paused:
            return
        low = self._config.max_held_per_partition // 2
        park_low = self._park_limit // 2
        self._paused = {p for p in self._paused if p.alive and p.paused}
        ready = [
            p
            for p in self._paused
            if (
                p.held <= low and len(p.parked) <= park_low
                if p.resume_at_ms is None
                else p.resume_at_ms <= now
            )
        ]
        if ready:
            self._paused.difference_update(ready)
            self._consumer.resume([TopicPartition(p.topic, p.partition) for p in ready])
            for p in ready:
                p.paused, p.resume_at_ms = False, None

    def _pause(self, part: PartitionState, offset: int, resume_at_ms: int | None) -> None:
        """Stop reading ``part`` and rewind it to ``offset``, the record not taken yet."""
        tp = TopicPartition(part.topic, part.partition, offset)
        self._consumer.pause([tp])
        self._consumer.seek(tp)
        part.paused, part.resume_at_ms = True, resume_at_ms
        part.next_offset = offset
        self._paused.add(part)

    # -- writing ------------------------------------------------------------------------------

    def _dead_letter(
        self, part: PartitionState, msg: Message, offset: int, reason: str, text: str, now: int
    ) -> None:
        origin = (part.topic, part.partition, offset)
        out = Outgoing("forward", "", msg.key(), msg.value(), _headers_of(msg), part, offset)
        self._send(self._as_dead_letter(out, origin, reason, text, now))

    def _as_dead_letter(
        self, out: Outgoing, origin: tuple[str, int, int], reason: str, text: str, now: int
    ) -> Outgoing:
        _LOG.warning("dead-lettering %s[%d]@%d: %s", *origin, text)
        self.metrics.invalid(reason)
        out.kind, out.topic, out.partition, out.timestamp = "dlq", self._config.dlq_topic, -1, 0
        out.headers = dead_letter_headers(out.headers, origin, reason, text, now)
        return out

    def _send(self, out: Outgoing) -> None:
        """Write ``out``; in at-least-once mode a failure comes back to ``_failed``.

        A record in flight is not in ``pending``: a commit flushes the producer first, so by
        then it is acknowledged, or ``_failed`` has stopped commits of its source partition.
        """
        callback = self._errback(out.source)
        self._produce(
            out.topic, out.value, out.key, out.headers, out.partition, out.timestamp, callback
        )

    def _produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: Headers,
        partition: int,
        timestamp: int,
        callback: Any,
    ) -> None:
        produce = self._producer.produce
        while True:
            try:
                # partition -1 lets the partitioner choose; timestamp 0 means now.
                produce(
                    topic,
                    value,
                    key,
                    partition=partition,
                    on_delivery=callback,
                    timestamp=timestamp,
                    headers=headers,
                )
                return
            except BufferError:
                self._producer.poll(0.05)
            except KafkaException as exc:
                if self._eos and exc.args[0].fatal():
                    raise ProducerFenced(exc) from exc
                raise translate(exc, f"producing to {topic}") from exc

    def _failed(self, part: PartitionState, err: KafkaError, msg: Any) -> None:
        """A delivery of a record taken from ``part`` failed (at-least-once mode only).

        Nothing is committed for ``part`` any more; the loop reads it again from its last
        commit (``_rewind_broken``), so the record is redone: sent again, or dead-lettered
        when its target topic has gone. Records of ``part`` delivered since that commit are
        sent a second time, which at-least-once allows; failures are rare (a deleted target
        topic, a cluster unreachable for ``message.timeout.ms``).
        """
        if not part.alive or part in self._broken:
            return
        assert self._topics is not None
        topic = msg.topic() if msg is not None else None
        if topic:
            self._topics.forget(topic)
        self._live.clear()
        _LOG.warning(
            "delivery to %s failed (%s); reading %s[%d] again from its last commit",
            topic,
            err.str(),
            part.topic,
            part.partition,
        )
        self._broken.add(part)

    def _errback(self, part: PartitionState) -> Any:
        """The delivery callback of records taken from ``part``: one object per partition."""
        if self._eos:
            return None  # a failure aborts the transaction instead
        callback = part.callback
        if callback is None:
            callback = part.callback = partial(self._failed, part)
        return callback
