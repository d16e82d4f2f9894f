"""The console's JSON API (FastAPI TestClient) on the real broker, with real dead letters."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from fastapi.testclient import TestClient

from pipeline._headers import ERROR_TYPE, REDRIVEN_AT, get_header
from pipeline.console import ConsoleServices, create_app
from tests.helpers import create_topic, read_topic, wait_until
from tests.integration.console_support import SCRIPT, TOKEN, World, console_services, make_world

pytestmark = pytest.mark.kafka
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def world(bootstrap_servers: str, unique: Callable[[str], str]) -> World:
    return make_world(bootstrap_servers, unique("console"))


@pytest.fixture
def services(bootstrap_servers: str, world: World) -> Iterator[ConsoleServices]:
    with console_services(bootstrap_servers, world.group) as services:
        yield services


@pytest.fixture
def client(services: ConsoleServices) -> TestClient:
    return TestClient(create_app(services))


def _group(client: TestClient, group: str) -> dict[str, Any]:
    stats = client.get("/api/v1/stats").json()
    return next(g for g in stats["groups"] if g["group"] == group)


def test_stats_and_group(client: TestClient, world: World) -> None:
    g = _group(client, world.group)
    assert g["lag"] == world.lag
    assert g["dlq_records"] == g["dlq_pending"] == len(world.dead)
    counts = g["counts"]
    assert {k: counts[k] for k in ("lag", "dlq_pending", "dlq_records")} == {
        "lag": world.lag, "dlq_pending": 4, "dlq_records": 4,
    }  # fmt: skip
    # the per-state counts of `pipeline stats`, read by the same StatsReader
    assert {k: counts[k] for k in ("pending", "dead", "expired", "retrying", "redriven")} == {
        "pending": world.lag, "dead": 4, "expired": 0, "retrying": 0, "redriven": 0,
    }  # fmt: skip
    assert "in_flight" not in counts  # it lives in the workers, not in Kafka
    assert g["status"] in {"OK", "STALL", "STOP", "WARN"}
    assert g["history"]
    assert g["history"][-1][1] == world.lag
    detail = client.get(f"/api/v1/groups/{world.group}").json()
    assert [(p["topic"], p["committed"], p["lag"]) for p in detail["partition_lag"]] == [
        (world.source, 3, world.lag)
    ]
    missing = client.get("/api/v1/groups/no-such-group")
    assert missing.status_code == 404
    assert "no-such-group" in missing.json()["detail"]


def test_dead_letters_paged_and_decoded(client: TestClient, world: World) -> None:
    url = f"/api/v1/groups/{world.group}/dead-letters"
    first = client.get(url, params={"limit": 3}).json()
    assert [r["offset"] for r in first["records"]] == [0, 1, 2]
    assert first["next"] == "0:2"
    assert first["records"][0]["value"]["customer_id"] == "customer-0"
    assert first["records"][0]["schema"].startswith("orders.OrderPlaced")
    assert first["records"][0]["error_type"] == "builtins.ValueError"
    headers = dict(first["records"][0]["headers"])
    assert headers[ERROR_TYPE] == "builtins.ValueError"
    second = client.get(url, params={"limit": 3, "after": first["next"]}).json()
    assert [r["offset"] for r in second["records"]] == [3]
    assert second["next"] is None
    assert second["records"][0]["value"] == SCRIPT  # not Avro: shown as text
    only = client.get(url, params={"error_type": "undecodable"}).json()
    assert [r["key"] for r in only["records"]] == ["key-script"]
    bad = client.get(url, params={"after": "zero"})
    assert bad.status_code == 422
    assert bad.json()["error"].startswith("field `after`")
    assert client.get(url, params={"limit": 0}).status_code == 422
    one = client.get(f"{url}/0/1").json()
    assert one["key"] == "key-1"
    assert client.get(f"{url}/0/99").status_code == 404


def test_redrive_dry_run_then_real(
    client: TestClient, services: ConsoleServices, world: World, bootstrap_servers: str
) -> None:
    url = f"/api/v1/groups/{world.group}/dead-letters/redrive"
    dry = client.post(url, json={"dry_run": True}, headers=AUTH).json()
    assert (dry["dry_run"], dry["to_send"], dry["redriven"]) == (True, 4, 0)
    assert _group(client, world.group)["dlq_pending"] == 4
    limited = client.post(url, json={"dry_run": False, "limit": 1}, headers=AUTH).json()
    assert (limited["redriven"], limited["position"]) == (1, {"0": 1})
    real = client.post(
        url, json={"dry_run": False, "filter": {"error_type": "ValueError"}}, headers=AUTH
    ).json()
    assert (real["to_send"], real["redriven"], real["position_saved"]) == (2, 2, True)
    sent = read_topic(bootstrap_servers, f"{world.group}.retry", 3)
    assert all(get_header(m.headers() or [], REDRIVEN_AT) for m in sent)
    # The position moved past everything scanned (the filtered-out record is passed over).
    assert _group(client, world.group)["dlq_pending"] == 0
    again = client.post(url, json={"dry_run": True}, headers=AUTH).json()
    assert again["to_send"] == 0


def test_mutating_routes_need_the_token(client: TestClient, world: World) -> None:
    routes = [
        (f"/api/v1/groups/{world.group}/dead-letters/redrive", {"dry_run": True}),
        ("/api/v1/events/orders.OrderPlaced", {"event": {}}),
    ]
    for url, body in routes:
        none = client.post(url, json=body)
        assert none.status_code == 401, url
        assert none.headers["www-authenticate"] == "Bearer"
        wrong = client.post(url, json=body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 403, url
        assert TOKEN not in wrong.text
    # Every POST route of the app is one of them.
    posts = [
        path
        for path, item in client.get("/api/v1/openapi.json").json()["paths"].items()
        if "post" in item
    ]
    assert sorted(posts) == sorted(
        ["/api/v1/groups/{group}/dead-letters/redrive", "/api/v1/events/{subject}"]
    )


def test_bodies_are_validated(client: TestClient, world: World) -> None:
    url = f"/api/v1/groups/{world.group}/dead-letters/redrive"
    for body, field in [
        ({"limit": 0}, "limit"),
        ({"dry_run": "maybe"}, "dry_run"),
        ({"filter": {"since": "yesterday"}}, "filter.since"),
        ({"dryrun": True}, "dryrun"),
    ]:
        answer = client.post(url, json=body, headers=AUTH)
        assert answer.status_code == 422, body
        assert answer.json()["error"].startswith(f"field `{field}`"), answer.json()
    event = client.post(
        "/api/v1/events/orders.OrderPlaced", json={"event": {"customer_id": 5}}, headers=AUTH
    )
    assert event.status_code == 422
    assert event.json()["error"].startswith("field `event.")
    both = client.post(
        "/api/v1/events/orders.OrderPlaced",
        json={"event": {}, "delay": "5s", "deliver_at": "2030-01-01T00:00:00Z"},
        headers=AUTH,
    )
    assert both.status_code == 422
    bad_delay = client.post(
        "/api/v1/events/orders.OrderPlaced", json={"event": {}, "delay": "soon"}, headers=AUTH
    )
    assert bad_delay.json()["error"].startswith("field `delay`")


def _order_json() -> dict[str, Any]:
    return {
        "order_id": str(uuid.uuid4()),
        "customer_id": "c-42",
        "placed_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "items": [{"sku": "sku-1", "quantity": 2, "unit_price": "1.25"}],
        "total": "2.50",
        "shipping_address": {
            "line1": "1 Main St", "city": "Lyon", "postal_code": "1", "country": "FR",
        },
    }  # fmt: skip


def test_enqueue_now_and_later(
    client: TestClient, services: ConsoleServices, bootstrap_servers: str, world: World
) -> None:
    topic = f"{world.group}-enqueued"
    create_topic(bootstrap_servers, topic, partitions=1)
    now = client.post(
        "/api/v1/events/orders.OrderPlaced",
        json={"event": _order_json(), "topic": topic, "key": "c-42"},
        headers=AUTH,
    )
    assert now.status_code == 200, now.text
    assert (now.json()["topic"], now.json()["scheduled"]) == (topic, False)
    (msg,) = read_topic(bootstrap_servers, topic, 1)
    assert services.codec is not None
    _, datum = services.codec.decode_datum(msg.value() or b"")
    assert datum["customer_id"] == "c-42"
    entry = services.state.scheduler_config.topic
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    admin.create_topics([NewTopic(entry, 1)])[entry].exception(timeout=30)  # exists: fine
    wait_until(lambda: entry in admin.list_topics(timeout=10).topics)
    before = _pending(client, "entry")
    later = client.post(
        "/api/v1/events/orders.OrderPlaced",
        json={"event": _order_json(), "topic": topic, "deliver_at": _in(timedelta(hours=1))},
        headers=AUTH,
    ).json()
    assert (later["topic"], later["target_topic"], later["scheduled"]) == (entry, topic, True)
    wait_until(lambda: _pending(client, "entry") == before + 1)  # the scheduler backlog
    precise = {**_order_json(), "placed_at": "2030-01-01T00:00:00.000001Z"}
    refused = client.post(
        "/api/v1/events/orders.OrderPlaced", json={"event": precise}, headers=AUTH
    )
    assert refused.status_code == 422
    assert "sub-millisecond" in refused.json()["error"]
    unknown = client.post("/api/v1/events/no.Such", json={"event": {}}, headers=AUTH)
    assert unknown.status_code == 404


def _in(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


def _pending(client: TestClient, tier: str) -> int:
    rows = client.get("/api/v1/stats").json()["scheduler"]
    return sum(r["pending"] for r in rows if r["tier"] == tier)


def test_health_metrics_and_openapi(client: TestClient, world: World) -> None:
    assert client.get("/healthz").json() == {"ok": True}
    assert client.get("/api/v1/readyz").status_code == 200
    metrics = client.get("/metrics").text
    assert f'pipeline_consumergroup_lag_sum{{group="{world.group}"}} {world.lag}.0' in metrics
    doc = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/stats" in doc["paths"]
    assert "/api/v1/groups/{group}/dead-letters" in doc["paths"]


def test_pages_escape_payloads(client: TestClient, world: World) -> None:
    index = client.get("/").text
    assert world.group in index
    page = client.get(f"/groups/{world.group}").text
    assert "key-script" in page
    record = client.get(f"/groups/{world.group}/dead-letters/0/3").text
    assert SCRIPT not in record
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in record
    assert "<script>window" not in page
