"""``pipeline worker run MODULE:APP``: run a consumer-group worker until SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import signal
import socket
import sys
from importlib import import_module
from pathlib import Path
from typing import Any

import click

from pipeline._admin import check_reachable
from pipeline._http import ServiceHTTPServer

from ._context import CliContext

__all__ = ["worker"]


def _load(target: str) -> Any:
    from consumers import Worker

    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise click.BadParameter(f"expected MODULE:APP, got {target!r}", param_hint="APP")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = import_module(module_name)
    except ImportError as exc:
        raise click.BadParameter(f"cannot import {module_name}: {exc}", param_hint="APP") from exc
    app = getattr(module, attr, None)
    if not isinstance(app, Worker):
        raise click.BadParameter(f"{target} is not a consumers.Worker", param_hint="APP")
    return app


@click.group()
def worker() -> None:
    """Consumer-group workers: typed handlers, retries and dead letters."""


@worker.command()
@click.argument("app", metavar="MODULE:APP")
@click.option("--concurrency", type=click.IntRange(min=1), help="Handlers running at once.")
@click.option("--exactly-once", is_flag=True, help="Consume, produce and commit transactionally.")
@click.option(
    "--guarantee",
    type=click.Choice(["at-least-once", "exactly-once", "broadcast"]),
    help="Delivery mode (README 'Delivery modes'); broadcast: every instance reads every "
    "record (give --instance-id to resume after a restart).",
)
@click.option(
    "--instance-id",
    envvar="PIPELINE_WORKER_INSTANCE_ID",
    help="Stable id of this instance (transactional id; static membership with --static).",
)
@click.option(
    "--static",
    is_flag=True,
    help="Static membership: group.instance.id = the instance id (default: the host name, "
    "for one worker per host).",
)
@click.option(
    "--commit-interval",
    type=click.FloatRange(min=0, min_open=True),
    envvar="PIPELINE_WORKER_COMMIT_INTERVAL",
    help="Seconds between offset commits while offsets move (default 1).",
)
@click.option(
    "--max-in-flight",
    type=click.IntRange(min=1),
    envvar="PIPELINE_WORKER_MAX_IN_FLIGHT",
    help="Records dispatched and not finished before the worker stops fetching (default 2000).",
)
@click.option("--drain-timeout", type=float, help="Seconds in-flight work may finish on stop.")
@click.option(
    "--create-topics/--no-create-topics",
    default=True,
    show_default=True,
    help="Create <group>.retry and <group>.dlq when missing.",
)
@click.option("--partitions", default=6, show_default=True, help="Partitions of created topics.")
@click.option("--metrics-host", default="0.0.0.0", show_default=True)
@click.option(
    "--metrics-port",
    default=0,
    show_default=True,
    help="Port of /metrics, /healthz and /readyz; 0 disables the server.",
)
@click.option("--log-level", default="INFO", show_default=True)
@click.pass_obj
def run(
    obj: CliContext,
    /,
    app: str,
    concurrency: int | None,
    exactly_once: bool,
    guarantee: str | None,
    instance_id: str | None,
    static: bool,
    commit_interval: float | None,
    max_in_flight: int | None,
    drain_timeout: float | None,
    create_topics: bool,
    partitions: int,
    metrics_host: str,
    metrics_port: int,
    log_level: str,
) -> None:
    """Run the worker APP (a ``consumers.Worker`` in MODULE) until SIGINT or SIGTERM."""
    from consumers import ensure_worker_topics

    logging.getLogger("consumers").setLevel(log_level.upper())
    app_worker = _load(app)
    overrides: dict[str, Any] = {}
    if concurrency is not None:
        overrides["concurrency"] = concurrency
    if exactly_once:
        overrides["exactly_once"] = True
    if guarantee is not None:
        overrides["guarantee"] = guarantee
    if static and not instance_id:
        instance_id = socket.gethostname()
        click.echo(f"static membership as {instance_id!r} (the host name)", err=True)
    if instance_id:
        overrides["instance_id"] = instance_id
    if static:
        overrides["static_membership"] = True
    if commit_interval is not None:
        overrides["commit_interval_s"] = commit_interval
    if max_in_flight is not None:
        overrides["max_in_flight"] = max_in_flight
    if drain_timeout is not None:
        overrides["drain_timeout_s"] = drain_timeout
    app_worker.configure(**overrides)
    if app_worker.settings is None:
        app_worker.settings = obj.settings
    # Unreachable at start: exit 1 in one line (the consumer would otherwise retry forever).
    check_reachable(app_worker.settings)
    if create_topics:
        options = app_worker.options
        report = ensure_worker_topics(
            app_worker.settings,
            app_worker.group,
            partitions=partitions,
            retry_topic=options.retry_topic,
            dlq_topic=options.dlq_topic,
        )
        for topic in report.created:
            click.echo(f"created topic {topic}", err=True)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: app_worker.stop())
    server = None
    if metrics_port:
        server = ServiceHTTPServer(
            app_worker.registry,
            app_worker.healthy,
            app_worker.ready,
            metrics_host,
            metrics_port,
            status=app_worker.status,
        )
        server.start()
    try:
        app_worker.run()
    finally:
        if server is not None:
            server.stop()
