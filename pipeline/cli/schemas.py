"""``pipeline schemas``: list, show and check the Avro contracts under ``schemas/``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from pipeline._errors import IncompatibleSchemaError, SchemaError
from pipeline.avro._catalog import Catalog
from pipeline.avro._compat import Incompatibility, check_catalog, check_pair

from ._context import CliContext

__all__ = ["schemas"]

_DIR_OPTION = click.option(
    "--schemas-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Schemas directory; overrides PIPELINE_SCHEMAS_DIR.",
)


def _catalog(ctx: CliContext, schemas_dir: Path | None) -> Catalog:
    if schemas_dir is not None:
        return Catalog.load(schemas_dir)
    return Catalog.load(settings=ctx.settings)


@click.group()
def schemas() -> None:
    """The Avro event contracts: one file per published version."""


@schemas.command("list")
@_DIR_OPTION
@click.pass_obj
def list_(ctx: CliContext, schemas_dir: Path | None) -> None:
    """List subjects with their compatibility mode, versions and latest fingerprint."""
    catalog = _catalog(ctx, schemas_dir)
    rows = [("SUBJECT", "MODE", "VERSIONS", "LATEST FINGERPRINT")]
    for subject in catalog.subjects():
        latest = catalog.get(subject)
        rows.append(
            (subject, catalog.mode(subject).value, str(latest.version), latest.fingerprint.hex())
        )
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        click.echo(
            "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[3]])
        )


@schemas.command()
@click.argument("subject")
@click.option("--version", "version", type=click.IntRange(min=1), help="Version (default: latest).")
@click.option("--canonical", is_flag=True, help="Print the parsing canonical form instead.")
@_DIR_OPTION
@click.pass_obj
def show(
    ctx: CliContext, subject: str, version: int | None, canonical: bool, schemas_dir: Path | None
) -> None:
    """Show one version of SUBJECT (the record's full name, e.g. orders.OrderPlaced)."""
    catalog = _catalog(ctx, schemas_dir)
    if subject not in catalog.subjects():
        raise click.BadParameter(
            f"unknown subject {subject!r}; known: {', '.join(catalog.subjects())}",
            param_hint="SUBJECT",
        )
    sv = catalog.get(subject, version)
    click.echo(
        f"# {sv.label}  mode {catalog.mode(subject).value}  fingerprint {sv.fingerprint.hex()}"
    )
    click.echo(sv.canonical if canonical else json.dumps(sv.raw, indent=2))


@schemas.command()
@click.option(
    "--registry",
    is_flag=True,
    help="Also check each subject's latest local version against the registry's latest.",
)
@_DIR_OPTION
@click.pass_obj
def check(ctx: CliContext, registry: bool, schemas_dir: Path | None) -> None:
    """Verify every subject's version chain under its declared compatibility mode.

    Exits 1 with an explanation of each break.
    """
    catalog = _catalog(ctx, schemas_dir)
    found = check_catalog(catalog)
    if registry:
        found += _check_registry(ctx, catalog)
    broken = {i.newer.subject for i in found}
    for subject in catalog.subjects():
        if subject not in broken:
            chain = catalog.versions(subject)
            click.echo(f"ok  {subject}  v1..v{len(chain)}  {catalog.mode(subject).value}")
    if found:
        raise IncompatibleSchemaError(
            f"{len(found)} incompatible change(s):\n" + "\n".join(f"  {i}" for i in found)
        )


def _check_registry(ctx: CliContext, catalog: Catalog) -> list[Incompatibility]:
    from pipeline.avro._registry import registry_client, registry_latest

    url = ctx.settings.schema_registry_url
    if not url:
        raise click.UsageError("--registry needs PIPELINE_SCHEMA_REGISTRY_URL")
    client = registry_client(url)
    found: list[Incompatibility] = []
    for subject in catalog.subjects():
        remote = registry_latest(client, subject)
        if remote is None:
            click.echo(f"new {subject}: not in the registry yet")
            continue
        local = catalog.by_fingerprint(remote.fingerprint)
        if local is None or local.subject != subject:
            raise SchemaError(
                f"the registry's latest {subject} (v{remote.version}) is not in "
                f"{catalog.root}; add it before publishing a new version"
            )
        found += check_pair(catalog.get(subject), local, catalog.mode(subject))
    return found
