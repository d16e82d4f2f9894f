"""The producer SDK: typed events to Kafka, idempotent, never silent about a lost event."""

from ._async import AsyncEventProducer
from ._batch import SendBatch
from ._delivery import DeliveryCallback, DeliveryFuture, DeliveryResult, DeliveryStatus
from ._metrics import ProducerMetrics
from ._mode_metrics import ModeMetrics
from ._modes import QuorumFuture, QuorumResult
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
    "ModeMetrics",
    "OutboxConfig",
    "OutboxMetrics",
    "ProducerMetrics",
    "QuorumFuture",
    "QuorumResult",
    "SendBatch",
]
