"""``pipeline produce``: validate JSON events into their model, encode them, send them."""

from __future__ import annotations

import concurrent.futures
import json
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from importlib import import_module
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from pipeline._admin import check_reachable
from pipeline._delay import parse_duration
from pipeline._errors import ConfigError, PipelineError
from pipeline.avro._events import Event

from ._context import CliContext
from ._output import OUTPUT_OPTION, print_json

__all__ = ["find_model", "produce"]

DEFAULT_MODELS = ("examples.orders.events",)


def _subclasses(cls: type[Event]) -> Iterator[type[Event]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def find_model(subject: str, modules: tuple[str, ...] = ()) -> type[Event]:
    """The newest imported ``Event`` class for ``subject`` (importing ``modules`` first).

    Raises:
        ConfigError: a module cannot be imported, or no model is bound to ``subject``.
    """
    for name in (*DEFAULT_MODELS, *modules):
        try:
            import_module(name)
        except ImportError as exc:
            raise ConfigError(f"cannot import models module {name!r}: {exc}") from None
    found = [m for m in _subclasses(Event) if getattr(m, "subject", None) == subject]
    if not found:
        known = sorted({m.subject for m in _subclasses(Event) if hasattr(m, "subject")})
        raise ConfigError(
            f"no event model for subject {subject!r}; known: {', '.join(known) or 'none'} "
            "(load yours with --models your.module)"
        )
    return max(found, key=lambda m: m.version)


def _parse_time(value: str) -> datetime:
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO-8601 time") from None
    if when.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no timezone; add Z or +HH:MM")
    return when


def _lines(json_text: str | None, file: str | None) -> Iterator[tuple[int, str]]:
    if json_text is not None:
        yield 1, json_text
        return
    assert file is not None
    try:
        stream = sys.stdin if file == "-" else Path(file).open(encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise ConfigError(f"cannot read {file}: {exc.strerror}") from None
    with stream:
        for number, line in enumerate(stream, start=1):
            if line.strip():
                yield number, line


def _validate(model: type[Event], number: int, line: str) -> tuple[Event | None, str | None]:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        return None, f"line {number}: not JSON: {exc.msg} at column {exc.colno}"
    try:
        return model.model_validate(data), None
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "<event>"
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return None, f"line {number}: field `{where}`: {first['msg']}{more}"


@click.command()
@click.option("--topic", "-t", help="Destination topic (default: the model's topic).")
@click.option("--type", "subject", required=True, help="Schema subject, e.g. orders.OrderPlaced.")
@click.option("--key", "-k", help="Record key for every event.")
@click.option("--key-field", help="Take each record's key from this event field instead.")
@click.option("--delay", help="Deliver through the scheduler after this delay (30s, 5m, 2h).")
@click.option("--at", "at", help="Deliver through the scheduler at this ISO-8601 time.")
@click.option("--json", "json_text", help="One event as a JSON object.")
@click.option("--file", "-f", help="JSON Lines file of events ('-' for stdin).")
@click.option("--models", multiple=True, help="Module(s) defining your Event classes.")
@click.option(
    "--guarantee",
    type=click.Choice(["at-least-once", "fire-and-forget", "quorum"]),
    default="at-least-once",
    show_default=True,
    help="Delivery mode (README 'Delivery modes'); quorum needs --required-acks.",
)
@click.option("--required-acks", type=click.IntRange(min=1), help="With --guarantee quorum.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.001),
    default=30.0,
    show_default=True,
    help="With --guarantee quorum: seconds to wait for the acknowledgements.",
)
@OUTPUT_OPTION
@click.pass_obj
def produce(
    obj: CliContext,
    topic: str | None,
    subject: str,
    key: str | None,
    key_field: str | None,
    delay: str | None,
    at: str | None,
    json_text: str | None,
    file: str | None,
    models: tuple[str, ...],
    guarantee: str,
    required_acks: int | None,
    timeout: float,
    output: str,
) -> None:
    """Validate JSON events into their model, encode them as Avro and send them.

    Every line is reported: invalid lines are listed with their line number and not sent; the
    exit status is 1 if any line was not delivered.
    """
    if (json_text is None) == (file is None):
        raise click.UsageError("give exactly one of --json or --file")
    if delay is not None and at is not None:
        raise click.UsageError("give --delay or --at, not both")
    if key is not None and key_field is not None:
        raise click.UsageError("give --key or --key-field, not both")
    if (guarantee == "quorum") != (required_acks is not None):
        raise click.UsageError("--guarantee quorum and --required-acks go together")
    if guarantee != "at-least-once" and (delay is not None or at is not None):
        raise click.UsageError("--delay/--at are at-least-once sends only")
    mode = {"guarantee": guarantee, "required_acks": required_acks, "timeout": timeout}
    delay_td = _delay(delay)
    deliver_at = _parse_time(at) if at is not None else None
    model = find_model(subject, models)
    target = topic or model.topic
    if not target:
        raise click.UsageError(f"{model.__name__} has no default topic; pass --topic")
    outcome = _send_all(
        obj, model, target, key, key_field, delay_td, deliver_at, json_text, file, mode
    )
    sent, errors = outcome
    if output == "json":
        print_json({"topic": target, "sent": sent, "failed": len(errors), "errors": errors})
    else:
        for error in errors:
            click.echo(error, err=True)
        when = " (scheduled, via the scheduler topic)" if delay_td or deliver_at else ""
        click.echo(f"sent {sent} event(s) to {target}{when}; {len(errors)} failed")
    if errors:
        raise click.exceptions.Exit(1)


def _delay(text: str | None) -> timedelta | None:
    if text is None:
        return None
    try:
        return timedelta(milliseconds=parse_duration(text))
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a duration like 500ms, 30s, 5m, 2h, 1d"
        ) from None


def _send_all(
    obj: CliContext,
    model: type[Event],
    target: str,
    key: str | None,
    key_field: str | None,
    delay: timedelta | None,
    deliver_at: datetime | None,
    json_text: str | None,
    file: str | None,
    mode: dict[str, Any],
) -> tuple[int, list[str]]:
    from producers import EventProducer

    errors: list[str] = []
    pending: list[tuple[int, Any]] = []
    producer = EventProducer(obj.settings)
    dropped_before = _dropped(producer)  # the counter is process-wide
    checked = False
    try:
        for number, line in _lines(json_text, file):
            event, problem = _validate(model, number, line)
            if event is None:
                errors.append(problem or f"line {number}: invalid")
                continue
            if not checked:  # else every line fails alone, after the message timeout
                check_reachable(obj.settings)
                checked = True
            record_key = str(getattr(event, key_field)) if key_field else key
            try:
                future = producer.send(
                    event, key=record_key, topic=target, delay=delay, deliver_at=deliver_at, **mode
                )
            except PipelineError as exc:
                errors.append(f"line {number}: {exc}")
                continue
            pending.append((number, future))
        producer.flush(30)
        if mode["guarantee"] == "quorum":  # before close(): closing ends the wait for acks
            concurrent.futures.wait([f for _, f in pending], float(mode["timeout"]) + 5)
    finally:
        try:
            producer.close(5)
        except PipelineError as exc:
            errors.append(str(exc))
    sent = 0
    dropped = _dropped(producer) - dropped_before
    if dropped:
        errors.append(f"{dropped} fire-and-forget record(s) dropped by the cluster")
    for number, future in pending:
        if future is None:  # fire-and-forget: queued; drops are counted above
            sent += 1
            continue
        failure = future.exception(timeout=5)
        if failure is None:
            sent += 1
        else:
            errors.append(f"line {number}: {failure}")
    return sent - dropped, errors


def _dropped(producer: Any) -> int:
    """Fire-and-forget records counted as dropped so far (all topics)."""
    families = producer.modes.metrics.dropped.collect()
    return int(sum(s.value for f in families for s in f.samples if s.name.endswith("_total")))
