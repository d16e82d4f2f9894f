"""``pipeline worker run`` in a subprocess: metrics and probes, graceful SIGTERM with a commit."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from consumers import ensure_worker_topics
from tests.helpers import wait_until
from tests.integration.test_worker_procs import tally, worker_proc
from tests.integration.test_worker_support import (
    committed,
    create_topics,
    produce_reminders,
    settings_for,
)

pytestmark = pytest.mark.kafka


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    port = _free_port()
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
