"""`python -m pipeline.demo` (what `make demo` runs) keeps its invariants end to end.

A short run under its own namespace (topics and groups prefixed), so it can share a cluster:
nothing lost, no reminder early, every group drained, one dead letter per poison order.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from tests.helpers import free_port

REPO = Path(__file__).resolve().parents[2]


def _delete_namespace(bootstrap_servers: str, prefix: str) -> None:
    """Delete the run's topics and consumer groups (best effort: leftovers are namespaced)."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    with contextlib.suppress(Exception):
        listed = admin.list_consumer_groups(request_timeout=10).result(timeout=30)
        groups = [g.group_id for g in listed.valid if g.group_id.startswith(prefix)]
        if groups:
            for future in admin.delete_consumer_groups(groups, request_timeout=30).values():
                with contextlib.suppress(Exception):
                    future.result(timeout=60)
    topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
    if topics:
        for future in admin.delete_topics(topics, operation_timeout=30).values():
            with contextlib.suppress(Exception):
                future.result(timeout=60)


@pytest.mark.kafka
@pytest.mark.timeout(240)
def test_demo_keeps_its_invariants(
    bootstrap_servers: str, unique: Callable[[str], str], tmp_path: Path
) -> None:
    namespace = unique("demo") + "."
    summary_path = tmp_path / "summary.json"
    env = {**os.environ, "PIPELINE_BOOTSTRAP_SERVERS": bootstrap_servers}
    argv = [
        sys.executable, "-m", "pipeline.demo", "--duration", "15", "--rate", "20",
        "--poison-every", "40", "--reminder-every", "4", "--namespace", namespace,
        "--lag-port", str(free_port()), "--drain-timeout", "60",
        "--summary-json", str(summary_path), "--log-dir", str(tmp_path / "logs"),
    ]  # fmt: skip
    try:
        proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=220)
    finally:
        _delete_namespace(bootstrap_servers, namespace)
    output = proc.stdout[-6000:] + proc.stderr[-3000:]
    assert summary_path.exists(), output
    summary = json.loads(summary_path.read_text())
    assert summary["failures"] == [], output
    assert proc.returncode == 0, output
    assert summary["ok"]

    injected = summary["injected"]
    assert injected["orders"] >= 250  # 15 s at 20/s
    assert injected["failed_sends"] == 0
    assert summary["produced"][f"{namespace}orders"] == injected["orders"]
    assert summary["lost"] == 0
    assert summary["unshipped"] == 0
    paid = injected["orders"] - injected["poison"]
    assert summary["groups"][f"{namespace}fulfillment"]["handled"] >= paid

    reminders = summary["reminders"]
    assert reminders["early"] == 0
    assert reminders["delivered"] == reminders["scheduled"] == injected["orders"] // 4
    assert reminders["lateness_ms"]["p99"] is not None
    assert 0 <= reminders["lateness_ms"]["p50"] <= reminders["lateness_ms"]["p99"]

    assert all(lag == 0 for lag in summary["lag"].values()), summary["lag"]

    dlq = summary["dlq"]
    assert injected["poison"] == injected["orders"] // 40 > 0
    assert dlq["records"] == dlq["poison_injected"] == injected["poison"]
    assert len(dlq["entries"]) == injected["poison"]
    assert {e["error_type"].rpartition(".")[2] for e in dlq["entries"]} == {"PaymentDeclined"}
    payments = summary["groups"][f"{namespace}payments"]
    assert payments["retried"] > 0  # the injected transient failures went through retries
    assert payments["dlq_records"] == injected["poison"]
    assert all(code == 0 for code in summary["exit_codes"].values()), summary["exit_codes"]
