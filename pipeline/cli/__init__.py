"""The ``pipeline`` command-line interface (click): a thin front end, one module per group.

It is a composition root: it may import everything (the core, every capability package,
``producers`` and ``consumers``). Nothing but ``pipeline.__main__`` and ``pipeline.demo``
imports it.
"""

from ._app import cli, main
from ._context import CliContext

__all__ = ["CliContext", "cli", "main"]
