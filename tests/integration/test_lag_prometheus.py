"""A real Prometheus scraping the lag exporter: dashboard queries, alert expressions, firing.

Also runs the promtool unit tests of the alert rules. Prometheus and promtool come from
Debian's ``prometheus`` package (``scripts/ensure-prometheus``, run by the Makefile).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from pipeline import Settings
from pipeline._http import ServiceHTTPServer
from pipeline.lag import LagCollector, LagOptions, LagPoller, StatusThresholds
from tests.helpers import free_port, wait_until
from tests.integration.test_lag_support import commit, create_topic, group_consumer, join, produce

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "rules" / "pipeline-lag.rules.yml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "tests" / "pipeline-lag.test.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "pipeline-lag.json"

needs_prometheus = pytest.mark.skipif(
    shutil.which("prometheus") is None or shutil.which("promtool") is None,
    reason="prometheus/promtool missing: run scripts/ensure-prometheus (make does)",
)


@needs_prometheus
def test_promtool_rule_unit_tests() -> None:
    out = subprocess.run(
        ["promtool", "test", "rules", str(RULE_TESTS)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr


def dashboard_queries() -> list[str]:
    """Every PromQL expression of the dashboard, with its $group variable set to match all."""
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 15
    return [e.replace("$group", ".*") for e in exprs]


class Prometheus:
    """A throwaway Prometheus on a free port, with a temp config and storage."""

    def __init__(self, workdir: Path, target: str, rules: Path) -> None:
        self.port = free_port()
        config = workdir / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"rule_files: ['{rules}']\n"
            "scrape_configs:\n"
            f"  - job_name: pipeline-lag\n    static_configs: [{{targets: ['{target}']}}]\n"
        )
        self._log = (workdir / "prometheus.log").open("w")
        self.proc = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def get(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())

    def query(self, expr: str) -> list[Any]:
        body = self.get("/api/v1/query", query=expr)
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(15)
        self._log.close()


@pytest.fixture
def lagging_exporter(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> Iterator[tuple[str, str]]:
    """An exporter watching one group that has lag and never commits: (address, group)."""
    topic, group = unique("lag-prom"), unique("lag-prom-g")
    create_topic(bootstrap_servers, topic)
    produce(bootstrap_servers, topic, [200])
    consumer = group_consumer(bootstrap_servers, group)
    join(consumer, topic, 1)
    commit(consumer, topic, [0])
    consumer.close()
    options = LagOptions(
        groups=re.compile(re.escape(group)),
        interval=1.0,
        thresholds=StatusThresholds(window_seconds=4, stall_seconds=2, min_samples=2),
    )
    poller = LagPoller(Settings(bootstrap_servers=bootstrap_servers), options)
    registry = CollectorRegistry()
    registry.register(LagCollector(lambda: poller.snapshot))
    server = ServiceHTTPServer(registry, poller.healthy, poller.ready, port=0)
    poller.start()
    server.start()
    try:
        wait_until(poller.ready, timeout=30)
        yield f"127.0.0.1:{server.port}", group
    finally:
        server.stop()
        poller.stop()


def _with_bool(expr: str) -> str:
    """Turn an alert's filter into a 0/1 comparison, so it returns data when healthy too."""
    return re.sub(r"\s(>=|<=|==|!=|>|<)\s", r" \1 bool ", expr, count=1)


@needs_prometheus
@pytest.mark.kafka
def test_dashboard_and_alerts_on_a_real_prometheus(
    lagging_exporter: tuple[str, str], tmp_path: Path
) -> None:
    target, group = lagging_exporter
    # Same rules, faster: `for` shortened and the lag threshold lowered, so it fires in seconds.
    fast = RULES.read_text()
    fast = re.sub(r"for: \S+", "for: 2s", fast).replace(
        "lag_seconds_max > 300", "lag_seconds_max > 3"
    )
    rules = tmp_path / "fast.rules.yml"
    rules.write_text(fast)
    prom = Prometheus(tmp_path, target, rules)
    try:
        wait_until(prom.ready, timeout=60, interval=0.2)
        wait_until(lambda: prom.query('up{job="pipeline-lag"} == 1'), timeout=30, interval=0.5)
        for expr in dashboard_queries():
            wait_until(lambda expr=expr: prom.query(expr), timeout=30, interval=0.5)
        rule_groups = prom.get("/api/v1/rules")["data"]["groups"]
        alerts = {r["name"]: r["query"] for g in rule_groups for r in g["rules"]}
        assert set(alerts) == {
            "PipelineConsumerLagHigh",
            "PipelineConsumerGroupStalled",
            "PipelineLagExporterDown",
            "PipelineLagSnapshotStale",
        }
        for expr in alerts.values():
            assert prom.query(_with_bool(expr)), expr

        def firing() -> set[str]:
            active = prom.get("/api/v1/alerts")["data"]["alerts"]
            return {
                a["labels"]["alertname"]
                for a in active
                if a["state"] == "firing" and a["labels"].get("group") == group
            }

        wanted = {"PipelineConsumerLagHigh", "PipelineConsumerGroupStalled"}
        wait_until(lambda: wanted <= firing(), timeout=60, interval=0.5)
    finally:
        prom.stop()
