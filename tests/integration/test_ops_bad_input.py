"""Every operations command, given bad input, says what is wrong in one line and exits non-zero."""

from __future__ import annotations

import socket
import uuid

import pytest
from click.testing import CliRunner

from pipeline.cli import cli

GROUP = f"ops-bad-{uuid.uuid4().hex[:8]}"  # no such group, so no <group>.dlq topic
TOPIC = f"ops-bad-{uuid.uuid4().hex[:8]}"  # no such topic

# name -> (arguments with TIME standing for a time, the option left out for "missing")
COMMANDS: dict[str, tuple[list[str], str]] = {
    "replay": (
        ["replay", "--from-topic", TOPIC, "--to-topic", TOPIC + "-b", "--since", "TIME"],
        "--from-topic",
    ),
    "offsets reset": (
        ["offsets", "reset", "--group", GROUP, "--topic", TOPIC, "--to-datetime", "TIME"],
        "--topic",
    ),
    "dlq list": (["dlq", "list", "--group", GROUP, "--since", "TIME"], "--group"),
    "dlq show": (["dlq", "show", "--group", GROUP, "--offset", "0"], "--offset"),
    "dlq redrive": (["dlq", "redrive", "--group", GROUP, "--until", "TIME"], "--group"),
    "dlq purge": (["dlq", "purge", "--group", GROUP, "--before-offset", "1", "--yes"], "--group"),
    "consume": (["consume", "--topic", TOPIC, "--since", "TIME", "--to-end"], "--topic"),
}
NO_TIME = {"dlq show", "dlq purge"}


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def _without(args: list[str], option: str) -> list[str]:
    i = args.index(option)
    return args[:i] + args[i + 2 :]


def _cases() -> list[object]:
    cases = []
    for name in COMMANDS:
        cases.append(pytest.param(name, "missing", id=f"{name}-missing-option"))
        if name not in NO_TIME:
            cases.append(pytest.param(name, "bad-time", id=f"{name}-malformed-time"))
        cases.append(pytest.param(name, "unknown-topic", id=f"{name}-unknown-topic"))
        cases.append(pytest.param(name, "unreachable", id=f"{name}-unreachable-broker"))
    return cases


@pytest.mark.kafka
@pytest.mark.parametrize(("command", "case"), _cases())
def test_bad_input_is_one_clear_line(bootstrap_servers: str, command: str, case: str) -> None:
    args, required = COMMANDS[command]
    servers = bootstrap_servers
    good_time = [a if a != "TIME" else "-1h" for a in args]
    if case == "missing":
        argv, code, message = _without(good_time, required), 2, f"Missing option '{required}'"
    elif case == "bad-time":
        argv = [a if a != "TIME" else "yesterday-ish" for a in args]
        code, message = 2, "is not a time: use ISO-8601 with a timezone"
    elif case == "unknown-topic":
        argv, code, message = good_time, 1, "does not exist"
    else:
        servers, argv, code, message = _closed_port(), good_time, 1, "cannot reach Kafka at"
    result = CliRunner().invoke(cli, ["--bootstrap-servers", servers, *argv])
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1, result.output


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ([], "give the window start: --since TIME or --from-offset N"),
        (["--since", "-1h", "--from-offset", "0"], "not both"),
    ],
)
def test_replay_window_start_is_required_once(window: list[str], message: str) -> None:
    argv = ["replay", "--from-topic", TOPIC, "--to-topic", TOPIC + "-b", *window]
    result = CliRunner().invoke(cli, ["--bootstrap-servers", _closed_port(), *argv])
    assert result.exit_code == 2, result.output
    assert message in result.output
