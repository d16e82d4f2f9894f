"""`pipeline request` and `pipeline produce --guarantee` (real broker)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from click.testing import CliRunner, Result

from consumers import Context, Worker
from examples.orders.events import ReminderDue
from pipeline.cli import cli
from tests.helpers import read_topic
from tests.integration.test_worker_support import create_topics, running, settings_for, wait_ready

pytestmark = pytest.mark.kafka

REQUEST = {
    "reminder_id": "7d0c3bb4-8a52-4b2b-9a4b-0a8b1e7f9c11",
    "due_at": "2026-11-22T10:00:00Z",
    "due_date": "2026-11-22",
    "kind": "REVIEW_REQUEST",
    "message": "ping",
}


def _request(bootstrap: str, topic: str, body: dict[str, object], *extra: str) -> Result:
    return CliRunner().invoke(
        cli,
        ["--bootstrap-servers", bootstrap, "request", "--topic", topic,
         "--type", "reminders.ReminderDue", "--reply-type", "reminders.ReminderDue",
         "--json", json.dumps(body), *extra],
    )  # fmt: skip


def test_request_prints_the_reply_the_remote_error_or_times_out(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    topic, group = unique("cli-rpc"), unique("cli-rpc-g")
    create_topics(bootstrap_servers, [topic], partitions=1)
    worker = Worker(group=group, topics=[topic], settings=settings_for(bootstrap_servers))

    @worker.handler(ReminderDue)
    def handle(event: ReminderDue, ctx: Context) -> ReminderDue:
        if event.message == "fail":
            raise KeyError("no such reminder")
        return event.model_copy(update={"message": "pong"})

    with running(worker) as state:
        wait_ready(state)
        ok = _request(bootstrap_servers, topic, REQUEST)
        assert ok.exit_code == 0, ok.output
        assert json.loads(ok.stdout)["message"] == "pong"
        failed = _request(bootstrap_servers, topic, {**REQUEST, "message": "fail"})
        assert failed.exit_code == 1
        assert "builtins.KeyError" in failed.stderr
    silent = unique("cli-rpc-none")
    create_topics(bootstrap_servers, [silent], partitions=1)
    timed_out = _request(bootstrap_servers, silent, REQUEST, "--timeout", "0.5")
    assert timed_out.exit_code == 1
    assert "timed out" in timed_out.stderr
    bad = _request(bootstrap_servers, silent, {"message": 3})
    assert bad.exit_code == 1
    assert "field" in bad.stderr
    assert "Traceback" not in bad.output


def test_produce_fire_and_forget_and_bad_guarantee(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    topic = unique("cli-ff")
    create_topics(bootstrap_servers, [topic], partitions=1)
    base = ["--bootstrap-servers", bootstrap_servers, "produce", "--topic", topic,
            "--type", "reminders.ReminderDue", "--json", json.dumps(REQUEST)]  # fmt: skip
    result = CliRunner().invoke(cli, [*base, "--guarantee", "fire-and-forget", "-o", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sent"] == 1
    assert len(read_topic(bootstrap_servers, topic, 1)) == 1
    wrong = CliRunner().invoke(cli, [*base, "--guarantee", "sometimes"])
    assert wrong.exit_code == 2
    assert "sometimes" in wrong.output
    no_acks = CliRunner().invoke(cli, [*base, "--guarantee", "quorum"])
    assert no_acks.exit_code == 2
    assert "--required-acks" in no_acks.output


def test_produce_quorum_succeeds_or_exits_1_at_the_timeout(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    topic, group = unique("cli-qu"), unique("cli-qu-g")
    create_topics(bootstrap_servers, [topic], partitions=1)
    worker = Worker(group=group, topics=[topic], settings=settings_for(bootstrap_servers))

    @worker.handler(ReminderDue)
    def handle(event: ReminderDue, ctx: Context) -> None:
        return None

    base = ["--bootstrap-servers", bootstrap_servers, "produce", "--topic", topic,
            "--type", "reminders.ReminderDue", "--json", json.dumps(REQUEST),
            "--guarantee", "quorum", "-o", "json"]  # fmt: skip
    with running(worker) as state:
        wait_ready(state)
        one = CliRunner().invoke(cli, [*base, "--required-acks", "1", "--timeout", "20"])
        assert one.exit_code == 0, one.output
        assert json.loads(one.stdout)["sent"] == 1
        two = CliRunner().invoke(cli, [*base, "--required-acks", "2", "--timeout", "1"])
        assert two.exit_code == 1
        report = json.loads(two.stdout)
        assert "quorum not reached: 1 of 2" in report["errors"][0]
        assert group in report["errors"][0]
