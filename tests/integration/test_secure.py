"""X1-X3: SASL/SCRAM-SHA-512 over TLS with ACLs, on `scripts/kafka-local up --secure`.

One private secure cluster for the module. Every command the tests run is a real subprocess
with the variables `kafka-local env` prints; everything they print is kept and searched for
the passwords at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from pipeline._settings import Settings
from tests.conftest import PrivateKafka
from tests.helpers import env_values, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PRINTED: list[str] = []  # everything any command printed, searched for secrets at the end


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    cluster = PrivateKafka(tmp_path_factory.mktemp("secure") / "kafka")
    try:
        proc = cluster.run("up", "--secure")
        PRINTED.append(proc.stdout + proc.stderr)
        assert proc.returncode == 0, proc.stderr + proc.stdout
        env = env_values(cluster.run("env").stdout)
        env["KAFKA_LOCAL_HOME"] = cluster.env["KAFKA_LOCAL_HOME"]
        yield env
    finally:
        cluster.run("down")


def _secret(env: dict[str, str], user: str) -> str:
    return (Path(env["KAFKA_LOCAL_HOME"]) / "secure" / f"{user}.password").read_text().strip()


def _settings(env: dict[str, str], user: str = "app", password: str | None = None) -> Settings:
    return Settings(
        bootstrap_servers=env["PIPELINE_BOOTSTRAP_SERVERS"],
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=user,
        sasl_password=password or _secret(env, user),
        ssl_ca_location=Path(env["PIPELINE_SSL_CA_LOCATION"]),
    )


def _admin(env: dict[str, str]) -> AdminClient:
    return AdminClient(_settings(env, "admin").admin_config())


def _create(env: dict[str, str], name: str, partitions: int = 1) -> None:
    from confluent_kafka.admin import NewTopic

    admin = _admin(env)  # kept alive until the future resolves
    admin.create_topics([NewTopic(name, partitions)])[name].result(timeout=30)


def pipeline(env: dict[str, str], *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run the `pipeline` CLI as a user would, with the cluster's environment."""
    child = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    child.update({k: v for k, v in env.items() if k.startswith("PIPELINE_")}, **extra)
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "pipeline"), *args],
        capture_output=True, text=True, env=child, timeout=120,
    )  # fmt: skip
    PRINTED.append(proc.stdout + proc.stderr)
    return proc


def _json(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return json.loads(proc.stdout)


def test_x1_good_credentials_work_end_to_end(
    secure: dict[str, str], unique: Callable[[str], str]
) -> None:
    consumers = pytest.importorskip("consumers")
    from examples.orders.events import OrderPlaced
    from producers import EventProducer
    from tests.integration.test_ops_support import order
    from tests.integration.test_worker_support import running, wait_ready

    group, topic, copy = unique("sec-g"), unique("sec-orders"), unique("sec-copy")
    settings = _settings(secure)
    for name in (topic, copy):
        _create(secure, name, 2)
    worker = consumers.Worker(group, [topic], settings=settings)
    broken = threading.Event()
    broken.set()
    handled: list[str] = []

    @worker.handler(OrderPlaced)
    def on_order(event: OrderPlaced, ctx: Any) -> None:
        if event.customer_id == "customer-0" and broken.is_set():
            raise consumers.DeadLetter("downstream is broken")
        handled.append(event.customer_id)

    with running(worker) as state:
        wait_ready(state, timeout=60)
        with EventProducer(settings) as producer:
            for i in range(3):
                producer.send(order(f"customer-{i}"), key=f"k{i}", topic=topic)
        wait_until(lambda: len(handled) >= 2, timeout=60)
        dead = wait_until(lambda: _json(pipeline(secure, "dlq", "list", "-g", group, "-o", "json")))
        assert [d["original_topic"] for d in dead] == [topic]
        lag = _json(pipeline(secure, "lag", "show", "-g", group, "-o", "json"))
        assert lag, "lag show returned no group"
        broken.clear()
        redrive = pipeline(secure, "dlq", "redrive", "-g", group, "--execute", "-o", "json")
        assert _json(redrive)["redriven"] == 1
        wait_until(lambda: "customer-0" in handled, timeout=60)
    assert sorted(handled) == ["customer-0", "customer-1", "customer-2"]
    replay = pipeline(
        secure,
        "replay",
        "--from-topic",
        topic,
        "--from-offset",
        "0",
        "--to-topic",
        copy,
        "--execute",
        "-o",
        "json",
    )
    assert replay.returncode == 0, replay.stderr + replay.stdout
    doctor = pipeline(secure, "doctor")  # its probe speaks TLS and SCRAM too
    assert doctor.returncode == 0, doctor.stderr + doctor.stdout
    assert "Apache Kafka 4.0 or newer" in doctor.stdout


@pytest.mark.parametrize("case", ["wrong password", "untrusted certificate"])
def test_x2_refused_credentials_fail_fast_in_one_line(secure: dict[str, str], case: str) -> None:
    if case == "wrong password":
        extra = {"PIPELINE_SASL_PASSWORD_FILE": "", "PIPELINE_SASL_PASSWORD": "Wr0ng-Pass-X2"}
        expected = "authentication failed"
    else:
        extra = {"PIPELINE_SSL_CA_LOCATION": "/etc/ssl/certs/ca-certificates.crt"}
        expected = "certificate verify failed"
    started = time.monotonic()
    proc = pipeline({**secure, **extra}, "topics", "list")
    took = time.monotonic() - started
    print(f"{case}: exit {proc.returncode} in {took:.1f}s: {proc.stderr.strip()}")
    assert proc.returncode == 2, proc.stderr + proc.stdout
    assert took < 10
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert expected in lines[0]
    assert "Wr0ng-Pass-X2" not in proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def limited(secure: dict[str, str]) -> dict[str, str]:
    """A user `limited` allowed to read and write `granted-*` topics and `granted-*` groups only."""
    admin = _admin(secure)
    password = "limited-" + os.urandom(8).hex()
    cred = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
    futures = admin.alter_user_scram_credentials(
        [UserScramCredentialUpsertion("limited", cred, password.encode())]
    )
    for future in futures.values():
        future.result(timeout=30)
    acls = [
        AclBinding(kind, "granted-", ResourcePatternType.PREFIXED, "User:limited", "*", op,
                   AclPermissionType.ALLOW)
        for kind, op in [
            (ResourceType.TOPIC, AclOperation.ALL),
            (ResourceType.GROUP, AclOperation.ALL),
        ]
    ]  # fmt: skip
    for future in admin.create_acls(acls).values():
        future.result(timeout=30)
    return {**secure, "PIPELINE_SASL_USERNAME": "limited", "PIPELINE_SASL_PASSWORD_FILE": "",
            "PIPELINE_SASL_PASSWORD": password}  # fmt: skip


def test_x3_denied_topic_and_group_name_what_was_denied(
    secure: dict[str, str], limited: dict[str, str], unique: Callable[[str], str]
) -> None:
    denied_topic = unique("secret-topic")
    _create(secure, f"{denied_topic}.dlq")
    topic = pipeline(limited, "dlq", "list", "-g", denied_topic)
    print("dlq list of a denied topic:", topic.stderr.strip())
    assert topic.returncode == 1
    assert "not authorized" in topic.stderr or "Authorization" in topic.stderr
    group = pipeline(limited, "lag", "show", "-g", unique("secret-group"), "-o", "json")
    print("lag show of a denied group:", group.stderr.strip(), group.stdout.strip()[:200])
    assert group.returncode != 0
    assert "secret-group" in group.stderr
    assert "authoriz" in group.stderr.lower()


def test_x3_denied_dlq_blocks_the_commit(
    secure: dict[str, str], limited: dict[str, str], unique: Callable[[str], str]
) -> None:
    """A record the worker cannot dead-letter (its DLQ is denied) is never committed past."""
    consumers = pytest.importorskip("consumers")
    from examples.orders.events import OrderPlaced
    from producers import EventProducer
    from tests.integration.test_ops_support import order
    from tests.integration.test_worker_support import running, wait_ready

    group, topic = unique("granted-g"), unique("granted-in")
    admin_settings = _settings(secure, "admin")
    dlq = f"{group}.dlq"  # granted by the prefix, so denied explicitly below
    for name, partitions in ((topic, 1), (f"{group}.retry", 3), (dlq, 3)):
        _create(secure, name, partitions)
    admin = _admin(secure)
    deny = AclBinding(ResourceType.TOPIC, dlq, ResourcePatternType.LITERAL, "User:limited", "*",
                      AclOperation.WRITE, AclPermissionType.DENY)  # fmt: skip
    for future in admin.create_acls([deny]).values():
        future.result(timeout=30)
    settings = _settings(limited, "limited", limited["PIPELINE_SASL_PASSWORD"])
    worker = consumers.Worker(group, [topic], settings=settings)
    handled: list[str] = []

    @worker.handler(OrderPlaced)
    def on_order(event: OrderPlaced, ctx: Any) -> None:
        if event.customer_id == "customer-1":
            raise consumers.DeadLetter("poison")
        handled.append(event.customer_id)

    with running(worker, create=False) as state:
        wait_ready(state, timeout=60)
        with EventProducer(admin_settings) as producer:
            for i in range(3):
                producer.send(order(f"customer-{i}"), key="same-key", topic=topic)
        # Record 2 shares the key but runs once record 1 has failed: only the copy of 1 to
        # the DLQ is stuck, retried with backoff, and it holds the commit back.
        wait_until(lambda: sorted(handled) == ["customer-0", "customer-2"], timeout=60)

        def committed() -> int:
            request = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0)])]
            result = admin.list_consumer_group_offsets(request)[group].result(timeout=30)
            return int(result.topic_partitions[0].offset)

        # Offset 0 is done, 1 cannot be dead-lettered: the commit reaches 1, never beyond.
        wait_until(lambda: committed() == 1, timeout=60)
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:  # watch it hold, while the copy is retried
            assert committed() <= 1
            time.sleep(0.5)
    print(f"denied DLQ: committed offset {committed()}, handled {handled}")


def test_no_password_in_anything_printed(secure: dict[str, str]) -> None:
    printed = "\n".join(PRINTED)
    assert printed, "the other tests printed nothing to search"
    for user in ("admin", "app"):
        assert _secret(secure, user) not in printed
    home = Path(secure["KAFKA_LOCAL_HOME"])
    logs = "".join(p.read_text(errors="replace") for p in (home / "logs").rglob("*.log"))
    for user in ("admin", "app"):
        assert _secret(secure, user) not in logs
