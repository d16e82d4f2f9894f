"""Every ``pipeline`` command that talks to Kafka, pointed at a closed port, exits 1 in one line.

The README promises exit 1 for a Kafka problem, with one ``Error: ...`` line on stderr and no
traceback. Every command of the CLI is listed here (a test fails when a new one is not), and
they all run at once, as subprocesses, so the matrix costs about as long as its slowest command.
Also here: ``pipeline lag show`` within about 10 s, and ``--group`` naming no group.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from producers._outbox_file import OutboxFile
from tests.integration.test_lag_support import commit, create_topic, group_consumer, join, produce

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]
GROUP = f"cli-down-{uuid.uuid4().hex[:8]}"
TOPIC = f"cli-down-{uuid.uuid4().hex[:8]}"
EVENT = {
    "order_id": "7d0c3bb4-8a52-4b2b-9a4b-0a8b1e7f9c11",
    "customer_id": "c-9",
    "placed_at": "2026-11-22T10:00:00Z",
    "items": [{"sku": "a", "quantity": 1, "unit_price": "3.50"}],
    "total": "3.50",
    "shipping_address": {"line1": "x", "city": "y", "postal_code": "1", "country": "FR"},
}
OUTBOX = "./outbox.db"  # in each run's working directory
APP = "examples.orders.payments:app"  # a Worker without settings of its own: it takes the CLI's

# case name -> arguments; the command is the words before the first option or argument
COMMANDS: dict[str, list[str]] = {
    "console": ["console", "--port", "0"],
    "consume": ["consume", "--topic", TOPIC, "--to-end"],
    "consume --group": ["consume", "--topic", TOPIC, "--group", GROUP, "--limit", "1"],
    "dlq list": ["dlq", "list", "--group", GROUP],
    "dlq show": ["dlq", "show", "--group", GROUP, "--offset", "0"],
    "dlq redrive": ["dlq", "redrive", "--group", GROUP],
    "dlq redrive --execute": ["dlq", "redrive", "--group", GROUP, "--execute"],
    "dlq purge": ["dlq", "purge", "--group", GROUP, "--before-offset", "1", "--yes"],
    "doctor": ["doctor"],
    "lag serve": ["lag", "serve", "--host", "127.0.0.1", "--port", "0"],
    "lag show": ["lag", "show"],
    "lag show --group -o json": ["lag", "show", "--group", GROUP, "-o", "json"],
    "lag show --watch": ["lag", "show", "--watch"],
    "outbox drain": ["outbox", "drain", OUTBOX],  # the runs fixture writes it, with a record
    "offsets reset": [
        "offsets", "reset", "--group", GROUP, "--topic", TOPIC, "--to-datetime", "-1h",
    ],
    "produce": ["produce", "--type", "orders.OrderPlaced", "--json", json.dumps(EVENT)],
    "request": [
        "request", "--type", "orders.OrderPlaced", "--reply-type", "orders.OrderPlaced",
        "--json", json.dumps(EVENT), "--timeout", "3",
    ],
    "replay": ["replay", "--from-topic", TOPIC, "--to-topic", TOPIC + "-b", "--since", "-1h"],
    "scheduler run": ["scheduler", "run", "--metrics-port", "0", "--group", GROUP],
    "scheduler run --no-create-topics": [
        "scheduler", "run", "--metrics-port", "0", "--group", GROUP, "--no-create-topics",
    ],
    "scheduler status": ["scheduler", "status", "--group", GROUP],
    "stats": ["stats"],
    "stats -g --json": ["stats", "-g", GROUP, "--json"],
    "topics apply": ["topics", "apply", str(REPO / "examples" / "topics.toml")],
    "topics apply --dry-run": [
        "topics", "apply", str(REPO / "examples" / "topics.toml"), "--dry-run",
    ],
    "topics describe": ["topics", "describe", TOPIC],
    "topics list": ["topics", "list"],
    "worker run": ["worker", "run", APP],
    "worker run --no-create-topics": ["worker", "run", APP, "--no-create-topics"],
}  # fmt: skip
# files (and a Schema Registry)
NO_KAFKA = {"outbox status", "schemas check", "schemas list", "schemas show"}
TIMEOUT = 90.0


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def _leaves(group: click.Group, ctx: click.Context, prefix: str = "") -> set[str]:
    out: set[str] = set()
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        if isinstance(command, click.Group):
            out |= _leaves(command, ctx, f"{prefix}{name} ")
        else:
            out.add(prefix + name)
    return out


def _command(case: str) -> str:
    words = []
    for word in COMMANDS[case]:
        if word.startswith("-") or word in (TOPIC, GROUP, APP) or "/" in word or "{" in word:
            break
        words.append(word)
    return " ".join(words)


def test_every_command_is_in_the_matrix() -> None:
    with click.Context(cli) as ctx:
        leaves = _leaves(cli, ctx)
    covered = {_command(case) for case in COMMANDS}
    assert leaves - NO_KAFKA == covered, "add new commands to COMMANDS (or to NO_KAFKA)"


@dataclass
class Run:
    proc: subprocess.Popen[str]
    started: float
    log: Path
    code: int | None = None
    seconds: float = 0.0

    def finish(self, deadline: float) -> None:
        if self.code is not None:
            return
        try:
            self.code = self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)  # our own process group only
            self.proc.wait(10)
            pytest.fail(f"still running after {TIMEOUT:g}s: {self.log.read_text()[-2000:]}")
        self.seconds = time.monotonic() - self.started


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    """Start every case at once against one closed port; each test waits for its own."""
    servers = _closed_port()
    logs = tmp_path_factory.mktemp("unreachable")
    outbox = OutboxFile.open(logs / OUTBOX)
    outbox.insert([(1, TOPIC, b"k", b"v", b"", 2)])
    outbox.close()
    env = {**os.environ, "PIPELINE_BOOTSTRAP_SERVERS": servers, "PYTHONPATH": str(REPO)}
    started: dict[str, Run] = {}
    try:
        for i, (case, args) in enumerate(COMMANDS.items()):
            log = logs / f"{i}.log"
            with log.open("w") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "pipeline", "--bootstrap-servers", servers, *args],
                    cwd=logs,  # nothing of the repo's working tree is written to
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    text=True,
                    start_new_session=True,
                )
            started[case] = Run(proc, time.monotonic(), log)
        yield started
    finally:
        for run in started.values():
            if run.proc.poll() is None:
                os.killpg(run.proc.pid, signal.SIGKILL)
                run.proc.wait(10)


@pytest.mark.parametrize("case", list(COMMANDS))
def test_unreachable_broker_is_one_error_line_and_exit_1(runs: dict[str, Run], case: str) -> None:
    run = runs[case]
    run.finish(run.started + TIMEOUT)
    output = run.log.read_text()
    assert run.code == 1, output
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, output
    assert "cannot reach Kafka" in errors[0] or "no bootstrap server accepts" in errors[0], output


def test_lag_show_unreachable_exits_1_within_about_10s() -> None:
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["--bootstrap-servers", _closed_port(), "lag", "show"])
    seconds = time.monotonic() - started
    assert result.exit_code == 1, result.output
    (line,) = result.output.strip().splitlines()  # no warning, no empty table
    assert line.startswith("Error: cannot reach Kafka at 127.0.0.1:"), line
    assert seconds < 12.5, seconds


def test_lag_show_names_a_missing_group(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    missing = unique("no-such-group")
    for output in ("table", "json"):
        args = ["--bootstrap-servers", bootstrap_servers, "lag", "show", "--group", missing]
        result = CliRunner().invoke(cli, [*args, "-o", output])
        assert result.exit_code == 1, result.output
        assert result.output.strip().splitlines() == [
            f"Error: consumer group '{missing}' does not exist "
            "(`pipeline lag show` lists every group)"
        ]


def test_lag_show_of_an_existing_group_still_exits_0(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    topic, group = unique("cli-up"), unique("cli-up-g")
    create_topic(bootstrap_servers, topic)
    produce(bootstrap_servers, topic, [3])
    consumer = group_consumer(bootstrap_servers, group)
    join(consumer, topic, 1)
    commit(consumer, topic, [1])
    consumer.close()
    args = ["--bootstrap-servers", bootstrap_servers, "lag", "show", "--group", group, "-o", "json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["groups"][0]["lag"] == 2
