"""The naming rules of internal topics: one definition, round-trips, bad levels refused."""

from __future__ import annotations

import pytest

from pipeline._errors import ConfigError
from pipeline._names import (
    MAX_PRIORITY_LEVELS,
    dlq_topic,
    priority_level,
    priority_topic,
    priority_topics,
    retry_topic,
)


def test_group_topics() -> None:
    assert dlq_topic("payments") == "payments.dlq"
    assert retry_topic("payments") == "payments.retry"


def test_priority_topics_highest_first_and_round_trip() -> None:
    assert priority_topics("orders", 3) == ["orders.p0", "orders.p1", "orders.p2"]
    for level in range(MAX_PRIORITY_LEVELS):
        assert priority_level(priority_topic("orders.placed", level)) == ("orders.placed", level)


@pytest.mark.parametrize("topic", ["orders", "orders.placed", "orders.p", "orders.p10", "p1"])
def test_other_topics_have_no_level(topic: str) -> None:
    assert priority_level(topic) is None


@pytest.mark.parametrize("level", [-1, MAX_PRIORITY_LEVELS])
def test_bad_level_is_refused(level: int) -> None:
    with pytest.raises(ConfigError, match="priority level"):
        priority_topic("orders", level)


@pytest.mark.parametrize("levels", [0, MAX_PRIORITY_LEVELS + 1])
def test_bad_level_count_is_refused(levels: int) -> None:
    with pytest.raises(ConfigError, match="priority levels"):
        priority_topics("orders", levels)
