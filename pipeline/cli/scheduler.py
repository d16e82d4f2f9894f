"""``pipeline scheduler``: run the delayed-delivery service, or show what is pending."""

from __future__ import annotations

import json
import signal
from datetime import UTC, datetime
from typing import Any

import click
from prometheus_client import CollectorRegistry

from pipeline._admin import check_reachable
from pipeline._http import ServiceHTTPServer
from pipeline.scheduler._records import DEFAULT_TIERS, SchedulerConfig
from pipeline.scheduler._service import Scheduler
from pipeline.scheduler._status import scheduler_status
from pipeline.scheduler._topics import ensure_scheduler_topics

from ._context import CliContext

__all__ = ["scheduler"]


def _common(fn: Any) -> Any:
    options = [
        click.option(
            "--topic",
            default=SchedulerConfig.topic,
            show_default=True,
            envvar="PIPELINE_SCHEDULER_TOPIC",
            help="Where delayed records enter.",
        ),
        click.option(
            "--tiers",
            default=",".join(DEFAULT_TIERS),
            show_default=True,
            envvar="PIPELINE_SCHEDULER_TIERS",
            help="Delay ladder, comma-separated.",
        ),
        click.option(
            "--dlq-topic",
            default=SchedulerConfig.dlq_topic,
            show_default=True,
            envvar="PIPELINE_SCHEDULER_DLQ_TOPIC",
            help="Dead letters of the scheduler.",
        ),
        click.option(
            "--group",
            default="pipeline-scheduler",
            show_default=True,
            envvar="PIPELINE_SCHEDULER_GROUP",
            help="Consumer group of all instances.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _config(topic: str, tiers: str, dlq_topic: str, group: str, **extra: Any) -> SchedulerConfig:
    names = tuple(t.strip() for t in tiers.split(",") if t.strip())
    return SchedulerConfig(topic=topic, tiers=names, dlq_topic=dlq_topic, group=group, **extra)


@click.group()
def scheduler() -> None:
    """Delayed delivery: records wait in delay tiers until due, then go to their target."""


@scheduler.command()
@_common
@click.option("--exactly-once", is_flag=True, help="Forward and commit in one transaction.")
@click.option(
    "--instance-id",
    envvar="PIPELINE_SCHEDULER_INSTANCE_ID",
    help="Stable id of this instance (default: host name); unique per instance.",
)
@click.option(
    "--create-topics/--no-create-topics",
    default=True,
    show_default=True,
    help="Create missing scheduler topics first.",
)
@click.option("--partitions", default=6, show_default=True, help="Partitions of created topics.")
@click.option("--metrics-host", default="0.0.0.0", show_default=True)
@click.option(
    "--metrics-port",
    default=9465,
    show_default=True,
    help="Port of /metrics, /healthz and /readyz; 0 disables the server.",
)
@click.pass_obj
def run(
    obj: CliContext,
    /,
    create_topics: bool,
    partitions: int,
    metrics_host: str,
    metrics_port: int,
    instance_id: str | None,
    **options: Any,
) -> None:
    """Run one scheduler instance until SIGINT or SIGTERM."""
    if instance_id:
        options["instance_id"] = instance_id
    config = _config(**options)
    settings = obj.settings
    check_reachable(settings)  # unreachable at start: exit 1 in one line
    if create_topics:
        created = ensure_scheduler_topics(settings, config, partitions=partitions)
        for topic in created:
            click.echo(f"created topic {topic}", err=True)
    registry = CollectorRegistry()
    service = Scheduler(settings, config, registry=registry)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: service.stop())
    server = None
    if metrics_port:
        server = ServiceHTTPServer(
            registry, service.healthy, service.ready, metrics_host, metrics_port
        )
        server.start()
        click.echo(f"metrics on {server.url}/metrics", err=True)
    mode = "exactly-once" if config.exactly_once else "at-least-once"
    click.echo(f"scheduler {config.transactional_id} running ({mode})", err=True)
    try:
        service.run()
    finally:
        if server is not None:
            server.stop()


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    at = datetime.fromtimestamp(ms / 1000, tz=UTC)
    delta = (ms - datetime.now(tz=UTC).timestamp() * 1000) / 1000
    return f"{at.isoformat(timespec='milliseconds')} ({delta:+.1f}s)"


@scheduler.command()
@_common
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def status(obj: CliContext, /, as_json: bool, **options: Any) -> None:
    """Print pending records per tier and the next exit and due times."""
    rows = scheduler_status(obj.settings, _config(**options))
    if as_json:
        click.echo(json.dumps([row.__dict__ for row in rows], indent=2))
        return
    click.echo(f"{'TIER':<6} {'PENDING':>9}  {'NEXT EXIT':<38} NEXT DUE (head)")
    for row in rows:
        click.echo(
            f"{row.tier:<6} {row.pending:>9}  {_when(row.next_exit_ms):<38} "
            f"{_when(row.next_due_ms)}"
        )
    click.echo(f"total pending: {sum(r.pending for r in rows)}")
