"""The orphaned-partition rule (pipeline._orphans) and the lag monitor's clock of it."""

from __future__ import annotations

import pytest

from pipeline._orphans import unowned
from pipeline.lag import Status, StatusThresholds
from pipeline.lag._orphans import OrphanClock


def test_unowned_partitions_of_consumed_topics_in_a_stable_group() -> None:
    counts = {"a": 3, "b": 2, "other": 4}
    assigned = [("a", 0), ("b", 0), ("b", 1)]
    assert unowned("Stable", assigned, counts) == {("a", 1), ("a", 2)}
    # A topic no member owns a partition of is not known to be consumed, unless named.
    assert unowned("Stable", assigned, counts, ["a", "other"]) == {
        ("a", 1), ("a", 2), ("other", 0), ("other", 1), ("other", 2), ("other", 3),
    }  # fmt: skip


@pytest.mark.parametrize("state", ["PreparingRebalance", "CompletingRebalance", "Empty", "Dead"])
def test_only_stable_groups_have_orphans(state: str) -> None:
    assert unowned(state, [("a", 0)], {"a": 3}) == frozenset()


def test_unknown_topic_is_skipped() -> None:
    assert unowned("Stable", [("gone", 0)], {}) == frozenset()


def test_clock_counts_from_first_sighting_and_resets_when_owned() -> None:
    clock = OrphanClock()
    assert clock.update("g", frozenset({("a", 1)}), 100.0) == {("a", 1): 0.0}
    assert clock.update("g", frozenset({("a", 1)}), 130.0) == {("a", 1): 30.0}
    assert clock.update("g", frozenset(), 131.0) == {}
    assert clock.update("g", frozenset({("a", 1)}), 140.0) == {("a", 1): 0.0}
    clock.forget({"other"})
    assert clock.update("g", frozenset({("a", 1)}), 150.0) == {("a", 1): 0.0}


def test_orphaned_is_the_most_severe_status_and_threshold_is_checked() -> None:
    assert max(Status) is Status.ORPHANED
    assert StatusThresholds(orphan_seconds=0).orphan_seconds == 0
    with pytest.raises(ValueError, match="orphan_seconds"):
        StatusThresholds(orphan_seconds=-1)
