"""`pipeline produce`: JSON validated into the model, encoded, sent; per-line errors reported."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from confluent_kafka import Consumer, Message

from examples.orders.events import OrderPlaced
from pipeline import load_settings
from pipeline._headers import DELIVER_AT, TARGET_TOPIC, get_header
from pipeline.avro._codec import Codec
from pipeline.cli import cli
from pipeline.scheduler._records import SchedulerConfig
from pipeline.scheduler._topics import ensure_scheduler_topics
from tests.helpers import create_topic, read_topic, wait_until

pytestmark = pytest.mark.kafka

GOOD = {
    "order_id": "7d0c3bb4-8a52-4b2b-9a4b-0a8b1e7f9c11",
    "customer_id": "c-9",
    "placed_at": "2026-11-22T10:00:00Z",
    "items": [{"sku": "a", "quantity": 1, "unit_price": "3.50"}],
    "total": "3.50",
    "shipping_address": {"line1": "x", "city": "y", "postal_code": "1", "country": "FR"},
}


def test_file_with_good_and_bad_lines(
    bootstrap_servers: str, unique: Callable[[str], str], tmp_path: Path
) -> None:
    topic = unique("cli-produce")
    create_topic(bootstrap_servers, topic)
    lines = [
        json.dumps(GOOD),
        json.dumps({**GOOD, "total": "not money"}),
        "{broken",
        "",
        json.dumps({**GOOD, "customer_id": "c-10"}),
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(
        cli,
        ["--bootstrap-servers", bootstrap_servers, "produce", "--topic", topic,
         "--type", "orders.OrderPlaced", "--key-field", "customer_id", "--file", str(path),
         "-o", "json"],
    )  # fmt: skip
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["sent"] == 2
    assert report["failed"] == 2
    assert report["errors"][0].startswith("line 2: field `total`")
    assert report["errors"][1].startswith("line 3: not JSON")
    msgs = read_topic(bootstrap_servers, topic, 2, idle=0.5)
    assert sorted(m.key() for m in msgs) == [b"c-10", b"c-9"]
    codec = Codec.from_settings(load_settings(bootstrap_servers=bootstrap_servers))
    assert {codec.decode(m.value() or b"", OrderPlaced).customer_id for m in msgs} == {
        "c-9",
        "c-10",
    }


def test_delay_goes_through_the_scheduler_topic(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    settings = load_settings(bootstrap_servers=bootstrap_servers)
    ensure_scheduler_topics(settings, SchedulerConfig())  # idempotent: the shared entry topic
    target = unique("cli-delayed")
    result = CliRunner().invoke(
        cli,
        ["--bootstrap-servers", bootstrap_servers, "produce", "--topic", target,
         "--type", "orders.OrderPlaced", "--key", "k", "--delay", "90s",
         "--json", json.dumps(GOOD)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "sent 1 event(s)" in result.stdout
    assert "scheduled" in result.stdout
    consumer = Consumer(
        {"bootstrap.servers": bootstrap_servers, "group.id": unique("g"),
         "auto.offset.reset": "earliest"}
    )  # fmt: skip
    consumer.subscribe([SchedulerConfig.topic])

    def find() -> Message | None:
        for msg in consumer.consume(500, 0.5):
            if get_header(msg.headers(), TARGET_TOPIC) == target.encode():
                return msg
        return None

    try:
        msg = wait_until(find, timeout=30)
    finally:
        consumer.close()
    assert msg.key() == b"k"
    due = int(get_header(msg.headers(), DELIVER_AT) or b"0")
    assert 80_000 < due - time.time() * 1000 <= 90_000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--type", "orders.OrderPlaced"], "exactly one of --json or --file"),
        (["--type", "nope.Nothing", "--json", "{}"], "no event model for subject 'nope.Nothing'"),
        (["--type", "orders.OrderPlaced", "--json", "{}", "--delay", "soon"], "not a duration"),
        (
            ["--type", "orders.OrderPlaced", "--json", "{}", "--at", "2026-01-01T00:00:00"],
            "no timezone",
        ),
        (
            ["--type", "orders.OrderPlaced", "--json", "{}", "--delay", "1s", "--at", "x"],
            "not both",
        ),
        (["--type", "orders.OrderPlaced", "--file", "/no/such/file"], "cannot read /no/such/file"),
    ],
)
def test_bad_arguments_are_one_line_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["--bootstrap-servers", "127.0.0.1:1", "produce", *args])
    assert result.exit_code in (1, 2)
    assert message in result.output
    assert "Traceback" not in result.output
