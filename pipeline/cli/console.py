"""``pipeline console``: the ops console (HTTP API and web page), a thin front end."""

from __future__ import annotations

import re
import threading
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

from pipeline._admin import check_reachable
from pipeline._errors import ConfigError
from pipeline._settings import CONSOLE_TOKEN_ENV, Settings
from pipeline.avro._codec import Codec
from pipeline.avro._events import Event

from ._context import CliContext
from .lag import _regex
from .produce import find_model

if TYPE_CHECKING:
    from pipeline.console import ConsoleServices
    from pipeline.lag import LagOptions

__all__ = ["build_services", "close_services", "console"]

TOKEN_ENV = CONSOLE_TOKEN_ENV


class _Enqueue:
    """Enqueue through one long-lived ``EventProducer`` (the SDK schedules delayed sends)."""

    def __init__(self, settings: Settings) -> None:
        from producers import EventProducer

        self._producer = EventProducer(settings)
        self._lock = threading.Lock()

    def __call__(
        self,
        event: Event,
        *,
        key: str | None,
        topic: str | None,
        delay: timedelta | None,
        deliver_at: datetime | None,
    ) -> dict[str, Any]:
        with self._lock:
            future = self._producer.send(
                event, key=key, topic=topic, delay=delay, deliver_at=deliver_at
            )
        assert future is not None
        self._producer.flush(30)
        result = future.result(timeout=30)
        return {
            "topic": result.topic,
            "partition": result.partition,
            "offset": result.offset,
            "target_topic": topic or type(event).topic,
            "deliver_at": deliver_at.isoformat() if deliver_at else None,
            "delay_s": delay.total_seconds() if delay else None,
        }

    def close(self) -> None:
        self._producer.close(10)


def build_services(
    settings: Settings,
    *,
    token: str | None,
    interval: float = 5.0,
    models: tuple[str, ...] = (),
    options: LagOptions | None = None,
) -> ConsoleServices:
    """The console's services on the producer SDK and the catalog (state not started yet).

    ``options`` are the lag poller's ``LagOptions``. Close with :func:`close_services`.
    """
    from pipeline.console import ConsoleServices, ConsoleState, TokenCheck
    from producers import EventProducer

    return ConsoleServices(
        settings=settings, state=ConsoleState(settings, interval=interval, options=options),
        auth=TokenCheck(token), find_model=lambda subject: find_model(subject, models),
        enqueue=_Enqueue(settings), sender=lambda: EventProducer(settings),
        codec=Codec.from_settings(settings),
    )  # fmt: skip


def close_services(services: ConsoleServices) -> None:
    """Stop the state's threads and close the enqueue producer."""
    services.state.stop()
    enqueue = services.enqueue
    if isinstance(enqueue, _Enqueue):
        enqueue.close()


@click.command()
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--bind", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--token",
    envvar=TOKEN_ENV,
    show_envvar=True,
    help="Bearer token that POST routes (redrive, enqueue) need; without it, read-only.",
)
@click.option(
    "--refresh", default=5.0, show_default=True, type=click.FloatRange(min=0.5),
    help="Seconds between lag, dead-letter and scheduler reads.",
)  # fmt: skip
@click.option("--groups", callback=_regex, metavar="REGEX", help="Only groups matching REGEX.")
@click.option("--models", multiple=True, help="Module(s) defining your Event classes.")
@click.pass_obj
def console(
    obj: CliContext,
    port: int,
    bind: str,
    token: str | None,
    refresh: float,
    groups: re.Pattern[str] | None,
    models: tuple[str, ...],
) -> None:
    """Serve the ops console: an HTTP API (/api/v1) and a web page for lag and dead letters.

    Read-only unless a token is given; binds 127.0.0.1 unless told otherwise, and refuses a
    non-local bind without a token.
    """
    try:
        import uvicorn

        from pipeline.console import create_app, unsafe_bind
    except ImportError as exc:
        raise ConfigError(
            f"the console needs the `console` extra ({exc.name} is missing): "
            "pip install 'event-pipeline[console]'"
        ) from None
    problem = unsafe_bind(bind, token)
    if problem is not None:
        click.echo(f"Error: {problem}", err=True)
        raise click.exceptions.Exit(2)
    settings = obj.settings
    check_reachable(settings)
    from pipeline.lag import LagOptions

    options = LagOptions(groups=groups)
    services = build_services(
        settings, token=token, interval=refresh, models=models, options=options
    )
    app = create_app(services)
    services.state.start()
    mode = "token required for changes" if token else "read-only (no token)"
    click.echo(f"console on http://{bind}:{port}/ ({mode})", err=True)
    try:
        uvicorn.run(app, host=bind, port=port, log_level="warning", access_log=False)
    finally:
        close_services(services)
