"""What the engine needs to know of a worker: its handlers and options, as data and a protocol.

``Worker`` (the application API) satisfies ``WorkerSpec``. The engine modules (the poll loop,
the processor) depend on this module only, so they never import the application module and
the application module can import the engine without an import cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from pipeline._ratelimit import RateLimit
from pipeline._settings import Settings
from pipeline.avro._events import Event

from ._breaker import BreakerConfig
from ._options import WorkerOptions
from ._priority import Priorities

__all__ = ["HandlerSpec", "WorkerSpec", "all_async"]


@dataclass(frozen=True)
class HandlerSpec:
    """One registered handler: ``fn(event, ctx)``, or ``fn(events, ctxs)`` for a batch one.

    ``breaker`` names the circuit breaker its calls go through; ``rate`` limits its calls;
    ``max_records`` and ``max_wait`` bound the batches of a batch handler.
    """

    model: type[Event] | None
    fn: Callable[..., Any]
    is_async: bool
    tombstones: bool = False
    batch: bool = False
    breaker: str | None = None
    rate: RateLimit | None = None
    max_records: int = 500
    max_wait: float = 0.2

    @property
    def event_type(self) -> str:
        """The subject it handles (metrics label)."""
        return self.model.subject if self.model is not None else "unknown"


class WorkerSpec(Protocol):
    """A worker as the engine sees it: what to consume, how, and which handler gets what."""

    group: str
    topics: list[str]
    pattern: str | None
    settings: Settings | None
    options: WorkerOptions
    registry: CollectorRegistry
    handlers: dict[str, HandlerSpec]
    tombstone_handlers: dict[str | None, HandlerSpec]
    fallback_handler: HandlerSpec | None
    priorities: dict[str, Priorities]
    breakers: dict[str, BreakerConfig]
    rate_limit: RateLimit | None

    @property
    def retry_topic(self) -> str:
        """Where retries of this group go."""

    @property
    def dlq_topic(self) -> str:
        """Where dead letters of this group go."""


def all_async(worker: WorkerSpec) -> bool:
    """Whether every handler of ``worker`` is a (per-record) ``async def``."""
    specs = [
        *worker.handlers.values(),
        *worker.tombstone_handlers.values(),
        *([worker.fallback_handler] if worker.fallback_handler else []),
    ]
    return bool(specs) and all(s.is_async and not s.batch for s in specs)
