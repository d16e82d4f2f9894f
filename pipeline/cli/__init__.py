"""The ``pipeline`` command-line interface (click)."""

from ._app import cli, main
from ._context import CliContext

__all__ = ["CliContext", "cli", "main"]
