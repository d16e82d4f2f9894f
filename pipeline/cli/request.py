"""``pipeline request``: send one JSON request, print the typed reply (or the remote error)."""

from __future__ import annotations

import click

from pipeline._admin import check_reachable
from pipeline._errors import ConfigError, RemoteError, RequestTimeout

from ._context import CliContext
from .produce import _validate, find_model

__all__ = ["request"]


@click.command()
@click.option("--topic", "-t", help="Where the request goes (default: the model's topic).")
@click.option("--type", "subject", required=True, help="Schema subject of the request.")
@click.option("--reply-type", "reply_subject", required=True, help="Schema subject of the reply.")
@click.option("--json", "json_text", required=True, help="The request as a JSON object.")
@click.option("--key", "-k", help="Record key of the request.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.001),
    default=5.0,
    show_default=True,
    help="Seconds to wait for the reply.",
)
@click.option("--models", multiple=True, help="Module(s) defining your Event classes.")
@click.pass_obj
def request(
    obj: CliContext,
    topic: str | None,
    subject: str,
    reply_subject: str,
    json_text: str,
    key: str | None,
    timeout: float,
    models: tuple[str, ...],
) -> None:
    """Send one request and print its reply as JSON (exit 1 on a timeout or a remote error)."""
    from producers import EventProducer

    model = find_model(subject, models)
    reply_model = find_model(reply_subject, models)
    event, problem = _validate(model, 1, json_text)
    if event is None:
        raise ConfigError(f"--json: {problem}")
    if not (topic or model.topic):
        raise click.UsageError(f"{model.__name__} has no default topic; pass --topic")
    check_reachable(obj.settings)
    with EventProducer(obj.settings) as producer:
        try:
            reply = producer.request(
                event, reply=reply_model, timeout=timeout, key=key, topic=topic
            )
        except RequestTimeout as exc:
            click.echo(f"Error: timed out: {exc}", err=True)
            raise click.exceptions.Exit(1) from None
        except RemoteError as exc:
            click.echo(f"Error: {exc}", err=True)
            raise click.exceptions.Exit(1) from None
    click.echo(reply.model_dump_json())
