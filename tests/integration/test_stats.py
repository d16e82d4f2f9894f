"""``pipeline stats`` on the real broker agrees with what a scenario injected.

A worker handles records that succeed, succeed on their second attempt (one retry through the
scheduler), are dead-lettered at once (two error types) or have expired; part of the DLQ is
redriven while no worker runs, then a worker handles the redriven records. After each step
the counts of ``pipeline stats --json`` are checked exactly.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from confluent_kafka import Producer

from consumers import Context, DeadLetter, RetryPolicy, Worker, exponential
from examples.orders.events import ReminderDue
from pipeline._headers import (
    ATTEMPT,
    ERROR_TYPE,
    EXPIRES_AT,
    ORIGINAL_OFFSET,
    ORIGINAL_PARTITION,
    ORIGINAL_TOPIC,
    REDRIVEN_AT,
)
from pipeline._http import ServiceHTTPServer
from pipeline._names import dlq_topic, redrive_group, retry_topic
from pipeline.cli import cli
from pipeline.scheduler._records import SchedulerConfig
from producers import EventProducer
from tests.helpers import free_port, wait_until
from tests.integration.test_lag_support import commit, group_consumer, join, produce
from tests.integration.test_worker_support import (
    create_topics,
    reminder,
    running,
    settings_for,
    wait_ready,
)

pytestmark = pytest.mark.kafka
REPO = Path(__file__).resolve().parents[2]

OK, RETRIED, DEAD, FATAL, EXPIRED = 30, 5, 4, 2, 2
FIXED = 2  # redriven "dead" records that succeed the second time (the others fail again)


class Fatal(Exception):
    """Dead-lettered at once (``dead_letter_on``)."""


class Flaky(Exception):
    """Fails the first attempt only."""


def stats(bootstrap: str, group: str, scheduler: SchedulerConfig) -> dict[str, Any]:
    args = ["--bootstrap-servers", bootstrap, "stats", "-g", group, "--json"]
    args += ["--scheduler-topic", scheduler.topic, "--scheduler-group", scheduler.group]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    (found,) = json.loads(result.stdout)["groups"]
    assert found["group"] == group
    return dict(found)


def counts(found: dict[str, Any]) -> dict[str, Any]:
    keys = ("pending", "retrying", "dead", "expired", "completed", "retried", "redriven")
    return {k: found[k] for k in keys}


def make_worker(bootstrap: str, topic: str, group: str, scheduler: SchedulerConfig) -> Worker:
    worker = Worker(
        group=group,
        topics=[topic],
        settings=settings_for(bootstrap),
        commit_interval_s=0.2,
        scheduler_topic=scheduler.topic,
        retry=RetryPolicy(
            max_attempts=3,
            backoff=exponential(0.2, 2.0, 1.0, jitter=0),
            dead_letter_on=(Fatal,),
        ),
    )

    @worker.handler(ReminderDue)
    def handle(event: ReminderDue, ctx: Context) -> None:
        kind = event.message.split(":")[0]
        if kind == "retry" and ctx.attempt == 1:
            raise Flaky(event.message)
        fixed = ctx.header(REDRIVEN_AT) is not None and event.attempt < FIXED
        if kind == "dead" and not fixed:
            raise DeadLetter("bad data")
        if kind == "fatal":
            raise Fatal(event.message)

    return worker


def send_scenario(bootstrap: str, topic: str) -> None:
    past = str(int(time.time() * 1000) - 60_000).encode()
    with EventProducer(settings_for(bootstrap)) as producer:
        for kind, n in (("ok", OK), ("retry", RETRIED), ("dead", DEAD), ("fatal", FATAL)):
            for i in range(n):
                producer.send(reminder(kind, i, f"{kind}:{i}"), key=f"{kind}{i}", topic=topic)
        for i in range(EXPIRED):
            event = reminder("old", i, f"old:{i}")
            producer.send(event, key=f"old{i}", topic=topic, headers={EXPIRES_AT: past})


def test_stats_counts_completed_retried_dead_expired_and_redriven(
    bootstrap_servers: str, unique: Callable[[str], str], scheduler: SchedulerConfig
) -> None:
    topic, group = unique("st-src"), unique("st-g")
    create_topics(bootstrap_servers, [topic], partitions=2)
    send_scenario(bootstrap_servers, topic)
    done = {
        "pending": 0, "retrying": 0, "dead": DEAD + FATAL, "expired": EXPIRED,
        "completed": OK + RETRIED, "retried": RETRIED, "redriven": 0,
    }  # fmt: skip
    with running(make_worker(bootstrap_servers, topic, group, scheduler)) as state:
        wait_ready(state, timeout=60)  # the group exists before `stats -g` asks for it
        found = wait_until(
            lambda: (s := stats(bootstrap_servers, group, scheduler)) and counts(s) == done and s,
            timeout=60,
            interval=0.5,
        )
    assert found["topics"] == [topic]
    assert found["in_flight"] is None
    exact = found["exact"]
    assert [exact[s] for s in ("pending", "dead", "expired", "redriven")] == [True] * 4
    assert [exact[s] for s in ("in_flight", "completed", "retrying")] == [False] * 3

    # No worker runs: the redriven records wait in <group>.retry, which is "retrying".
    redrive = CliRunner().invoke(
        cli,
        ["--bootstrap-servers", bootstrap_servers, "dlq", "redrive", "--group", group,
         "--error-type", "dead_letter", "--execute", "-o", "json"],
    )  # fmt: skip
    assert redrive.exit_code == 0, redrive.output
    assert json.loads(redrive.stdout)["redriven"] == DEAD
    waiting = {**done, "dead": FATAL, "retrying": DEAD, "redriven": DEAD}
    assert counts(stats(bootstrap_servers, group, scheduler)) == waiting

    # A worker handles them now: FIXED of them complete, the others fail again and come back
    # to the DLQ as copies (carrying pipeline-redriven-at): dead again, once each.
    handled = {
        **waiting, "retrying": 0, "dead": FATAL + DEAD - FIXED,
        "completed": OK + RETRIED + FIXED,
    }  # fmt: skip
    with running(make_worker(bootstrap_servers, topic, group, scheduler)) as state:
        wait_ready(state, timeout=60)  # the group exists before `stats -g` asks for it
        found = wait_until(
            lambda: (
                (s := stats(bootstrap_servers, group, scheduler)) and counts(s) == handled and s
            ),
            timeout=60,
            interval=0.5,
        )
    dlq = CliRunner().invoke(
        cli,
        ["--bootstrap-servers", bootstrap_servers, "dlq", "list", "--group", group, "-o", "json"],
    )
    assert dlq.exit_code == 0, dlq.output
    rows = json.loads(dlq.stdout)
    assert len(rows) == DEAD + FATAL + EXPIRED  # every message that was ever dead, one row each
    copies = [1] * (FIXED + FATAL + EXPIRED) + [2] * (DEAD - FIXED)
    assert sorted(r["copies"] for r in rows) == copies
    assert found["exact"]["dead"]
    every = CliRunner().invoke(cli, ["--bootstrap-servers", bootstrap_servers, "stats", "--json"])
    assert every.exit_code == 0, every.output
    names = {g["group"] for g in json.loads(every.stdout)["groups"]}
    assert group in names
    assert redrive_group(group) not in names  # the redrive tracker has no lifecycle of its own


def test_stats_names_a_missing_group_and_rejects_bad_flags(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    missing = unique("no-such-group")
    for extra in ([], ["--json"]):
        result = CliRunner().invoke(
            cli, ["--bootstrap-servers", bootstrap_servers, "stats", "-g", missing, *extra]
        )
        assert result.exit_code == 1, result.output
        (line,) = result.output.strip().splitlines()
        assert line == (
            f"Error: consumer group {missing!r} does not exist (`pipeline stats` lists every group)"
        )
    for bad in (["--max-scan", "0"], ["--nope"], ["-g"]):
        result = CliRunner().invoke(cli, ["--bootstrap-servers", bootstrap_servers, "stats", *bad])
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        assert [ln for ln in result.output.splitlines() if ln.startswith("Error:")], result.output


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except OSError:
        return 0, ""


def _origin(offset: int, *extra: tuple[str, bytes]) -> list[tuple[str, bytes]]:
    return [
        (ORIGINAL_TOPIC, b"orders"),
        (ORIGINAL_PARTITION, b"0"),
        (ORIGINAL_OFFSET, str(offset).encode()),
        *extra,
    ]


@pytest.fixture
def group_with_dead_letters(bootstrap_servers: str, unique: Callable[[str], str]) -> str:
    """A group with 6 records pending, 2 dead letters (one redriven since) and 1 expired."""
    topic, group = unique("st-serve"), unique("st-serve-g")
    create_topics(bootstrap_servers, [topic, dlq_topic(group), retry_topic(group)], partitions=1)
    produce(bootstrap_servers, topic, [10])
    consumer = group_consumer(bootstrap_servers, group)
    join(consumer, topic, 1)
    commit(consumer, topic, [4])
    consumer.close()
    producer = Producer({"bootstrap.servers": bootstrap_servers})
    for offset, error in ((1, b"x.Boom"), (2, b"x.Boom"), (3, b"expired")):
        headers = _origin(offset, (ERROR_TYPE, error), (ATTEMPT, b"3"))
        producer.produce(dlq_topic(group), b"v", b"k", headers=headers)
    redriven_at = b"2026-12-03T10:00:00.000Z"
    producer.produce(retry_topic(group), b"v", b"k", headers=_origin(1, (REDRIVEN_AT, redriven_at)))
    assert producer.flush(10) == 0
    return group


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing")
def test_lag_serve_exports_the_counts_and_promtool_accepts_them(
    bootstrap_servers: str, unique: Callable[[str], str], group_with_dead_letters: str
) -> None:
    group = group_with_dead_letters
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "pipeline", "--bootstrap-servers", bootstrap_servers, "lag"]
    cmd += ["serve", "--host", "127.0.0.1", "--port", str(port), "--interval", "500ms"]
    cmd += ["--groups", f"^{group}$", "--stats-interval", "500ms"]
    cmd += ["--scheduler-topic", unique("no-scheduler")]
    proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    base = f"http://127.0.0.1:{port}"
    want = {"pending": 6, "retrying": 1, "dead": 1, "expired": 1, "redriven": 1, "retried": 0}
    try:

        def exported() -> dict[str, float] | None:
            status, body = _get(f"{base}/metrics")
            found = {
                m["state"]: float(m["value"])
                for m in re.finditer(
                    rf'^pipeline_consumergroup_messages\{{group="{re.escape(group)}",'
                    r'state="(?P<state>\w+)"\} (?P<value>\S+)$',
                    body,
                    flags=re.M,
                )
            }
            return found if status == 200 and found else None

        found = wait_until(exported, timeout=30, interval=0.2)
        assert {s: found[s] for s in want} == want
        assert "in_flight" not in found
        _, body = _get(f"{base}/metrics")
        assert f'pipeline_consumergroup_messages_exact{{group="{group}",state="dead"}} 1.0' in body
        # Only the families of the counts: promtool flags the lag monitor's older
        # pipeline_consumergroup_lag_sum (a gauge named like a summary's part).
        ours = re.compile(r"^(# (HELP|TYPE) )?(pipeline_consumergroup_messages|pipeline_stats_)")
        text = "".join(ln + "\n" for ln in body.splitlines() if ours.match(ln))
        assert "# TYPE pipeline_stats_read_errors_total counter" in text
        lint = subprocess.run(
            ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr
    finally:
        proc.terminate()
        assert proc.wait(30) == 0


def test_stats_cli_counts_headers_written_by_hand(
    bootstrap_servers: str, group_with_dead_letters: str
) -> None:
    group = group_with_dead_letters
    result = CliRunner().invoke(
        cli, ["--bootstrap-servers", bootstrap_servers, "stats", "-g", group, "--json"]
    )
    assert result.exit_code == 0, result.output
    (found,) = json.loads(result.stdout)["groups"]
    want = {"pending": 6, "retrying": 1, "dead": 1, "expired": 1, "redriven": 1, "retried": 0}
    assert {s: found[s] for s in want} == want
    # 4 source records read, none of the retry topic's; 3 dead letters: 1 completed.
    assert found["completed"] == 1
    table = CliRunner().invoke(
        cli, ["--bootstrap-servers", bootstrap_servers, "stats", "-g", group],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert table.exit_code == 0, table.output
    (row,) = [ln for ln in table.output.splitlines() if group in ln]
    cells = [c.strip() for c in row.strip("│┃ ").split("│")]
    assert cells == [group, "Empty", "6", "-", "~1", "1", "1", "~1", "~0", "1"]


def test_in_flight_comes_from_the_workers_metrics(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    topic, group = unique("st-flight"), unique("st-flight-g")
    create_topics(bootstrap_servers, [topic], partitions=1)
    release = threading.Event()
    worker = Worker(group=group, topics=[topic], settings=settings_for(bootstrap_servers))

    @worker.handler(ReminderDue)
    def handle(event: ReminderDue, ctx: Context) -> None:
        release.wait(60)

    server = ServiceHTTPServer(worker.registry, lambda: True, lambda: True, port=0)
    server.start()
    args = ["--bootstrap-servers", bootstrap_servers, "stats", "-g", group, "--json"]
    url = f"http://127.0.0.1:{server.port}"
    try:
        with running(worker) as state:
            wait_ready(state, timeout=60)
            with EventProducer(settings_for(bootstrap_servers)) as producer:
                for i in range(3):  # three keys: three records in flight at once
                    producer.send(reminder(f"h{i}", i), key=f"h{i}", topic=topic)

            def in_flight() -> Any:
                result = CliRunner().invoke(cli, [*args, "--worker", url])
                assert result.exit_code == 0, result.output
                return json.loads(result.stdout)["groups"][0]["in_flight"]

            assert wait_until(lambda: in_flight() == 3, timeout=30, interval=0.3)
            result = CliRunner().invoke(cli, args)
            assert json.loads(result.stdout)["groups"][0]["in_flight"] is None
            release.set()
            assert wait_until(lambda: in_flight() == 0, timeout=30, interval=0.3)
    finally:
        release.set()
        server.stop()
    bad = CliRunner().invoke(cli, [*args, "--worker", f"http://127.0.0.1:{free_port()}"])
    assert bad.exit_code == 1, bad.output
    (line,) = bad.output.strip().splitlines()
    assert line.startswith("Error: cannot read worker metrics at http://127.0.0.1:"), line
