"""PauseSet: a partition is paused while any reason holds it; only changes reach the consumer."""

from __future__ import annotations

from typing import Any

from consumers._pauses import PauseSet

A, B, C = ("t", 0), ("t", 1), ("u", 0)


class Consumer:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[str, int]]]] = []

    def pause(self, tps: list[Any]) -> None:
        self.calls.append(("pause", [(tp.topic, tp.partition) for tp in tps]))

    def resume(self, tps: list[Any]) -> None:
        self.calls.append(("resume", [(tp.topic, tp.partition) for tp in tps]))


def test_one_reason_never_resumes_what_another_holds() -> None:
    pauses, consumer = PauseSet(), Consumer()
    pauses.hold("breaker", [A])
    pauses.hold_all("in-flight")
    assert pauses.apply(consumer, [A, B, C]) == 3
    pauses.release("in-flight")
    assert pauses.apply(consumer, [A, B, C]) == 1
    assert consumer.calls == [("pause", [A, B, C]), ("resume", [B, C])]
    assert pauses.reasons(A) == ["breaker"]
    assert pauses.reasons(B) == []


def test_apply_sends_only_changes() -> None:
    pauses, consumer = PauseSet(), Consumer()
    pauses.hold("rate", [A, B])
    pauses.apply(consumer, [A, B])
    pauses.apply(consumer, [A, B])
    pauses.release("rate", [A])
    pauses.apply(consumer, [A, B])
    assert consumer.calls == [("pause", [A, B]), ("resume", [A])]
    assert pauses.paused == frozenset({B})


def test_hold_all_covers_partitions_assigned_later() -> None:
    pauses, consumer = PauseSet(), Consumer()
    pauses.hold_all("in-flight")
    pauses.apply(consumer, [A])
    pauses.apply(consumer, [A, C])
    assert consumer.calls == [("pause", [A]), ("pause", [C])]


def test_held_partitions_not_assigned_are_not_paused_and_forget_drops_them() -> None:
    pauses, consumer = PauseSet(), Consumer()
    pauses.hold("priority", [A, C])
    assert pauses.apply(consumer, [A]) == 1
    pauses.forget([A])
    assert pauses.paused == frozenset()
    assert pauses.holds("priority")
    assert pauses.reasons(C) == ["priority"]
    pauses.release("priority", [C])
    assert not pauses.holds("priority")
    assert pauses.apply(consumer, [A, C]) == 0
    assert consumer.calls == [("pause", [A])]
