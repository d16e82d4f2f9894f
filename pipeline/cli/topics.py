"""``pipeline topics``: apply topic spec files, list and describe topics."""

from __future__ import annotations

from pathlib import Path

import click
from confluent_kafka import KafkaException

from pipeline._admin import admin_client, cluster_metadata, kafka_error
from pipeline._errors import TopicError
from pipeline._topics import TopicReport, ensure_topics, load_topic_specs

from ._context import CliContext
from ._output import OUTPUT_OPTION, print_json, print_table

__all__ = ["topics"]


@click.group()
def topics() -> None:
    """Create topics from spec files, and inspect them."""


@topics.command("apply")
@click.argument("spec_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Validate on the broker; create nothing.")
@OUTPUT_OPTION
@click.pass_obj
def apply(obj: CliContext, spec_file: Path, dry_run: bool, output: str) -> None:
    """Create the topics of SPEC_FILE that are missing, and report drift of the others.

    Existing topics are never changed or deleted. Exits 3 when drift was found.
    """
    report = ensure_topics(obj.settings, load_topic_specs(spec_file), dry_run=dry_run)
    if output == "json":
        print_json(_report_dict(report))
    else:
        verb = "would create" if dry_run else "created"
        rows = [(name, verb) for name in report.created]
        rows += [(name, "up to date") for name in report.unchanged]
        rows += [
            (d.topic, f"DRIFT {d.setting}: spec {d.expected}, actual {d.actual}")
            for d in report.drift
        ]
        print_table(f"topics from {spec_file}", ["topic", "result"], rows)
    if report.drift:
        raise click.exceptions.Exit(3)


def _report_dict(report: TopicReport) -> dict[str, object]:
    return {
        "dry_run": report.dry_run,
        "created": report.created,
        "unchanged": report.unchanged,
        "drift": [vars(d) for d in report.drift],
    }


@topics.command("list")
@click.option("--internal", is_flag=True, help="Include topics starting with '__'.")
@OUTPUT_OPTION
@click.pass_obj
def list_(obj: CliContext, internal: bool, output: str) -> None:
    """List topics with their partition counts and replication factors."""
    meta = cluster_metadata(admin_client(obj.settings), obj.settings)
    rows = []
    for name in sorted(meta.topics):
        if name.startswith("__") and not internal:
            continue
        parts = meta.topics[name].partitions
        rf = max((len(p.replicas) for p in parts.values()), default=0)
        rows.append({"topic": name, "partitions": len(parts), "replication_factor": rf})
    if output == "json":
        print_json(rows)
    else:
        print_table(None, ["topic", "partitions", "rf"], [list(r.values()) for r in rows])


@topics.command("describe")
@click.argument("name")
@OUTPUT_OPTION
@click.pass_obj
def describe(obj: CliContext, name: str, output: str) -> None:
    """Show partitions (leader, replicas, ISR) and non-default configs of topic NAME."""
    from confluent_kafka.admin import ConfigResource

    admin = admin_client(obj.settings)
    meta = cluster_metadata(admin, obj.settings)
    if name not in meta.topics:
        raise TopicError(f"topic {name!r} does not exist (see `pipeline topics list`)")
    resource = ConfigResource(ConfigResource.Type.TOPIC, name)
    try:
        entries = admin.describe_configs([resource])[resource].result(timeout=10)
    except KafkaException as exc:
        raise kafka_error(exc, f"describing {name}") from exc
    configs = {k: e.value for k, e in sorted(entries.items()) if not e.is_default}
    parts = meta.topics[name].partitions
    partitions = [
        {"partition": p.id, "leader": p.leader, "replicas": p.replicas, "isr": p.isrs}
        for p in sorted(parts.values(), key=lambda p: p.id)
    ]
    if output == "json":
        print_json({"topic": name, "partitions": partitions, "configs": configs})
        return
    print_table(
        f"{name}: {len(partitions)} partition(s)",
        ["partition", "leader", "replicas", "isr"],
        [(p["partition"], p["leader"], p["replicas"], p["isr"]) for p in partitions],
    )
    print_table("configs (non-default)", ["config", "value"], sorted(configs.items()))
