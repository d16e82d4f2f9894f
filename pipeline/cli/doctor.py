"""``pipeline doctor``: check settings, broker reachability and broker version; say how to fix."""

from __future__ import annotations

import socket
from dataclasses import dataclass

import click

from pipeline._admin import admin_client, cluster_metadata
from pipeline._errors import ConfigError, PipelineError
from pipeline._kafka_protocol import Security, api_versions, describe_generation
from pipeline._settings import Settings

from ._context import CliContext
from ._output import OUTPUT_OPTION, print_json, print_table

__all__ = ["doctor"]

CONNECT_TIMEOUT_S = 2.0
METADATA_TIMEOUT_S = 5.0


@dataclass
class Check:
    """One line of the doctor's report."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def _split(server: str) -> tuple[str, int]:
    host, _, port = server.rpartition(":")
    return host, int(port)


def _check_tcp(settings: Settings) -> Check:
    failures = []
    for server in settings.bootstrap_servers.split(","):
        try:
            with socket.create_connection(_split(server), timeout=CONNECT_TIMEOUT_S):
                return Check("bootstrap", True, f"{server} accepts connections")
        except OSError as exc:
            failures.append(f"{server}: {exc.strerror or exc}")
    return Check(
        "bootstrap",
        False,
        "no bootstrap server accepts connections (" + "; ".join(failures) + ")",
        "start a broker (`scripts/kafka-local up`) or point PIPELINE_BOOTSTRAP_SERVERS / "
        "--bootstrap-servers at a running cluster",
    )


def _check_metadata(settings: Settings) -> Check:
    try:
        meta = cluster_metadata(admin_client(settings), settings, METADATA_TIMEOUT_S)
    except PipelineError as exc:
        return Check(
            "metadata",
            False,
            str(exc),
            "check security settings (PIPELINE_SECURITY_PROTOCOL, PIPELINE_SASL_*) and that "
            "the advertised listeners are reachable from here",
        )
    brokers = ", ".join(f"{b.id}@{b.host}:{b.port}" for b in meta.brokers.values())
    return Check("metadata", True, f"{len(meta.brokers)} broker(s): {brokers}")


def _probe_security(settings: Settings) -> Security | str | None:
    """The probe's TLS and SCRAM settings; a string says why the probe cannot speak them."""
    if settings.security_protocol == "PLAINTEXT":
        return None
    scram = settings.sasl_mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512")
    if settings.security_protocol != "SASL_SSL" or not scram:
        return "skipped (the probe speaks plaintext, or SASL_SSL with SCRAM)"
    password = settings.sasl_password
    if settings.ssl_ca_location is None or password is None or not settings.sasl_username:
        return "skipped (the probe needs PIPELINE_SSL_CA_LOCATION and the SASL credentials)"
    return Security(
        ca_file=str(settings.ssl_ca_location),
        username=settings.sasl_username,
        password=password.get_secret_value(),
        mechanism=str(settings.sasl_mechanism),
    )


def _check_version(settings: Settings) -> Check:
    security = _probe_security(settings)
    if isinstance(security, str):
        return Check("broker version", True, security)
    host, port = _split(settings.bootstrap_servers.split(",")[0])
    try:
        versions = api_versions(host, port, CONNECT_TIMEOUT_S, security)
        generation = describe_generation(versions)
    except (OSError, KeyError) as exc:
        return Check("broker version", False, f"ApiVersions probe failed: {exc}")
    ok = generation.startswith("Apache Kafka 4")
    fix = "" if ok else "event-pipeline is tested against Apache Kafka 4.x; upgrade the cluster"
    return Check("broker version", ok, generation, fix)


def run_checks(obj: CliContext) -> list[Check]:
    """Run every check in order, skipping broker checks when an earlier one makes them moot."""
    try:
        settings = obj.settings
    except ConfigError as exc:
        return [Check("settings", False, str(exc), "fix or unset the named PIPELINE_* variable")]
    checks = [
        Check(
            "settings",
            True,
            f"bootstrap={settings.bootstrap_servers} security={settings.security_protocol} "
            f"group.protocol={settings.group_protocol}",
        )
    ]
    checks.append(_check_tcp(settings))
    if checks[-1].ok:
        checks.append(_check_metadata(settings))
    if checks[-1].ok:
        checks.append(_check_version(settings))
    return checks


@click.command()
@OUTPUT_OPTION
@click.pass_obj
def doctor(obj: CliContext, output: str) -> None:
    """Check settings, broker reachability and version; print what is wrong and how to fix it."""
    checks = run_checks(obj)
    if output == "json":
        print_json([vars(c) for c in checks])
    else:
        rows = [
            (c.name, "ok" if c.ok else "FAIL", c.detail + (f"\nfix: {c.fix}" if c.fix else ""))
            for c in checks
        ]
        print_table("pipeline doctor", ["check", "result", "detail"], rows)
    failed = [c for c in checks if not c.ok]
    if failed:
        raise click.ClickException(f"{len(failed)} check(s) failed: {failed[0].detail}")
