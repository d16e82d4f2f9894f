"""Pure logic of the delivery modes: the enum, option mapping, request headers, names."""

from __future__ import annotations

import pytest

from consumers import RetryPolicy, WorkerOptions
from consumers._reply import _deadline_passed, request_fields
from pipeline import ConfigError, DeliveryGuarantee, QuorumNotReached, RemoteError, parse_guarantee
from pipeline._headers import ACK_TO, CE_ID, CORRELATION_ID, DEADLINE, REPLY_TO
from pipeline._names import broadcast_group, reply_topic
from producers._fire_and_forget import fire_and_forget_config


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("fire-and-forget", DeliveryGuarantee.FIRE_AND_FORGET),
        ("FIRE_AND_FORGET", DeliveryGuarantee.FIRE_AND_FORGET),
        ("at_least_once", DeliveryGuarantee.AT_LEAST_ONCE),
        (" Quorum ", DeliveryGuarantee.QUORUM),
        (DeliveryGuarantee.BROADCAST, DeliveryGuarantee.BROADCAST),
    ],
)
def test_parse_guarantee(text: str, mode: DeliveryGuarantee) -> None:
    assert parse_guarantee(text) is mode


def test_unknown_guarantee_names_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="use one of: fire-and-forget, at-least-once"):
        parse_guarantee("maybe")


def test_worker_options_map_the_guarantee() -> None:
    assert WorkerOptions(guarantee="exactly-once").exactly_once
    assert not WorkerOptions(guarantee=DeliveryGuarantee.AT_LEAST_ONCE).exactly_once
    broadcast = WorkerOptions(guarantee="broadcast", retry=RetryPolicy(max_attempts=4))
    assert broadcast.broadcast
    assert broadcast.retry.in_place_attempts == 4  # no shared retry topic: all in place
    with pytest.raises(ConfigError, match="producer-side"):
        WorkerOptions(guarantee="fire-and-forget")
    with pytest.raises(ConfigError, match="static_membership"):
        WorkerOptions(guarantee="broadcast", instance_id="a", static_membership=True)


def test_request_fields_pick_only_request_headers() -> None:
    assert request_fields([(CE_ID, b"x")]) is None
    fields = request_fields(
        [(CE_ID, b"x"), (REPLY_TO, b"r"), (CORRELATION_ID, b"c"), (DEADLINE, b"5"), (ACK_TO, b"a")]
    )
    assert fields == {REPLY_TO: b"r", CORRELATION_ID: b"c", DEADLINE: b"5", ACK_TO: b"a"}


def test_deadline() -> None:
    assert _deadline_passed(b"1000", 1001)
    assert _deadline_passed(b"1000", 1000)
    assert not _deadline_passed(b"1000", 999)
    assert not _deadline_passed(b"soon", 10**15)  # unreadable: handled, not dropped
    assert not _deadline_passed(None, 10**15)


def test_names() -> None:
    name = reply_topic("svc one/é", "abc123")
    assert name == "pipeline.reply.svc_one__.abc123"
    assert broadcast_group("cache", "host-1") == "cache.broadcast.host-1"


def test_fire_and_forget_config_drops_the_safety_settings() -> None:
    config = fire_and_forget_config(
        {"bootstrap.servers": "b", "enable.idempotence": True, "acks": "all",
         "transactional.id": "t", "linger.ms": 5}
    )  # fmt: skip
    assert config["enable.idempotence"] is False
    assert config["acks"] == 1
    assert config["retries"] == 0
    assert config["delivery.report.only.error"] is True
    assert "transactional.id" not in config
    assert config["linger.ms"] == 5


def test_errors_carry_what_they_say() -> None:
    error = QuorumNotReached(acked=["a", "b"], required=3)
    assert error.acked == ["a", "b"]
    assert error.required == 3
    assert "2 of 3" in str(error)
    assert error.missing(["a", "c", "b"]) == ["c"]
    assert isinstance(error, TimeoutError)
    remote = RemoteError("builtins.KeyError", "'x'")
    assert remote.error_type == "builtins.KeyError"
    assert "builtins.KeyError" in str(remote)


def test_worker_run_guarantee_flag_is_checked_before_connecting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from click.testing import CliRunner

    from pipeline.cli import cli

    monkeypatch.setenv("WORKER_GROUP", "g")
    monkeypatch.setenv("WORKER_TOPIC", "t")
    args = ["--bootstrap-servers", "127.0.0.1:1", "worker", "run", "tests.workers.echo:app"]
    result = CliRunner().invoke(cli, [*args, "--guarantee", "broadcast", "--static"])
    assert result.exit_code == 1
    assert "BROADCAST worker joins no group" in result.output
    wrong = CliRunner().invoke(cli, [*args, "--guarantee", "quorum"])
    assert wrong.exit_code == 2
