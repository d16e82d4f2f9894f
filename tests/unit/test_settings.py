"""Settings: environment parsing, librdkafka passthrough, unknown keys and secret masking."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import ConfigError, Settings, load_settings, redact_config


def test_defaults_match_design(clean_env: pytest.MonkeyPatch) -> None:
    s = load_settings()
    assert s.bootstrap_servers == "localhost:9092"
    conf = s.producer_config()
    assert conf["enable.idempotence"] is True
    assert conf["acks"] == "all"
    assert conf["partitioner"] == "murmur2_random"
    consumer = s.consumer_config("g1")
    assert consumer["group.id"] == "g1"
    assert consumer["enable.auto.commit"] is False
    assert consumer["enable.auto.offset.store"] is False
    assert consumer["partition.assignment.strategy"] == "cooperative-sticky"


def test_environment_is_read(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("PIPELINE_BOOTSTRAP_SERVERS", "k1:9092, k2:9093")
    clean_env.setenv("PIPELINE_CLIENT_ID", "orders-svc")
    clean_env.setenv("PIPELINE_GROUP_PROTOCOL", "consumer")
    s = load_settings()
    assert s.bootstrap_servers == "k1:9092,k2:9093"
    assert s.admin_config()["client.id"] == "orders-svc"
    consumer = s.consumer_config("g")
    assert consumer["group.protocol"] == "consumer"
    assert "partition.assignment.strategy" not in consumer


def test_cli_override_wins_over_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("PIPELINE_BOOTSTRAP_SERVERS", "env:9092")
    assert load_settings(bootstrap_servers="flag:9093").bootstrap_servers == "flag:9093"
    assert load_settings(bootstrap_servers=None).bootstrap_servers == "env:9092"


def test_passthrough_dots_and_scopes(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("PIPELINE_KAFKA__SOCKET__KEEPALIVE__ENABLE", "true")
    clean_env.setenv("PIPELINE_PRODUCER__LINGER__MS", "25")
    clean_env.setenv("PIPELINE_PRODUCER__COMPRESSION__TYPE", "zstd")
    clean_env.setenv("PIPELINE_CONSUMER__FETCH__MIN__BYTES", "1024")
    s = load_settings()
    producer, consumer, admin = s.producer_config(), s.consumer_config("g"), s.admin_config()
    assert producer["linger.ms"] == "25"
    assert producer["compression.type"] == "zstd"  # overrides the lz4 default
    assert "fetch.min.bytes" not in producer
    assert consumer["fetch.min.bytes"] == "1024"
    for conf in (producer, consumer, admin):
        assert conf["socket.keepalive.enable"] == "true"


def test_explicit_overrides_win(clean_env: pytest.MonkeyPatch) -> None:
    s = load_settings()
    assert s.producer_config(acks="1")["acks"] == "1"


@pytest.mark.parametrize(
    ("var", "named"),
    [
        ("PIPELINE_KAFKA__LINGR__MS", "lingr.ms"),
        ("PIPELINE_PRODUCER__NOT__A__PROPERTY", "not.a.property"),
        ("PIPELINE_CONSUMER__AUTO__OFFSET__RESTE", "auto.offset.reste"),
    ],
)
def test_unknown_librdkafka_key_is_rejected_by_name(
    clean_env: pytest.MonkeyPatch, var: str, named: str
) -> None:
    clean_env.setenv(var, "1")
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_settings()


def test_invalid_librdkafka_value_is_rejected(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("PIPELINE_PRODUCER__ACKS", "most")
    with pytest.raises(ConfigError, match="acks"):
        load_settings()


def test_misspelled_setting_suggests_the_right_one(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("PIPELINE_BOOTSTRAP_SERVER", "x:1")
    with pytest.raises(ConfigError, match="did you mean PIPELINE_BOOTSTRAP_SERVERS"):
        load_settings()


@pytest.mark.parametrize("value", ["", "nohost", "host:notaport", "host:70000"])
def test_bad_bootstrap_servers(clean_env: pytest.MonkeyPatch, value: str) -> None:
    clean_env.setenv("PIPELINE_BOOTSTRAP_SERVERS", value)
    with pytest.raises(ConfigError, match="PIPELINE_BOOTSTRAP_SERVERS"):
        load_settings()


def test_sasl_needs_credentials_and_protocol(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("PIPELINE_SASL_MECHANISM", "SCRAM-SHA-512")
    clean_env.setenv("PIPELINE_SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(ConfigError, match="PIPELINE_SASL_USERNAME"):
        load_settings()
    clean_env.setenv("PIPELINE_SECURITY_PROTOCOL", "SSL")
    clean_env.setenv("PIPELINE_SASL_USERNAME", "u")
    clean_env.setenv("PIPELINE_SASL_PASSWORD", "p")
    with pytest.raises(ConfigError, match="SASL_SSL"):
        load_settings()


SECRET = "s3cr3t-Value-42"


def test_secrets_never_shown(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("PIPELINE_SECURITY_PROTOCOL", "SASL_SSL")
    clean_env.setenv("PIPELINE_SASL_MECHANISM", "PLAIN")
    clean_env.setenv("PIPELINE_SASL_USERNAME", "svc")
    clean_env.setenv("PIPELINE_SASL_PASSWORD", SECRET)
    clean_env.setenv("PIPELINE_SSL_KEY_PASSWORD", SECRET + "k")
    clean_env.setenv("PIPELINE_KAFKA__SASL__OAUTHBEARER__CLIENT__SECRET", SECRET + "o")
    s = load_settings()
    for text in (str(s), repr(s), format(s)):
        assert SECRET not in text
    # The value still reaches librdkafka...
    conf = s.producer_config()
    assert conf["sasl.password"] == SECRET
    assert conf["sasl.oauthbearer.client.secret"] == SECRET + "o"
    # ...but a redacted copy is what gets logged or printed.
    assert SECRET not in repr(redact_config(conf))


def test_secret_not_in_error_message(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("PIPELINE_SASL_PASSWORD", SECRET)
    clean_env.setenv("PIPELINE_SASL_MECHANISM", "PLAIN")  # but protocol is PLAINTEXT
    clean_env.setenv("PIPELINE_SASL_USERNAME", "svc")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert SECRET not in str(info.value)


def test_password_file_fills_the_password_and_is_never_shown(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret_file = tmp_path / "app.password"
    secret_file.write_text(SECRET + "\n")
    clean_env.setenv("PIPELINE_SECURITY_PROTOCOL", "SASL_SSL")
    clean_env.setenv("PIPELINE_SASL_MECHANISM", "SCRAM-SHA-512")
    clean_env.setenv("PIPELINE_SASL_USERNAME", "app")
    clean_env.setenv("PIPELINE_SASL_PASSWORD_FILE", str(secret_file))
    s = load_settings()
    assert s.producer_config()["sasl.password"] == SECRET
    for text in (str(s), repr(s)):
        assert SECRET not in text
    clean_env.setenv("PIPELINE_SASL_PASSWORD", "other")
    with pytest.raises(ConfigError, match="not both"):
        load_settings()


@pytest.mark.parametrize(("content", "reason"), [(None, "No such file"), ("", "empty")])
def test_password_file_problems_name_the_path(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, content: str | None, reason: str
) -> None:
    secret_file = tmp_path / "app.password"
    if content is not None:
        secret_file.write_text(content)
    clean_env.setenv("PIPELINE_SASL_PASSWORD_FILE", str(secret_file))
    with pytest.raises(ConfigError, match=reason) as info:
        load_settings()
    assert str(secret_file) in str(info.value)


def test_settings_are_frozen(clean_env: pytest.MonkeyPatch) -> None:
    s = Settings()
    with pytest.raises(Exception, match="frozen"):
        s.client_id = "x"  # type: ignore[misc]


def test_service_command_variables_are_not_typos(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("PIPELINE_SCHEDULER_TIERS", "1s,10s")
    clean_env.setenv("PIPELINE_WORKER_INSTANCE_ID", "w-1")
    assert load_settings().bootstrap_servers == "localhost:9092"
    clean_env.setenv("PIPELINE_SCHEDULER_TIER", "1s")
    with pytest.raises(ConfigError, match="PIPELINE_SCHEDULER_TIER"):
        load_settings()


@pytest.mark.parametrize(
    ("var", "key"),
    [
        ("PIPELINE_PRODUCER__LINGER__MS", "linger.ms"),  # librdkafka: queue.buffering.max.ms
        ("PIPELINE_KAFKA__ACKS", "acks"),  # librdkafka: request.required.acks
        ("PIPELINE_PRODUCER__COMPRESSION__TYPE", "compression.type"),  # compression.codec
        ("PIPELINE_CONSUMER__LINGER__MS", "linger.ms"),
    ],
)
def test_bad_value_of_an_alias_names_what_the_user_set(
    clean_env: pytest.MonkeyPatch, var: str, key: str
) -> None:
    clean_env.setenv(var, "abc")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert f"{var}='abc'" in message
    assert f'"{key}"' in message
    for canonical in ("queue.buffering.max.ms", "request.required.acks", "compression.codec"):
        assert canonical not in message
    assert "\n" not in message


def test_bad_secret_passthrough_value_is_not_shown(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("PIPELINE_KAFKA__SSL__KEY__PASSWORD", SECRET)
    clean_env.setenv("PIPELINE_KAFKA__SOCKET__TIMEOUT__MS", "soon")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "PIPELINE_KAFKA__SOCKET__TIMEOUT__MS='soon'" in str(info.value)
    assert SECRET not in str(info.value)
