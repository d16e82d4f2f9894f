"""The admin calls a poll makes: list and describe groups, committed offsets, log offsets."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaError,
    KafkaException,
)
from confluent_kafka import TopicPartition as _TP
from confluent_kafka.admin import AdminClient, OffsetSpec
from confluent_kafka.cimpl import _AdminClientImpl

from pipeline._admin import kafka_error, resolve
from pipeline._errors import PipelineError

from ._model import PartitionOffsets

__all__ = ["TP", "AdminFetcher", "GroupDescription", "GroupListing"]

TP = tuple[str, int]

OFFSETS_CHUNK = 1000
"""Partitions per ``ListOffsets`` admin request."""

_LOADING = frozenset(
    {
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
    }
)
"""Per-broker ``ListGroups`` errors that pass: a broker that just started loads its
``__consumer_offsets`` partitions and answers this until it is done."""

_LIST_BACKOFF_S = 0.2

_STATE_NAMES = {
    "STABLE": "Stable",
    "EMPTY": "Empty",
    "DEAD": "Dead",
    "PREPARING_REBALANCING": "PreparingRebalance",
    "COMPLETING_REBALANCING": "CompletingRebalance",
    "UNKNOWN": "Unknown",
}


def _state(value: Any) -> str:
    name = getattr(value, "name", str(value))
    return _STATE_NAMES.get(name, name.title())


def _loading(err: object) -> bool:
    if isinstance(err, KafkaException):
        err = err.args[0] if err.args else None
    return isinstance(err, KafkaError) and (err.code() in _LOADING or err.retriable())


def _protocol(value: Any) -> str:
    name = getattr(value, "name", "UNKNOWN")
    return {"CONSUMER": "consumer", "CLASSIC": "classic"}.get(name, "classic")


@dataclass(frozen=True, slots=True)
class GroupListing:
    """A group as ``ListGroups`` reports it."""

    group: str
    state: str
    protocol: str


@dataclass(frozen=True, slots=True)
class GroupDescription:
    """A group as ``DescribeGroups``/``ConsumerGroupDescribe`` reports it."""

    group: str
    state: str
    protocol: str
    assignor: str
    members: int
    assigned: frozenset[TP]


class AdminFetcher:
    """Batched, bounded admin calls; every failure comes back as a ``PipelineError`` value."""

    def __init__(
        self,
        admin: AdminClient,
        *,
        timeout: float = 10.0,
        concurrency: int = 16,
        servers: str | None = None,
    ) -> None:
        self._admin = admin
        self._timeout = timeout
        self._concurrency = max(1, concurrency)
        self._servers = servers
        """Bootstrap servers, named when the cluster cannot be reached."""

    def list_groups(self) -> list[GroupListing]:
        """Every consumer group, classic and KIP-848 (``consumer``) alike.

        Raises:
            PipelineError: the call failed (partial failures from some brokers too, because a
                missing group would otherwise look deleted).
        """
        deadline = time.monotonic() + self._timeout
        while True:
            future = self._admin.list_consumer_groups(request_timeout=self._timeout)
            result = resolve(future, "listing consumer groups", self._timeout + 5, self._servers)
            if not result.errors:
                break
            loading = all(_loading(err) for err in result.errors)
            if not loading or time.monotonic() + _LIST_BACKOFF_S >= deadline:
                raise kafka_error(
                    KafkaException(result.errors[0]), "listing consumer groups", self._servers
                )
            time.sleep(_LIST_BACKOFF_S)  # the coordinator is loading; ask again
        return [
            GroupListing(
                g.group_id, _state(getattr(g, "state", None)), _protocol(getattr(g, "type", None))
            )
            for g in result.valid or []
        ]

    def describe(
        self, groups: list[str], chunk: int = 200
    ) -> dict[str, GroupDescription | PipelineError]:
        """Describe groups in chunks; a failed group maps to its error."""
        out: dict[str, GroupDescription | PipelineError] = {}
        for start in range(0, len(groups), chunk):
            batch = groups[start : start + chunk]
            try:
                futures = self._admin.describe_consumer_groups(batch, request_timeout=self._timeout)
            except KafkaException as exc:
                err = kafka_error(exc, "describing consumer groups")
                out.update(dict.fromkeys(batch, err))
                continue
            for group, future in futures.items():
                try:
                    d = resolve(future, f"describing group {group}", self._timeout + 5)
                except PipelineError as exc:
                    out[group] = exc
                    continue
                assigned = frozenset(
                    (tp.topic, tp.partition)
                    for m in d.members
                    for tp in m.assignment.topic_partitions
                )
                out[group] = GroupDescription(
                    group=group,
                    state=_state(getattr(d, "state", None)),
                    protocol=_protocol(getattr(d, "type", None)),
                    assignor=d.partition_assignor or "",
                    members=len(d.members),
                    assigned=assigned,
                )
        return out

    def committed(self, groups: Iterable[str]) -> dict[str, dict[TP, int] | PipelineError]:
        """Committed offsets of each group, at most ``concurrency`` requests in flight.

        Partitions without a committed offset are left out (like the Kafka CLI's ``-``).
        """
        pending = list(groups)
        out: dict[str, dict[TP, int] | PipelineError] = {}
        inflight: dict[concurrent.futures.Future[Any], str] = {}
        while pending or inflight:
            while pending and len(inflight) < self._concurrency:
                group = pending.pop()
                try:
                    request = [ConsumerGroupTopicPartitions(group)]
                    futures = self._admin.list_consumer_group_offsets(
                        request, request_timeout=self._timeout
                    )
                except KafkaException as exc:
                    out[group] = kafka_error(exc, f"fetching offsets of group {group}")
                    continue
                inflight[futures[group]] = group
            done, _ = concurrent.futures.wait(
                inflight, timeout=self._timeout + 5, return_when=concurrent.futures.FIRST_COMPLETED
            )
            if not done:  # every request outlived its own timeout: give up on them
                for future, group in inflight.items():
                    future.cancel()
                    out[group] = PipelineError(f"fetching offsets of group {group} timed out")
                inflight.clear()
            for future in done:
                group = inflight.pop(future)
                try:
                    result = resolve(future, f"fetching offsets of group {group}")
                except PipelineError as exc:
                    out[group] = exc
                    continue
                out[group] = {
                    (tp.topic, tp.partition): tp.offset
                    for tp in result.topic_partitions or []
                    if tp.offset >= 0 and tp.error is None
                }
        return out

    def partition_counts(self) -> dict[str, int]:
        """Partition count of every topic in the cluster (one metadata request)."""
        try:
            meta = self._admin.list_topics(timeout=self._timeout)
        except KafkaException as exc:
            raise kafka_error(exc, "fetching metadata") from exc
        return {
            name: len(topic.partitions)
            for name, topic in meta.topics.items()
            if topic.error is None and not name.startswith("__")
        }

    def _send_list_offsets(
        self, keys: list[_TP], spec: OffsetSpec, isolation: IsolationLevel
    ) -> list[tuple[list[_TP], concurrent.futures.Future[Any] | PipelineError]]:
        """Send ``ListOffsets`` for ``keys`` in chunks, each with ONE future; wait for none.

        ``AdminClient.list_offsets`` makes a ``Future`` per partition (about 50 us each here, so
        30,000 of them cost seconds at 10,000 partitions), and librdkafka's time per request
        grows faster than its size: chunks of :data:`OFFSETS_CHUNK` partitions, all in flight at
        once, keep a round linear. This calls the client's C implementation with one future per
        chunk, which resolves to the ``{TopicPartition: ListOffsetsResultInfo | KafkaError}``
        map the public method fills its per-partition futures from.
        """
        sent: list[tuple[list[_TP], concurrent.futures.Future[Any] | PipelineError]] = []
        for start in range(0, len(keys), OFFSETS_CHUNK):
            chunk = keys[start : start + OFFSETS_CHUNK]
            request = [_TP(k.topic, k.partition, int(spec._value)) for k in chunk]
            whole: concurrent.futures.Future[Any] = concurrent.futures.Future()
            whole.set_running_or_notify_cancel()
            try:
                _AdminClientImpl.list_offsets(
                    self._admin,
                    request,
                    whole,
                    request_timeout=self._timeout,
                    isolation_level_value=isolation.value,
                )
            except KafkaException as exc:
                sent.append((chunk, kafka_error(exc, "listing offsets")))
                continue
            sent.append((chunk, whole))
        return sent

    def _collect_list_offsets(
        self,
        sent: list[tuple[list[_TP], concurrent.futures.Future[Any] | PipelineError]],
        what: str,
    ) -> dict[TP, int | PipelineError]:
        out: dict[TP, int | PipelineError] = {}
        for chunk, whole in sent:
            try:
                if isinstance(whole, PipelineError):
                    raise whole
                results = resolve(whole, what, self._timeout + 5)
            except PipelineError as exc:
                out.update(dict.fromkeys(((k.topic, k.partition) for k in chunk), exc))
                continue
            for key, value in results.items():
                tp = (key.topic, key.partition)
                if isinstance(value, KafkaError):
                    out[tp] = kafka_error(KafkaException(value), f"{what} of {tp}")
                else:
                    out[tp] = value.offset
            for k in chunk:  # a partition the response left out
                out.setdefault((k.topic, k.partition), PipelineError(f"{what}: no answer"))
        return out

    def _list_offsets_public(
        self, keys: list[_TP], spec: OffsetSpec, isolation: IsolationLevel, what: str
    ) -> dict[TP, int | PipelineError]:
        try:
            futures = self._admin.list_offsets(
                dict.fromkeys(keys, spec), isolation_level=isolation, request_timeout=self._timeout
            )
        except KafkaException as exc:
            return dict.fromkeys(((k.topic, k.partition) for k in keys), kafka_error(exc, what))
        got: dict[TP, int | PipelineError] = {}
        for key in keys:
            tp = (key.topic, key.partition)
            try:
                got[tp] = resolve(futures[key], f"{what} of {tp}", self._timeout + 5).offset
            except PipelineError as exc:
                got[tp] = exc
        return got

    def log_offsets(self, tps: Iterable[TP]) -> dict[TP, PartitionOffsets | PipelineError]:
        """Log start, high watermark and last stable offset: three batched calls in parallel."""
        keys = [_TP(t, p) for t, p in tps]
        if not keys:
            return {}
        # OffsetSpec's factories are untyped in confluent-kafka 2.16.
        earliest: OffsetSpec = OffsetSpec.earliest()  # type: ignore[no-untyped-call]
        latest: OffsetSpec = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        specs = (
            ("earliest", earliest, IsolationLevel.READ_UNCOMMITTED),
            ("latest", latest, IsolationLevel.READ_UNCOMMITTED),
            ("stable", latest, IsolationLevel.READ_COMMITTED),
        )
        if isinstance(self._admin, _AdminClientImpl) and hasattr(_AdminClientImpl, "list_offsets"):
            sent = [self._send_list_offsets(keys, spec, iso) for _, spec, iso in specs]
            starts, highs, stables = (
                self._collect_list_offsets(chunks, f"listing {name} offsets")
                for (name, _, _), chunks in zip(specs, sent, strict=True)
            )
        else:  # not librdkafka's client (a test double): the public per-partition futures
            starts, highs, stables = (
                self._list_offsets_public(keys, spec, iso, f"listing {name} offsets")
                for name, spec, iso in specs
            )
        out: dict[TP, PartitionOffsets | PipelineError] = {}
        for key in keys:
            tp = (key.topic, key.partition)
            start, high, stable = starts[tp], highs[tp], stables[tp]
            if isinstance(start, PipelineError):
                out[tp] = start
            elif isinstance(high, PipelineError):
                out[tp] = high
            elif isinstance(stable, PipelineError):
                out[tp] = stable
            else:
                out[tp] = PartitionOffsets(
                    topic=tp[0],
                    partition=tp[1],
                    log_start=start,
                    high_watermark=high,
                    stable_offset=stable,
                )
        return out
