"""Batch handlers on the test kit: grouping per partition, both failure semantics, offsets."""

from __future__ import annotations

import pytest

from consumers import Context, Dedup, RetryPolicy, Worker, exponential
from consumers.testing import TestPipeline
from examples.orders.events import ReminderDue
from pipeline._errors import ConfigError
from pipeline._headers import CE_ID
from tests.parity import reminder


def _app() -> Worker:
    return Worker(
        group="g",
        topics=["in"],
        retry=RetryPolicy(max_attempts=3, in_place_attempts=2, backoff=exponential(1, 2, 10, 0)),
    )


def test_batches_group_records_of_a_partition_in_order() -> None:
    app = _app()
    calls: list[list[str]] = []

    @app.batch_handler(ReminderDue, max_records=4, max_wait=0.2)
    def handle(events: list[ReminderDue], ctxs: list[Context]) -> None:
        calls.append([e.message for e in events])
        assert len({c.partition for c in ctxs}) == 1

    with TestPipeline(app, partitions=1) as tp:
        for i in range(10):
            tp.send(reminder(f"m{i}"), key=f"k{i % 3}", topic="in")
        tp.run_until_idle()
    assert [m for call in calls for m in call] == [f"m{i}" for i in range(10)]
    assert max(map(len, calls)) == 4
    assert len(calls) >= 3


def test_per_record_outcomes_fail_only_those_records() -> None:
    app = _app()
    seen: list[tuple[str, int]] = []

    @app.batch_handler(ReminderDue, max_records=100)
    def handle(events: list[ReminderDue], ctxs: list[Context]) -> dict[int, Exception]:
        seen.extend((e.message, c.attempt) for e, c in zip(events, ctxs, strict=True))
        return {
            i: ValueError(f"odd {e.message}")
            for i, (e, c) in enumerate(zip(events, ctxs, strict=True))
            if int(e.message[1:]) % 2 and c.attempt < 2
        }

    with TestPipeline(app, partitions=1) as tp:
        for i in range(10):
            tp.send(reminder(f"m{i}"), key=f"k{i}", topic="in")
        tp.run_until_idle()
        assert tp.scheduled == 5  # the odd half goes to the retry topic, attempt 2
        tp.advance(2)
        assert tp.dead_letters() == []
    first = [m for m, a in seen if a == 1]
    again = sorted(m for m, a in seen if a == 2)
    assert first == [f"m{i}" for i in range(10)]
    assert again == sorted(f"m{i}" for i in range(1, 10, 2))


def test_raising_retries_the_whole_batch_in_place_then_per_record() -> None:
    app = _app()
    attempts: list[list[int]] = []

    @app.batch_handler(ReminderDue, max_records=100)
    def handle(events: list[ReminderDue], ctxs: list[Context]) -> None:
        attempts.append([c.attempt for c in ctxs])
        if len(attempts) < 3:
            raise ConnectionError("downstream down")

    with TestPipeline(app, partitions=1) as tp:
        for i in range(6):
            tp.send(reminder(f"m{i}"), key=f"k{i}", topic="in")
        tp.run_until_idle()
        assert attempts == [[1] * 6, [2] * 6]  # in place once, then via the retry topic
        assert tp.scheduled == 6
        tp.advance(5)
        assert tp.dead_letters() == []
    assert sum(map(len, attempts[2:])) == 6  # each record once more, from the retry topic
    assert all(a == 3 for call in attempts[2:] for a in call)


def test_batch_handler_config_and_bad_return() -> None:
    app = _app()
    with pytest.raises(ConfigError, match="max_records"):
        app.batch_handler(ReminderDue, max_records=0)

    @app.batch_handler(ReminderDue)
    def handle(events: list[ReminderDue], ctxs: list[Context]) -> object:
        return ["not", "a", "mapping"]

    with TestPipeline(app, partitions=1) as tp:
        tp.send(reminder("m"), key="k", topic="in")
        tp.advance(30)
        dead = tp.dead_letters()
    assert len(dead) == 1
    assert "returns None or {index: exception}" in (dead[0].error_message or "")


def test_batch_handlers_skip_duplicates_in_and_across_batches() -> None:
    app = Worker(group="g", topics=["in"], dedup=Dedup(window_s=60))
    got: list[str] = []

    @app.batch_handler(ReminderDue)
    def handle(events: list[ReminderDue], ctxs: list[Context]) -> None:
        got.extend(e.message for e in events)

    with TestPipeline(app, partitions=1) as tp:
        for message in ("a", "b", "c"):  # one batch: the same event id three times
            tp.send(reminder(message), key="k", topic="in", headers={CE_ID: "same"})
        tp.send(reminder("d"), key="k", topic="in", headers={CE_ID: "other"})
        tp.run_until_idle()
        tp.send(reminder("e"), key="k", topic="in", headers={CE_ID: "same"})  # a later batch
        tp.run_until_idle()
    assert got == ["a", "d"]
