"""``pipeline stats``: per-state message counts of consumer groups, read from Kafka."""

from __future__ import annotations

import click

from pipeline._errors import ConfigError
from pipeline._names import SCHEDULER_GROUP, SCHEDULER_TOPIC
from pipeline.stats import (
    STATES,
    GroupStats,
    StatsOptions,
    StatsReader,
    StatsSnapshot,
    read_in_flight,
    with_in_flight,
)

from ._context import CliContext
from ._output import console, print_json, print_table

__all__ = ["stats", "stats_json", "stats_rows"]


def stats_json(snap: StatsSnapshot) -> dict[str, object]:
    """The ``--json`` document: ``groups`` (one object per group, see ``GroupStats.to_json``),
    ``taken_at`` (Unix time) and ``states`` (the state names, in order)."""
    return {
        "taken_at": snap.taken_at,
        "states": list(STATES),
        "groups": [snap.groups[g].to_json() for g in sorted(snap.groups)],
    }


def _cell(g: GroupStats, state: str) -> str:
    value = g.count(state)
    if value is None:
        return "-"
    return f"{value}" if g.exact(state) else f"~{value}"


def stats_rows(snap: StatsSnapshot) -> list[list[str]]:
    """One table row per group: group, state, then one cell per state (``~``: an estimate)."""
    return [
        [g.group, g.state, *(_cell(g, s) for s in STATES)]
        for g in (snap.groups[name] for name in sorted(snap.groups))
    ]


@click.command("stats")
@click.option("--group", "-g", help="Only this consumer group.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--scheduler-topic",
    default=SCHEDULER_TOPIC,
    show_default=True,
    envvar="PIPELINE_SCHEDULER_TOPIC",
    help="The scheduler's entry topic (its tiers are <topic>.<duration>).",
)
@click.option(
    "--scheduler-group",
    default=SCHEDULER_GROUP,
    show_default=True,
    envvar="PIPELINE_SCHEDULER_GROUP",
    help="The scheduler's consumer group.",
)
@click.option(
    "--max-scan",
    type=click.IntRange(min=1),
    default=1_000_000,
    show_default=True,
    help="Records read at most per topic; beyond it counts are lower bounds.",
)
@click.option(
    "--worker",
    "workers",
    multiple=True,
    metavar="URL",
    help="A worker's metrics address (http://host:port); in_flight is summed over the "
    "workers given. Repeat for each worker.",
)
@click.pass_obj
def stats(
    obj: CliContext,
    /,
    group: str | None,
    as_json: bool,
    scheduler_topic: str,
    scheduler_group: str,
    max_scan: int,
    workers: tuple[str, ...],
) -> None:
    """Per-state message counts of every consumer group (or one), read from Kafka.

    pending, retrying, dead and expired are what waits now; completed, retried and redriven
    are totals over what the topics still retain. A value marked ~ is an estimate. in_flight
    lives in the workers, not in Kafka: it is read from --worker URLs, else shown as -.
    Needs no running worker.
    Exits 1 when Kafka cannot be reached or --group names no group.
    """
    try:
        options = StatsOptions(
            scheduler_topic=scheduler_topic, scheduler_group=scheduler_group, max_scan=max_scan
        )
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None
    reader = StatsReader(obj.settings, options)
    try:
        snap = reader.read(group)
    finally:
        reader.close()
    if workers:
        snap = with_in_flight(snap, read_in_flight(workers))
    if as_json:
        print_json(stats_json(snap))
        return
    print_table(None, ["group", "group state", *STATES], stats_rows(snap))
    failed = [g for g in snap.groups.values() if g.error is not None]
    for g in failed:
        console(stderr=True).print(f"warning: {g.group}: {g.error}")
    if any(g.truncated for g in snap.groups.values()):
        console(stderr=True).print(f"warning: scans stopped at --max-scan {max_scan} records")
