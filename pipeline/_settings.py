"""Connection and client settings: one pydantic-settings model read from ``PIPELINE_*``.

Environment variables (DESIGN.md section 9):

* ``PIPELINE_BOOTSTRAP_SERVERS`` (default ``localhost:9092``), ``PIPELINE_CLIENT_ID``,
  ``PIPELINE_SCHEMA_REGISTRY_URL``, ``PIPELINE_SECURITY_PROTOCOL``, ``PIPELINE_SASL_MECHANISM``,
  ``PIPELINE_SASL_USERNAME``, ``PIPELINE_SASL_PASSWORD`` (secret) or ``PIPELINE_SASL_PASSWORD_FILE``
  (a file holding it), ``PIPELINE_SSL_CA_LOCATION``,
  ``PIPELINE_SSL_CERTIFICATE_LOCATION``, ``PIPELINE_SSL_KEY_LOCATION``,
  ``PIPELINE_SSL_KEY_PASSWORD`` (secret), ``PIPELINE_GROUP_PROTOCOL`` (``classic`` or
  ``consumer``), ``PIPELINE_SCHEMAS_DIR``, ``PIPELINE_PRODUCER_OUTBOX`` (the producer outbox's
  SQLite file; unset: no outbox).
* librdkafka passthrough, dots written as ``__``: ``PIPELINE_KAFKA__<prop>`` for every client,
  ``PIPELINE_PRODUCER__<prop>``, ``PIPELINE_CONSUMER__<prop>`` and ``PIPELINE_ADMIN__<prop>`` for
  one kind only. ``PIPELINE_KAFKA__LINGER__MS=20`` sets ``linger.ms=20``.

Passthrough keys and values are checked by librdkafka itself (a client is built without any
broker address, so nothing touches the network); an unknown key raises ``ConfigError`` naming
it. Any other ``PIPELINE_*`` variable that is not a setting is rejected the same way, so a typo
never silently falls back to a default.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ._errors import ConfigError

__all__ = ["ClientKind", "Settings", "load_settings", "redact_config"]

ClientKind = Literal["producer", "consumer", "admin"]

ENV_PREFIX = "PIPELINE_"
_PASSTHROUGH = {"KAFKA": "kafka", "PRODUCER": "producer", "CONSUMER": "consumer", "ADMIN": "admin"}
# librdkafka names the property it rejects in quotes, by its canonical name (never an alias).
_PROPERTY = re.compile(r'(configuration property:? )"[^"]*"')
_SECRET_KEY = re.compile(r"(password|secret|\.pem$|token|credentials)", re.IGNORECASE)
LIBRDKAFKA_LOGGER = logging.getLogger("pipeline.librdkafka")
CONSOLE_TOKEN_ENV = "PIPELINE_CONSOLE_TOKEN"
"""The bearer token of `pipeline console` (a secret: never logged or printed)."""
# Options of the service commands (`pipeline scheduler run`, `pipeline worker run`) that click
# reads from the environment; they are not connection settings, but they are not typos either.
SERVICE_VARIABLES = frozenset(
    {
        "PIPELINE_SCHEDULER_TOPIC",
        "PIPELINE_SCHEDULER_TIERS",
        "PIPELINE_SCHEDULER_DLQ_TOPIC",
        "PIPELINE_SCHEDULER_GROUP",
        "PIPELINE_SCHEDULER_INSTANCE_ID",
        "PIPELINE_WORKER_INSTANCE_ID",
        "PIPELINE_WORKER_COMMIT_INTERVAL",
        "PIPELINE_WORKER_MAX_IN_FLIGHT",
        CONSOLE_TOKEN_ENV,
    }
)

PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "partitioner": "murmur2_random",
    "compression.type": "lz4",
    "linger.ms": 5,
}
CONSUMER_DEFAULTS: dict[str, Any] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "auto.offset.reset": "earliest",
}
# Classic groups: a member that dies without leaving (kill -9, a lost host) holds up every
# rebalance until its session expires, and the restart of any member starts one. librdkafka's
# 45 s default froze a whole group for over a minute after three crashes. 6 s (the broker's
# lowest allowed by default) with a heartbeat every 2 s resumes in about 6 s; the cost: a
# member whose heartbeats cannot reach the coordinator for 6 s (a network blip, a broker
# pause) is evicted and its partitions move. The heartbeat thread runs inside librdkafka, so
# a busy or stuck handler never stops it. README "Recovery after a crash" has the figures.
CLASSIC_GROUP_DEFAULTS: dict[str, Any] = {
    "partition.assignment.strategy": "cooperative-sticky",
    "session.timeout.ms": 6_000,
    "heartbeat.interval.ms": 2_000,
}


def _passthrough_key(raw: str) -> str:
    return raw.lower().replace("__", ".")


def redact_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of a librdkafka config dict that is safe to log or print."""
    return {k: ("**********" if _SECRET_KEY.search(k) else v) for k, v in config.items()}


class Settings(BaseSettings):
    """Connection settings for every client the pipeline builds.

    Secrets are ``SecretStr``: ``str()`` and ``repr()`` never show them, nor passthrough values
    whose key names a password, secret, token or PEM key.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", frozen=True, validate_default=True
    )

    bootstrap_servers: str = "localhost:9092"
    client_id: str = "event-pipeline"
    schema_registry_url: str | None = None
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: (
        Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI"] | None
    ) = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    sasl_password_file: Path | None = None
    """A file holding the SASL password (one line); read once, never shown."""
    ssl_ca_location: Path | None = None
    ssl_certificate_location: Path | None = None
    ssl_key_location: Path | None = None
    ssl_key_password: SecretStr | None = None
    group_protocol: Literal["classic", "consumer"] = "classic"
    schemas_dir: Path | None = None
    producer_outbox: Path | None = None
    """The durable producer outbox (a SQLite file) every ``EventProducer`` uses; None: off."""
    kafka: dict[str, str] = Field(default_factory=dict)
    producer: dict[str, str] = Field(default_factory=dict)
    consumer: dict[str, str] = Field(default_factory=dict)
    admin: dict[str, str] = Field(default_factory=dict)

    @field_validator("bootstrap_servers")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        servers = [s.strip() for s in value.split(",") if s.strip()]
        if not servers:
            raise ValueError("must name at least one host:port")
        for server in servers:
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{server!r} is not host:port")
        return ",".join(servers)

    @model_validator(mode="before")
    @classmethod
    def _read_password_file(cls, data: Any) -> Any:
        """``sasl_password_file`` fills ``sasl_password``; setting both is ambiguous."""
        if not isinstance(data, dict) or data.get("sasl_password_file") in (None, ""):
            return data
        path = Path(str(data["sasl_password_file"]))
        if data.get("sasl_password") not in (None, ""):
            raise ValueError("set PIPELINE_SASL_PASSWORD or PIPELINE_SASL_PASSWORD_FILE, not both")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8"
            raise ValueError(f"sasl_password_file {path}: cannot read it ({reason})") from None
        if not lines or not lines[0]:
            raise ValueError(f"sasl_password_file {path}: the file is empty")
        return {**data, "sasl_password": SecretStr(lines[0])}

    @model_validator(mode="after")
    def _check_security(self) -> Settings:
        needs_password = self.sasl_mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
        if needs_password and (not self.sasl_username or self.sasl_password is None):
            raise ValueError(
                f"sasl_mechanism {self.sasl_mechanism} needs PIPELINE_SASL_USERNAME and "
                "PIPELINE_SASL_PASSWORD (or PIPELINE_SASL_PASSWORD_FILE)"
            )
        if self.sasl_mechanism and not self.security_protocol.startswith("SASL"):
            raise ValueError(
                f"sasl_mechanism is set but security_protocol is {self.security_protocol}; "
                "use SASL_SSL or SASL_PLAINTEXT"
            )
        for kind in ("producer", "consumer", "admin"):
            self._check_passthrough(kind)
        return self

    def _check_passthrough(self, kind: ClientKind) -> None:
        """Let librdkafka judge the config; a rejection names the variable the user set.

        librdkafka reports an alias by its canonical name (``linger.ms`` as
        ``queue.buffering.max.ms``), so the culprit is found by trying each passthrough entry on
        its own, and the message names it as written.
        """
        conf = self._client_config(kind)
        message = _librdkafka_rejects(kind, conf)
        if message is None:
            return
        user = {k: ("KAFKA", v) for k, v in self.kafka.items()}
        user.update({k: (kind.upper(), v) for k, v in getattr(self, kind).items()})
        base = {k: v for k, v in conf.items() if k not in user}
        for key, (scope, value) in user.items():
            own = _librdkafka_rejects(kind, {**base, key: value})
            if own is not None:
                shown = "**********" if _SECRET_KEY.search(key) else value
                named = _PROPERTY.sub(lambda m: m.group(1) + f'"{key}"', own)  # noqa: B023
                raise ValueError(f"{_variable(scope, key)}={shown!r}: librdkafka: {named}")
        raise ValueError(f"librdkafka rejected the {kind} config: {message}")

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            if name in _PASSTHROUGH.values() and isinstance(value, dict):
                yield name, redact_config(value)
            else:
                yield name, value

    # -- config builders ------------------------------------------------------------------------

    def _common(self) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": self.client_id,
            "security.protocol": self.security_protocol,
        }
        optional = {
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": self.sasl_password.get_secret_value() if self.sasl_password else None,
            "ssl.ca.location": self.ssl_ca_location,
            "ssl.certificate.location": self.ssl_certificate_location,
            "ssl.key.location": self.ssl_key_location,
            "ssl.key.password": (
                self.ssl_key_password.get_secret_value() if self.ssl_key_password else None
            ),
        }
        conf.update({k: str(v) for k, v in optional.items() if v is not None})
        return conf

    def _client_config(self, kind: ClientKind) -> dict[str, Any]:
        conf = self._common()
        if kind == "producer":
            conf.update(PRODUCER_DEFAULTS)
        elif kind == "consumer":
            conf.update(CONSUMER_DEFAULTS)
            if self.group_protocol == "consumer":
                conf["group.protocol"] = "consumer"  # session and heartbeat: the broker's
            else:
                conf.update(CLASSIC_GROUP_DEFAULTS)
        conf.update(self.kafka)
        conf.update(getattr(self, kind))
        return conf

    def producer_config(self, **overrides: Any) -> dict[str, Any]:
        """librdkafka config for a producer: safe defaults, then passthrough, then overrides."""
        return self._finish(self._client_config("producer"), overrides)

    def consumer_config(self, group_id: str | None = None, **overrides: Any) -> dict[str, Any]:
        """librdkafka config for a consumer with manual offset storage and commits."""
        conf = self._client_config("consumer")
        if group_id is not None:
            conf["group.id"] = group_id
        return self._finish(conf, overrides)

    def admin_config(self, **overrides: Any) -> dict[str, Any]:
        """librdkafka config for an admin client."""
        return self._finish(self._client_config("admin"), overrides)

    @staticmethod
    def _finish(conf: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
        conf.update(overrides)
        conf.setdefault("logger", LIBRDKAFKA_LOGGER)
        return conf


def _variable(scope: str, key: str) -> str:
    """The environment variable that sets passthrough ``key`` for ``scope`` (``PRODUCER``...)."""
    return f"{ENV_PREFIX}{scope}__{key.upper().replace('.', '__')}"


def _librdkafka_rejects(kind: ClientKind, conf: dict[str, Any]) -> str | None:
    """librdkafka's own verdict on a config (no broker address: no network); None if accepted."""
    from confluent_kafka import Consumer, KafkaException, Producer
    from confluent_kafka.admin import AdminClient

    probe = {k: v for k, v in conf.items() if k != "bootstrap.servers"}
    probe["log_level"] = 0
    try:
        if kind == "consumer":
            Consumer({**probe, "group.id": probe.get("group.id", "settings-probe")}).close()
        elif kind == "producer":
            Producer(probe)
        else:
            AdminClient(probe)
    except KafkaException as exc:
        return str(exc.args[0].str() if exc.args else exc)
    return None


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Collect ``PIPELINE_<KIND>__<prop>`` passthrough and reject unknown ``PIPELINE_*`` names."""
    fields = {name.upper() for name in Settings.model_fields}
    out: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in SERVICE_VARIABLES:
            continue
        rest = name[len(ENV_PREFIX) :]
        head, sep, tail = rest.partition("__")
        if sep and head in _PASSTHROUGH and tail:
            out.setdefault(_PASSTHROUGH[head], {})[_passthrough_key(tail)] = value
        elif rest not in fields:
            known = [ENV_PREFIX + f for f in sorted(fields - set(_PASSTHROUGH))]
            hint = difflib.get_close_matches(name, known, n=1)
            did = f" (did you mean {hint[0]}?)" if hint else ""
            raise ConfigError(f"unknown setting {name}{did}")
    return out


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the ``PIPELINE_*`` environment plus explicit overrides.

    Args:
        **overrides: values that win over the environment (for example a CLI's
            ``--bootstrap-servers``). ``None`` values are ignored.

    Raises:
        ConfigError: a value is invalid or a key is unknown; the message names it and never
            contains a secret.
    """
    passthrough = _env_overrides(os.environ)
    kwargs: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    for key, values in passthrough.items():
        kwargs[key] = {**values, **kwargs.get(key, {})}
    try:
        return Settings(**kwargs)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in err["loc"])
        name = f"{ENV_PREFIX}{loc.upper()}"
        message = err["msg"].removeprefix("Value error, ")
        parts.append(f"{name}: {message}" if loc else message)
    return "invalid settings: " + "; ".join(parts)
