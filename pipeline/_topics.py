"""Topic specs and an idempotent ``ensure_topics`` that creates what is missing and reports drift.

A spec file is TOML, one table per topic, with optional defaults::

    [defaults]
    partitions = 6
    replication_factor = -1          # -1: the broker's default.replication.factor

    [topics."orders.placed"]
    partitions = 12
    configs = { "retention.ms" = "604800000", "min.insync.replicas" = "2" }

    [topics.payments]
    priorities = 3                   # payments.p0 (highest), payments.p1, payments.p2

A topic with ``priorities = N`` stands for its N level topics ``<name>.p0`` .. ``<name>.p<N-1>``
(the naming rule of ``pipeline._names``), each with the spec's partitions and configs; the base
topic itself is not created (no record is ever written to it: a producer that knows the levels
sends ``priority=None`` to the lowest one).

Nothing is ever deleted or shrunk: a topic whose partition count or configs differ from its spec
is reported as drift, and the operator decides.
"""

from __future__ import annotations

import re
import time
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from ._admin import cluster_metadata, kafka_error, resolve
from ._errors import ConfigError, PipelineError, TopicError
from ._names import priority_topics
from ._settings import Settings

__all__ = [
    "Drift",
    "TopicReport",
    "TopicSpec",
    "ensure_topics",
    "load_topic_specs",
    "priority_levels",
]

_NAME = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")


@dataclass(frozen=True)
class TopicSpec:
    """What a topic should look like: name, partitions, replication factor and configs.

    ``priorities=N`` (1 to 10) makes it N priority level topics ``<name>.p0`` .. (see
    :meth:`kafka_topics`); 0, the default, is one plain topic.
    """

    name: str
    partitions: int = 1
    replication_factor: int = -1
    configs: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    priorities: int = 0

    def __post_init__(self) -> None:
        if not _NAME.match(self.name) or self.name in (".", ".."):
            raise ConfigError(f"invalid topic name {self.name!r}: use 1-249 of [a-zA-Z0-9._-]")
        if self.partitions < 1:
            raise ConfigError(f"topic {self.name}: partitions must be >= 1, got {self.partitions}")
        if self.replication_factor == 0 or self.replication_factor < -1:
            raise ConfigError(
                f"topic {self.name}: replication_factor must be >= 1 or -1 (broker default)"
            )
        frozen = MappingProxyType({str(k): str(v) for k, v in self.configs.items()})
        object.__setattr__(self, "configs", frozen)
        if isinstance(self.priorities, bool) or not isinstance(self.priorities, int):
            raise ConfigError(f"topic {self.name}: priorities {self.priorities!r} is not an int")
        if self.priorities:
            try:
                names = priority_topics(self.name, self.priorities)
            except ConfigError as exc:
                raise ConfigError(f"topic {self.name}: {exc} (or 0: none)") from None
            if not _NAME.match(names[-1]):
                raise ConfigError(f"topic {self.name}: level topic {names[-1]!r} is too long")

    def kafka_topics(self) -> list[TopicSpec]:
        """The Kafka topics this spec stands for: itself, or its priority level topics."""
        if not self.priorities:
            return [self]
        return [
            TopicSpec(name, self.partitions, self.replication_factor, self.configs)
            for name in priority_topics(self.name, self.priorities)
        ]


def priority_levels(specs: Iterable[TopicSpec]) -> dict[str, int]:
    """``{topic: levels}`` of the specs with priorities (``EventProducer(priorities=...)``)."""
    return {s.name: s.priorities for s in specs if s.priorities}


@dataclass(frozen=True)
class Drift:
    """One difference between a spec and the live topic."""

    topic: str
    setting: str
    expected: str
    actual: str

    def __str__(self) -> str:
        return f"{self.topic}: {self.setting} is {self.actual}, spec says {self.expected}"


@dataclass
class TopicReport:
    """The outcome of ``ensure_topics``."""

    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    drift: list[Drift] = field(default_factory=list)
    dry_run: bool = False


def load_topic_specs(path: str | Path) -> list[TopicSpec]:
    """Read topic specs from a TOML file.

    Raises:
        ConfigError: the file is missing, is not TOML, or a spec is invalid; the message names
            the file and the topic.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"topic spec file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"topic spec file {path} is not valid TOML: {exc}") from None
    unknown = set(data) - {"defaults", "topics"}
    if unknown:
        raise ConfigError(
            f"{path}: unknown section(s) {sorted(unknown)}; use [defaults], [topics.X]"
        )
    defaults = data.get("defaults", {})
    topics = data.get("topics", {})
    if not isinstance(topics, dict) or not topics:
        raise ConfigError(f"{path}: no [topics.<name>] tables found")
    return [_spec(path, name, {**defaults, **body}) for name, body in topics.items()]


def _spec(path: Path, name: str, body: dict[str, Any]) -> TopicSpec:
    allowed = {"partitions", "replication_factor", "configs", "priorities"}
    extra = set(body) - allowed
    if extra:
        raise ConfigError(f"{path}: topic {name}: unknown key(s) {sorted(extra)}")
    try:
        return TopicSpec(
            name=name,
            partitions=int(body.get("partitions", 1)),
            replication_factor=int(body.get("replication_factor", -1)),
            configs=dict(body.get("configs", {})),
            priorities=int(body.get("priorities", 0)),
        )
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise ConfigError(f"{path}: {exc}") from None
        raise ConfigError(f"{path}: topic {name}: {exc}") from None


def ensure_topics(
    settings: Settings,
    specs: Iterable[TopicSpec],
    *,
    dry_run: bool = False,
    timeout: float = 30.0,
    admin: AdminClient | None = None,
) -> TopicReport:
    """Create missing topics and report drift of existing ones; never deletes or shrinks.

    Args:
        settings: connection settings.
        specs: the wanted topics (a spec with priorities: its level topics).
        dry_run: validate creations on the broker without creating anything.
        timeout: seconds for each admin request.
        admin: an existing admin client to reuse.

    Raises:
        KafkaUnavailableError: no broker answered.
        TopicError: a topic could not be created (the message names it and says why).
    """
    admin = admin or AdminClient(settings.admin_config())
    specs = [topic for spec in specs for topic in spec.kafka_topics()]
    live = cluster_metadata(admin, settings, timeout).topics
    report = TopicReport(dry_run=dry_run)
    missing = [s for s in specs if s.name not in live]
    existing = [s for s in specs if s.name in live]
    if missing:
        new = [
            NewTopic(s.name, s.partitions, s.replication_factor, config=dict(s.configs))
            for s in missing
        ]
        futures = admin.create_topics(new, operation_timeout=timeout, validate_only=dry_run)
        for name, future in futures.items():
            try:
                resolve(future, f"creating topic {name}", timeout)
            except PipelineError as exc:
                if "already exists" in str(exc).lower():  # created concurrently: fine
                    existing.append(next(s for s in missing if s.name == name))
                    continue
                raise TopicError(str(exc)) from exc
            report.created.append(name)
    if report.created and not dry_run:
        _wait_usable(admin, settings, report.created, timeout)
    for spec in existing:
        drift = _partition_drift(spec, len(live[spec.name].partitions)) if spec.name in live else []
        drift += _config_drift(admin, spec, timeout)
        report.drift.extend(drift)
        if not drift:
            report.unchanged.append(spec.name)
    report.created.sort()
    report.unchanged.sort()
    return report


def _wait_usable(admin: AdminClient, settings: Settings, names: list[str], timeout: float) -> None:
    """Return once every created topic has a leader for each partition (bounded by timeout).

    Creation is asynchronous in Kafka: a client that subscribes before the metadata has spread
    may see "topic not available" and only notice the topic at its next metadata refresh
    (minutes later), silently stalling whatever goes through it.
    """
    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending:
        topics = cluster_metadata(admin, settings, timeout).topics
        for name in list(pending):
            meta = topics.get(name)
            parts = meta.partitions.values() if meta is not None and meta.error is None else ()
            if parts and all(p.leader >= 0 and p.error is None for p in parts):
                pending.discard(name)
        if pending and time.monotonic() > deadline:
            raise TopicError(f"topic(s) {sorted(pending)} created but not ready after {timeout}s")
        if pending:
            time.sleep(0.1)  # polling the metadata until the condition holds, bounded above


def _partition_drift(spec: TopicSpec, actual: int) -> list[Drift]:
    if actual == spec.partitions:
        return []
    return [Drift(spec.name, "partitions", str(spec.partitions), str(actual))]


def _config_drift(admin: AdminClient, spec: TopicSpec, timeout: float) -> list[Drift]:
    if not spec.configs:
        return []
    resource = ConfigResource(ConfigResource.Type.TOPIC, spec.name)
    try:
        entries = admin.describe_configs([resource])[resource].result(timeout=timeout)
    except KafkaException as exc:
        raise kafka_error(exc, f"describing configs of {spec.name}") from exc
    out = []
    for key, expected in sorted(spec.configs.items()):
        entry = entries.get(key)
        actual = "<unknown config>" if entry is None else str(entry.value)
        if actual != expected:
            out.append(Drift(spec.name, key, expected, actual))
    return out
