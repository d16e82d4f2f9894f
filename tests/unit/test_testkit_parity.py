"""The Parity scenario on the test kit; the same body runs on the broker (integration tests)."""

from __future__ import annotations

from datetime import timedelta

from consumers.testing import TestPipeline
from examples.orders.events import ReminderDue
from tests.parity import DeadLetterSeen, check, make_app, run_scenario


class KitHarness:
    def __init__(self, tp: TestPipeline, topic: str) -> None:
        self.tp = tp
        self.topic = topic

    def send(self, event: ReminderDue, *, key: str, headers: dict[str, str] | None = None) -> None:
        self.tp.send(event, key=key, topic=self.topic, headers=dict(headers or {}))

    def send_later(self, event: ReminderDue, *, key: str, delay: timedelta) -> None:
        self.tp.send(event, key=key, topic=self.topic, delay=delay)

    def run_until_idle(self) -> None:
        self.tp.run_until_idle()

    def advance(self, seconds: float) -> None:
        self.tp.advance(seconds)

    def dead_letters(self) -> list[DeadLetterSeen]:
        out = []
        for record in self.tp.dead_letters():
            assert isinstance(record.event, ReminderDue)
            out.append(
                (
                    record.event.message,
                    record.error_type or "",
                    record.attempt,
                    record.original_topic or "",
                )
            )
        return sorted(out)


def test_parity_scenario_on_the_test_kit() -> None:
    calls: list[tuple[str, int]] = []
    app = make_app("parity", "parity-in", calls)
    with TestPipeline(app) as tp:
        outcome = run_scenario(KitHarness(tp, "parity-in"), calls, app.registry)
    check(outcome, "parity-in")
