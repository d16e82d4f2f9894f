"""``pipeline worker run`` in a subprocess: metrics and probes, graceful SIGTERM with a commit."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from consumers import ensure_worker_topics
from tests.helpers import free_port, wait_until
from tests.integration.test_worker_procs import tally, worker_proc
from tests.integration.test_worker_support import (
    committed,
    create_topics,
    produce_reminders,
    settings_for,
)

pytestmark = pytest.mark.kafka


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError:
        return 0, ""


def test_cli_runs_serves_probes_and_stops_cleanly_on_sigterm(
    bootstrap_servers: str, unique: Callable[[str], str], tmp_path: Path
) -> None:
    topic, group = unique("wk-cli"), unique("wk-g")
    create_topics(bootstrap_servers, [topic], partitions=2)
    ensure_worker_topics(settings_for(bootstrap_servers), group, partitions=1)
    total = produce_reminders(bootstrap_servers, topic, keys=10, per_key=30)
    out = tmp_path / "handled.txt"
    port = free_port()
    env = {
        "PIPELINE_BOOTSTRAP_SERVERS": bootstrap_servers,
        "WORKER_GROUP": group,
        "WORKER_TOPIC": topic,
        "WORKER_OUT": str(out),
        "WORKER_SLEEP_MS": "20",
        "WORKER_MAX_IN_FLIGHT": "20",  # so a SIGTERM mid-stream leaves work undone
    }
    proc = worker_proc(
        "tests.workers.recorder:app",
        tmp_path / "worker.log",
        env,
        "--concurrency",
        "4",
        "--metrics-port",
        str(port),
        "--metrics-host",
        "127.0.0.1",
    ).start()
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _get(f"{base}/readyz")[0] == 200, timeout=30)
        assert _get(f"{base}/healthz")[0] == 200
        wait_until(lambda: tally(out, 10, 30).unique >= 50, timeout=30)
        metrics = _get(f"{base}/metrics")[1]
        assert "pipeline_worker_records_total" in metrics
        assert proc.terminate(timeout=60) == 0  # mid-stream: drain, commit, leave
        done = tally(out, 10, 30)
        assert done.unique < total, "the worker finished before it was stopped"
        offsets = committed(bootstrap_servers, group, topic, 2)
        assert sum(max(0, o) for o in offsets) == done.unique
        assert done.duplicates == 0
    finally:
        if proc.alive():
            proc.kill()
    log = (tmp_path / "worker.log").read_text()
    assert "Traceback" not in log, log


def _status(base: str) -> dict[str, Any]:
    code, body = _get(f"{base}/healthz")
    return json.loads(body) if code == 200 and body else {}


def _metric(base: str, name: str) -> float:
    for line in _get(f"{base}/metrics")[1].splitlines():
        if line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return -1.0


@pytest.mark.parametrize(("sleep_ms", "stuck"), [(0, False), (4000, True)])
def test_healthz_and_metrics_show_seconds_since_progress(
    bootstrap_servers: str, unique: Callable[[str], str], tmp_path: Path, sleep_ms: int, stuck: bool
) -> None:
    """Caught up and idle counts as progress; a handler that does not return does not."""
    topic, group = unique("wk-prog"), unique("wk-g")
    create_topics(bootstrap_servers, [topic], partitions=2)
    ensure_worker_topics(settings_for(bootstrap_servers), group, partitions=1)
    produce_reminders(bootstrap_servers, topic, keys=4, per_key=5)
    port = free_port()
    env = {
        "PIPELINE_BOOTSTRAP_SERVERS": bootstrap_servers,
        "WORKER_GROUP": group,
        "WORKER_TOPIC": topic,
        "WORKER_OUT": str(tmp_path / "handled.txt"),
        "WORKER_SLEEP_MS": str(sleep_ms),
    }
    args = ["--concurrency", "1", "--metrics-port", str(port), "--metrics-host", "127.0.0.1"]
    proc = worker_proc("tests.workers.recorder:app", tmp_path / "w.log", env, *args).start()
    base = f"http://127.0.0.1:{port}"
    try:
        status = wait_until(lambda: _status(base).get("assigned_partitions") == 3, timeout=30)
        assert status
        if stuck:  # the first record's handler sleeps 4 s: nothing finishes meanwhile
            late = wait_until(lambda: _status(base).get("seconds_since_progress", 0) > 2.5)
            assert late
            assert _status(base)["in_flight"] >= 1
            assert _metric(base, "pipeline_worker_seconds_since_progress") > 2.5
        else:  # all 20 handled, then idle: every poll finds the partitions at their end
            wait_until(lambda: tally(tmp_path / "handled.txt", 4, 5).unique == 20, timeout=30)
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:  # observe a 3 s idle window
                assert _status(base)["seconds_since_progress"] < 1.5
                time.sleep(0.2)
            assert 0 <= _metric(base, "pipeline_worker_seconds_since_progress") < 1.5
    finally:
        if proc.alive():
            proc.kill()
