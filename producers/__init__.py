"""The producer SDK: typed events to Kafka, idempotent, never silent about a lost event."""

from ._async import AsyncEventProducer
from ._batch import SendBatch
from ._delivery import DeliveryCallback, DeliveryFuture, DeliveryResult
from ._metrics import ProducerMetrics
from ._producer import EventProducer
from ._sending import Key

__all__ = [
    "AsyncEventProducer",
    "DeliveryCallback",
    "DeliveryFuture",
    "DeliveryResult",
    "EventProducer",
    "Key",
    "ProducerMetrics",
    "SendBatch",
]
