"""``pipeline lag``: serve consumer-group lag to Prometheus, or show it in the terminal."""

from __future__ import annotations

import re
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import click
from rich.live import Live
from rich.table import Table

from pipeline._admin import group_denied
from pipeline._errors import AuthorizationError, ConfigError, KafkaOperationError
from pipeline._names import SCHEDULER_GROUP, SCHEDULER_TOPIC
from pipeline._settings import Settings
from pipeline.lag import (
    Isolation,
    LagExposition,
    LagHTTPServer,
    LagOptions,
    LagPoller,
    LagSnapshot,
    OffsetReset,
    StatusThresholds,
)
from pipeline.lag._render import TABLE_COLUMNS, snapshot_json, snapshot_rows, sparkline
from pipeline.stats import StatsCollector, StatsOptions, StatsPoller

from ._context import CliContext
from ._output import OUTPUT_OPTION, console, print_json, print_table

__all__ = ["lag", "parse_duration"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


def parse_duration(text: str) -> float:
    """``10s``, ``500ms``, ``2m``, ``1h`` or a plain number of seconds."""
    match = _DURATION.match(text)
    if match is None or float(match.group(1)) <= 0:
        raise click.BadParameter(f"{text!r} is not a duration like 10s, 500ms or 2m")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def _duration(_ctx: click.Context, _param: click.Parameter, value: str) -> float:
    return parse_duration(value)


def _duration_or_zero(ctx: click.Context, param: click.Parameter, value: str) -> float:
    if re.fullmatch(r"0+(\.0*)?(ms|s|m|h)?", value.strip()):
        return 0.0
    return parse_duration(value)


def _regex(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> re.Pattern[str] | None:
    if value is None:
        return None
    try:
        return re.compile(value)
    except re.error as exc:
        raise click.BadParameter(f"bad regular expression: {exc}") from None


def _poll_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by ``serve`` and ``show``."""
    options = [
        click.option(
            "--interval",
            default="10s",
            show_default=True,
            callback=_duration,
            help="Time between polls (10s, 500ms, 1m).",
        ),
        click.option(
            "--isolation",
            type=click.Choice([i.value for i in Isolation]),
            default="auto",
            show_default=True,
            help="Measure lag against the last stable offset (read_committed) or the "
            "high watermark; auto assumes read_committed until a group has committed past "
            "the last stable offset.",
        ),
        click.option(
            "--offset-reset",
            type=click.Choice([r.value for r in OffsetReset]),
            default="earliest",
            show_default=True,
            help="The groups' auto.offset.reset: where an assigned partition without a "
            "committed offset starts (earliest: its whole log is lag; latest: none).",
        ),
        click.option(
            "--window",
            default="5m",
            show_default=True,
            callback=_duration,
            help="Status window: no commit for this long with lag is STOP.",
        ),
        click.option(
            "--stall",
            default="1m",
            show_default=True,
            callback=_duration,
            help="No commit for this long with lag is STALL.",
        ),
        click.option(
            "--orphan-after",
            default="30s",
            show_default=True,
            callback=_duration_or_zero,
            help="A partition of a consumed topic that no member of the Stable group owns "
            "for this long is ORPHANED (0s: at once, for a one-shot show).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _options(
    interval: float,
    isolation: str,
    offset_reset: str,
    window: float,
    stall: float,
    orphan_after: float,
    **kw: Any,
) -> LagOptions:
    try:
        thresholds = StatusThresholds(
            window_seconds=window, stall_seconds=stall, orphan_seconds=orphan_after
        )
        return LagOptions(
            interval=interval,
            isolation=Isolation(isolation),
            offset_reset=OffsetReset(offset_reset),
            thresholds=thresholds,
            **kw,
        )
    except ValueError as exc:
        raise ConfigError(f"lag options: {exc}") from None


@click.group()
def lag() -> None:
    """Consumer-group lag: offsets, seconds and status."""


@lag.command("serve")
@click.option("--port", default=9308, show_default=True, type=click.IntRange(0, 65535))
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--groups", callback=_regex, metavar="REGEX", help="Only groups matching REGEX.")
@click.option(
    "--compat",
    type=click.Choice(["kafka_exporter"]),
    multiple=True,
    help="Also export another exporter's metric names.",
)
@click.option("--exact", is_flag=True, help="Read the timestamp of each lagging committed record.")
@click.option(
    "--stats/--no-stats",
    default=True,
    show_default=True,
    help="Also export per-state message counts (pipeline_consumergroup_messages{state}); "
    "each read scans the groups' retry and dead-letter topics and the scheduler backlog.",
)
@click.option(
    "--stats-interval",
    default="30s",
    show_default=True,
    callback=_duration,
    help="Time between reads of the per-state counts.",
)
@click.option(
    "--scheduler-topic",
    default=SCHEDULER_TOPIC,
    show_default=True,
    envvar="PIPELINE_SCHEDULER_TOPIC",
    help="The scheduler's entry topic, for the retrying count.",
)
@click.option(
    "--scheduler-group",
    default=SCHEDULER_GROUP,
    show_default=True,
    envvar="PIPELINE_SCHEDULER_GROUP",
    help="The scheduler's consumer group, for the retrying count.",
)
@_poll_options
@click.pass_obj
def serve(
    obj: CliContext,
    /,
    port: int,
    host: str,
    groups: re.Pattern[str] | None,
    compat: tuple[str, ...],
    exact: bool,
    stats: bool,
    stats_interval: float,
    scheduler_topic: str,
    scheduler_group: str,
    **poll: Any,
) -> None:
    """Serve lag metrics on /metrics (and /healthz, /readyz) until interrupted.

    The first poll runs before serving: if Kafka cannot be reached then, the command exits 1.
    Later failures keep the last values, marked stale, and count in the exporter's metrics.
    With --stats (the default) the per-state counts of `pipeline stats` are served too.
    """
    holder: list[LagPoller] = []
    counts = None
    if stats:
        counts = StatsPoller(
            obj.settings,
            StatsOptions(
                scheduler_topic=scheduler_topic, scheduler_group=scheduler_group, groups=groups
            ),
            interval=stats_interval,
        )
    exposition = LagExposition(
        lambda: holder[0].snapshot,
        compat_kafka_exporter="kafka_exporter" in compat,
        extra=[StatsCollector(lambda: counts.snapshot, lambda: counts.errors)] if counts else [],
    )
    options = _options(groups=groups, exact=exact, **poll)
    poller = LagPoller(obj.settings, options, on_snapshot=exposition.refresh)
    holder.append(poller)
    server = LagHTTPServer(exposition, poller.healthy, poller.ready, host=host, port=port)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        poller.poll_once(strict=True)  # Kafka unreachable at start: exit 1, like other commands
    except BaseException:
        poller.stop()
        raise
    poller.start()
    if counts is not None:
        counts.start()
    server.start()
    click.echo(f"serving lag metrics on http://{host}:{server.port}/metrics", err=True)
    try:
        stop.wait()
    finally:
        server.stop()
        poller.stop()
        if counts is not None:
            counts.stop()


@lag.command("show")
@click.option("--group", "-g", help="Only this group.")
@click.option("--watch", "-w", is_flag=True, help="Refresh every interval, with a lag sparkline.")
@click.option(
    "--exact/--interpolate",
    default=None,
    help="Time lag from the committed record's timestamp (default without --watch), "
    "or interpolated from sampled end offsets (default with --watch).",
)
@OUTPUT_OPTION
@_poll_options
@click.pass_obj
def show(
    obj: CliContext,
    /,
    group: str | None,
    watch: bool,
    exact: bool | None,
    output: str,
    **poll: Any,
) -> None:
    """Show lag per group and topic; time lag marked ≥ is a lower bound.

    Exits 1 when Kafka cannot be reached, or when --group names a group that does not exist.
    """
    pattern = re.compile(f"^{re.escape(group)}$") if group else None
    options = _options(groups=pattern, exact=(not watch) if exact is None else exact, **poll)
    poller = LagPoller(obj.settings, options)
    try:
        snap = _first(poller, group, obj.settings)
        if not watch:
            if output == "json":
                print_json(snapshot_json(snap, group))
            else:
                print_table(None, TABLE_COLUMNS, snapshot_rows(snap, group))
            return
        _watch(poller, group, output, snap)
    finally:
        poller.stop()


def _first(poller: LagPoller, group: str | None, settings: Settings) -> LagSnapshot:
    """The first poll: a failed round or a missing ``--group`` is an error (exit 1)."""
    snap = poller.poll_once(strict=True)
    if group is not None and group not in snap.groups:
        if group_denied(settings, group):
            raise AuthorizationError(
                f"not authorized to describe consumer group {group!r}: an ACL denies it to "
                "this user"
            )
        raise KafkaOperationError(
            f"consumer group {group!r} does not exist (`pipeline lag show` lists every group)"
        )
    return snap


def _watch(poller: LagPoller, group: str | None, output: str, first: LagSnapshot) -> None:
    history: dict[str, deque[float]] = {}
    snap: LagSnapshot | None = first
    with Live(console=console(), auto_refresh=False) as live:
        while True:
            started = time.monotonic()
            snap = poller.poll_once() if snap is None else snap
            if output == "json":
                print_json(snapshot_json(snap, group))
            else:
                for name, g in snap.groups.items():
                    history.setdefault(name, deque(maxlen=30)).append(float(g.lag))
                table = Table(title=time.strftime("%H:%M:%S lag"), title_justify="left")
                for column in (*TABLE_COLUMNS, "trend"):
                    table.add_column(column)
                for row in snapshot_rows(snap, group):
                    table.add_row(*(str(c) for c in row), sparkline(list(history.get(row[0], ()))))
                live.update(table, refresh=True)
            snap = None
            time.sleep(max(0.0, poller.options.interval - (time.monotonic() - started)))
