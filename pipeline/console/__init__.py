"""The ops console: an HTTP API and server-rendered pages for queues, lag and dead letters.

What it holds: the console snapshot (``ConsoleState``: lag from the lag poller, dead-letter
counts, scheduler backlog, lag history), the JSON API under ``/api/v1`` (FastAPI), the pages
(Jinja2) and their static files (vendored uPlot), the bearer-token check and bind rule. It is a
front end over the same modules as the CLI: it reads through them and copies none of their logic.

It may import the core (``pipeline._*``), ``pipeline.avro`` (the catalog's event models),
``pipeline.lag`` (the poller), ``pipeline.ops`` (dead letters, the redrive run),
``pipeline.scheduler`` (its backlog) and ``pipeline.stats`` (the per-state counts). It never
imports ``producers``, ``consumers`` or ``pipeline.cli``: sending (enqueue, redrive) goes
through callables the ``pipeline console`` command builds on the producer SDK.
"""

from ._api import ConsoleServices, Enqueue
from ._app import create_app
from ._security import TOKEN_ENV, TokenCheck, is_local, unsafe_bind
from ._state import ConsoleSnapshot, ConsoleState, DeadLetterCounts, GroupStats

__all__ = [
    "TOKEN_ENV",
    "ConsoleServices",
    "ConsoleSnapshot",
    "ConsoleState",
    "DeadLetterCounts",
    "Enqueue",
    "GroupStats",
    "TokenCheck",
    "create_app",
    "is_local",
    "unsafe_bind",
]
