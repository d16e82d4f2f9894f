"""Options of a worker (connection settings live in ``pipeline.Settings``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from pipeline._errors import ConfigError
from pipeline._guarantee import DeliveryGuarantee, parse_guarantee
from pipeline._names import SCHEDULER_TOPIC

from ._dedup import Dedup
from ._policy import Backoff, RetryPolicy

__all__ = ["WorkerOptions"]


def _frozen() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, kw_only=True)
class WorkerOptions:
    """How a worker runs.

    Attributes:
        concurrency: handlers running at once (different keys; same key stays in order).
        ordering: ``"key"`` (records of one key in order, keys in parallel) or
            ``"partition"`` (records of one partition in order, partitions in parallel).
        max_in_flight: records dispatched and not finished; at this many the loop stops taking
            new records, and pauses the partitions when that lasts ``pause_after_s``; they
            resume below half of it.
        pause_after_s: how long in-flight work may stay full before partitions are paused.
        inline: let the poll thread run synchronous handlers itself while they are cheap and
            CPU-bound (threads cannot run them faster, and handing records over costs more
            than handling them). At most a few tens of milliseconds of handler work run per
            poll; slow handlers, handlers that wait, and in-place retry backoffs run on the
            worker threads, and while a handler is stuck on the poll thread another thread
            polls (the rest of its batch goes to the worker threads, its key waits for it).
            Off in exactly-once mode and with async handlers. False: always on the threads.
        batch_size: records taken per ``consume`` call.
        poll_timeout_s: the longest one ``consume`` call waits.
        commit_interval_s: commit at least this often while offsets move ...
        commit_every: ... or after this many finished records.
        drain_timeout_s: on shutdown, how long in-flight work may finish.
        revoke_timeout_s: on a revoke, how long in-flight work of those partitions may finish
            (keep it below ``max.poll.interval.ms``).
        orphan_check_s: while the worker owns no partition of one of its topics, every this many
            seconds it checks whether its Stable group leaves partitions of that topic unowned,
            and if so rejoins (unsubscribe, subscribe) so that a rebalance hands them out; 0
            disables. Not for topic patterns; see README "Orphaned partitions".
        retry: the retry policy.
        write_backoff: backoff between attempts to write a retry or DLQ copy that failed.
        dedup: skip already handled ``ce_id`` values (None: off).
        exactly_once: consume, produce and commit in one transaction (``read_committed`` input).
        transaction_records: exactly-once: commit the open transaction once it holds this
            many records ...
        transaction_interval_s: ... or once it is this old (longer when commits are slow,
            up to 2 s), or when a poll brings nothing (README "Exactly-once").
        guarantee: the delivery mode (README "Delivery modes"): ``AT_LEAST_ONCE`` (the
            default), ``EXACTLY_ONCE`` (same as ``exactly_once=True``) or ``BROADCAST``
            (every instance reads every partition; retries all run in place, there is no
            shared retry topic). A name (``"broadcast"``) is accepted too.
        instance_id: stable id of this instance: sets ``group.instance.id`` (static membership)
            and names the transactional id in exactly-once mode.
        static_membership: use ``instance_id`` as ``group.instance.id``.
        retry_topic: default ``<group>.retry``.
        dlq_topic: default ``<group>.dlq``.
        scheduler_topic: where delayed retry copies enter the scheduler.
        consumer_config: librdkafka overrides for the consumer.
        producer_config: librdkafka overrides for the producer.
    """

    concurrency: int = 16
    ordering: Literal["key", "partition"] = "key"
    max_in_flight: int = 2000
    pause_after_s: float = 1.0
    inline: bool = True
    batch_size: int = 500
    poll_timeout_s: float = 0.05
    commit_interval_s: float = 1.0
    commit_every: int = 10_000
    drain_timeout_s: float = 30.0
    revoke_timeout_s: float = 10.0
    orphan_check_s: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    write_backoff: Backoff = field(
        default_factory=lambda: Backoff(base=0.5, factor=2.0, max=30.0, jitter=0.1)
    )
    dedup: Dedup | None = None
    exactly_once: bool = False
    transaction_records: int = 10_000
    transaction_interval_s: float = 0.1
    guarantee: DeliveryGuarantee | None = None
    instance_id: str | None = None
    static_membership: bool = False
    retry_topic: str | None = None
    dlq_topic: str | None = None
    scheduler_topic: str = SCHEDULER_TOPIC
    consumer_config: Mapping[str, Any] = field(default_factory=_frozen)
    producer_config: Mapping[str, Any] = field(default_factory=_frozen)

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.max_in_flight < 1 or self.batch_size < 1:
            raise ConfigError("concurrency, max_in_flight and batch_size must be >= 1")
        if self.commit_every < 1 or self.commit_interval_s <= 0 or self.poll_timeout_s < 0:
            raise ConfigError("commit_every >= 1, commit_interval_s > 0, poll_timeout_s >= 0")
        if self.transaction_records < 1 or self.transaction_interval_s <= 0:
            raise ConfigError("transaction_records must be >= 1, transaction_interval_s > 0")
        if self.ordering not in ("key", "partition"):
            raise ConfigError(f"ordering must be 'key' or 'partition', got {self.ordering!r}")
        if self.static_membership and not self.instance_id:
            raise ConfigError("static_membership needs instance_id")
        self._apply_guarantee()
        for name in ("consumer_config", "producer_config"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    @property
    def broadcast(self) -> bool:
        """Whether this worker runs in broadcast mode."""
        return self.guarantee is DeliveryGuarantee.BROADCAST

    def _apply_guarantee(self) -> None:
        if self.guarantee is None:
            return
        mode = parse_guarantee(self.guarantee)
        object.__setattr__(self, "guarantee", mode)
        if mode in (DeliveryGuarantee.FIRE_AND_FORGET, DeliveryGuarantee.QUORUM):
            raise ConfigError(
                f"{mode.name} is a producer-side mode (send(..., guarantee=...)); a worker "
                "runs AT_LEAST_ONCE, EXACTLY_ONCE or BROADCAST (and acknowledges quorum sends "
                "in any of them)"
            )
        if mode is DeliveryGuarantee.EXACTLY_ONCE:
            object.__setattr__(self, "exactly_once", True)
        elif self.exactly_once:
            raise ConfigError(f"exactly_once=True contradicts guarantee={mode.name}")
        if mode is DeliveryGuarantee.BROADCAST:
            if self.static_membership:
                raise ConfigError("a BROADCAST worker joins no group: no static_membership")
            retry = self.retry
            in_place = dataclasses.replace(retry, in_place_attempts=retry.max_attempts)
            object.__setattr__(self, "retry", in_place)
