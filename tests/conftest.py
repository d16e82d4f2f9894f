"""Shared fixtures: a real Kafka for integration tests, unique names, fresh metric registries."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
KAFKA_LOCAL = REPO / "scripts" / "kafka-local"


def _reachable(servers: str) -> bool:
    for server in servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host or "localhost", int(port)), timeout=1):
                return True
        except (OSError, ValueError):
            continue
    return False


@pytest.fixture(scope="session")
def bootstrap_servers() -> Iterator[str]:
    """PIPELINE_BOOTSTRAP_SERVERS if it answers; otherwise a local broker started for the run."""
    servers = os.environ.get("PIPELINE_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    if _reachable(servers):
        yield servers
        return
    subprocess.run([sys.executable, str(KAFKA_LOCAL), "up"], check=True)
    try:
        yield "127.0.0.1:9092"
    finally:
        subprocess.run([sys.executable, str(KAFKA_LOCAL), "down"], check=False)


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Return a factory of uuid-suffixed names, so tests never share topics or groups."""

    def make(prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    return make


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Remove every PIPELINE_* variable, so settings tests see only what they set."""
    for name in list(os.environ):
        if name.startswith("PIPELINE_"):
            monkeypatch.delenv(name)
    return monkeypatch
