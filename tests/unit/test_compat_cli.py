"""Evolution checks and the ``pipeline schemas`` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.avro._catalog import Catalog, CompatibilityMode
from pipeline.avro._compat import check_catalog, check_subject
from pipeline.cli._app import SUBCOMMANDS, cli
from tests.unit.codec_samples import catalog

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
INCOMPATIBLE = FIXTURES / "schemas_incompatible"


@pytest.fixture(autouse=True)
def _wired(monkeypatch: pytest.MonkeyPatch, clean_env: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SUBCOMMANDS, "schemas", "pipeline.cli.schemas:schemas")


def test_shipped_schemas_are_compatible() -> None:
    assert check_catalog(catalog()) == []


def test_incompatible_fixture_is_explained() -> None:
    found = [str(i) for i in check_catalog(Catalog.load(INCOMPATIBLE))]
    assert found == [
        "orders.Invoice: v2 added field `due_date` without a default: breaks BACKWARD "
        "(required by FULL)",
        "orders.Invoice: v2 removed field `currency` without a default: breaks FORWARD "
        "(required by FULL)",
    ]


def test_modes_pick_the_pairs() -> None:
    chain = Catalog.load(INCOMPATIBLE).versions("orders.Invoice")
    assert [i.direction for i in check_subject(chain, CompatibilityMode.BACKWARD)] == ["BACKWARD"]
    assert [i.direction for i in check_subject(chain, CompatibilityMode.FORWARD)] == ["FORWARD"]
    assert check_subject(chain, CompatibilityMode.NONE) == []


def _schema(fields: list[dict[str, object]]) -> dict[str, object]:
    return {"type": "record", "name": "T", "namespace": "t", "fields": fields}


def test_transitive_checks_every_earlier_version(tmp_path: Path) -> None:
    v1 = _schema([{"name": "a", "type": "int"}])
    v2 = _schema([{"name": "a", "type": "int"}, {"name": "b", "type": "string", "default": ""}])
    v3 = _schema([{"name": "b", "type": "string", "default": ""}])  # drops a
    for n, schema in enumerate([v1, v2, v3], 1):
        (tmp_path / f"T.v{n}.avsc").write_text(json.dumps(schema))
    chain = Catalog.load(tmp_path).versions("t.T")
    assert check_subject(chain, CompatibilityMode.FORWARD)  # v3 vs v2: `a` had no default
    transitive = check_subject(chain, CompatibilityMode.FORWARD_TRANSITIVE)
    assert sorted((i.newer.version, i.older.version) for i in transitive) == [(3, 1), (3, 2)]


def test_type_change_is_explained(tmp_path: Path) -> None:
    (tmp_path / "T.v1.avsc").write_text(json.dumps(_schema([{"name": "a", "type": "string"}])))
    (tmp_path / "T.v2.avsc").write_text(json.dumps(_schema([{"name": "a", "type": "int"}])))
    (problem,) = check_catalog(Catalog.load(tmp_path))
    assert "v2 changed the type of `a` incompatibly with v1" in str(problem)
    assert "breaks BACKWARD" in str(problem)


def test_cli_check_passes_on_shipped_schemas() -> None:
    result = CliRunner().invoke(cli, ["schemas", "check"])
    assert result.exit_code == 0, result.output
    assert "ok  orders.OrderPlaced  v1..v2  FULL_TRANSITIVE" in result.output


def test_cli_check_rejects_the_incompatible_fixture() -> None:
    result = CliRunner().invoke(cli, ["schemas", "check", "--schemas-dir", str(INCOMPATIBLE)])
    assert result.exit_code == 1
    assert "Error: 2 incompatible change(s)" in result.output
    assert "v2 removed field `currency` without a default: breaks FORWARD" in result.output


def test_cli_check_reads_pipeline_schemas_dir(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("PIPELINE_SCHEMAS_DIR", str(INCOMPATIBLE))
    result = CliRunner().invoke(cli, ["schemas", "check"])
    assert result.exit_code == 1
    assert "orders.Invoice" in result.output


def test_cli_list_and_show() -> None:
    listing = CliRunner().invoke(cli, ["schemas", "list"])
    assert listing.exit_code == 0
    fingerprint = catalog().get("orders.OrderPlaced").fingerprint.hex()
    assert fingerprint in listing.output
    shown = CliRunner().invoke(cli, ["schemas", "show", "orders.OrderPlaced", "--version", "1"])
    assert shown.exit_code == 0
    body = shown.output.split("\n", 1)[1]
    assert json.loads(body) == catalog().get("orders.OrderPlaced", 1).raw
    missing = CliRunner().invoke(cli, ["schemas", "show", "nope.Nope"])
    assert missing.exit_code == 2
    assert "unknown subject 'nope.Nope'" in missing.output
    no_version = CliRunner().invoke(
        cli, ["schemas", "show", "orders.OrderPlaced", "--version", "9"]
    )
    assert no_version.exit_code == 1
    assert "has no version 9" in no_version.output


def test_cli_check_against_registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from examples.orders.events import OrderPlacedV1
    from pipeline.avro import _registry
    from pipeline.avro._codec import Codec
    from tests.unit.codec_samples import order_v1

    client = _registry.registry_client("mock://cli")
    cat = catalog()
    Codec(cat, [OrderPlacedV1], framing=_registry.RegistryFraming(client, cat)).encode(order_v1())
    monkeypatch.setattr(_registry, "registry_client", lambda url: client)
    monkeypatch.setenv("PIPELINE_SCHEMA_REGISTRY_URL", "mock://cli")
    result = CliRunner().invoke(cli, ["schemas", "check", "--registry"])
    assert result.exit_code == 0, result.output
    assert "new payments.PaymentCaptured: not in the registry yet" in result.output

    # The registry holds a version this checkout does not know: refuse to compare blindly.
    local = tmp_path / "orders"
    local.mkdir()
    (local / "OrderPlaced.v1.avsc").write_text(json.dumps(cat.get("orders.OrderPlaced", 2).raw))
    result = CliRunner().invoke(
        cli, ["schemas", "check", "--registry", "--schemas-dir", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert "the registry's latest orders.OrderPlaced (v1) is not in" in result.output


def test_cli_registry_needs_a_url() -> None:
    result = CliRunner().invoke(cli, ["schemas", "check", "--registry"])
    assert result.exit_code == 2
    assert "PIPELINE_SCHEMA_REGISTRY_URL" in result.output
