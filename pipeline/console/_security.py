"""The console's access rules: read-only without a token, local-only without a token."""

from __future__ import annotations

import hmac
import ipaddress

from fastapi import HTTPException, Request

from pipeline._settings import CONSOLE_TOKEN_ENV

__all__ = ["TOKEN_ENV", "TokenCheck", "is_local", "unsafe_bind"]

TOKEN_ENV = CONSOLE_TOKEN_ENV


def is_local(host: str) -> bool:
    """True for a loopback address or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def unsafe_bind(host: str, token: str | None) -> str | None:
    """Why the console must not start on ``host`` (None: it may)."""
    if token or is_local(host):
        return None
    return (
        f"refusing to bind {host}: a non-local bind needs a token "
        f"(--token or {TOKEN_ENV}); or bind 127.0.0.1"
    )


class TokenCheck:
    """A FastAPI dependency: the request must carry ``Authorization: Bearer <token>``.

    No credentials: 401 (with ``WWW-Authenticate: Bearer``). A wrong token, or a console
    started without one (read-only): 403. The token is compared in constant time and never
    echoed.
    """

    def __init__(self, token: str | None) -> None:
        self._token = token.encode() if token else None

    @property
    def read_only(self) -> bool:
        return self._token is None

    def __call__(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise HTTPException(
                401,
                "this route changes data: send Authorization: Bearer <token>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if self._token is None:
            raise HTTPException(
                403, f"the console is read-only: start it with --token or {TOKEN_ENV}"
            )
        if not hmac.compare_digest(given.strip().encode(), self._token):
            raise HTTPException(403, "wrong token")
