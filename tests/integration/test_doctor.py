"""`pipeline doctor` and the CLI error boundary, against a running and a stopped broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from tests.helpers import free_port

REPO = Path(__file__).resolve().parents[2]
PIPELINE = [sys.executable, "-m", "pipeline"]


@pytest.mark.kafka
def test_doctor_ok_against_running_broker(bootstrap_servers: str) -> None:
    result = CliRunner().invoke(
        cli, ["--bootstrap-servers", bootstrap_servers, "doctor", "-o", "json"]
    )
    assert result.exit_code == 0, result.output
    checks = {c["name"]: c for c in json.loads(result.output)}
    assert all(c["ok"] for c in checks.values())
    assert "Apache Kafka 4" in checks["broker version"]["detail"]
    assert "KIP-848 consumer groups: yes" in checks["broker version"]["detail"]


def test_doctor_against_stopped_broker_is_fast_and_clear() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    port = free_port()
    started = time.monotonic()
    proc = subprocess.run(
        [*PIPELINE, "--bootstrap-servers", f"127.0.0.1:{port}", "doctor"],
        capture_output=True, text=True, timeout=30, env=env, cwd=REPO,
    )  # fmt: skip
    took = time.monotonic() - started
    assert proc.returncode == 1
    assert took < 10
    assert "Error: 1 check(s) failed: no bootstrap server accepts connections" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "scripts/kafka-local up" in proc.stdout
    # No librdkafka log flood: every stderr line is our one sentence.
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        ({"PIPELINE_KAFKA__NO__SUCH__KEY": "1"}, ["topics", "list"], 'property: "no.such.key"'),
        ({"PIPELINE_BOOTSTRAP_SERVERS": "nohost"}, ["topics", "list"], "is not host:port"),
        ({}, ["topics", "apply", "/does/not/exist.toml"], "does not exist"),
        ({}, ["topics", "nope"], "No such command"),
    ],
)
def test_user_mistakes_never_traceback(env: dict[str, str], args: list[str], message: str) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    proc = subprocess.run(
        [*PIPELINE, *args], capture_output=True, text=True, timeout=30, env={**base, **env}
    )
    assert proc.returncode in (1, 2)
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith(("Error:", "Usage:"))


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    from pipeline import __version__

    assert __version__ in result.output
