"""The Parity scenario: one body that runs on the test kit and on the real broker (no tests here).

A worker with dedup and a retry policy of two attempts (3 s backoff, no jitter) gets:

- ``ok``: handled at once;
- ``flaky``: fails its first attempt, goes through the scheduler to ``<group>.retry`` and
  succeeds on the second;
- ``bad``: fails both attempts and lands in ``<group>.dlq``;
- ``dup`` twice with one ``ce_id``: handled once, the second skipped as a duplicate;
- ``later``: sent with a 4 s delay, so it is handled only once that much time has passed.

Both runs must report the same handled, retried and dead-lettered outcomes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from consumers import Context, Dedup, RetryPolicy, Worker, exponential
from examples.orders.events import ReminderDue, ReminderKind
from pipeline._headers import CE_ID

RETRY_S = 3.0
DELAY_S = 4.0
ADVANCE_S = 6.0


class Boom(Exception):
    """The scenario's handler failure."""


DeadLetterSeen = tuple[str, str, int, str]
"""A dead letter as both runs describe it: message, error type, attempt, original topic."""


class Harness(Protocol):
    """What the scenario does to a running worker (the kit's or the broker's)."""

    def send(
        self, event: ReminderDue, *, key: str, headers: dict[str, str] | None = None
    ) -> None: ...

    def send_later(self, event: ReminderDue, *, key: str, delay: timedelta) -> None: ...

    def run_until_idle(self) -> None: ...

    def advance(self, seconds: float) -> None: ...

    def dead_letters(self) -> list[DeadLetterSeen]: ...


@dataclass
class Outcome:
    """What the scenario saw, before and after the clock passed the retries' due time."""

    handled_first: list[tuple[str, int]]
    handled: list[tuple[str, int]]
    dead_first: list[DeadLetterSeen]
    dead: list[DeadLetterSeen]
    outcomes: dict[str, float]


def reminder(message: str) -> ReminderDue:
    now = datetime.now(UTC).replace(microsecond=0)
    return ReminderDue(
        reminder_id=uuid.uuid4(),
        due_at=now,
        due_date=now.date(),
        kind=ReminderKind.REVIEW_REQUEST,
        message=message,
        attempt=1,
    )


def make_app(group: str, topic: str, calls: list[tuple[str, int]], **options: Any) -> Worker:
    """The scenario's worker; its handler appends ``(message, attempt)`` to ``calls``."""
    app = Worker(
        group=group,
        topics=[topic],
        retry=RetryPolicy(max_attempts=2, backoff=exponential(RETRY_S, 2.0, 60.0, jitter=0)),
        dedup=Dedup(),
        registry=CollectorRegistry(),
        **options,
    )

    @app.handler(ReminderDue)
    def handle(event: ReminderDue, ctx: Context) -> None:
        calls.append((event.message, ctx.attempt))
        if event.message == "bad" or (event.message == "flaky" and ctx.attempt == 1):
            raise Boom(f"{event.message} failed on attempt {ctx.attempt}")

    return app


def outcome_counts(registry: CollectorRegistry) -> dict[str, float]:
    """``pipeline_worker_records_total`` summed per outcome (``ok`` included)."""
    counts: dict[str, float] = {}
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name == "pipeline_worker_records_total":
                outcome = sample.labels["outcome"]
                counts[outcome] = counts.get(outcome, 0.0) + sample.value
    return counts


def run_scenario(h: Harness, calls: list[tuple[str, int]], registry: CollectorRegistry) -> Outcome:
    """The shared body: send, let it settle, pass the due times, let it settle again."""
    h.send(reminder("ok"), key="a")
    h.send(reminder("flaky"), key="b")
    h.send(reminder("bad"), key="c")
    h.send(reminder("dup"), key="d", headers={CE_ID: "dup-1"})
    h.send(reminder("dup"), key="d", headers={CE_ID: "dup-1"})
    h.send_later(reminder("later"), key="e", delay=timedelta(seconds=DELAY_S))
    h.run_until_idle()
    handled_first, dead_first = sorted(calls), h.dead_letters()
    h.advance(ADVANCE_S)
    h.run_until_idle()
    return Outcome(
        handled_first, sorted(calls), dead_first, h.dead_letters(), outcome_counts(registry)
    )


def check(outcome: Outcome, topic: str) -> None:
    """The outcomes both runs must give."""
    assert outcome.handled_first == [("bad", 1), ("dup", 1), ("flaky", 1), ("ok", 1)]
    assert outcome.dead_first == []
    assert outcome.handled == [
        ("bad", 1),
        ("bad", 2),
        ("dup", 1),
        ("flaky", 1),
        ("flaky", 2),
        ("later", 1),
        ("ok", 1),
    ]
    assert outcome.dead == [("bad", f"{__name__}.Boom", 2, topic)]
    counts = outcome.outcomes
    assert counts.get("ok") == 4  # ok, dup, flaky (2nd attempt), later
    assert counts.get("retried") == 2  # flaky and bad, once each
    assert counts.get("dead_lettered") == 1
    assert counts.get("duplicate") == 1
