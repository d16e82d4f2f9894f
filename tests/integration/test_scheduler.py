"""Scheduler on the real broker: due times, order, bad input, exactly-once, restarts, metrics."""

from __future__ import annotations

import contextlib
import dataclasses
import urllib.request
from collections.abc import Callable

import pytest

from pipeline._headers import DELIVER_AT, DELIVERED_AT, ERROR_TYPE, TARGET_TOPIC, get_header
from pipeline._http import ServiceHTTPServer
from pipeline.scheduler._records import SchedulerConfig
from tests.helpers import wait_until
from tests.integration.test_scheduler_support import (
    Collector,
    now_ms,
    produce,
    running,
    scheduled,
    setup,
)

pytestmark = pytest.mark.kafka


def make_config(unique: Callable[[str], str], **options: object) -> SchedulerConfig:
    base = unique("sched")
    return SchedulerConfig(
        topic=base,
        tiers=options.pop("tiers", ("1s", "5s")),  # type: ignore[arg-type]
        dlq_topic=f"{base}.dlq",
        group=f"{base}-group",
        instance_id=unique("inst"),
        **options,  # type: ignore[arg-type]
    )


def due_of(record) -> int:
    return int(get_header(record.headers, "x-due") or b"0")


def test_records_arrive_at_or_after_due_with_headers_cleaned(bootstrap_servers, unique):
    config = make_config(unique)
    target = unique("target")
    setup(bootstrap_servers, config, [target])
    base = now_ms()
    delays = [0, 200, 900, 1500, 2500, 4000, 7000, 12000]
    records = [
        scheduled(
            target,
            f"k{i}".encode(),
            f"v{i}".encode(),
            base + d,
            extra=[("x-due", str(base + d).encode()), ("traceparent", b"tp")],
        )
        for i, d in enumerate(delays)
    ]
    collector = Collector(bootstrap_servers, [target], unique("reader"))
    with running(bootstrap_servers, config) as run:
        produce(bootstrap_servers, config.topic, records)
        got = wait_until(lambda: len(collector.poll()) >= len(delays) and collector.records, 40)
        assert run.sample("pipeline_scheduler_forwarded_total") == len(delays)
    collector.close()
    assert len(got) == len(delays)
    for rec in got:
        delivered = int(get_header(rec.headers, DELIVERED_AT) or 0)
        assert delivered >= due_of(rec), "delivered early by the scheduler clock"
        assert rec.at_ms >= due_of(rec)
        assert delivered - due_of(rec) < 1000
        names = [k for k, _ in rec.headers]
        assert DELIVER_AT not in names
        assert TARGET_TOPIC not in names
        assert get_header(rec.headers, "traceparent") == b"tp"
        assert rec.value == rec.key.replace(b"k", b"v")


def test_past_due_records_go_out_at_once_and_equal_due_keeps_order(bootstrap_servers, unique):
    config = make_config(unique)
    target = unique("target")
    setup(bootstrap_servers, config, [target])
    base = now_ms()
    past = [scheduled(target, b"old", str(i).encode(), base - 60_000) for i in range(20)]
    equal = [scheduled(target, b"same", str(i).encode(), base + 3_000) for i in range(50)]
    collector = Collector(bootstrap_servers, [target], unique("reader"))
    with running(bootstrap_servers, config):
        produce(bootstrap_servers, config.topic, past + equal)
        wait_until(lambda: len(collector.poll()) >= 70, 40)
    collector.close()
    old = [r for r in collector.records if r.key == b"old"]
    same = [r for r in collector.records if r.key == b"same"]
    assert [r.value for r in old] == [str(i).encode() for i in range(20)]
    assert [r.value for r in same] == [str(i).encode() for i in range(50)]
    assert all(r.at_ms >= base + 3_000 for r in same)
    # "at once": past-due records do not wait for any tier.
    assert max(r.at_ms for r in old) - base < 2_500


def test_bad_input_goes_to_dlq_without_blocking(bootstrap_servers, unique):
    config = make_config(unique)
    target = unique("target")
    setup(bootstrap_servers, config, [target], partitions=1)
    due = str(now_ms()).encode()
    bad = [
        (b"missing-due", b"1", [(TARGET_TOPIC, target.encode())]),
        (b"missing-target", b"2", [(DELIVER_AT, due)]),
        (b"bad-due", b"3", [(DELIVER_AT, b"tomorrow"), (TARGET_TOPIC, target.encode())]),
        (b"bad-target", b"4", [(DELIVER_AT, due), (TARGET_TOPIC, b"\xff\xfe")]),
        (b"no-such-topic", b"5", [(DELIVER_AT, due), (TARGET_TOPIC, b"nope-" + due)]),
    ]
    good = scheduled(target, b"good", b"6", now_ms())
    reader = Collector(bootstrap_servers, [target, config.dlq_topic], unique("reader"))
    with running(bootstrap_servers, config) as run:
        produce(bootstrap_servers, config.topic, [*bad, good])
        wait_until(lambda: len(reader.poll()) >= 6, 40)
        assert (
            sum(
                run.sample("pipeline_scheduler_invalid_total", {"reason": r})
                for r in ("invalid-schedule", "unknown-target-topic")
            )
            == 5
        )
    reader.close()
    dead = {r.key: r for r in reader.records if r.topic == config.dlq_topic}
    assert set(dead) == {k for k, _, _ in bad}
    for key, value, headers in bad:
        assert dead[key].value == value
        assert dead[key].headers[: len(headers)] == headers  # originals kept, untouched
        assert get_header(dead[key].headers, ERROR_TYPE)
    assert get_header(dead[b"no-such-topic"].headers, ERROR_TYPE) == b"unknown-target-topic"
    assert [r.key for r in reader.records if r.topic == target] == [b"good"]


def test_exactly_once_forwards_everything_once(bootstrap_servers, unique):
    config = make_config(unique, exactly_once=True)
    target = unique("target")
    setup(bootstrap_servers, config, [target])
    base = now_ms()
    records = [
        scheduled(target, f"k{i % 7}".encode(), str(i).encode(), base + (i % 30) * 200)
        for i in range(300)
    ]
    collector = Collector(bootstrap_servers, [target], unique("reader"))
    with running(bootstrap_servers, config):
        produce(bootstrap_servers, config.topic, records)
        wait_until(lambda: len(collector.poll()) >= 300, 60)
        collector.poll(1.0)
    collector.close()
    values = sorted(int(r.value) for r in collector.records)
    assert values == list(range(300))
    for rec in collector.records:
        assert int(get_header(rec.headers, DELIVERED_AT)) >= base + (int(rec.value) % 30) * 200


@pytest.mark.parametrize("exactly_once", [False, True])
def test_restart_resumes_where_the_group_left_off(bootstrap_servers, unique, exactly_once):
    config = make_config(unique, exactly_once=exactly_once)
    target = unique("target")
    setup(bootstrap_servers, config, [target])
    base = now_ms()
    records = [
        scheduled(target, f"k{i}".encode(), str(i).encode(), base + 1_000 + (i % 40) * 300)
        for i in range(200)
    ]
    collector = Collector(bootstrap_servers, [target], unique("reader"))
    with running(bootstrap_servers, config):
        produce(bootstrap_servers, config.topic, records)
        wait_until(lambda: 0 < len(collector.poll()) < 200, 20, interval=0.01)
    with running(bootstrap_servers, config):
        wait_until(lambda: len(collector.poll()) >= 200, 40)
        collector.poll(1.0)
    collector.close()
    values = [int(r.value) for r in collector.records]
    assert sorted(set(values)) == list(range(200))
    assert len(values) == 200  # a clean stop commits everything it did


def test_metrics_health_and_pending_over_http(bootstrap_servers, unique):
    config = make_config(unique)
    target = unique("target")
    setup(bootstrap_servers, config, [target])
    records = [scheduled(target, b"k", b"v", now_ms() + 60_000) for _ in range(30)]
    with running(bootstrap_servers, config) as run:
        server = ServiceHTTPServer(run.registry, run.scheduler.healthy, run.scheduler.ready)
        with server:
            wait_until(run.scheduler.ready, 30)
            produce(bootstrap_servers, config.topic, records)
            wait_until(lambda: run.sample("pipeline_scheduler_pending", {"tier": "5s"}) >= 30, 30)
            for path in ("/healthz", "/readyz"):
                with urllib.request.urlopen(server.url + path, timeout=5) as resp:
                    assert resp.status == 200
            with urllib.request.urlopen(server.url + "/metrics", timeout=5) as resp:
                text = resp.read().decode()
    assert "pipeline_scheduler_tier_hops_total" in text
    assert 'pipeline_scheduler_pending{tier="5s"}' in text


def test_delays_up_to_two_minutes_keep_due_order_per_key(bootstrap_servers, unique):
    config = make_config(unique, tiers=("1s", "5s", "30s"))
    target = unique("target")
    setup(bootstrap_servers, config, [target])
    base = now_ms() + 2_000
    records = []
    for key in range(6):
        # Per key: due times 0..120 s apart by at least 3 s, and some exact repeats.
        dues = sorted({base + 3_000 * ((key * 7 + i * 11) % 41) for i in range(8)})
        for n, due in enumerate(dues):
            for copy in range(2 if n % 3 == 0 else 1):
                value = f"{key}:{due}:{copy}".encode()
                records.append(scheduled(target, f"key{key}".encode(), value, due))
    records.sort(key=lambda r: int(r[1].split(b":")[1]), reverse=True)  # enter out of order
    collector = Collector(bootstrap_servers, [target], unique("reader"))
    with running(bootstrap_servers, config):
        produce(bootstrap_servers, config.topic, records)
        wait_until(lambda: len(collector.poll()) >= len(records), 160, interval=0.5)
    collector.close()
    assert len(collector.records) == len(records)
    by_key: dict[bytes, list[tuple[int, int]]] = {}
    for rec in collector.records:
        _, due, copy = (int(x) for x in rec.value.split(b":"))
        assert int(get_header(rec.headers, DELIVERED_AT)) >= due
        assert rec.at_ms >= due
        assert rec.at_ms - due < 2_000
        by_key.setdefault(rec.key, []).append((due, copy))
    for arrivals in by_key.values():
        assert arrivals == sorted(arrivals)  # due order; equal dues in the order they entered
    assert max(due for arrivals in by_key.values() for due, _ in arrivals) - base >= 110_000


@pytest.mark.parametrize("exactly_once", [False, True])
def test_scaling_out_and_back_in_hands_over_without_duplicates(
    bootstrap_servers, unique, exactly_once
):
    # A second instance joins while records are held, parked and in tiers, then the first one
    # stops: both rebalances commit what was done, so every record arrives once, never early.
    config = make_config(unique, exactly_once=exactly_once)
    second = dataclasses.replace(config, instance_id=unique("inst"))
    target = unique("target")
    setup(bootstrap_servers, config, [target])
    base = now_ms()
    count = 600
    records = [
        scheduled(target, f"k{i % 13}".encode(), str(i).encode(), base + 500 + (i * 37) % 12_000)
        for i in range(count)
    ]
    collector = Collector(bootstrap_servers, [target], unique("reader"))
    with contextlib.ExitStack() as first_stack, contextlib.ExitStack() as second_stack:
        first = first_stack.enter_context(running(bootstrap_servers, config))
        produce(bootstrap_servers, config.topic, records)
        wait_until(lambda: len(collector.poll()) >= count // 10, 30, interval=0.01)
        joined = second_stack.enter_context(running(bootstrap_servers, second))
        wait_until(lambda: first.scheduler.assignment and joined.scheduler.assignment, 30)
        wait_until(lambda: len(collector.poll()) >= count // 2, 30, interval=0.01)
        first_stack.close()  # a clean stop: the second instance takes every partition
        wait_until(lambda: len(collector.poll()) >= count, 40)
        collector.poll(1.0)  # a duplicate, if any, shows up too
    collector.close()
    values = [int(r.value) for r in collector.records]
    assert sorted(values) == list(range(count))
    for rec in collector.records:
        assert (
            int(get_header(rec.headers, DELIVERED_AT))
            >= base + 500 + (int(rec.value) * 37) % 12_000
        )
