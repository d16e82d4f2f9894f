"""A tiny threaded HTTP server for services: ``/metrics``, ``/healthz`` and ``/readyz``."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = ["ServiceHTTPServer"]

_LOG = logging.getLogger("pipeline.http")


def _probe(check: Callable[[], bool]) -> bool:
    """Run a health or readiness check; a check that raises counts as failing."""
    try:
        return bool(check())
    except Exception:  # a broken check must answer 503, never kill the server thread
        _LOG.exception("health check raised")
        return False


def _fields(status: Callable[[], Mapping[str, object]]) -> Mapping[str, object]:
    """The status fields of a health body; a status hook that raises adds none."""
    try:
        return status()
    except Exception:  # the probe's answer must not depend on the details
        _LOG.exception("status hook raised")
        return {}


class ServiceHTTPServer:
    """Serve Prometheus metrics and liveness/readiness probes from a background thread.

    ``GET /metrics`` returns the registry in the text exposition format, or whatever ``render``
    returns when given (a service that pre-renders its page once per refresh). ``GET /healthz``
    and ``GET /readyz`` answer 200 when their check returns True and 503 otherwise, with the
    body ``ok`` or ``unavailable``; with ``status``, the body is JSON instead:
    ``{"status": "ok", ...}`` with the fields ``status()`` returns. With ``render_gzip``, a
    ``/metrics`` request that accepts gzip (Prometheus always does) gets its bytes instead, with
    ``Content-Encoding: gzip`` (a service that pre-compresses a large page once per refresh).
    Nothing listens until ``start()``; ``port=0`` picks a free port (read it back from ``port``).
    """

    def __init__(
        self,
        registry: CollectorRegistry | None,
        healthy: Callable[[], bool],
        ready: Callable[[], bool],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        render: Callable[[], bytes] | None = None,
        status: Callable[[], Mapping[str, object]] | None = None,
        render_gzip: Callable[[], bytes] | None = None,
    ) -> None:
        self._render_gzip = render_gzip
        if render is None:
            if registry is None:
                raise ValueError("ServiceHTTPServer needs a registry or a render function")
            source = registry

            def render() -> bytes:
                return generate_latest(source)

        self._render: Callable[[], bytes] = render
        self._healthy = healthy
        self._ready = ready
        self._status = status
        self._host = host
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the real one once started, even when constructed with 0)."""
        if self._server is not None:
            return int(self._server.server_address[1])
        return self._port

    @property
    def url(self) -> str:
        """Base URL, for example ``http://127.0.0.1:9100``."""
        return f"http://{self._host}:{self.port}"

    def start(self) -> None:
        """Bind and serve in a daemon thread; a second call does nothing."""
        if self._server is not None:
            return
        server = ThreadingHTTPServer((self._host, self._port), self._handler_class())
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="pipeline-http", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ServiceHTTPServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    accepts = self.headers.get("Accept-Encoding", "")
                    if owner._render_gzip is not None and "gzip" in accepts:
                        packed = owner._render_gzip()
                        self._send(200, packed, CONTENT_TYPE_LATEST, encoding="gzip")
                    else:
                        self._send(200, owner._render(), CONTENT_TYPE_LATEST)
                elif path in ("/healthz", "/readyz"):
                    check = owner._healthy if path == "/healthz" else owner._ready
                    ok = _probe(check)
                    code = 200 if ok else 503
                    if owner._status is None:
                        self._send(code, b"ok\n" if ok else b"unavailable\n")
                    else:
                        body = {"status": "ok" if ok else "unavailable", **_fields(owner._status)}
                        self._send(code, json.dumps(body).encode() + b"\n", "application/json")
                else:
                    self._send(404, b"not found\n")

            def _send(
                self, status: int, body: bytes, ctype: str = "text/plain", encoding: str = ""
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                if encoding:
                    self.send_header("Content-Encoding", encoding)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                _LOG.debug("%s " + format, self.address_string(), *args)

        return Handler
