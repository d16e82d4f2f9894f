"""The exactly-once scheduler replaces a transactional producer that fails fatally, wherever the
failure shows: beginning a transaction, aborting one for lost partitions, or producing a record.

Fakes stand in for the clients here; the real-broker behaviour is S4 (tests/integration/
test_faults_scheduler.py), where librdkafka fences itself after a coordinator move.
"""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from pipeline._errors import FatalProducerError, KafkaOperationError
from pipeline._settings import Settings
from pipeline.scheduler._commit import ProducerFenced
from pipeline.scheduler._records import SchedulerConfig
from pipeline.scheduler._service import Scheduler

_FENCED = KafkaException(KafkaError(KafkaError._FENCED, "old epoch", fatal=True))


class FakeProducer:
    def __init__(self, fail: set[str] | None = None) -> None:
        self.fail = fail or set()
        self.calls: list[str] = []

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name in self.fail:
            raise _FENCED

    def begin_transaction(self) -> None:
        self._call("begin")

    def abort_transaction(self, _timeout: float) -> None:
        self._call("abort")

    def init_transactions(self, _timeout: float) -> None:
        self._call("init")

    def produce(self, *_args: Any, **_kwargs: Any) -> None:
        self._call("produce")

    def purge(self) -> None:
        self.calls.append("purge")

    def flush(self, _timeout: float) -> int:
        if self.fail:
            raise _FENCED  # as a transactional producer in a fatal state does
        return 0


def scheduler(first: FakeProducer, replacements: list[FakeProducer]) -> Scheduler:
    sched = Scheduler(Settings(), SchedulerConfig(exactly_once=True))
    sched._producer = first
    sched._renewed = []
    sched._new_producer = lambda: replacements.pop(0)
    return sched


def test_begin_on_a_fenced_producer_replaces_it():
    old, new = FakeProducer({"begin"}), FakeProducer()
    sched = scheduler(old, [new])
    sched._begin()
    assert sched._producer is new
    assert new.calls == ["init", "begin"]
    assert sched._txn_open


def test_lost_partitions_with_a_producer_that_cannot_abort():
    old, new = FakeProducer({"abort"}), FakeProducer()
    sched = scheduler(old, [new])
    sched._txn_open = True
    sched._on_lost(None, [])
    assert "abort" in old.calls
    assert sched._producer is new
    assert new.calls == ["init", "begin"]  # a new transaction, after the rewind


def test_produce_on_a_fenced_producer_is_recovered_by_the_loop():
    old, new = FakeProducer({"produce"}), FakeProducer()
    sched = scheduler(old, [new])
    sched._txn_open = True
    with pytest.raises(ProducerFenced):
        sched._produce("target", b"v", b"k", [], -1, 0, None)

    def turn() -> None:
        sched._produce("target", b"v", b"k", [], -1, 0, None)

    sched._turn = turn  # type: ignore[method-assign]
    sched._tick()
    assert sched._producer is new
    assert old.calls == ["produce", "produce", "purge"]
    assert new.calls == ["init", "begin"]
    assert sched._txn_open


def test_a_producer_fenced_again_and_again_is_a_fatal_error():
    producers = [FakeProducer({"begin"}) for _ in range(5)]
    sched = scheduler(producers[0], producers[1:])
    with pytest.raises(FatalProducerError, match="4 times in 300s"):
        sched._begin()  # every replacement is fenced too
    assert [p.calls.count("begin") for p in producers] == [1, 1, 1, 1, 0]


def test_a_non_fatal_produce_error_is_a_kafka_operation_error():
    sched = scheduler(FakeProducer(), [])

    class Refusing(FakeProducer):
        def produce(self, *_args: Any, **_kwargs: Any) -> None:
            raise KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED, "denied"))

    sched._producer = Refusing()
    with pytest.raises(KafkaOperationError, match="producing to target failed"):
        sched._produce("target", b"v", b"k", [], -1, 0, None)
