"""Schema evolution checks: every subject's version chain under its declared mode.

The verdict comes from the Apache ``avro`` package's reader/writer compatibility checker; this
module only picks the pairs a mode requires and turns the checker's locations into sentences.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import avro.schema
from avro.compatibility import (
    ReaderWriterCompatibilityChecker,
    SchemaCompatibilityResult,
    SchemaCompatibilityType,
)

from pipeline._errors import SchemaError

from ._catalog import Catalog, CompatibilityMode, SchemaVersion
from ._events import resolve_named

__all__ = ["Incompatibility", "check_catalog", "check_pair", "check_subject"]


@dataclass(frozen=True)
class Incompatibility:
    """One required reader/writer pair that the Avro checker rejects."""

    newer: SchemaVersion
    older: SchemaVersion
    mode: CompatibilityMode
    direction: str
    """``BACKWARD`` (newer cannot read older records) or ``FORWARD`` (the reverse)."""
    problems: tuple[str, ...]

    def __str__(self) -> str:
        what = "; ".join(self.problems)
        breaks = (
            self.mode.value
            if self.mode.value.startswith(self.direction)
            else (f"{self.direction} (required by {self.mode.value})")
        )
        return f"{self.newer.subject}: {what}: breaks {breaks}"


def check_catalog(catalog: Catalog) -> list[Incompatibility]:
    """Check every subject's chain; returns every incompatibility found (empty when all pass).

    Raises:
        SchemaError: a schema cannot be parsed by the ``avro`` package.
    """
    found: list[Incompatibility] = []
    for subject in catalog.subjects():
        found += check_subject(catalog.versions(subject), catalog.mode(subject))
    return found


def check_subject(chain: list[SchemaVersion], mode: CompatibilityMode) -> list[Incompatibility]:
    """Check one subject's versions (oldest first) under a compatibility mode."""
    found: list[Incompatibility] = []
    for i, newer in enumerate(chain):
        olders = chain[:i] if mode.transitive else chain[max(0, i - 1) : i]
        for older in reversed(olders):
            found += check_pair(newer, older, mode)
    return found


def check_pair(
    newer: SchemaVersion, older: SchemaVersion, mode: CompatibilityMode
) -> list[Incompatibility]:
    """Check that ``newer`` may follow ``older`` under ``mode`` (NONE always passes)."""
    found = []
    if mode.backward:
        result = _compatibility(reader=newer, writer=older)
        if result is not None:
            problems = _explain(result, newer, older, reader_is_newer=True)
            found.append(Incompatibility(newer, older, mode, "BACKWARD", problems))
    if mode.forward:
        result = _compatibility(reader=older, writer=newer)
        if result is not None:
            problems = _explain(result, newer, older, reader_is_newer=False)
            found.append(Incompatibility(newer, older, mode, "FORWARD", problems))
    return found


def _avro(schema: SchemaVersion) -> avro.schema.Schema:
    try:
        return avro.schema.parse(json.dumps(schema.raw))
    except Exception as exc:  # avro raises SchemaParseException and friends
        raise SchemaError(f"{schema.label}: the avro package rejects the schema: {exc}") from exc


def _compatibility(
    reader: SchemaVersion, writer: SchemaVersion
) -> SchemaCompatibilityResult | None:
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    result = checker.get_compatibility(_avro(reader), _avro(writer))
    if result.compatibility is SchemaCompatibilityType.compatible:
        return None
    return result


def _explain(
    result: SchemaCompatibilityResult,
    newer: SchemaVersion,
    older: SchemaVersion,
    *,
    reader_is_newer: bool,
) -> tuple[str, ...]:
    reader = newer if reader_is_newer else older
    new, old = f"v{newer.version}", f"v{older.version}"
    sentences = []
    # The checker's merge keeps the root "/" next to real locations; it only means something alone.
    locations = sorted(result.locations - {"/"}) or ["/"]
    for location in locations:
        tokens = [t for t in location.split("/") if t]
        path, tail = _walk(reader, tokens)
        field = f"`{path}`" if path else "the record"
        if tail == "field":
            if reader_is_newer:
                sentences.append(f"{new} added field {field} without a default")
            else:
                sentences.append(f"{new} removed field {field} without a default")
        elif tail == "symbols":
            change = "removed enum symbols from" if reader_is_newer else "added enum symbols to"
            sentences.append(f"{new} {change} {field} and the enum has no default")
        elif tail == "name":
            sentences.append(f"{new} renamed the type of {field} without an alias")
        elif tail == "size":
            sentences.append(f"{new} changed the size of fixed {field}")
        else:
            sentences.append(f"{new} changed the type of {field} incompatibly with {old}")
    # Missing-default messages are bare field names, already said above.
    details = "; ".join(sorted(m for m in result.messages if " " in m))
    if details:
        sentences.append(f"(avro checker: {details})")
    return tuple(sentences)


def _walk(schema: SchemaVersion, tokens: list[str]) -> tuple[str, str]:
    """Follow an avro-checker location through the reader schema to a field path."""
    node: Any = schema.parsed
    path: list[str] = []
    tail = "type"
    i = 0
    while i < len(tokens):
        token = tokens[i]
        node = resolve_named(node, schema.named)
        if token == "fields" and i + 1 < len(tokens) and isinstance(node, dict):
            field = node["fields"][int(tokens[i + 1])]
            path.append(field["name"])
            node, tail, i = field, "field", i + 2
            continue
        if token == "type" and isinstance(node, dict):
            node, tail = node["type"], "type"
        elif token in ("items", "values") and isinstance(node, dict):
            path[-1:] = [path[-1] + ("[]" if token == "items" else "{}")] if path else []
            node, tail = node[token], "type"
        elif token.isdigit() and isinstance(node, list):
            node, tail = node[int(token)], "type"
        else:
            tail = token
        i += 1
    return ".".join(path), tail
