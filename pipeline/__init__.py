"""event-pipeline: typed Avro events on Kafka, with workers, a scheduler and a lag monitor.

The public surface is re-exported here from small private modules; ``__all__`` is the contract
(tests/unit/test_public_api.py fails if it drifts from what the private modules export).
"""

from ._errors import (
    BadMagicByteError,
    BatchDeliveryError,
    ConfigError,
    ConsumeError,
    DecodeError,
    DeliveryError,
    EncodeError,
    FailedRecord,
    FatalProducerError,
    IncompatibleSchemaError,
    KafkaOperationError,
    KafkaUnavailableError,
    PipelineError,
    ProduceError,
    QueueFullError,
    RecordCoordinates,
    RecordTooLargeError,
    SchemaError,
    SchemaMismatchError,
    SchemaNotFoundError,
    SchemaResolutionError,
    TopicError,
    TruncatedRecordError,
    UndeliveredRecordsError,
    UnknownSchemaError,
)
from ._settings import ClientKind, Settings, load_settings, redact_config
from ._topics import Drift, TopicReport, TopicSpec, ensure_topics, load_topic_specs
from ._version import __version__
from .avro._catalog import Catalog, CompatibilityMode, SchemaVersion
from .avro._codec import Codec
from .avro._compat import Incompatibility, check_catalog
from .avro._events import Event, Record, check_model

__all__ = [
    "BadMagicByteError",
    "BatchDeliveryError",
    "Catalog",
    "ClientKind",
    "Codec",
    "CompatibilityMode",
    "ConfigError",
    "ConsumeError",
    "DecodeError",
    "DeliveryError",
    "Drift",
    "EncodeError",
    "Event",
    "FailedRecord",
    "FatalProducerError",
    "Incompatibility",
    "IncompatibleSchemaError",
    "KafkaOperationError",
    "KafkaUnavailableError",
    "PipelineError",
    "ProduceError",
    "QueueFullError",
    "Record",
    "RecordCoordinates",
    "RecordTooLargeError",
    "SchemaError",
    "SchemaMismatchError",
    "SchemaNotFoundError",
    "SchemaResolutionError",
    "SchemaVersion",
    "Settings",
    "TopicError",
    "TopicReport",
    "TopicSpec",
    "TruncatedRecordError",
    "UndeliveredRecordsError",
    "UnknownSchemaError",
    "__version__",
    "check_catalog",
    "check_model",
    "ensure_topics",
    "load_settings",
    "load_topic_specs",
    "redact_config",
]
