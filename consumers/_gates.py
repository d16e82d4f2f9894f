"""Flow gates: circuit breakers and rate limits in front of handlers, enforced by parking.

A record whose handler may not run now (its breaker is open, or its rate limit has no token
left) is *parked*: kept in memory, still in flight, its offset not committed, neither failed
nor dead-lettered. Its partition is paused through the worker's ``PauseSet`` (reasons
``breaker:<name>`` and ``rate:<name>``), so no more records come, while the poll loop keeps
polling. Every tick the poll thread lets parked records go again, in order, as tokens refill
or as the breaker half-opens (one probe record) and closes.

Keyed order holds: once a key has a parked record, its later records park behind it, and a
key's records are let go only while no record of the key is queued or running.

A call that fails and so opens the breaker (or fails while it is open or probing) is not
charged to the record: the record parks and runs again later with the same attempt number.
Only failures while the breaker is closed go the usual way (in-place attempts, the retry
topic, the dead-letter queue).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

from pipeline._ratelimit import RateLimit, TokenBucket

from ._breaker import CLOSED, Breaker, BreakerConfig
from ._gate_metrics import GateMetrics
from ._pauses import TP, PauseSet
from ._spec import HandlerSpec, WorkerSpec
from ._work import Work

__all__ = ["WORKER_LIMIT", "Gates"]

WORKER_LIMIT = "worker"
"""The name of the worker-wide rate limit (pause reason ``rate:worker``)."""

_LOW_WATER_S = 0.2  # a rate limit pauses its partitions while this much work is parked


class Gates:
    """The breakers and rate limits of one worker, and the records they hold back.

    ``admit``, ``failed`` and ``succeeded`` run on worker threads (or the poll thread, inline);
    ``tick`` and ``drop`` on the poll thread.
    """

    def __init__(
        self,
        worker: WorkerSpec,
        monotonic: Callable[[], float],
        finish: Callable[[Work, bool], None],
        metrics: GateMetrics,
    ) -> None:
        self._clock = monotonic
        self._finish = finish
        self._metrics = metrics
        self._policy = worker.options.retry
        self._by_partition = worker.options.ordering == "partition"
        now = monotonic()
        self.breakers: dict[str, Breaker] = {}
        self._breaker_of: dict[int, Breaker] = {}
        self._buckets: dict[int, list[tuple[str, TokenBucket]]] = {}
        self.limits: dict[str, RateLimit] = {}
        worker_limit = worker.rate_limit
        shared: list[tuple[str, TokenBucket]] = []
        if worker_limit is not None:
            self.limits[WORKER_LIMIT] = worker_limit
            shared.append((f"rate:{WORKER_LIMIT}", TokenBucket(worker_limit, now)))
        self._shared = shared
        specs = [*worker.handlers.values(), worker.fallback_handler]
        for spec in specs:
            if spec is None:
                continue
            buckets = list(shared)
            if spec.rate is not None:
                name = spec.event_type
                self.limits[name] = spec.rate
                buckets.append((f"rate:{name}", TokenBucket(spec.rate, now)))
            self._buckets[id(spec)] = buckets
            if spec.breaker is not None:
                breaker = self.breakers.get(spec.breaker)
                if breaker is None:
                    config = worker.breakers.get(spec.breaker) or BreakerConfig()
                    breaker = self.breakers[spec.breaker] = Breaker(spec.breaker, config)
                self._breaker_of[id(spec)] = breaker
        self._low_water = {
            f"rate:{n}": max(1.0, limit.per_second * _LOW_WATER_S)
            for n, limit in self.limits.items()
        }
        self._lock = threading.Lock()
        self._parked: dict[Hashable, deque[tuple[Work, HandlerSpec, str]]] = {}
        self._counts: dict[str, dict[TP, int]] = {}
        self.parked = 0
        for breaker in self.breakers.values():
            metrics.breaker(breaker.name, breaker.state, [])

    @staticmethod
    def needed(worker: WorkerSpec) -> bool:
        """Whether ``worker`` declares any breaker or rate limit."""
        specs = [*worker.handlers.values(), worker.fallback_handler]
        return worker.rate_limit is not None or any(
            s is not None and (s.breaker is not None or s.rate is not None) for s in specs
        )

    # -- worker threads -----------------------------------------------------------------------

    def _lane(self, work: Work) -> Hashable:
        part = work.part
        key = part if self._by_partition else work.msg.key()
        return None if key is None else (part, key)

    def _check(self, spec: HandlerSpec, now: float) -> str | None:
        """Take a token of every limit and the breaker's leave; the reason it may not run."""
        taken: list[TokenBucket] = []
        reason: str | None = None
        for name, bucket in self._buckets.get(id(spec), self._shared):
            if not bucket.take(now):
                reason = name
                break
            taken.append(bucket)
        if reason is None:
            breaker = self._breaker_of.get(id(spec))
            if breaker is None or breaker.allow(now):
                return None
            reason = f"breaker:{breaker.name}"
        for bucket in taken:
            bucket.give_back()
        return reason

    def admit(self, work: Work, spec: HandlerSpec) -> bool:
        """Before a handler call: True to call it; False when the record was parked."""
        if work.admitted:  # let go by the poll thread, with its tokens and leave taken
            work.admitted = False
            return True
        lane = self._lane(work)
        with self._lock:
            queue = self._parked.get(lane) if lane is not None else None
            if queue:  # the key waits: its later records wait behind it
                self._park(lane, work, spec, queue[-1][2])
                return False
        reason = self._check(spec, self._clock())
        if reason is None:
            return True
        with self._lock:
            self._park(lane, work, spec, reason)
        return False

    def failed(self, work: Work, spec: HandlerSpec, exc: BaseException) -> bool:
        """After a failed call: True when the breaker holds the record (it was parked)."""
        breaker = self._breaker_of.get(id(spec))
        if breaker is None:
            return False
        if not breaker.record(self._clock(), self._policy.retryable(exc)):
            return False
        with self._lock:
            self._park(self._lane(work), work, spec, f"breaker:{breaker.name}")
        return True

    def succeeded(self, spec: HandlerSpec) -> None:
        """After a call that did not fail (control signals included)."""
        breaker = self._breaker_of.get(id(spec))
        if breaker is not None:
            breaker.record(self._clock(), False)

    def _park(self, lane: Hashable, work: Work, spec: HandlerSpec, reason: str) -> None:
        """Keep ``work`` for later (lock held)."""
        self._parked.setdefault(lane, deque()).append((work, spec, reason))
        counts = self._counts.setdefault(reason, {})
        tp = (work.part.topic, work.part.partition)
        counts[tp] = counts.get(tp, 0) + 1
        self.parked += 1

    def _unpark(self, work: Work, reason: str) -> None:
        counts = self._counts[reason]
        tp = (work.part.topic, work.part.partition)
        left = counts[tp] - 1
        if left:
            counts[tp] = left
        else:
            del counts[tp]
        self.parked -= 1

    # -- the poll thread ----------------------------------------------------------------------

    def tick(
        self,
        submit: Callable[[list[tuple[Any, Work]]], None],
        busy: Callable[[Hashable], bool],
        pauses: PauseSet,
    ) -> None:
        """Move breakers on, let parked records go that may run now, and pause the rest."""
        now = self._clock()
        metrics = self._metrics
        for breaker in self.breakers.values():
            state = breaker.tick(now)
            if breaker.transitions:
                entered = []
                while breaker.transitions:
                    entered.append(breaker.transitions.popleft()[1])
                metrics.breaker(breaker.name, state, entered)
        released: list[tuple[Any, Work]] = []
        dropped: list[Work] = []
        if self.parked:
            with self._lock:
                for lane in list(self._parked):
                    if lane is not None and busy(lane):
                        continue
                    queue = self._parked[lane]
                    while queue:
                        work, spec, reason = queue[0]
                        if work.part.revoked:
                            queue.popleft()
                            self._unpark(work, reason)
                            dropped.append(work)
                            continue
                        if self._check(spec, now) is not None:
                            break
                        queue.popleft()
                        self._unpark(work, reason)
                        work.admitted = True
                        released.append((lane, work))
                    if not queue:
                        del self._parked[lane]
                self._hold(pauses)
        elif self._counts:
            with self._lock:
                self._hold(pauses)
        for work in dropped:
            self._finish(work, True)
        if released:
            submit(released)

    def _hold(self, pauses: PauseSet) -> None:
        """Pause the partitions of parked records (lock held)."""
        for reason, counts in list(self._counts.items()):
            total = sum(counts.values())
            low = self._low_water.get(reason, 1.0)
            pauses.release(reason)
            if total >= low:
                pauses.hold(reason, counts)
            self._metrics.parked(reason, total)
            if not counts:
                del self._counts[reason]

    def drop(self, parts: list[Any] | None = None) -> None:
        """Give up parked records of ``parts`` (all: None): not committed, redelivered later."""
        wanted = None if parts is None else set(map(id, parts))
        dropped: list[Work] = []
        with self._lock:
            for lane in list(self._parked):
                queue = self._parked[lane]
                keep: deque[tuple[Work, HandlerSpec, str]] = deque()
                for entry in queue:
                    if wanted is None or id(entry[0].part) in wanted:
                        self._unpark(entry[0], entry[2])
                        dropped.append(entry[0])
                    else:
                        keep.append(entry)
                if keep:
                    self._parked[lane] = keep
                else:
                    del self._parked[lane]
        for work in dropped:
            self._finish(work, True)

    def status(self) -> dict[str, object]:
        """Breaker states, rate limits and parked records, for ``/healthz``."""
        return {
            "breakers": {name: b.state for name, b in sorted(self.breakers.items())},
            "rate_limits": {name: lim.per_second for name, lim in sorted(self.limits.items())},
            "parked": self.parked,
        }

    @property
    def all_closed(self) -> bool:
        """Whether every breaker is closed."""
        return all(b.state == CLOSED for b in self.breakers.values())
