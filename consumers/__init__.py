"""Consumer-group workers: typed handlers, per-key parallelism, retries and dead letters."""

from pipeline._ratelimit import RateLimit

from ._app import Worker
from ._context import Context, RawRecord
from ._dedup import Dedup
from ._options import WorkerOptions
from ._policy import Backoff, RetryPolicy, exponential
from ._priority import Priorities, default_weights
from ._signals import ControlSignal, DeadLetter, RetryLater, Skip
from ._spec import HandlerSpec
from ._topics import ensure_worker_topics, worker_topic_specs

__all__ = [
    "Backoff",
    "Context",
    "ControlSignal",
    "DeadLetter",
    "Dedup",
    "HandlerSpec",
    "Priorities",
    "RateLimit",
    "RawRecord",
    "RetryLater",
    "RetryPolicy",
    "Skip",
    "Worker",
    "WorkerOptions",
    "default_weights",
    "ensure_worker_topics",
    "exponential",
    "worker_topic_specs",
]
