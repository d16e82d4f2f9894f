"""The console's group figures, from a lag record and dead-letter counts (pure logic)."""

from __future__ import annotations

import json

from pipeline.console import DeadLetterCounts
from pipeline.console._state import _group_stats
from pipeline.lag import GroupLag, PartitionLag, Status


def _lag(group: str, lags: list[int]) -> GroupLag:
    parts = tuple(
        PartitionLag(
            group=group, topic="orders", partition=i, committed=10, end_offset=10 + lag,
            lag=lag, offset_expired=False, lag_seconds=float(lag), lag_seconds_lower_bound=False,
        )
        for i, lag in enumerate(lags)
    )  # fmt: skip
    return GroupLag(group=group, state="Stable", protocol="classic", members=2, partitions=parts,
                    status=Status.STALL)  # fmt: skip


def test_counts_are_open_and_follow_the_sources() -> None:
    stats = _group_stats(_lag("g", [3, 4]), DeadLetterCounts(records=9, pending=5), ((1.0, 7),))
    summary = stats.summary()
    assert summary["counts"] == {"lag": 7, "dlq_pending": 5, "dlq_records": 9}
    assert (summary["lag"], summary["lag_seconds"], summary["status"]) == (7, 4.0, "STALL")
    assert (summary["dlq_topic"], summary["partitions"], summary["members"]) == ("g.dlq", 2, 2)
    assert summary["history"] == [[1.0, 7]]
    json.dumps(summary)  # JSON-ready as it is


def test_a_group_without_a_dlq_topic() -> None:
    summary = _group_stats(_lag("h", [0]), None, ()).summary()
    assert summary["counts"] == {"lag": 0}
    assert summary["dlq_topic"] is summary["dlq_pending"] is summary["dlq_records"] is None
