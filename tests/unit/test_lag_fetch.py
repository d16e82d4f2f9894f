"""``AdminFetcher.list_groups`` against a fake admin whose brokers answer with per-broker errors."""

from __future__ import annotations

import concurrent.futures
from typing import Any

import pytest
from confluent_kafka import ConsumerGroupState, ConsumerGroupType, KafkaError
from confluent_kafka.admin import ConsumerGroupListing, ListConsumerGroupsResult

from pipeline import KafkaOperationError
from pipeline.lag._fetch import AdminFetcher


class ListingAdmin:
    """``ListGroups`` answers with the queued per-broker errors first, then with one group."""

    def __init__(self, errors: list[list[KafkaError]]) -> None:
        self.errors = errors
        self.calls = 0

    def list_consumer_groups(self, **_: Any) -> concurrent.futures.Future[Any]:
        self.calls += 1
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        errors = self.errors.pop(0) if self.errors else []
        valid = [
            ConsumerGroupListing("g1", False, ConsumerGroupState.STABLE, ConsumerGroupType.CLASSIC)
        ]
        future.set_result(ListConsumerGroupsResult(valid=valid, errors=errors))
        return future


def loading() -> KafkaError:
    return KafkaError(
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        "Broker [1] ListConsumerGroups: Broker: Coordinator load in progress",
    )


def test_a_broker_still_loading_its_coordinator_is_asked_again() -> None:
    # A broker that has just started answers ListGroups with COORDINATOR_LOAD_IN_PROGRESS
    # until it has loaded __consumer_offsets; that is not an error to show a user.
    admin = ListingAdmin([[loading()], [loading()]])
    fetcher = AdminFetcher(admin, timeout=5.0)  # type: ignore[arg-type]
    groups = fetcher.list_groups()
    assert [g.group for g in groups] == ["g1"]
    assert admin.calls == 3


def test_a_coordinator_that_stays_loading_fails_at_the_timeout_naming_it() -> None:
    admin = ListingAdmin([[loading()] for _ in range(100)])
    fetcher = AdminFetcher(admin, timeout=0.5)  # type: ignore[arg-type]
    with pytest.raises(KafkaOperationError, match="Coordinator load in progress"):
        fetcher.list_groups()
    assert 2 <= admin.calls <= 4


def test_a_broker_error_that_will_not_pass_is_raised_at_once() -> None:
    denied = KafkaError(KafkaError.INVALID_REQUEST, "Broker [1] ListConsumerGroups: bad request")
    admin = ListingAdmin([[denied]])
    fetcher = AdminFetcher(admin, timeout=5.0)  # type: ignore[arg-type]
    with pytest.raises(KafkaOperationError, match="bad request"):
        fetcher.list_groups()
    assert admin.calls == 1
