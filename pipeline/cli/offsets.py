"""``pipeline offsets``: move a consumer group's committed offsets (dry run by default)."""

from __future__ import annotations

import click
from confluent_kafka.admin import AdminClient

from pipeline._admin import admin_client
from pipeline._errors import KafkaOperationError
from pipeline.ops._offsets import (
    OffsetMove,
    ResetTarget,
    ResetTo,
    apply_reset,
    group_members,
    plan_reset,
    topic_partition_ids,
)

from ._context import CliContext
from ._ops import PARTITION_OPTION
from ._output import OUTPUT_OPTION, print_json, print_table
from ._times import TIME, format_ms

__all__ = ["offsets"]


@click.group()
def offsets() -> None:
    """Inspect and move consumer-group offsets."""


def _target(
    to_datetime: int | None,
    to_earliest: bool,
    to_latest: bool,
    shift_by: int | None,
    to_offset: int | None,
) -> ResetTarget:
    given = [
        (to_datetime is not None, ResetTarget(ResetTo.DATETIME, to_datetime or 0)),
        (to_earliest, ResetTarget(ResetTo.EARLIEST)),
        (to_latest, ResetTarget(ResetTo.LATEST)),
        (shift_by is not None, ResetTarget(ResetTo.SHIFT, shift_by or 0)),
        (to_offset is not None, ResetTarget(ResetTo.OFFSET, to_offset or 0)),
    ]
    chosen = [target for flag, target in given if flag]
    if len(chosen) != 1:
        raise click.UsageError(
            "give exactly one of --to-datetime, --to-earliest, --to-latest, --shift-by, --to-offset"
        )
    return chosen[0]


@offsets.command("reset")
@click.option("--group", "-g", required=True, help="Consumer group whose offsets move.")
@click.option("--topic", "-t", required=True, help="Topic whose partitions move.")
@click.option("--to-datetime", type=TIME, help="First offset at or after this time.")
@click.option("--to-earliest", is_flag=True, help="The log start.")
@click.option("--to-latest", is_flag=True, help="The log end (skip the backlog).")
@click.option("--shift-by", type=int, help="Committed offset plus N (negative re-reads).")
@click.option("--to-offset", type=click.IntRange(min=0), help="This offset.")
@PARTITION_OPTION
@click.option("--execute", is_flag=True, help="Commit the new offsets; without it, a dry run.")
@OUTPUT_OPTION
@click.pass_obj
def reset(
    obj: CliContext,
    group: str,
    topic: str,
    to_datetime: int | None,
    to_earliest: bool,
    to_latest: bool,
    shift_by: int | None,
    to_offset: int | None,
    partitions: tuple[int, ...],
    execute: bool,
    output: str,
) -> None:
    """Reset --group's committed offsets on --topic; a dry run unless --execute.

    Shows current -> new offset and the lag that results. Offsets are clamped to the log. The
    group must have no active members: stop its consumers first.
    """
    target = _target(to_datetime, to_earliest, to_latest, shift_by, to_offset)
    settings = obj.settings
    admin = admin_client(settings)
    selected = topic_partition_ids(admin, topic, partitions, settings.bootstrap_servers)
    _refuse_if_active(admin, group)
    moves = plan_reset(admin, group, topic, selected, target)
    if execute:
        _refuse_if_active(admin, group)
        apply_reset(admin, group, topic, moves)
    if output == "json":
        print_json(
            {
                "group": group,
                "topic": topic,
                "target": target.kind.value,
                "target_value": (
                    None if target.kind in (ResetTo.EARLIEST, ResetTo.LATEST) else target.value
                ),
                "dry_run": not execute,
                "partitions": [m.as_dict() for m in moves],
            }
        )
        return
    _print_moves(group, topic, target, moves, execute)


def _refuse_if_active(admin: AdminClient, group: str) -> None:
    members = group_members(admin, group)
    if members:
        names = "; ".join(str(m) for m in members)
        raise KafkaOperationError(
            f"group {group} has {len(members)} active member(s): {names}; stop them first "
            "(the offsets of an active group cannot be reset)"
        )


def _print_moves(
    group: str, topic: str, target: ResetTarget, moves: list[OffsetMove], execute: bool
) -> None:
    where = {
        ResetTo.DATETIME: f"to {format_ms(target.value)}",
        ResetTo.EARLIEST: "to the earliest offset",
        ResetTo.LATEST: "to the latest offset",
        ResetTo.SHIFT: f"shifted by {target.value:+d}",
        ResetTo.OFFSET: f"to offset {target.value}",
    }[target.kind]
    rows = [
        (
            m.partition,
            "-" if m.current is None else m.current,
            m.new,
            m.log_start,
            m.log_end,
            "-" if m.lag_before is None else m.lag_before,
            m.lag_after,
        )
        for m in moves
    ]
    print_table(
        f"{group} on {topic}, {where}",
        ["partition", "current", "new", "log start", "log end", "lag now", "lag after"],
        rows,
    )
    if execute:
        click.echo(f"committed the new offsets of {len(moves)} partition(s) for {group}")
    else:
        click.echo("dry run: nothing changed; pass --execute to commit these offsets")
