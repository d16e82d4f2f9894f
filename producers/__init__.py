"""The producer SDK: typed events to Kafka, idempotent, never silent about a lost event."""

from ._async import AsyncEventProducer
from ._batch import SendBatch
from ._delivery import DeliveryCallback, DeliveryFuture, DeliveryResult, DeliveryStatus
from ._metrics import ProducerMetrics
from ._outbox_metrics import OutboxMetrics
from ._outbox_records import OutboxConfig
from ._producer import EventProducer
from ._sending import Key

__all__ = [
    "AsyncEventProducer",
    "DeliveryCallback",
    "DeliveryFuture",
    "DeliveryResult",
    "DeliveryStatus",
    "EventProducer",
    "Key",
    "OutboxConfig",
    "OutboxMetrics",
    "ProducerMetrics",
    "SendBatch",
]
