"""ensure_topics and `pipeline topics` against the real broker."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from confluent_kafka.admin import AdminClient

from pipeline import load_settings
from pipeline._topics import TopicSpec, ensure_topics
from pipeline.cli import cli

pytestmark = pytest.mark.kafka


def _partitions(admin: AdminClient, topic: str) -> int | None:
    meta = admin.list_topics(timeout=10)
    return len(meta.topics[topic].partitions) if topic in meta.topics else None


def test_create_then_idempotent_then_drift(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    settings = load_settings(bootstrap_servers=bootstrap_servers)
    admin = AdminClient(settings.admin_config())
    name = unique("t-ensure")
    spec = TopicSpec(name, partitions=3, configs={"retention.ms": "3600000"})

    first = ensure_topics(settings, [spec])
    assert first.created == [name]
    assert _partitions(admin, name) == 3

    second = ensure_topics(settings, [spec])
    assert second.created == []
    assert second.unchanged == [name]
    assert second.drift == []

    drifted = TopicSpec(name, partitions=5, configs={"retention.ms": "7200000"})
    third = ensure_topics(settings, [drifted])
    found = {(d.setting, d.expected, d.actual) for d in third.drift}
    assert found == {("partitions", "5", "3"), ("retention.ms", "7200000", "3600000")}
    assert _partitions(admin, name) == 3  # drift is reported, never "fixed" destructively


def test_dry_run_creates_nothing(bootstrap_servers: str, unique: Callable[[str], str]) -> None:
    settings = load_settings(bootstrap_servers=bootstrap_servers)
    name = unique("t-dry")
    report = ensure_topics(settings, [TopicSpec(name, 2)], dry_run=True)
    assert report.created == [name]
    assert _partitions(AdminClient(settings.admin_config()), name) is None


def test_invalid_config_is_a_clear_error(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    result = CliRunner().invoke(
        cli, ["--bootstrap-servers", bootstrap_servers, "topics", "apply", "/dev/null"]
    )
    assert result.exit_code == 1
    assert "no [topics" in result.output
    assert "Traceback" not in result.output


def test_cli_apply_list_describe(
    bootstrap_servers: str, unique: Callable[[str], str], tmp_path: Path
) -> None:
    name = unique("t-cli")
    spec = tmp_path / "topics.toml"
    spec.write_text(
        f'[topics."{name}"]\npartitions = 2\nconfigs = {{ "retention.ms" = "60000" }}\n'
    )
    runner = CliRunner()
    base = ["--bootstrap-servers", bootstrap_servers, "topics"]

    result = runner.invoke(cli, [*base, "apply", str(spec), "-o", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["created"] == [name]

    result = runner.invoke(cli, [*base, "list", "-o", "json"])
    (row,) = [r for r in json.loads(result.output) if r["topic"] == name]
    assert row["partitions"] == 2
    assert row["replication_factor"] >= 1

    result = runner.invoke(cli, [*base, "describe", name, "-o", "json"])
    described = json.loads(result.output)
    assert [p["partition"] for p in described["partitions"]] == [0, 1]
    assert described["configs"]["retention.ms"] == "60000"

    spec.write_text(f'[topics."{name}"]\npartitions = 4\n')
    result = runner.invoke(cli, [*base, "apply", str(spec)])
    assert result.exit_code == 3
    assert "DRIFT partitions" in result.output

    result = runner.invoke(cli, [*base, "describe", unique("missing")])
    assert result.exit_code == 1
    assert "does not exist" in result.output
