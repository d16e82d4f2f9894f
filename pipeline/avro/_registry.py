"""Confluent wire format (``00`` + 4-byte schema id) through confluent-kafka's registry client."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from confluent_kafka.schema_registry import (
    Schema,
    SchemaRegistryClient,
    SchemaRegistryError,
    record_subject_name_strategy,
)
from confluent_kafka.serialization import MessageField, SerializationContext

from pipeline._errors import (
    BadMagicByteError,
    RecordCoordinates,
    SchemaError,
    SchemaNotFoundError,
    TruncatedRecordError,
    UnknownSchemaError,
)

from ._catalog import Catalog, SchemaVersion

__all__ = ["CONFLUENT_MAGIC", "RegistryFraming", "registry_client", "registry_latest"]

CONFLUENT_MAGIC = 0
SubjectNameStrategy = Callable[[SerializationContext | None, str | None], str | None]


def registry_client(url: str, **conf: Any) -> SchemaRegistryClient:
    """A registry client for ``url``; ``mock://...`` gives confluent's in-memory mock."""
    client: SchemaRegistryClient = SchemaRegistryClient.new_client({"url": url, **conf})
    return client


def _schema_of(version: SchemaVersion) -> Schema:
    return Schema(json.dumps(version.raw), "AVRO")


def registry_latest(client: SchemaRegistryClient, subject: str) -> SchemaVersion | None:
    """The registry's latest schema under ``subject``, or None when the subject is unknown.

    Raises:
        SchemaError: the registry failed or returned something that is not an Avro record.
    """
    try:
        registered = client.get_latest_version(subject)
    except SchemaRegistryError as exc:
        if exc.http_status_code == 404:
            return None
        raise SchemaError(f"schema registry: {exc}") from exc
    schema_str = registered.schema.schema_str if registered.schema else None
    if schema_str is None:
        raise SchemaError(f"schema registry returned no schema for {subject}")
    raw = json.loads(schema_str)
    return SchemaVersion.from_json(raw, subject=subject, version=registered.version or 0)


class RegistryFraming:
    """Confluent framing: ids come from the registry, writer schemas are fetched by id.

    Args:
        client: a confluent-kafka ``SchemaRegistryClient`` (``mock://`` in tests).
        catalog: known versions, used to name the subject and version of fetched schemas.
        auto_register: register a version on first use (True), or only look it up (False:
            producing an unregistered version fails).
        subject_name_strategy: one of confluent's strategies; the default names a subject by
            the record's full name, which is also the catalog's subject.
    """

    def __init__(
        self,
        client: SchemaRegistryClient,
        catalog: Catalog,
        *,
        auto_register: bool = True,
        subject_name_strategy: SubjectNameStrategy = record_subject_name_strategy,
    ) -> None:
        self.client = client
        self.catalog = catalog
        self.auto_register = auto_register
        self.subject_name_strategy = subject_name_strategy
        self._prefixes: dict[tuple[bytes, str | None], bytes] = {}
        self._writers: dict[int, SchemaVersion] = {}

    def prefix(self, schema: SchemaVersion, topic: str | None) -> bytes:
        """``00`` plus the big-endian schema id, registering the schema if allowed."""
        key = (schema.fingerprint, topic)
        cached = self._prefixes.get(key)
        if cached is None:
            schema_id = self._schema_id(schema, topic)
            cached = bytes([CONFLUENT_MAGIC]) + schema_id.to_bytes(4, "big")
            self._prefixes[key] = cached
            self._writers.setdefault(schema_id, schema)
        return cached

    def _schema_id(self, schema: SchemaVersion, topic: str | None) -> int:
        ctx = SerializationContext(topic, MessageField.VALUE) if topic else None
        try:
            subject = self.subject_name_strategy(ctx, schema.fullname)
        except ValueError as exc:
            raise SchemaError(f"subject naming for {schema.label} needs a topic: {exc}") from exc
        if subject is None:
            raise SchemaError(f"the subject naming strategy gave no subject for {schema.label}")
        try:
            if self.auto_register:
                return int(self.client.register_schema(subject, _schema_of(schema)))
            return int(self.client.lookup_schema(subject, _schema_of(schema)).schema_id or 0)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise SchemaNotFoundError(
                    f"{schema.label} is not registered under subject {subject!r} "
                    "and auto-registration is off"
                ) from exc
            raise SchemaError(f"schema registry rejected {schema.label}: {exc}") from exc

    def writer(self, data: bytes, coordinates: RecordCoordinates) -> tuple[SchemaVersion, int]:
        """Read ``00`` + schema id and fetch (once) the writer schema from the registry."""
        if not data or data[0] != CONFLUENT_MAGIC:
            raise BadMagicByteError(
                f"not Confluent wire format: starts with {data[:1].hex() or 'nothing'}, "
                "expected 00",
                data=data,
                coordinates=coordinates,
            )
        if len(data) < 5:
            raise TruncatedRecordError(
                f"Confluent header is {len(data)} bytes, expected 5",
                data=data,
                coordinates=coordinates,
            )
        schema_id = int.from_bytes(data[1:5], "big")
        writer = self._writers.get(schema_id)
        if writer is None:
            writer = self._fetch(schema_id, data, coordinates)
        return writer, 5

    def _fetch(self, schema_id: int, data: bytes, coordinates: RecordCoordinates) -> SchemaVersion:
        try:
            schema = self.client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise UnknownSchemaError(
                    f"schema id {schema_id} is not in the registry",
                    data=data,
                    coordinates=coordinates,
                ) from exc
            # Not the record's fault: let the caller retry instead of dead-lettering it.
            raise SchemaError(f"schema registry failed to return id {schema_id}: {exc}") from exc
        if schema.schema_type not in (None, "AVRO") or schema.schema_str is None:
            raise UnknownSchemaError(
                f"schema id {schema_id} is {schema.schema_type}, not Avro",
                data=data,
                coordinates=coordinates,
            )
        fetched = SchemaVersion.from_json(json.loads(schema.schema_str))
        writer = self.catalog.by_fingerprint(fetched.fingerprint) or fetched
        self._writers[schema_id] = writer
        return writer
