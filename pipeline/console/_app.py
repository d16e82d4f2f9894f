"""The console's ASGI app: the API, the pages, the static files and the error answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from pipeline._errors import (
    ConfigError,
    EncodeError,
    KafkaUnavailableError,
    PipelineError,
    TopicError,
)
from pipeline._version import __version__

from ._api import ConsoleServices, api_router, health_router
from ._pages import page_router

__all__ = ["create_app"]

STATIC = Path(__file__).parent / "static"


def _where(loc: Any) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "<body>"


def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    message = f"field `{_where(first['loc'])}`: {first['msg']}"
    detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e.get("type")} for e in errors]
    return JSONResponse({"error": message, "detail": detail}, status_code=422)


def _pipeline(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PipelineError)
    status = 502
    if isinstance(exc, EncodeError):  # the event passed its model but not its schema
        status = 422
    elif isinstance(exc, TopicError | ConfigError):
        status = 404 if isinstance(exc, TopicError) else 400
    elif isinstance(exc, KafkaUnavailableError):
        status = 503
    return JSONResponse({"error": str(exc), "detail": str(exc)}, status_code=status)


def create_app(services: ConsoleServices) -> FastAPI:
    """The console app; ``services.state`` is started and stopped with it."""
    app = FastAPI(
        title="event-pipeline console",
        version=__version__,
        description="Queues, lag and dead letters of event-pipeline consumer groups. "
        "GET routes are open; POST routes need `Authorization: Bearer <token>`.",
        docs_url="/api/v1/docs",
        openapi_url="/api/v1/openapi.json",
        redoc_url=None,
    )
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(PipelineError, _pipeline)
    app.include_router(api_router(services))
    app.include_router(health_router(services))
    app.include_router(page_router(services))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.state.services = services
    return app
