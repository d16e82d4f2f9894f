"""The JSON API under ``/api/v1``: stats, groups, dead letters, redrive, enqueue, health."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from fastapi.exceptions import RequestValidationError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import AwareDatetime, ValidationError

from pipeline._errors import ConfigError
from pipeline._settings import Settings
from pipeline.avro._codec import Codec
from pipeline.avro._events import Event
from pipeline.lag import LagCollector
from pipeline.ops._redrive_run import RedriveSender, run_redrive

from ._dead_letters import Cursor, read_page
from ._models import DeadLetterQuery, EnqueueRequest, RedriveRequest
from ._security import TokenCheck
from ._state import ConsoleState

__all__ = [
    "ConsoleServices",
    "Enqueue",
    "api_router",
    "health_router",
    "parse_cursor",
    "read_one",
]


class Enqueue(Protocol):
    """Send one validated event (the CLI builds it on the producer SDK); returns where it went."""

    def __call__(
        self,
        event: Event,
        *,
        key: str | None,
        topic: str | None,
        delay: timedelta | None,
        deliver_at: datetime | None,
    ) -> dict[str, Any]: ...


@dataclass
class ConsoleServices:
    """What the routes use. The composition root (``pipeline console``) builds it."""

    settings: Settings
    state: ConsoleState
    auth: TokenCheck
    find_model: Callable[[str], type[Event]]
    """The newest event model of a schema subject (raises ConfigError for an unknown one)."""
    enqueue: Enqueue
    sender: Callable[[], RedriveSender]
    """A producer for executed redrives, closed by the run."""
    codec: Codec | None = None

    def __post_init__(self) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(LagCollector(lambda: self.state.snapshot.lag))


def parse_cursor(text: str | None) -> Cursor | None:
    """``P:O`` as ``(P, O)``; a bad one is a 422 naming ``after``."""
    if not text:
        return None
    head, sep, tail = text.partition(":")
    if sep and head.isdigit() and tail.isdigit():
        return int(head), int(tail)
    raise RequestValidationError(
        [{"loc": ("query", "after"), "msg": "use PARTITION:OFFSET", "type": "value_error"}]
    )


def _group(services: ConsoleServices, group: str) -> dict[str, Any]:
    snap = services.state.snapshot
    stats = snap.groups.get(group)
    if stats is None:
        raise HTTPException(404, f"no consumer group {group!r} (known: {len(snap.groups)})")
    lag = snap.lag.groups[group]
    partitions = [
        {
            "topic": p.topic,
            "partition": p.partition,
            "committed": p.committed,
            "end_offset": p.end_offset,
            "lag": p.lag,
            "lag_seconds": round(p.lag_seconds, 3),
            "lag_seconds_lower_bound": p.lag_seconds_lower_bound,
            "offset_expired": p.offset_expired,
            "no_commit": p.no_commit,
            "status": p.status.name,
        }
        for p in lag.partitions
    ]
    return {**stats.summary(), "protocol": lag.protocol, "partition_lag": partitions}


def api_router(services: ConsoleServices) -> APIRouter:
    """The ``/api/v1`` routes."""
    router = APIRouter(prefix="/api/v1")
    mutating = [Depends(services.auth)]

    @router.get("/stats", summary="Every group: lag, DLQ size, status; scheduler backlog")
    def stats() -> dict[str, Any]:
        return dict(services.state.snapshot.stats)

    @router.get("/groups/{group}", summary="One group, with per-partition lag")
    def group(group: str) -> dict[str, Any]:
        return _group(services, group)

    @router.get("/groups/{group}/dead-letters", summary="Dead letters, paged and decoded")
    def dead_letters(
        group: str,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        after: Annotated[str | None, Query(description="PARTITION:OFFSET")] = None,
        error_type: str | None = None,
        key: str | None = None,
        since: AwareDatetime | None = None,
        until: AwareDatetime | None = None,
    ) -> dict[str, Any]:
        query = DeadLetterQuery(error_type=error_type, key=key, since=since, until=until)
        page = read_page(
            services.settings, group, limit=limit, after=parse_cursor(after),
            selector=query.selector(), codec=services.codec,
        )  # fmt: skip
        cursor = f"{page.next[0]}:{page.next[1]}" if page.next else None
        return {"topic": page.topic, "records": page.records, "next": cursor}

    @router.get("/groups/{group}/dead-letters/{partition}/{offset}", summary="One dead letter")
    def dead_letter(group: str, partition: int, offset: int) -> dict[str, Any]:
        return read_one(services, group, partition, offset)

    @router.post(
        "/groups/{group}/dead-letters/redrive",
        dependencies=mutating,
        summary="Redrive through <group>.retry (the safe redrive of `pipeline dlq redrive`)",
    )
    def redrive(group: str, body: RedriveRequest) -> dict[str, Any]:
        run = run_redrive(
            services.settings, group, body.filter.selector(), sender=services.sender,
            again=body.again, execute=not body.dry_run, rate=body.rate, limit=body.limit,
        )  # fmt: skip
        if run.execute:
            services.state.refresh([group])
        return run.report()

    @router.post("/events/{subject}", dependencies=mutating, summary="Enqueue one JSON event")
    def enqueue(subject: str, body: EnqueueRequest) -> dict[str, Any]:
        try:
            model = services.find_model(subject)
        except ConfigError as exc:
            raise HTTPException(404, str(exc)) from None
        try:
            event = model.model_validate(body.event)
        except ValidationError as exc:
            raise RequestValidationError(
                [{**e, "loc": ("body", "event", *e["loc"])} for e in exc.errors(include_url=False)]
            ) from None
        result = services.enqueue(
            event, key=body.key, topic=body.topic, delay=body.delay_td,
            deliver_at=body.deliver_at,
        )  # fmt: skip
        return {"subject": subject, "scheduled": bool(body.delay or body.deliver_at), **result}

    return router


def read_one(services: ConsoleServices, group: str, partition: int, offset: int) -> dict[str, Any]:
    """The dead letter at ``partition:offset`` of ``<group>.dlq`` (404 when there is none)."""
    page = read_page(
        services.settings, group, limit=1, after=(partition, offset - 1), codec=services.codec
    )
    found = page.records[0] if page.records else None
    if found is None or (found["partition"], found["offset"]) != (partition, offset):
        raise HTTPException(404, f"no dead letter at {page.topic}[{partition}]@{offset}")
    return found


def health_router(services: ConsoleServices) -> APIRouter:
    """``/healthz``, ``/readyz`` and ``/metrics`` (at the root and under ``/api/v1``)."""
    router = APIRouter()
    state = services.state

    for prefix in ("", "/api/v1"):

        @router.get(f"{prefix}/healthz", summary="Alive: the poll threads run")
        def healthz(response: Response) -> dict[str, Any]:
            ok = state.healthy()
            response.status_code = 200 if ok else 503
            return {"ok": ok}

        @router.get(f"{prefix}/readyz", summary="Ready: a snapshot has been taken")
        def readyz(response: Response) -> dict[str, Any]:
            ok = state.ready()
            response.status_code = 200 if ok else 503
            return {"ok": ok, "lag_taken_at": state.snapshot.lag.taken_at}

        @router.get(f"{prefix}/metrics", summary="Prometheus metrics (the lag collector)")
        def metrics() -> Response:
            return Response(generate_latest(services.registry), media_type=CONTENT_TYPE_LATEST)

    return router
