"""The ``pipeline`` click group, its global options and the one error boundary."""

from __future__ import annotations

import logging
import sys
from importlib import import_module
from importlib.util import find_spec

import click

from pipeline._errors import AuthenticationError, PipelineError
from pipeline._settings import LIBRDKAFKA_LOGGER
from pipeline._version import __version__

from ._context import CliContext

__all__ = ["cli", "main"]

# name -> "module:attribute"; modules are imported only when their command runs, so a slow or
# broken subcommand never slows down or breaks the others.
SUBCOMMANDS: dict[str, str] = {
    "console": "pipeline.cli.console:console",
    "consume": "pipeline.cli.consume:consume",
    "dlq": "pipeline.cli.dlq:dlq",
    "doctor": "pipeline.cli.doctor:doctor",
    "lag": "pipeline.cli.lag:lag",
    "offsets": "pipeline.cli.offsets:offsets",
    "outbox": "pipeline.cli.outbox:outbox",
    "produce": "pipeline.cli.produce:produce",
    "replay": "pipeline.cli.replay:replay",
    "request": "pipeline.cli.request:request",
    "scheduler": "pipeline.cli.scheduler:scheduler",
    "schemas": "pipeline.cli.schemas:schemas",
    "stats": "pipeline.cli.stats:stats",
    "topics": "pipeline.cli.topics:topics",
    "worker": "pipeline.cli.worker:worker",
}


def _exists(target: str) -> bool:
    return find_spec(target.partition(":")[0]) is not None


class _RefusedError(click.ClickException):
    """The cluster refused our credentials or certificate: the user's to fix (exit 2)."""

    exit_code = 2


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        available = {name for name, target in SUBCOMMANDS.items() if _exists(target)}
        return sorted({*super().list_commands(ctx), *available})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in SUBCOMMANDS and _exists(SUBCOMMANDS[cmd_name]):
            module, _, attr = SUBCOMMANDS[cmd_name].partition(":")
            command = getattr(import_module(module), attr)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> object:
        """Turn ``PipelineError`` into ``Error: ...`` on stderr and exit status 1 (2 when the
        cluster refused the credentials or certificate)."""
        try:
            return super().invoke(ctx)
        except PipelineError as exc:
            if isinstance(ctx.obj, CliContext) and ctx.obj.verbose:
                raise
            if isinstance(exc, AuthenticationError):  # wrong credentials or CA: exit 2
                raise _RefusedError(str(exc)) from exc
            raise click.ClickException(str(exc)) from exc


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pipeline")
@click.option(
    "--bootstrap-servers",
    envvar="PIPELINE_BOOTSTRAP_SERVERS",
    metavar="HOST:PORT[,...]",
    help="Kafka bootstrap servers; overrides PIPELINE_BOOTSTRAP_SERVERS.",
)
@click.option("-v", "--verbose", is_flag=True, help="Show librdkafka logs and tracebacks.")
@click.pass_context
def cli(ctx: click.Context, bootstrap_servers: str | None, verbose: bool) -> None:
    """event-pipeline: typed Avro events on Kafka, and the tools to operate them."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # librdkafka reports every refused connection; a CLI user wants one clear sentence instead.
    LIBRDKAFKA_LOGGER.setLevel(logging.DEBUG if verbose else logging.CRITICAL)
    ctx.obj = CliContext(bootstrap_servers=bootstrap_servers, verbose=verbose)


def main() -> None:
    """Console-script entry point."""
    try:
        cli.main(prog_name="pipeline")
    except KeyboardInterrupt:  # pragma: no cover - click already maps most of these to Abort
        click.echo("Interrupted.", err=True)
        sys.exit(130)
