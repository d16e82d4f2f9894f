"""Once-only redrive logic: the saved position, what a run sends, copies grouped by origin."""

from __future__ import annotations

from pipeline._headers import REDRIVEN_AT
from pipeline.ops._dead_letters import DeadLetter, DeadLetterFilter
from pipeline.ops._redrive import (
    RedrivePlan,
    RedrivePosition,
    Verdict,
    group_dead_letters,
    origin_of,
)


def letter(
    offset: int,
    origin: int | None,
    *,
    copy: bool = False,
    partition: int = 0,
    ts: int | None = None,
    error: str = "builtins.ValueError",
) -> DeadLetter:
    headers = [(REDRIVEN_AT, b"2024-01-01T00:00:00.000Z")] if copy else []
    return DeadLetter(
        partition=partition, offset=offset, timestamp_ms=offset if ts is None else ts,
        key=b"k", value=b"v", headers=headers, error_type=error, error_message="boom",
        attempts=3, original_topic=None if origin is None else "orders",
        original_partition=None if origin is None else 0, original_offset=origin,
        original_timestamp_ms=None, failed_at=f"t{offset}",
    )  # fmt: skip


def run(plan: RedrivePlan, records: list[DeadLetter]) -> list[Verdict]:
    out = []
    for record in records:
        out.append(plan.decide(record))
        plan.handled(record)
    return out


def test_position_parse() -> None:
    assert RedrivePosition.parse(7, None) == RedrivePosition(7, 7)  # saved before copies
    assert RedrivePosition.parse(7, "") == RedrivePosition(7, 7)
    assert RedrivePosition.parse(7, "not json") == RedrivePosition(7, 7)
    assert RedrivePosition.parse(7, '{"again": "x"}') == RedrivePosition(7, 7)
    assert RedrivePosition.parse(7, '{"again": true}') == RedrivePosition(7, 7)
    assert RedrivePosition.parse(7, '{"again": 3}') == RedrivePosition(7, 3)
    assert RedrivePosition.parse(7, '{"again": 99}') == RedrivePosition(7, 7)
    pos = RedrivePosition(9, 4)
    assert RedrivePosition.parse(9, pos.metadata) == pos
    assert (pos.start(again=False), pos.start(again=True)) == (9, 4)


def test_plain_run_skips_copies_and_keeps_them_for_again() -> None:
    plan = RedrivePlan(DeadLetterFilter(), False, {0: RedrivePosition(3, 3)})
    records = [letter(3, 100, copy=True), letter(4, 200), letter(5, 101, copy=True)]
    assert run(plan, records) == [Verdict.REDRIVEN, Verdict.SEND, Verdict.REDRIVEN]
    assert plan.matched == 3
    assert plan.next_positions() == {0: RedrivePosition(6, 3)}


def test_again_run_sends_skipped_copies_but_not_what_was_scanned() -> None:
    plan = RedrivePlan(DeadLetterFilter(), True, {0: RedrivePosition(6, 3)})
    assert plan.start_offsets() == {0: 3}
    records = [letter(3, 100, copy=True), letter(4, 200), letter(5, 101, copy=True)]
    records += [letter(6, 300), letter(7, 200, copy=True)]
    verdicts = run(plan, records)
    assert verdicts == [Verdict.SEND, Verdict.SCANNED, Verdict.SEND, Verdict.SEND, Verdict.SEND]
    assert plan.next_positions() == {0: RedrivePosition(8, 8)}


def test_interrupted_again_run_keeps_the_position() -> None:
    plan = RedrivePlan(DeadLetterFilter(), True, {0: RedrivePosition(6, 2)})
    run(plan, [letter(2, 100, copy=True)])
    assert plan.next_positions() == {0: RedrivePosition(6, 3)}


def test_a_fresh_partition_keeps_copies_from_the_log_start() -> None:
    plan = RedrivePlan(DeadLetterFilter(), False, {})
    assert run(plan, [letter(0, 1), letter(1, 1, copy=True)]) == [Verdict.SEND, Verdict.REDRIVEN]
    assert plan.next_positions() == {0: RedrivePosition(2, 0)}


def test_one_send_per_original_and_filters_pass_over() -> None:
    plan = RedrivePlan(DeadLetterFilter(error_type="ValueError"), False, {})
    records = [letter(0, 1), letter(1, 1), letter(2, 2, error="x.Timeout"), letter(3, None)]
    records.append(letter(4, None))
    verdicts = run(plan, records)
    assert verdicts == [Verdict.SEND, Verdict.DUPLICATE, Verdict.FILTERED, Verdict.SEND,
                        Verdict.SEND]  # fmt: skip
    assert plan.counts[Verdict.FILTERED] == 1
    assert plan.matched == 4


def test_partitions_have_their_own_positions() -> None:
    saved = {0: RedrivePosition(5, 5), 1: RedrivePosition(2, 1)}
    plan = RedrivePlan(DeadLetterFilter(), False, saved)
    run(plan, [letter(5, 1), letter(2, 2, partition=1)])
    assert plan.next_positions() == {0: RedrivePosition(6, 5), 1: RedrivePosition(3, 1)}


def test_copies_are_one_row_with_a_count() -> None:
    rows = group_dead_letters(
        [
            letter(0, 100, ts=10),
            letter(1, 200, ts=5, partition=1),
            letter(2, 100, ts=30, copy=True, error="x.Again"),
            letter(3, None, ts=20),
            letter(4, None, ts=20),
        ]
    )
    assert [(g.latest.partition, g.latest.offset) for g in rows] == [(1, 1), (0, 3), (0, 4), (0, 2)]
    last = rows[-1].summary()
    assert (last["copies"], last["copy_offsets"]) == (2, ["0:0", "0:2"])
    assert (last["error_type"], last["first_failed_at"], last["failed_at"]) == (
        "x.Again",
        "t0",
        "t2",
    )
    assert rows[-1].latest.value is None, "a row keeps no value"
    assert [g.summary()["copies"] for g in rows[:3]] == [1, 1, 1]


def test_origin_of() -> None:
    assert origin_of(letter(0, 5)) == ("orders", 0, 5)
    assert origin_of(letter(0, None)) is None
