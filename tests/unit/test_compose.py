"""docker-compose.kafka.yml: valid against the Compose specification, and consistent with the code.

No Docker engine runs here, so the file is checked statically: the ``compose-spec`` package (the
Rust ``compose_spec`` crate) parses it with the specification's types and rejects unknown keys
and malformed values; the rest checks what the specification cannot know.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest

from pipeline._settings import Settings

compose_spec = pytest.importorskip("compose_spec")

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.kafka.yml"
EXAMPLE_SERVICES = {
    "topics-init", "scheduler", "lag-exporter", "payments", "fulfillment", "notifications",
    "order-service",
}  # fmt: skip


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = compose_spec.PyCompose.from_yaml(COMPOSE.read_text()).to_dict()
    return data


def _kafka_internal_listener(kafka: dict[str, Any]) -> str:
    advertised = kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    inter_broker = kafka["environment"]["KAFKA_INTER_BROKER_LISTENER_NAME"]
    for listener in advertised.split(","):
        name, _, address = listener.partition("://")
        if name == inter_broker:
            return address
    raise AssertionError(f"no {inter_broker} listener in {advertised}")


def test_the_spec_rejects_what_is_not_compose() -> None:
    with pytest.raises(ValueError, match="bogus"):
        compose_spec.PyCompose.from_yaml("services:\n  a:\n    image: x\n    bogus: 1\n")
    with pytest.raises(ValueError, match="ports"):
        compose_spec.PyCompose.from_yaml("services:\n  a:\n    image: x\n    ports: 12\n")


def test_the_compose_file_is_valid(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) >= EXAMPLE_SERVICES
    for name, service in compose["services"].items():
        for dependency in service.get("depends_on", {}):
            assert dependency in compose["services"], f"{name} depends on unknown {dependency}"


def test_example_services_use_the_repo_image_and_the_internal_listener(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    internal = _kafka_internal_listener(services["kafka"])
    assert internal == "kafka:29092"
    for name in EXAMPLE_SERVICES:
        service = services[name]
        assert service["build"] == ".", name
        assert service["environment"]["PIPELINE_BOOTSTRAP_SERVERS"] == internal, name
        assert service["depends_on"]["kafka"]["condition"] == "service_healthy", name
        if name != "topics-init":
            condition = service["depends_on"]["topics-init"]["condition"]
            assert condition == "service_completed_successfully", name
    assert (REPO / "Dockerfile").is_file()
    assert services["topics-init"]["command"] == ["topics", "apply", "examples/topics.toml"]
    assert (REPO / "examples" / "topics.toml").is_file()


def test_host_port_matches_the_default_bootstrap_servers(compose: dict[str, Any]) -> None:
    default = Settings.model_fields["bootstrap_servers"].default
    port = default.rpartition(":")[2]
    ports = compose["services"]["kafka"]["ports"]
    assert any(str(p).endswith(f":{port}:{port}") for p in ports), (ports, default)
    advertised = compose["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert f"localhost:{port}" in advertised


def test_lag_exporter_port_is_the_cli_default_and_prometheus_scrapes_it(
    compose: dict[str, Any],
) -> None:
    lag_cli = importlib.import_module("pipeline.cli.lag")
    serve_port = next(p for p in lag_cli.serve.params if p.name == "port").default
    exporter = compose["services"]["lag-exporter"]
    command = exporter["command"]
    assert command[:2] == ["lag", "serve"]
    assert command[command.index("--port") + 1] == str(serve_port)
    assert any(str(p).endswith(f":{serve_port}:{serve_port}") for p in exporter["ports"])
    prometheus = (REPO / "deploy" / "prometheus" / "prometheus.yml").read_text()
    assert f'"lag-exporter:{serve_port}"' in prometheus


def test_mounted_config_exists_in_the_repo(compose: dict[str, Any]) -> None:
    for name in ("prometheus", "grafana"):
        for volume in compose["services"][name]["volumes"]:
            source = str(volume).split(":")[0]
            assert (REPO / source).exists(), f"{name} mounts {source}, which is not in the repo"


def test_worker_targets_are_importable_workers(compose: dict[str, Any]) -> None:
    from consumers import Worker

    targets = []
    for name, service in compose["services"].items():
        command = service.get("command") or []
        if command[:2] == ["worker", "run"]:
            targets.append(command[2])
            module_name, _, attr = command[2].partition(":")
            app = getattr(importlib.import_module(module_name), attr)
            assert isinstance(app, Worker), name
            ready = service["healthcheck"]["test"][-1]
            port = command[command.index("--metrics-port") + 1]
            assert re.search(rf":{port}/readyz", ready), name
    assert len(targets) == 3


def test_order_service_module_is_importable(compose: dict[str, Any]) -> None:
    entrypoint = compose["services"]["order-service"]["entrypoint"]
    assert entrypoint[:2] == ["python", "-m"]
    module = importlib.import_module(entrypoint[2])
    assert callable(module.main)
