"""``pipeline lag serve`` and ``pipeline lag show`` against the real broker."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from tests.helpers import wait_until
from tests.integration.test_lag_support import commit, create_topic, group_consumer, join, produce

pytestmark = pytest.mark.kafka
REPO = Path(__file__).resolve().parents[2]


def _lagging_group(servers: str, unique: Callable[[str], str]) -> tuple[str, str]:
    topic, group = unique("lag-cli"), unique("lag-cli-g")
    create_topic(servers, topic, partitions=2)
    produce(servers, topic, [20, 20])
    consumer = group_consumer(servers, group)
    join(consumer, topic, 2)
    commit(consumer, topic, [5, 20])
    consumer.close()
    return topic, group


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except OSError:
        return 0, ""


def test_serve_exports_metrics_compat_and_health(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    topic, group = _lagging_group(bootstrap_servers, unique)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "pipeline", "--bootstrap-servers", bootstrap_servers, "lag"]
    cmd += ["serve", "--host", "127.0.0.1", "--port", str(port), "--interval", "500ms"]
    cmd += ["--groups", group, "--compat", "kafka_exporter"]
    proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _get(f"{base}/readyz")[0] == 200, timeout=30, interval=0.2)
        assert _get(f"{base}/healthz") == (200, "ok\n")
        _, body = _get(f"{base}/metrics")
        assert (
            f'pipeline_consumergroup_lag{{group="{group}",topic="{topic}",partition="0"}} 15.0'
            in body
        )
        assert (
            f'kafka_consumergroup_lag{{consumergroup="{group}",topic="{topic}",partition="0"}} 15.0'
            in body
        )
        assert (
            f'kafka_consumergroup_lag_sum{{consumergroup="{group}",topic="{topic}"}} 15.0' in body
        )
        assert f'pipeline_consumergroup_members{{group="{group}"}} 0.0' in body
        assert "pipeline_lag_snapshot_age_seconds" in body
    finally:
        proc.terminate()
        assert proc.wait(30) == 0


def test_show_table_and_json(bootstrap_servers: str, unique: Callable[[str], str]) -> None:
    topic, group = _lagging_group(bootstrap_servers, unique)
    runner = CliRunner()
    args = ["--bootstrap-servers", bootstrap_servers, "lag", "show", "--group", group]
    result = runner.invoke(cli, [*args, "--output", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    (g,) = data["groups"]
    assert (g["group"], g["state"], g["lag"], g["members"]) == (group, "Empty", 15, 0)
    assert g["lag_seconds"] > 0  # exact mode by default: the record at offset 5 has an age
    assert not g["lag_seconds_is_lower_bound"]
    result = runner.invoke(cli, [*args], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert group in result.output
    assert topic in result.output
