"""`pipeline dlq` list, show, redrive and purge against the real broker."""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import pytest
from confluent_kafka import Consumer, Message

from pipeline._headers import (
    ATTEMPT,
    ERROR_MESSAGE,
    ERROR_TRACE,
    ERROR_TYPE,
    FAILED_AT,
    ORIGINAL_OFFSET,
    ORIGINAL_TOPIC,
    REDRIVEN_AT,
    get_header,
)
from tests.helpers import create_topic, read_topic, wait_until
from tests.integration.test_ops_support import (
    Sent,
    codec,
    dead_letter,
    end_offsets,
    order,
    produce,
    run,
    run_json,
    start_offsets,
)

pytestmark = pytest.mark.kafka

KINDS = ["builtins.ValueError", "expired", "builtins.ValueError", "undecodable"]
KINDS += ["builtins.ValueError", "expired"]
ERROR_HEADERS = {ERROR_TYPE, ERROR_MESSAGE, ERROR_TRACE, FAILED_AT, ATTEMPT}


def _dead_letters(bootstrap: str, group: str) -> list[Sent]:
    """Six dead letters on <group>.dlq (partition 0): 3 ValueError, 2 expired, 1 undecodable."""
    create_topic(bootstrap, f"{group}.dlq", partitions=1)
    create_topic(bootstrap, f"{group}.retry", partitions=2)
    c = codec(bootstrap)
    records = [
        dead_letter(
            f"key-{i}",
            c.encode(order(f"customer-{i}")) if kind != "undecodable" else b"\xffnot avro",
            group=group,
            error_type=kind,
            origin=("orders", i % 3, 100 + i),
        )
        for i, kind in enumerate(KINDS)
    ]
    return produce(bootstrap, f"{group}.dlq", records)


def test_list_with_filters(bootstrap_servers: str, unique: Callable[[str], str]) -> None:
    group = unique("ops-dlq")
    _dead_letters(bootstrap_servers, group)
    listed = run_json(bootstrap_servers, "dlq", "list", "--group", group)
    assert len(listed) == 6
    first = listed[0]
    assert first["original"] == "orders[0]@100"
    assert first["error_type"] == "builtins.ValueError"
    assert first["attempts"] == 3
    assert first["error_message"] == "builtins.ValueError while handling key-0"
    by_type = run_json(bootstrap_servers, "dlq", "list", "-g", group, "--error-type", "ValueError")
    assert [r["key"] for r in by_type] == ["key-0", "key-2", "key-4"]
    by_key = run_json(bootstrap_servers, "dlq", "list", "-g", group, "--key", "key-5")
    assert [r["error_type"] for r in by_key] == ["expired"]
    assert run_json(bootstrap_servers, "dlq", "list", "-g", group, "--since", "now") == []
    table = run(bootstrap_servers, "dlq", "list", "-g", group)
    assert table.exit_code == 0, table.output
    assert "6 dead letter(s)" in table.output
    assert "key-1" in table.output


def test_show_decodes_avro_and_falls_back_to_hex(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    group = unique("ops-dlq")
    records = _dead_letters(bootstrap_servers, group)
    shown = run_json(bootstrap_servers, "dlq", "show", "-g", group, "--offset", "2")
    assert shown["schema"] == "orders.OrderPlaced v2"
    assert shown["value"]["customer_id"] == "customer-2"
    names = [name for name, _ in shown["headers"]]
    assert names == [name for name, _ in records[2].headers]
    raw = run_json(bootstrap_servers, "dlq", "show", "-g", group, "--offset", "3")
    assert raw["value"] == "0x" + b"\xffnot avro".hex()
    assert raw["decode_error"]
    people = run(bootstrap_servers, "dlq", "show", "-g", group, "--offset", "0")
    assert people.exit_code == 0, people.output
    assert "customer-0" in people.output
    assert "pipeline-error-trace" in people.output
    missing = run(bootstrap_servers, "dlq", "show", "-g", group, "--offset", "60")
    assert missing.exit_code == 1
    assert "no record at" in missing.output


def _retry_records(bootstrap: str, group: str, expected: int) -> list[Message]:
    assert sum(end_offsets(bootstrap, f"{group}.retry", 2)) == expected
    return read_topic(bootstrap, f"{group}.retry", expected)


def test_redrive_dry_run_then_execute_then_nothing_new(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    group = unique("ops-dlq")
    records = _dead_letters(bootstrap_servers, group)
    base = ["dlq", "redrive", "--group", group, "--rate", "1000/s"]

    dry = run_json(bootstrap_servers, *base, "--error-type", "expired")
    assert (dry["dry_run"], dry["matched"], dry["redriven"]) == (True, 2, 0)
    assert end_offsets(bootstrap_servers, f"{group}.retry", 2) == [0, 0]

    done = run_json(bootstrap_servers, *base, "--execute")
    assert (done["matched"], done["redriven"], done["position_saved"]) == (6, 6, True)
    copies = {m.key(): m for m in _retry_records(bootstrap_servers, group, 6)}
    for record in records:
        copy = copies[record.key]
        assert copy.value() == record.value
        headers = copy.headers() or []
        names = {name for name, _ in headers}
        assert not names & ERROR_HEADERS, "error headers and attempts are reset"
        assert get_header(headers, REDRIVEN_AT) is not None
        assert get_header(headers, ORIGINAL_TOPIC) == b"orders"
        assert get_header(headers, ORIGINAL_OFFSET) == get_header(record.headers, ORIGINAL_OFFSET)
        kept = [(k, v) for k, v in record.headers if k not in ERROR_HEADERS]
        assert [(k, v) for k, v in headers if k != REDRIVEN_AT] == kept

    again = run_json(bootstrap_servers, *base, "--execute")
    assert (again["scanned"], again["redriven"]) == (0, 0)
    assert sum(end_offsets(bootstrap_servers, f"{group}.retry", 2)) == 6

    c = codec(bootstrap_servers)
    new = dead_letter(
        "key-new", c.encode(order("late")), group=group, error_type="expired",
        origin=("orders", 0, 999),
    )  # fmt: skip
    produce(bootstrap_servers, f"{group}.dlq", [new])
    third = run(bootstrap_servers, *base, "--execute")
    assert third.exit_code == 0, third.output
    assert "scanned 1, matched 1, redriven 1" in third.output
    assert sum(end_offsets(bootstrap_servers, f"{group}.retry", 2)) == 7


def test_purge_needs_confirmation(bootstrap_servers: str, unique: Callable[[str], str]) -> None:
    group = unique("ops-dlq")
    _dead_letters(bootstrap_servers, group)
    topic = f"{group}.dlq"
    base = ["dlq", "purge", "--group", group, "--before-offset", "4"]

    refused = run(bootstrap_servers, *base)  # no input: the prompt gets end-of-file
    assert refused.exit_code == 1
    assert "Delete 4 record(s)" in refused.output
    assert "Aborted" in refused.output
    no = run(bootstrap_servers, *base, input="n\n")
    assert no.exit_code == 1
    assert start_offsets(bootstrap_servers, topic, 1) == [0]

    yes = run(bootstrap_servers, *base, input="y\n")
    assert yes.exit_code == 0, yes.output
    assert start_offsets(bootstrap_servers, topic, 1) == [4]
    assert len(run_json(bootstrap_servers, "dlq", "list", "-g", group)) == 2

    scripted = run_json(bootstrap_servers, *base[:-1], "99", "--yes")
    assert scripted["deleted"] == 2
    assert start_offsets(bootstrap_servers, topic, 1) == [6]


def test_worker_processes_redriven_records_again(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    consumers = pytest.importorskip("consumers")
    from examples.orders.events import OrderPlaced
    from pipeline._settings import Settings
    from producers import EventProducer
    from tests.integration.test_worker_support import running, wait_ready

    group, topic = unique("ops-dlq-w"), unique("ops-dlq-src")
    create_topic(bootstrap_servers, topic, partitions=2)
    settings = Settings(bootstrap_servers=bootstrap_servers)
    worker = consumers.Worker(group, [topic], settings=settings)
    broken = threading.Event()
    broken.set()
    handled: list[tuple[str, str, int]] = []

    @worker.handler(OrderPlaced)
    def on_order(event: OrderPlaced, ctx: consumers.Context) -> None:
        if broken.is_set():
            raise consumers.DeadLetter("downstream is broken")
        handled.append((event.customer_id, ctx.topic, ctx.attempt))

    with running(worker) as state:
        wait_ready(state)
        with EventProducer(settings) as producer:
            for i in range(3):
                producer.send(order(f"customer-{i}"), key=f"k{i}", topic=topic)
        wait_until(lambda: sum(end_offsets(bootstrap_servers, f"{group}.dlq", 3)) >= 3)
        listed = run_json(bootstrap_servers, "dlq", "list", "-g", group)
        assert len(listed) == 3
        assert {r["original_topic"] for r in listed} == {topic}
        assert all(r["error_type"] for r in listed)

        broken.clear()
        done = run_json(bootstrap_servers, "dlq", "redrive", "-g", group, "--execute")
        assert done["redriven"] == 3
        wait_until(lambda: len(handled) >= 3, timeout=60)
    assert sorted(handled) == [(f"customer-{i}", f"{group}.retry", 1) for i in range(3)]
    assert run_json(bootstrap_servers, "dlq", "redrive", "-g", group, "--execute")["redriven"] == 0


def _fail_again(bootstrap: str, group: str, expected: int, error_type: str) -> list[Sent]:
    """Dead-letter the redriven copies on <group>.retry again, as the worker does: their headers
    (pipeline-redriven-at and the original coordinates included) plus fresh error headers."""
    copies = []
    for msg in _retry_records(bootstrap, group, expected)[-expected:]:
        kept = cast(list[tuple[str, bytes]], msg.headers() or [])
        headers = [(k, v) for k, v in kept if k not in ERROR_HEADERS]
        failed = dead_letter("x", None, group=group, error_type=error_type, origin=("x", 0, 0))
        headers += [(k, v) for k, v in failed.headers if k in ERROR_HEADERS]
        key, value = msg.key() or b"", msg.value() or b""
        copies.append(Sent(key, value, tuple(headers), 0, "orders.OrderPlaced", None))
    return produce(bootstrap, f"{group}.dlq", copies)


def test_redrive_twice_skips_what_was_redriven_until_again(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    group = unique("ops-dlq")
    _dead_letters(bootstrap_servers, group)
    base = ["dlq", "redrive", "--group", group, "--rate", "1000/s"]
    assert run_json(bootstrap_servers, *base, "--execute")["redriven"] == 6
    _fail_again(bootstrap_servers, group, 6, "builtins.RuntimeError")  # DLQ: 6 + 6 copies

    second = run_json(bootstrap_servers, *base, "--execute")
    assert (second["scanned"], second["redriven"]) == (6, 0)
    assert sum(end_offsets(bootstrap_servers, f"{group}.retry", 2)) == 6, "nothing re-sent"
    assert second["skipped_redriven"] == 6
    table = run(bootstrap_servers, *base, "--execute")
    assert table.exit_code == 0, table.output
    assert "scanned 0, matched 0, redriven 0" in table.output

    listed = run_json(bootstrap_servers, "dlq", "list", "-g", group)
    assert len(listed) == 6, "a record and its copy are one row"
    assert {r["copies"] for r in listed} == {2}
    assert {r["error_type"] for r in listed} == {"builtins.RuntimeError"}, "the latest failure"
    row = next(r for r in listed if r["original"] == "orders[0]@100")
    assert row["copy_offsets"] == ["0:0", row["copy_offsets"][1]]
    shown = run_json(bootstrap_servers, "dlq", "show", "-g", group, "--offset", "0")
    assert (shown["copies"], shown["copy_offsets"]) == (2, row["copy_offsets"])

    c = codec(bootstrap_servers)
    new = dead_letter(
        "key-new", c.encode(order("late")), group=group, error_type="expired",
        origin=("orders", 0, 999),
    )  # fmt: skip
    produce(bootstrap_servers, f"{group}.dlq", [new])
    plain = run_json(bootstrap_servers, *base, "--execute")
    assert (plain["redriven"], plain["skipped_redriven"]) == (1, 0)

    dry = run_json(bootstrap_servers, *base, "--again")
    assert (dry["dry_run"], dry["to_send"], dry["redriven"]) == (True, 6, 0)
    again = run_json(bootstrap_servers, *base, "--again", "--execute")
    assert (again["redriven"], again["position_saved"]) == (6, True), "copies, not key-new"
    retried = _retry_records(bootstrap_servers, group, 13)
    assert sum(m.key() == b"key-new" for m in retried) == 1
    assert run_json(bootstrap_servers, *base, "--again", "--execute")["redriven"] == 0
    assert run_json(bootstrap_servers, *base, "--execute")["redriven"] == 0


def test_redrive_sends_one_record_per_original(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    group = unique("ops-dlq")
    records = _dead_letters(bootstrap_servers, group)
    twice = [r for r in records if r.key == b"key-1"]  # a worker that crashed dead-letters twice
    produce(bootstrap_servers, f"{group}.dlq", twice)
    done = run_json(bootstrap_servers, "dlq", "redrive", "-g", group, "--execute")
    assert done["redriven"] == 6
    assert sum(end_offsets(bootstrap_servers, f"{group}.retry", 2)) == 6
    assert done["skipped_duplicates"] == 1


def test_show_says_an_empty_partition_is_empty(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    group = unique("ops-dlq")
    create_topic(bootstrap_servers, f"{group}.dlq", partitions=2)
    empty = run(bootstrap_servers, "dlq", "show", "-g", group, "--partition", "1", "--offset", "0")
    assert empty.exit_code == 1
    assert empty.output.strip() == (
        f"Error: no record at {group}.dlq[1]@0: the partition is empty (its next offset is 0)"
    )
    c = codec(bootstrap_servers)
    records = [
        dead_letter("k", c.encode(order("c")), group=group, error_type="x", origin=("o", 0, i))
        for i in range(2)
    ]
    p = str(produce(bootstrap_servers, f"{group}.dlq", records)[0].partition)
    holds = run(bootstrap_servers, "dlq", "show", "-g", group, "--partition", p, "--offset", "9")
    assert holds.exit_code == 1
    assert "the partition holds offsets 0 to 1" in holds.output
    purge = run(bootstrap_servers, "dlq", "purge", "-g", group, "--before-offset", "2", "-y")
    assert purge.exit_code == 0, purge.output
    purged = run(bootstrap_servers, "dlq", "show", "-g", group, "--partition", p, "--offset", "0")
    assert purged.exit_code == 1
    assert "the partition is empty (its next offset is 2)" in purged.output


def test_list_order_is_the_same_in_table_and_json(
    bootstrap_servers: str, unique: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # one line per row, no cell cut short
    group = unique("ops-dlq")
    create_topic(bootstrap_servers, f"{group}.dlq", partitions=3)
    c = codec(bootstrap_servers)
    # Recent times: a record older than the topic's retention (7 days) may be deleted by the
    # broker's next retention check before the listing reads it.
    start = int(time.time() * 1000) - 3_600_000
    records = [
        dataclasses.replace(
            dead_letter(
                f"key-{i}", c.encode(order(f"c{i}")), group=group, error_type="x",
                origin=("orders", 0, i),
            ),
            timestamp=start + 1000 * (23 - i),  # produced newest first
        )
        for i in range(24)
    ]  # fmt: skip
    placed = produce(bootstrap_servers, f"{group}.dlq", records)
    assert len({r.partition for r in placed}) > 1
    oldest_first = [f"{r.partition}:{r.offset}" for r in sorted(placed, key=lambda r: r.timestamp)]
    listed = run_json(bootstrap_servers, "dlq", "list", "-g", group)
    assert [f"{r['partition']}:{r['offset']}" for r in listed] == oldest_first
    table = run(bootstrap_servers, "dlq", "list", "-g", group)
    assert table.exit_code == 0, table.output
    cells = re.findall(r"^[│|] (\d+:\d+)\s", table.output, re.MULTILINE)
    assert cells == oldest_first, table.output
    limited = run_json(bootstrap_servers, "dlq", "list", "-g", group, "--limit", "5")
    assert [f"{r['partition']}:{r['offset']}" for r in limited] == oldest_first[:5]


def test_worker_redrive_twice_is_once_only(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    """The issue's run: redrive, the worker dead-letters again, redrive again (3 -> 6, not 9)."""
    consumers = pytest.importorskip("consumers")
    from examples.orders.events import OrderPlaced
    from pipeline._settings import Settings
    from producers import EventProducer
    from tests.integration.test_worker_support import running, wait_ready

    group, topic = unique("ops-dlq-w"), unique("ops-dlq-src")
    create_topic(bootstrap_servers, topic, partitions=2)
    settings = Settings(bootstrap_servers=bootstrap_servers)
    worker = consumers.Worker(group, [topic], settings=settings)

    @worker.handler(OrderPlaced)
    def on_order(event: OrderPlaced, ctx: Any) -> None:
        raise consumers.DeadLetter("downstream is still broken")

    def records(name: str) -> int:
        consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": "ops-test-meta"})
        try:
            partitions = len(consumer.list_topics(name, timeout=10).topics[name].partitions)
        finally:
            consumer.close()
        return sum(end_offsets(bootstrap_servers, name, partitions))

    def dead_letters() -> int:
        return records(f"{group}.dlq")

    base = ["dlq", "redrive", "-g", group, "--execute"]
    with running(worker) as state:
        wait_ready(state)
        with EventProducer(settings) as producer:
            for i in range(3):
                producer.send(order(f"customer-{i}"), key=f"k{i}", topic=topic)
        wait_until(lambda: dead_letters() >= 3)
        assert run_json(bootstrap_servers, *base)["redriven"] == 3
        wait_until(lambda: dead_letters() >= 6, timeout=60)

        second = run_json(bootstrap_servers, *base)
        assert second["redriven"] == 0
        assert records(f"{group}.retry") == 3, "nothing re-sent"
        assert second["skipped_redriven"] == 3
        listed = run_json(bootstrap_servers, "dlq", "list", "-g", group)
        assert sorted(r["copies"] for r in listed) == [2, 2, 2]
        assert {r["original_topic"] for r in listed} == {topic}

        assert run_json(bootstrap_servers, *base, "--again")["redriven"] == 3
        wait_until(lambda: dead_letters() >= 9, timeout=60)
        listed = run_json(bootstrap_servers, "dlq", "list", "-g", group)
        assert sorted(r["copies"] for r in listed) == [3, 3, 3]
    assert dead_letters() == 9
