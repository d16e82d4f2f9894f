"""The outbox file contract, its errors, the cap, and the CLI's errors (no broker needed)."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry

from examples.orders.events import Address, LineItem, OrderPlaced
from pipeline import (
    DeliveryError,
    OutboxCorruptError,
    OutboxFull,
    OutboxLockedError,
    load_settings,
)
from pipeline.cli import cli
from producers import (
    AsyncEventProducer,
    DeliveryResult,
    DeliveryStatus,
    EventProducer,
    OutboxConfig,
)
from producers._outbox_file import (
    APPLICATION_ID,
    VERSION,
    OutboxFile,
    decode_headers,
    encode_headers,
)
from tests.helpers import free_port


def _rows(n: int) -> list[tuple[int, str, bytes | None, bytes | None, bytes, int]]:
    return [(i, "t", b"k", b"v%d" % i, encode_headers([("h", b"\x00\xff")]), 10) for i in range(n)]


def test_new_file_follows_the_contract(tmp_path: Path) -> None:
    path = tmp_path / "ob.db"
    file = OutboxFile.open(path)
    file.insert(_rows(3))
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert conn.execute("PRAGMA user_version").fetchone()[0] == VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    columns = [r[1] for r in conn.execute("PRAGMA table_info(outbox)")]
    assert columns == ["seq", "topic", "key", "value", "headers", "size", "stored_at"]
    conn.close()
    head = file.head(10)
    assert [r.seq for r in head] == [0, 1, 2]
    assert decode_headers(head[0].headers) == [("h", b"\x00\xff")]
    summary = file.summary()
    assert (summary.records, summary.size_bytes, summary.last_seq) == (3, 30, 2)
    assert summary.keys == {("t", b"k"): 3}
    file.delete([0, 1])
    assert [r.seq for r in file.head(10)] == [2]
    file.close()


def test_synchronous_is_full_by_default_and_configurable(tmp_path: Path) -> None:
    for level, expected in (("FULL", 2), ("NORMAL", 1), ("EXTRA", 3)):
        file = OutboxFile.open(tmp_path / f"{level}.db", level)  # type: ignore[arg-type]
        assert file._conn.execute("PRAGMA synchronous").fetchone()[0] == expected
        file.close()
    default = OutboxFile.open(tmp_path / "default.db")
    assert default._conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    default.close()


def test_headers_round_trip_in_the_contract_layout() -> None:
    headers = [("a", b"1"), ("a", None), ("ce_id", bytes(range(256))), ("é", b"")]
    assert decode_headers(encode_headers(headers)) == headers
    # name length (u16 BE), name, value length (i32 BE, -1 for null), value
    assert encode_headers([("h", b"\x00\xff"), ("n", None)]) == (
        b"\x00\x01h\x00\x00\x00\x02\x00\xff" + b"\x00\x01n\xff\xff\xff\xff"
    )
    assert encode_headers(None) == b""


def test_corrupt_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(OutboxCorruptError, match=str(path)) as info:
        OutboxFile.open(path)
    assert info.value.path == str(path)


def test_foreign_sqlite_file_and_newer_version_are_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(OutboxCorruptError, match="not an event-pipeline outbox"):
        OutboxFile.open(foreign)
    newer = tmp_path / "newer.db"
    OutboxFile.open(newer).close()
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version = {VERSION + 1}")
    conn.close()
    with pytest.raises(OutboxCorruptError, match="contract version"):
        OutboxFile.open(newer)


def test_second_owner_is_refused_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "ob.db"
    first = OutboxFile.open(path)
    with pytest.raises(OutboxLockedError, match=str(path)):
        OutboxFile.open(path)
    reader = OutboxFile.open(path, own=False)  # status reads while the owner runs
    assert reader.summary().records == 0
    reader.close()
    first.close()
    OutboxFile.open(path).close()  # released on close


def test_producer_with_a_locked_outbox_fails_at_construction(tmp_path: Path) -> None:
    path = tmp_path / "ob.db"
    owner = OutboxFile.open(path)
    with pytest.raises(OutboxLockedError, match=str(path)):
        EventProducer(load_settings(), registry=CollectorRegistry(), outbox=path)
    owner.close()


def test_full_outbox_raises_and_drops_nothing(tmp_path: Path) -> None:
    """Kafka unreachable: sends are stored up to the cap, then refused with OutboxFull."""
    config = OutboxConfig(path=tmp_path / "ob.db", max_records=5)
    registry = CollectorRegistry()
    producer = EventProducer(
        load_settings(bootstrap_servers=f"127.0.0.1:{free_port()}"),
        registry=registry,
        outbox=config,
        config={"message.timeout.ms": 1000},
    )
    first = producer.send_bytes("t", b"v0", key=b"k")
    assert first is not None
    result = first.result(timeout=30)  # times out live, then stored
    assert result.status is DeliveryStatus.STORED
    assert result.stored
    assert (result.partition, result.offset) == (-1, -1)
    futures = [producer.send_bytes("t", b"v%d" % i, key=b"k") for i in range(1, 5)]
    with pytest.raises(OutboxFull, match="is full"):
        producer.send_bytes("t", b"v5", key=b"k")
    assert all(f is not None and f.result(timeout=10).stored for f in futures)
    metric = registry.get_sample_value
    assert metric("pipeline_producer_outbox_records") == 5
    assert metric("pipeline_producer_outbox_bytes") == producer.outbox.size_bytes > 0
    assert metric("pipeline_producer_outbox_stored_total", {"topic": "t"}) == 5
    assert metric("pipeline_producer_outbox_oldest_age_seconds") >= 0
    assert metric("pipeline_producer_records_sent_total", {"topic": "t"}) is None  # not sent
    assert metric("pipeline_producer_records_failed_total", {"topic": "t"}) is None
    producer.close()
    file = OutboxFile.open(config.path)
    assert [r.value for r in file.head(10)] == [b"v%d" % i for i in range(5)]
    file.close()


def test_byte_cap(tmp_path: Path) -> None:
    config = OutboxConfig(path=tmp_path / "ob.db", max_bytes=100)
    producer = EventProducer(
        load_settings(bootstrap_servers=f"127.0.0.1:{free_port()}"),
        registry=CollectorRegistry(),
        outbox=config,
    )
    assert producer.outbox is not None
    producer.outbox.down = True  # as after a timeout: straight to the outbox
    producer.send_bytes("t", b"x" * 60)
    with pytest.raises(OutboxFull) as info:
        producer.send_bytes("t", b"x" * 60)
    assert info.value.records == 1
    producer.close()


def test_outbox_setting(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("PIPELINE_PRODUCER_OUTBOX", str(tmp_path / "ob.db"))
    settings = load_settings()
    assert settings.producer_outbox == tmp_path / "ob.db"
    producer = EventProducer(settings, registry=CollectorRegistry())
    assert producer.outbox is not None
    producer.close()
    clean_env.delenv("PIPELINE_PRODUCER_OUTBOX")
    assert EventProducer(load_settings(), registry=CollectorRegistry()).outbox is None


def test_cli_status_and_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    path = tmp_path / "ob.db"
    file = OutboxFile.open(path)
    file.insert(_rows(2))
    status = runner.invoke(cli, ["outbox", "status", str(path), "-o", "json"])
    assert status.exit_code == 0, status.output
    assert '"records": 2' in status.output
    locked = runner.invoke(cli, ["outbox", "drain", str(path)])
    assert locked.exit_code == 2
    assert "in use by another process" in locked.output
    assert str(path) in locked.output
    file.close()
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"garbage" * 100)
    corrupt = runner.invoke(cli, ["outbox", "status", str(bad)])
    assert corrupt.exit_code == 2
    assert "damaged or not an outbox" in corrupt.output
    assert str(bad) in corrupt.output
    assert "Traceback" not in corrupt.output
    missing = runner.invoke(cli, ["outbox", "drain", str(tmp_path / "none.db")])
    assert missing.exit_code == 2
    assert "no outbox at" in missing.output


def test_cli_drain_exits_1_when_kafka_is_unreachable(tmp_path: Path) -> None:
    path = tmp_path / "ob.db"
    file = OutboxFile.open(path)
    file.insert(_rows(1))
    file.close()
    result = CliRunner().invoke(
        cli, ["--bootstrap-servers", f"127.0.0.1:{free_port()}", "outbox", "drain", str(path)]
    )
    assert result.exit_code == 1
    assert "cannot reach Kafka" in result.output


def _order() -> OrderPlaced:
    return OrderPlaced(
        order_id=uuid.uuid4(),
        customer_id="c-1",
        placed_at=datetime.now(UTC).replace(microsecond=0),
        items=[LineItem(sku="s", quantity=1, unit_price=Decimal("1.00"))],
        total=Decimal("1.00"),
        shipping_address=Address(line1="1", city="c", postal_code="p", country="FR"),
    )


def test_async_producer_resolves_stored_and_keeps_the_given_producer(tmp_path: Path) -> None:
    producer = EventProducer(
        load_settings(bootstrap_servers=f"127.0.0.1:{free_port()}"),
        registry=CollectorRegistry(),
        outbox=tmp_path / "ob.db",
    )
    assert producer.outbox is not None
    producer.outbox.down = True

    async def run() -> list[DeliveryResult]:
        async with AsyncEventProducer(producer) as ap:
            assert ap.producer is producer  # an idle producer (len 0) is still the one used
            return list(
                await asyncio.wait_for(
                    asyncio.gather(
                        *(ap.send(e, key="k", topic="t") for e in (_order(), _order(), _order()))
                    ),
                    30,
                )
            )

    results = asyncio.run(run())
    assert [r.status for r in results] == [DeliveryStatus.STORED] * 3


def test_sqlite_write_lock_held_elsewhere_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another connection holding the write lock: the insert fails naming the path, and a
    send that could not be stored fails (DeliveryError), it is not lost silently."""
    monkeypatch.setattr("producers._outbox_file._BUSY_TIMEOUT_MS", 100)
    path = tmp_path / "ob.db"
    producer = EventProducer(
        load_settings(bootstrap_servers=f"127.0.0.1:{free_port()}"),
        registry=CollectorRegistry(),
        outbox=path,
    )
    assert producer.outbox is not None
    producer.outbox.down = True
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    with pytest.raises(OutboxLockedError, match=str(path)):
        producer.outbox.file.insert(_rows(1))
    future = producer.send_bytes("t", b"v", key=b"k")
    assert future is not None
    error = future.exception(timeout=10)
    assert isinstance(error, DeliveryError)
    assert "locked" in str(error)
    assert str(path) in str(error)
    other.execute("ROLLBACK")
    other.close()
    assert producer.outbox.records == 0  # the failed row no longer counts against the cap
    producer.close()
