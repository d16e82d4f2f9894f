"""The server-rendered pages (Jinja2, autoescaped): groups, one group's dead letters, a record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from pipeline._errors import PipelineError
from pipeline.ops._dead_letters import DeadLetterFilter

from ._api import ConsoleServices, parse_cursor, read_one
from ._dead_letters import read_page

__all__ = ["page_router"]

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
PAGE_SIZE = 50


def _pretty(value: Any) -> str:
    if isinstance(value, str) or value is None:
        return "" if value is None else value
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


TEMPLATES.env.filters["pretty"] = _pretty


def page_router(services: ConsoleServices) -> APIRouter:
    """``/``, ``/groups/{group}`` and ``/groups/{group}/dead-letters/{partition}/{offset}``."""
    router = APIRouter(include_in_schema=False)
    state = services.state

    @router.get("/", response_class=HTMLResponse)
    def index(request: Request) -> HTMLResponse:
        snap = state.snapshot
        return TEMPLATES.TemplateResponse(
            request,
            "index.html",
            {
                "groups": list(snap.groups.values()),
                "tiers": snap.scheduler,
                "read_only": services.auth.read_only,
                "interval": state.interval,
            },
        )

    @router.get("/groups/{group}", response_class=HTMLResponse)
    def group(
        request: Request,
        group: str,
        error_type: str | None = None,
        key: str | None = None,
        after: str | None = None,
    ) -> HTMLResponse:
        stats = state.snapshot.groups.get(group)
        if stats is None:
            raise HTTPException(404, f"no consumer group {group!r}")
        selector = DeadLetterFilter(
            error_type=error_type or None, key=key.encode() if key else None
        )
        records: list[dict[str, Any]] = []
        next_cursor = problem = None
        if stats.dlq is not None:
            try:
                page = read_page(
                    services.settings, group, limit=PAGE_SIZE, after=parse_cursor(after),
                    selector=selector, codec=services.codec,
                )  # fmt: skip
                records = page.records
                next_cursor = f"{page.next[0]}:{page.next[1]}" if page.next else None
            except PipelineError as exc:
                problem = str(exc)
        return TEMPLATES.TemplateResponse(
            request,
            "group.html",
            {
                "g": stats,
                "lag": state.snapshot.lag.groups[group],
                "records": records,
                "next": next_cursor,
                "problem": problem,
                "error_type": error_type or "",
                "key": key or "",
                "read_only": services.auth.read_only,
                "interval": state.interval,
            },
        )

    @router.get("/groups/{group}/dead-letters/{partition}/{offset}", response_class=HTMLResponse)
    def record(request: Request, group: str, partition: int, offset: int) -> HTMLResponse:
        found = read_one(services, group, partition, offset)
        return TEMPLATES.TemplateResponse(
            request, "record.html", {"group": group, "r": found, "value": _pretty(found["value"])}
        )

    return router
