"""The model <-> schema check: it names the first mismatch."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import ClassVar
from uuid import UUID

import pytest
from pydantic import AwareDatetime, create_model

from pipeline._errors import SchemaMismatchError
from pipeline.avro._catalog import SchemaVersion
from pipeline.avro._events import Event, Record, check_model
from tests.unit.codec_samples import MODELS, catalog

SCHEMA = SchemaVersion.from_json(
    {
        "type": "record",
        "name": "Probe",
        "namespace": "t",
        "fields": [
            {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {
                "name": "amount",
                "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2},
            },
            {
                "name": "color",
                "type": {"type": "enum", "name": "Color", "symbols": ["RED", "BLUE"]},
            },
            {"name": "note", "type": ["null", "string"], "default": None},
            {"name": "count", "type": "int", "default": 1},
            {
                "name": "inner",
                "type": {
                    "type": "record",
                    "name": "Inner",
                    "fields": [{"name": "day", "type": {"type": "int", "logicalType": "date"}}],
                },
            },
            {"name": "tags", "type": {"type": "map", "values": "long"}},
        ],
    },
    subject="t.Probe",
    version=1,
)


class Color(enum.StrEnum):
    RED = "RED"
    BLUE = "BLUE"


class Inner(Record):
    day: dt.date


class Probe(Event):
    subject: ClassVar[str] = "t.Probe"
    version: ClassVar[int] = 1

    id: UUID
    at: AwareDatetime
    amount: Decimal
    color: Color
    note: str | None = None
    count: int = 1
    inner: Inner
    tags: dict[str, int]


def test_matching_model_passes() -> None:
    check_model(Probe, SCHEMA)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: f"{m.__name__}")
def test_example_models_match_their_schemas(model: type[Event]) -> None:
    check_model(model, catalog().get(model.subject, model.version))


def _variant(drop: str | None = None, **fields: object) -> type[Event]:
    """Probe with some fields replaced by ``(annotation, default)`` specs, or one dropped."""
    spec: dict[str, object] = {
        name: (info.annotation, ... if info.is_required() else info.default)
        for name, info in Probe.model_fields.items()
        if name != drop
    }
    spec.update(fields)
    return create_model("Variant", __base__=Event, **spec)  # type: ignore[call-overload,no-any-return]


class Palette(enum.StrEnum):
    RED = "RED"
    GREEN = "GREEN"


class BadInner(Record):
    day: dt.datetime


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"amount": "float"}, r"`amount`: schema has decimal\(9,2\), model has float"),
        ({"at": "dt.datetime"}, r"`at`: .* model has datetime \(use AwareDatetime"),
        ({"id": "str"}, "`id`: schema has string uuid, model has str"),
        ({"color": "Palette"}, r"enum Palette values \['RED', 'GREEN'\] differ"),
        ({"note": "str"}, "`note` is nullable in the schema but not Optional in the model"),
        ({"inner": "BadInner"}, "`inner.day`: schema has int date, model has datetime"),
        ({"tags": "dict[str, str]"}, r"`tags\{\}`: schema has long, model has str"),
        ({"tags": "list[int]"}, "`tags`: schema has map, model has list"),
        ({"amount": "Decimal | None"}, "`amount` is Optional in the model but not nullable"),
    ],
)
def test_first_mismatch_is_named(change: dict[str, str], message: str) -> None:
    fields = {k: (eval(v, globals()), ...) for k, v in change.items()}
    with pytest.raises(SchemaMismatchError, match=message):
        check_model(_variant(**fields), SCHEMA)


def test_missing_and_extra_fields_are_named() -> None:
    with pytest.raises(SchemaMismatchError, match="`tags` is in the schema but not in the model"):
        check_model(_variant(drop="tags"), SCHEMA)
    with pytest.raises(SchemaMismatchError, match="`extra` is in the model but not in the schema"):
        check_model(_variant(extra=(int, 0)), SCHEMA)


def test_defaults_must_agree() -> None:
    with pytest.raises(SchemaMismatchError, match="`count` default differs: schema 1, model 2"):
        check_model(_variant(count=(int, 2)), SCHEMA)
    with pytest.raises(SchemaMismatchError, match="`count` has a default only in the schema"):
        check_model(_variant(count=(int, ...)), SCHEMA)
    with pytest.raises(SchemaMismatchError, match="`color` has a default only in the model"):
        check_model(_variant(color=(Color, Color.RED)), SCHEMA)
