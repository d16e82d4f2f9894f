"""The application API: a ``Worker`` and its handlers, registered per event type."""

from __future__ import annotations

import dataclasses
import inspect
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry

from pipeline._errors import ConfigError
from pipeline._names import dlq_topic, retry_topic
from pipeline._ratelimit import RateLimit
from pipeline._settings import Settings
from pipeline.avro._events import Event

from ._breaker import BreakerConfig
from ._options import WorkerOptions
from ._priority import Priorities
from ._runner import Runner
from ._spec import HandlerSpec

__all__ = ["Worker"]

F = TypeVar("F", bound=Callable[..., Any])


class Worker:
    """A consumer-group worker: register handlers, then ``run()`` (or ``pipeline worker run``).

    ::

        worker = Worker(group="payments", topics=["payments"])

        @worker.handler(PaymentCaptured)
        def on_payment(event: PaymentCaptured, ctx: Context) -> None:
            ...

    Nothing connects before ``run()``. The worker also consumes ``<group>.retry``, writes
    retries through the scheduler and dead letters to ``<group>.dlq``.

    Args:
        group: the consumer group id.
        topics: topics to consume.
        pattern: a regex of topics to consume instead (for example ``"^orders\\..*"``).
        settings: connection settings (default: read from the environment at ``run()``).
        options: how the worker runs; keyword overrides may be given instead.
        registry: where metrics go (default: a fresh registry, exposed as ``registry``).
    """

    def __init__(
        self,
        group: str,
        topics: Iterable[str] = (),
        *,
        pattern: str | None = None,
        settings: Settings | None = None,
        options: WorkerOptions | None = None,
        registry: CollectorRegistry | None = None,
        **overrides: Any,
    ) -> None:
        topics = list(topics)
        if bool(topics) == bool(pattern):
            raise ConfigError("give a Worker either topics=[...] or pattern=..., not both")
        if pattern is not None and not pattern.startswith("^"):
            raise ConfigError(f"a topic pattern must start with '^', got {pattern!r}")
        self.group = group
        self.topics = topics
        self.pattern = pattern
        self.settings = settings
        self.options = dataclasses.replace(options or WorkerOptions(), **overrides)
        self.registry = registry or CollectorRegistry()
        self.handlers: dict[str, HandlerSpec] = {}
        self.tombstone_handlers: dict[str | None, HandlerSpec] = {}
        self.fallback_handler: HandlerSpec | None = None
        self.priorities: dict[str, Priorities] = {}
        self.breakers: dict[str, BreakerConfig] = {}
        self.rate_limit: RateLimit | None = None
        self._runner: Runner | None = None
        self._stop = threading.Event()

    @property
    def retry_topic(self) -> str:
        """Where retries of this group go (``<group>.retry`` by default)."""
        return self.options.retry_topic or retry_topic(self.group)

    @property
    def dlq_topic(self) -> str:
        """Where dead letters of this group go (``<group>.dlq`` by default)."""
        return self.options.dlq_topic or dlq_topic(self.group)

    def configure(self, **overrides: Any) -> None:
        """Replace some options (used by the CLI for ``--concurrency`` and friends)."""
        self.options = dataclasses.replace(self.options, **overrides)

    def priority(
        self,
        topic: str,
        levels: int,
        *,
        weights: Iterable[float] | None = None,
        quantum: int = 500,
        low_in_flight: int | None = None,
    ) -> Priorities:
        """Consume ``topic`` as ``levels`` priority levels, ``<topic>.p0`` (highest) and on.

        The worker subscribes to every level topic instead of ``topic`` and serves them by
        weighted fair scheduling (README "Priorities"): while several levels have records
        queued, level L gets ``weights[L] / sum(weights)`` of the records (default weights:
        each level twice the next, ``p0`` highest), and the waiting levels are paused.
        ``quantum`` and ``low_in_flight`` are described in :class:`Priorities`.

        Raises:
            ConfigError: ``topic`` is not one of the worker's topics, it already has
                priorities, or ``levels`` / ``weights`` / ``quantum`` are invalid.
        """
        if topic not in self.topics:
            raise ConfigError(f"priorities of {topic}: not one of the worker's topics")
        if topic in self.priorities:
            raise ConfigError(f"priorities of {topic} are already set")
        spec = Priorities(
            topic, levels, None if weights is None else tuple(weights), quantum, low_in_flight
        )
        self.priorities[topic] = spec
        return spec

    # -- registration -------------------------------------------------------------------------

    def handler(
        self,
        model: type[Event],
        *,
        tombstones: bool = False,
        breaker: str | bool | None = None,
        rate: float | RateLimit | None = None,
    ) -> Callable[[F], F]:
        """Register ``fn(event, ctx)`` (sync or async) for events of ``model``'s subject.

        With ``tombstones=True`` the handler also receives tombstones (``event=None``) of
        ``model.topic`` (or of any topic when ``model.topic`` is None). ``breaker`` puts its
        calls behind a circuit breaker: a name shared by the handlers of one downstream
        (configured with :meth:`breaker`), or True for one of its own (named by the subject).
        ``rate`` limits its calls per second (a token bucket; see README "Flow control").
        """
        return self._register(model, tombstones=tombstones, batch=False, breaker=breaker, rate=rate)

    def batch_handler(
        self,
        model: type[Event],
        *,
        max_records: int = 500,
        max_wait: float = 0.2,
    ) -> Callable[[F], F]:
        """Register ``fn(events, ctxs)`` for ``model``: records of one partition arrive together.

        A call gets up to ``max_records`` records of one partition, in offset order, once
        that many are there or the oldest waited ``max_wait`` seconds. Raising retries the
        whole batch; returning ``{index: exception}`` fails only those records (README
        "Batch handlers"). Breakers and rate limits are not applied to batch handlers yet.
        """
        if max_records < 1 or max_wait < 0:
            raise ConfigError("batch_handler needs max_records >= 1 and max_wait >= 0")
        return self._register(
            model,
            tombstones=False,
            batch=True,
            max_records=max_records,
            max_wait=max_wait,
        )

    def breaker(
        self,
        name: str,
        *,
        failure_rate: float = 0.5,
        min_calls: int = 10,
        window_s: float = 30.0,
        cooldown_s: float = 10.0,
    ) -> None:
        """Configure the circuit breaker ``name`` (handlers join it with ``breaker=name``).

        It opens when, over the last ``window_s`` seconds, at least ``min_calls`` calls ended
        and at least ``failure_rate`` of them failed; it lets one probe record through after
        ``cooldown_s``.
        """
        if not name:
            raise ConfigError("a breaker needs a name")
        self.breakers[name] = BreakerConfig(
            failure_rate=failure_rate, min_calls=min_calls, window_s=window_s, cooldown_s=cooldown_s
        )

    def limit_rate(self, per_second: float, *, burst: float | None = None) -> None:
        """Limit the handler calls of this whole worker to ``per_second`` (a token bucket)."""
        self.rate_limit = RateLimit(per_second, burst)

    def fallback(self, fn: F) -> F:
        """Register ``fn(record: RawRecord, ctx)`` for event types without a handler.

        Without one, such records are dead-lettered with error type ``unknown_event_type``.
        """
        self.fallback_handler = HandlerSpec(None, fn, inspect.iscoroutinefunction(fn))
        return fn

    def _register(
        self,
        model: type[Event],
        *,
        tombstones: bool,
        batch: bool,
        breaker: str | bool | None = None,
        rate: float | RateLimit | None = None,
        max_records: int = 500,
        max_wait: float = 0.2,
    ) -> Callable[[F], F]:
        if not (isinstance(model, type) and issubclass(model, Event)):
            raise ConfigError(f"handlers are registered for Event classes, got {model!r}")
        name = model.subject if breaker is True else (breaker or None)
        if name is not None and not isinstance(name, str):
            raise ConfigError(f"breaker= takes a name or True, got {breaker!r}")
        limit = rate if isinstance(rate, RateLimit) or rate is None else RateLimit(float(rate))

        def decorate(fn: F) -> F:
            if model.subject in self.handlers:
                raise ConfigError(f"{model.subject} already has a handler")
            spec = HandlerSpec(
                model,
                fn,
                inspect.iscoroutinefunction(fn),
                tombstones,
                batch,
                breaker=name,
                rate=limit,
                max_records=max_records,
                max_wait=max_wait,
            )
            self.handlers[model.subject] = spec
            if tombstones:
                self.tombstone_handlers[model.topic] = spec
            return fn

        return decorate

    # -- running ------------------------------------------------------------------------------

    def run(self) -> None:
        """Connect, consume until :meth:`stop`, drain, commit and leave the group.

        Raises:
            ConsumeError: the consumer failed in a way the worker cannot recover from.
        """
        if not self.handlers and self.fallback_handler is None:
            raise ConfigError(f"worker {self.group} has no handlers")
        if self.priorities and self.options.exactly_once:
            raise ConfigError("priorities are not supported in exactly-once mode")
        runner = Runner(self, self._stop)
        self._runner = runner
        runner.run()

    def stop(self) -> None:
        """Ask a running worker to shut down gracefully (safe from signal handlers)."""
        self._stop.set()

    def healthy(self) -> bool:
        """Whether the poll loop is alive (``/healthz``)."""
        return self._runner is not None and self._runner.healthy()

    def ready(self) -> bool:
        """Whether the worker joined its group and has partitions (``/readyz``)."""
        return self._runner is not None and self._runner.ready()

    def status(self) -> dict[str, object]:
        """Progress and flow state for ``/healthz``: ``seconds_since_progress``, ``in_flight``,
        ``assigned_partitions``, ``paused`` (empty before ``run()``)."""
        return {} if self._runner is None else self._runner.status()
