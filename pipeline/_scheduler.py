"""The delayed-delivery scheduler service: a consumer group that moves records through tiers."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from prometheus_client import CollectorRegistry

from ._errors import ConsumeError, DecodeError
from ._headers import Headers
from ._scheduler_commit import CommitMixin
from ._scheduler_lag import LagProbe
from ._scheduler_metrics import SchedulerMetrics
from ._scheduler_records import SchedulerConfig, format_duration, parse_schedule
from ._scheduler_state import (
    HeldRecords,
    Outgoing,
    PartitionState,
    dead_letter_headers,
    forward_headers,
    hop_headers,
    record_seq,
)
from ._scheduler_topics import TopicExistence, translate
from ._settings import Settings

__all__ = ["Scheduler"]

_LOG = logging.getLogger("pipeline.scheduler")
_MISSING_TOPIC = {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC}


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
        self._retry: list[Outgoing] = []
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
        try:
            while not self._stop.is_set():
                self._tick()
        finally:
            self._running = False
            self._shutdown()

    def _connect(self) -> None:
        cfg = self._config
        # Bounded local queues keep memory flat when a burst of records is hopped at once.
        producer_conf: dict[str, Any] = {"queue.buffering.max.kbytes": 32768}
        consumer_conf: dict[str, Any] = {
            "queued.max.messages.kbytes": 16384,
            # A resumed tier partition must not wait behind a long-polling fetch.
            "fetch.wait.max.ms": 100,
        }
        if cfg.exactly_once:
            producer_conf["transactional.id"] = cfg.transactional_id
            producer_conf["transaction.timeout.ms"] = 15000
            consumer_conf["isolation.level"] = "read_committed"
        if self._settings.group_protocol == "consumer":
            consumer_conf["group.remote.assignor"] = "range"
        else:
            consumer_conf["partition.assignment.strategy"] = "range"
        self._producer = Producer(self._settings.producer_config(**producer_conf))
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
        self._heartbeat = time.monotonic()
        now = _now_ms()
        self._forward_due(now)
        self._resume_due(now)
        self._resend()
        timeout = self._config.poll_interval_s
        due = self._held.next_due()
        if due is not None:
            timeout = min(timeout, max(0.0, (due - now) / 1000))
        try:
            batch = self._consumer.consume(self._config.batch_size, timeout)
        except KafkaException as exc:
            raise translate(exc, "consuming") from exc
        now = _now_ms()
        for msg in batch:
            self._handle(msg, now)
        self._producer.poll(0)
        self._maybe_commit()
        if self._lag is not None:
            self._lag.maybe_probe(list(self._parts.values()))
        self.metrics.held(len(self._held))

    def _handle(self, msg: Message, now: int) -> None:
        err = msg.error()
        if err is not None:
            if err.code() != KafkaError._PARTITION_EOF:
                _LOG.warning("consume error: %s", err.str())
            return
        part = self._parts.get((msg.topic() or "", msg.partition() or 0))
        offset = msg.offset() or 0
        if part is None or part.paused or offset < part.next_offset:
            return  # fetched before a pause, seek or revoke: it will be read again
        if part.already_done(offset):
            part.next_offset = offset + 1
            return
        if part.tier_ms is not None:
            exit_ms = msg.timestamp()[1] + part.tier_ms
            if exit_ms > now:
                self._pause(part, offset, exit_ms)
                return
        if part.held >= self._config.max_held_per_partition:
            self._pause(part, offset, None)
            return
        part.next_offset = offset + 1
        self._route(part, msg, now)

    def _route(self, part: PartitionState, msg: Message, now: int) -> None:
        headers = _headers_of(msg)
        try:
            target, due = parse_schedule(headers)
        except DecodeError as exc:
            self._dead_letter(part, msg, "invalid-schedule", str(exc), now)
            return
        assert self._topics is not None
        if part.tier_ms is None and not self._topics.exists(target):
            self._dead_letter(part, msg, "unknown-target-topic", f"no topic {target}", now)
            return
        offset = msg.offset() or 0
        seq = record_seq(headers, offset)
        out = Outgoing("forward", target, msg.key(), msg.value(), headers, part, offset)
        out.due_ms = due
        if due <= now:
            self._forward_due(now)  # held records due earlier (or equal, entered first) go first
            self._forward(out)
            return
        tier_ms = self._config.choose_tier(due - now)
        if tier_ms is None:
            self._held.push(out, seq)
            return
        out.kind = "hop"
        out.topic = self._tier_topic[tier_ms]
        out.headers = hop_headers(headers, seq)
        out.partition = part.partition % self._partition_counts[out.topic]
        out.timestamp = now
        self.metrics.hopped(format_duration(tier_ms))
        self._send(out)

    def _forward_due(self, now: int) -> None:
        assert self._topics is not None
        for out in self._held.pop_due(now):
            origin = (out.source.topic, out.source.partition, out.offset)
            if not self._topics.exists(out.topic):
                reason, text = "unknown-target-topic", f"no topic {out.topic}"
                self._send(self._as_dead_letter(out, origin, reason, text, now))
                continue
            self._forward(out)

    def _forward(self, out: Outgoing) -> None:
        sent = _now_ms()
        out.headers = forward_headers(out.headers, sent)
        self.metrics.forwarded((sent - out.due_ms) / 1000)
        self._send(out)

    def _resume_due(self, now: int) -> None:
        if not self._paused:
            return
        low = self._config.max_held_per_partition // 2
        self._paused = {p for p in self._paused if p.alive and p.paused}
        ready = [
            p
            for p in self._paused
            if (p.held <= low if p.resume_at_ms is None else p.resume_at_ms <= now)
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
        self, part: PartitionState, msg: Message, reason: str, text: str, now: int
    ) -> None:
        origin = (part.topic, part.partition, msg.offset() or 0)
        out = Outgoing("forward", "", msg.key(), msg.value(), _headers_of(msg), part, origin[2])
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
        out.source.pending.add(out.offset)
        kwargs: dict[str, Any] = {"key": out.key, "value": out.value, "headers": out.headers}
        if out.partition >= 0:
            kwargs["partition"] = out.partition
        if out.timestamp:
            kwargs["timestamp"] = out.timestamp
        if not self._config.exactly_once:
            kwargs["on_delivery"] = self._delivery_callback(out)
        while True:
            try:
                self._producer.produce(out.topic, **kwargs)
                break
            except BufferError:
                self._producer.poll(0.05)
            except KafkaException as exc:
                raise translate(exc, f"producing to {out.topic}") from exc
        if self._config.exactly_once:
            out.source.pending.discard(out.offset)  # done when the transaction commits

    def _delivery_callback(self, out: Outgoing) -> Callable[[Any, Any], None]:
        def delivered(err: KafkaError | None, _msg: Any) -> None:
            if err is None:
                out.source.pending.discard(out.offset)
            elif not out.source.alive:
                return  # the new owner of the partition redoes it
            elif out.kind == "forward" and err.code() in _MISSING_TOPIC:
                assert self._topics is not None
                self._topics.forget(out.topic)
                origin = (out.source.topic, out.source.partition, out.offset)
                dlq = self._as_dead_letter(
                    out, origin, "unknown-target-topic", err.str(), _now_ms()
                )
                self._retry.append(dlq)
            else:
                _LOG.warning("delivery to %s failed (%s); sending again", out.topic, err.str())
                self._retry.append(out)

        return delivered

    def _resend(self) -> None:
        retry, self._retry = self._retry, []
        for out in retry:
            if out.source.alive:
                self._send(out)
