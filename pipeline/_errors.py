"""The one exception tree of event-pipeline.

Every error the library raises on purpose is a ``PipelineError``. Third-party exceptions
(confluent-kafka, fastavro, pydantic) are translated at one boundary and chained with
``raise ... from exc``, so callers never need to catch library types.

    PipelineError
    ├── ConfigError (ValueError)            bad setting, unknown librdkafka key, bad spec file
    ├── KafkaUnavailableError               no broker answered in time
    ├── AuthenticationError                 SASL credentials or the TLS certificate refused
    ├── KafkaOperationError                 the broker answered with an error
    │   ├── TopicError                      create/describe/alter of a topic failed
    │   └── AuthorizationError              an ACL denied an operation (names what and on what)
    ├── SchemaError                         a schema or catalog problem
    │   ├── SchemaNotFoundError (LookupError)
    │   ├── SchemaMismatchError             a pydantic model does not match its Avro schema
    │   └── IncompatibleSchemaError         a version chain breaks its compatibility mode
    ├── EncodeError (ValueError)            an event does not fit its schema (names the field)
    ├── DecodeError                         bytes that cannot be turned into an event
    │   ├── BadMagicByteError               unknown framing
    │   ├── UnknownSchemaError              unknown fingerprint or schema id
    │   ├── TruncatedRecordError            the body ends early or has trailing garbage
    │   └── SchemaResolutionError           writer schema cannot be resolved to the reader's
    ├── ProduceError                        a record could not be produced
    │   ├── RecordTooLargeError (ValueError)
    │   ├── QueueFullError                  the local queue stayed full for max_block
    │   ├── DeliveryError                   the broker did not acknowledge a record
    │   │   └── BatchDeliveryError          records of a send batch failed (lists them)
    │   ├── FatalProducerError              the idempotent producer hit a fatal error
    │   ├── UndeliveredRecordsError         close()/flush() left records unacknowledged
    │   └── OutboxError                     the producer outbox (a local SQLite file) failed
    │       ├── OutboxFull                  the outbox is at its record or byte cap
    │       └── OutboxFileError             the outbox file cannot be used (names the path)
    │           ├── OutboxCorruptError      not an outbox, a damaged file, or a newer version
    │           └── OutboxLockedError       another process holds the outbox
    ├── ConsumeError                        a worker or consumer failure
    ├── WorkerMetricsError                  a worker's /metrics could not be read
    └── RequestError                        a request-reply or quorum send did not succeed
        ├── RequestTimeout (TimeoutError)   no reply before the request's timeout
        ├── RemoteError                     the handler raised; carries its error type and message
        └── QuorumNotReached (TimeoutError) fewer than N acknowledgements at the timeout
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "AuthenticationError",
    "AuthorizationError",
    "BadMagicByteError",
    "BatchDeliveryError",
    "ConfigError",
    "ConsumeError",
    "DecodeError",
    "DeliveryError",
    "EncodeError",
    "FailedRecord",
    "FatalProducerError",
    "IncompatibleSchemaError",
    "KafkaOperationError",
    "KafkaUnavailableError",
    "OutboxCorruptError",
    "OutboxError",
    "OutboxFileError",
    "OutboxFull",
    "OutboxLockedError",
    "PipelineError",
    "ProduceError",
    "QueueFullError",
    "QuorumNotReached",
    "RateLimitExceeded",
    "RecordCoordinates",
    "RecordTooLargeError",
    "RemoteError",
    "RequestError",
    "RequestTimeout",
    "SchemaError",
    "SchemaMismatchError",
    "SchemaNotFoundError",
    "SchemaResolutionError",
    "TopicError",
    "TruncatedRecordError",
    "UndeliveredRecordsError",
    "UnknownSchemaError",
    "WorkerMetricsError",
]


class PipelineError(Exception):
    """Root of every error event-pipeline raises on purpose."""


class ConfigError(PipelineError, ValueError):
    """A setting, option or spec file is invalid."""


class KafkaUnavailableError(PipelineError):
    """No broker could be reached within the timeout."""


class KafkaOperationError(PipelineError):
    """The cluster answered a request with an error."""


class TopicError(KafkaOperationError):
    """Creating, describing or altering a topic failed."""


class AuthenticationError(PipelineError):
    """The cluster refused the SASL credentials, or TLS could not verify its certificate.

    A user mistake (a wrong password, a wrong CA file): the CLI exits 2. The message names the
    cause and never the password.
    """


class AuthorizationError(KafkaOperationError):
    """An ACL denied an operation; the message names the operation and the topic or group."""


class SchemaError(PipelineError):
    """A schema file, subject or catalog is invalid."""


class SchemaNotFoundError(SchemaError, LookupError):
    """No schema is known for the given subject or version."""


class SchemaMismatchError(SchemaError):
    """A pydantic model does not match its Avro schema."""


class IncompatibleSchemaError(SchemaError):
    """A schema version breaks its subject's declared compatibility mode."""


class EncodeError(PipelineError, ValueError):
    """An event cannot be encoded with its schema."""


@dataclass(frozen=True, slots=True)
class RecordCoordinates:
    """Where a record came from: enough to dead-letter it with its original bytes."""

    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    key: bytes | None = None
    headers: Sequence[tuple[str, bytes | None]] = ()

    def __str__(self) -> str:
        if self.topic is None:
            return "<no record>"
        return f"{self.topic}[{self.partition}]@{self.offset}"


class DecodeError(PipelineError):
    """Bytes could not be decoded into an event; carries the raw bytes and coordinates."""

    def __init__(
        self,
        message: str,
        *,
        data: bytes | None = None,
        coordinates: RecordCoordinates | None = None,
    ) -> None:
        self.data = data
        self.coordinates = coordinates or RecordCoordinates()
        where = "" if self.coordinates.topic is None else f" at {self.coordinates}"
        super().__init__(f"{message}{where}")


class BadMagicByteError(DecodeError):
    """The value does not start with a known framing marker."""


class UnknownSchemaError(DecodeError):
    """The fingerprint or registry schema id is not known."""


class TruncatedRecordError(DecodeError):
    """The Avro body ended early or left trailing bytes."""


class SchemaResolutionError(DecodeError):
    """The writer schema cannot be resolved against the reader schema."""


class ProduceError(PipelineError):
    """A record could not be produced."""


class RecordTooLargeError(ProduceError, ValueError):
    """An encoded record is larger than the producer's message limit."""


class QueueFullError(ProduceError):
    """The local producer queue stayed full for longer than ``max_block``."""


class RateLimitExceeded(ProduceError):
    """A rate-limited producer had no token for a send within ``max_block``."""


class DeliveryError(ProduceError):
    """The cluster did not acknowledge a record."""


@dataclass(frozen=True, slots=True)
class FailedRecord:
    """A record the cluster did not take, with everything needed to send it again."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]]
    error: DeliveryError


class BatchDeliveryError(DeliveryError):
    """Records of a send batch were not delivered; ``failed`` lists each one."""

    def __init__(self, failed: Sequence[FailedRecord], total: int) -> None:
        self.failed = list(failed)
        self.total = total
        first = self.failed[0].error if self.failed else "none"
        super().__init__(
            f"{len(self.failed)} of {total} record(s) in the batch were not delivered "
            f"(first: {first})"
        )


class FatalProducerError(ProduceError):
    """The idempotent producer raised a fatal error; the client is rebuilt for later sends."""


class UndeliveredRecordsError(ProduceError):
    """Records were still unacknowledged when flush or close gave up."""

    def __init__(self, count: int, timeout: float) -> None:
        self.count = count
        super().__init__(f"{count} record(s) still undelivered after {timeout:g}s")


class OutboxError(ProduceError):
    """The producer outbox could not store or send back a record."""


class OutboxFull(OutboxError):  # not ...Error: the name issue 17 gives it
    """The outbox holds its cap of records or bytes; the send was refused, not dropped."""

    def __init__(self, message: str, *, records: int, size_bytes: int) -> None:
        self.records = records
        self.size_bytes = size_bytes
        super().__init__(message)


class OutboxFileError(OutboxError):
    """The outbox file cannot be opened or used; ``path`` names it."""

    def __init__(self, message: str, *, path: str) -> None:
        self.path = path
        super().__init__(message)


class OutboxCorruptError(OutboxFileError):
    """The file is not an outbox, is damaged, or was written by a newer version."""


class OutboxLockedError(OutboxFileError):
    """Another process (a producer or ``pipeline outbox drain``) holds the outbox."""


class ConsumeError(PipelineError):
    """A consumer or worker failed."""


class WorkerMetricsError(PipelineError):
    """A worker's ``/metrics`` could not be read (``pipeline stats --worker URL``)."""


class RequestError(PipelineError):
    """A request-reply or quorum send did not succeed."""


class RequestTimeout(RequestError, TimeoutError):
    """No reply arrived before the request's timeout (a later reply is dropped and counted)."""


class RemoteError(RequestError):
    """The remote handler raised: ``error_type`` and ``message`` say what it raised."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"remote handler failed: {error_type}: {message}")
        self.error_type = error_type
        self.message = message


class QuorumNotReached(RequestError, TimeoutError):
    """Fewer than ``required`` groups or instances acknowledged before the timeout."""

    def __init__(self, acked: Sequence[str], required: int) -> None:
        names = ", ".join(acked) or "nobody"
        super().__init__(f"quorum not reached: {len(acked)} of {required} acks (acked by {names})")
        self.acked = list(acked)
        self.required = required

    def missing(self, expected: Sequence[str]) -> list[str]:
        """Who of ``expected`` (the groups or instances you count on) did not acknowledge."""
        return [name for name in expected if name not in self.acked]
