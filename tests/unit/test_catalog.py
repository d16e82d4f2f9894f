"""The schema catalog: loading, subjects, modes and CRC-64-AVRO fingerprints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline._errors import SchemaError, SchemaNotFoundError
from pipeline.avro._catalog import Catalog, CompatibilityMode, SchemaVersion, crc64_avro
from tests.unit.codec_samples import catalog

# Test vectors from the Avro specification's share/test/data/schema-tests.txt (signed 64-bit
# integers, as the Java implementation prints them).
SPEC_VECTORS = [
    ('"null"', 7195948357588979594),
    ('"boolean"', -6970731678124411036),
    ('"int"', 8247732601305521295),
    ('"long"', -3434872931120570953),
    ('"float"', 5583340709985441680),
    ('"double"', -8181574048448539266),
    ('"bytes"', 5746618253357095269),
    ('"string"', -8142146995180207161),
    ("[]", -1241056759729112623),
    ('["int"]', -5232228896498058493),
    ('["int","boolean"]', 5392556393470105090),
    ('{"name":"foo","type":"record","fields":[]}', -4824392279771201922),
    ('{"name":"x.y.foo","type":"record","fields":[]}', 5916914534497305771),
    (
        '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"}]}',
        7843277075252814651,
    ),
    ('{"name":"foo","type":"enum","symbols":["A1"]}', -6342190197741309591),
    ('{"name":"foo","type":"fixed","size":15}', 1756455273707447556),
    ('{"type":"array","items":"null"}', -589620603366471059),
    ('{"type":"map","values":"string"}', -8732877298790414990),
]


def _reference_crc64(data: bytes) -> int:
    """The spec's reference algorithm, written independently of fastavro."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


@pytest.mark.parametrize(("canonical", "expected"), SPEC_VECTORS)
def test_fingerprint_matches_the_spec_vectors(canonical: str, expected: int) -> None:
    as_bytes = (expected & (2**64 - 1)).to_bytes(8, "little")
    assert crc64_avro(canonical) == as_bytes
    assert _reference_crc64(canonical.encode()) == expected & (2**64 - 1)


def test_record_fingerprint_uses_the_parsing_canonical_form() -> None:
    raw = {"fields": [], "type": "record", "name": "foo", "doc": "ignored", "namespace": "x.y"}
    sv = SchemaVersion.from_json(raw)
    assert sv.canonical == '{"name":"x.y.foo","type":"record","fields":[]}'
    assert int.from_bytes(sv.fingerprint, "little", signed=True) == 5916914534497305771


def test_shipped_catalog_has_the_example_domain() -> None:
    cat = catalog()
    assert cat.subjects() == [
        "orders.OrderPlaced",
        "payments.PaymentCaptured",
        "reminders.ReminderDue",
        "shipping.ShipmentRequested",
    ]
    assert [sv.version for sv in cat.versions("orders.OrderPlaced")] == [1, 2]
    assert cat.mode("orders.OrderPlaced") is CompatibilityMode.FULL_TRANSITIVE
    for sv in cat:
        assert cat.by_fingerprint(sv.fingerprint) is sv
        assert crc64_avro(sv.canonical) == sv.fingerprint


def test_shipped_schemas_use_every_required_construct() -> None:
    text = "".join(p.read_text() for p in Path(catalog().root or ".").rglob("*.avsc"))
    for construct in (
        '"timestamp-millis"',
        '"decimal"',
        '"uuid"',
        '"date"',
        '"enum"',
        '"array"',
        '"map"',
        '["null"',
        '"record"',
    ):
        assert construct in text, construct


def test_get_latest_and_unknown() -> None:
    cat = catalog()
    assert cat.get("orders.OrderPlaced").version == 2
    assert cat.get("orders.OrderPlaced", 1).version == 1
    with pytest.raises(SchemaNotFoundError, match="no version 3"):
        cat.get("orders.OrderPlaced", 3)
    with pytest.raises(SchemaNotFoundError, match="unknown subject"):
        cat.get("nope.Nope")


def _write(root: Path, name: str, schema: dict[str, object]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(json.dumps(schema))


RECORD = {
    "type": "record",
    "name": "Thing",
    "namespace": "t",
    "fields": [{"name": "a", "type": "int"}],
}


def test_version_gap_is_rejected(tmp_path: Path) -> None:
    _write(tmp_path / "t", "Thing.v1.avsc", RECORD)
    _write(tmp_path / "t", "Thing.v3.avsc", {**RECORD, "fields": []})
    with pytest.raises(SchemaError, match="without gaps"):
        Catalog.load(tmp_path)


def test_misnamed_file_is_rejected(tmp_path: Path) -> None:
    _write(tmp_path, "Other.v1.avsc", RECORD)
    with pytest.raises(SchemaError, match="defines Thing"):
        Catalog.load(tmp_path)
    (tmp_path / "Other.v1.avsc").rename(tmp_path / "thing.avsc")
    with pytest.raises(SchemaError, match=r"<RecordName>\.v<N>\.avsc"):
        Catalog.load(tmp_path)


def test_unknown_mode_and_subject_are_rejected(tmp_path: Path) -> None:
    _write(tmp_path, "Thing.v1.avsc", RECORD)
    (tmp_path / "compatibility.toml").write_text('[subjects]\n"t.Thing" = "SIDEWAYS"\n')
    with pytest.raises(SchemaError, match="SIDEWAYS"):
        Catalog.load(tmp_path)
    (tmp_path / "compatibility.toml").write_text('[subjects]\n"t.Other" = "FULL"\n')
    with pytest.raises(SchemaError, match=r"unknown subject\(s\): t.Other"):
        Catalog.load(tmp_path)
    (tmp_path / "compatibility.toml").write_text('default = "none"\n')
    assert Catalog.load(tmp_path).mode("t.Thing") is CompatibilityMode.NONE


def test_invalid_avro_is_rejected(tmp_path: Path) -> None:
    _write(tmp_path, "Thing.v1.avsc", {**RECORD, "fields": [{"name": "a", "type": "integer"}]})
    with pytest.raises(SchemaError, match="invalid Avro schema"):
        Catalog.load(tmp_path)


def test_settings_schemas_dir_wins(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    from pipeline._settings import load_settings

    _write(tmp_path, "Thing.v1.avsc", RECORD)
    clean_env.setenv("PIPELINE_SCHEMAS_DIR", str(tmp_path))
    assert Catalog.load(settings=load_settings()).subjects() == ["t.Thing"]
