"""The Avro codec: typed events to framed bytes and back, resolving writer against reader.

Framing (DESIGN.md section 3) is pluggable: :class:`SingleObjectFraming` (``C3 01`` + the
8-byte little-endian CRC-64-AVRO fingerprint, writer schema found in the catalog) is the
default; :class:`pipeline.avro._registry.RegistryFraming` is the Confluent wire format.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from io import BytesIO
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, overload

from fastavro import schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError as _FastavroResolutionError
from pydantic import BaseModel

from pipeline._errors import (
    BadMagicByteError,
    DecodeError,
    RecordCoordinates,
    SchemaResolutionError,
    TruncatedRecordError,
    UnknownSchemaError,
)

from ._catalog import Catalog, SchemaVersion
from ._convert import Binding, bind, diagnose
from ._events import Event
from ._reader import Reader, compile_reader

if TYPE_CHECKING:
    from confluent_kafka.serialization import SerializationContext

    from pipeline._settings import Settings

__all__ = ["SINGLE_OBJECT_MAGIC", "Codec", "Framing", "SingleObjectFraming"]

E = TypeVar("E", bound=Event)
SINGLE_OBJECT_MAGIC = b"\xc3\x01"
_NO_RECORD = RecordCoordinates()


class Framing(Protocol):
    """How the writer schema is named in front of the Avro body."""

    def prefix(self, schema: SchemaVersion, topic: str | None) -> bytes:
        """The bytes written before a body encoded with ``schema``."""

    def writer(self, data: bytes, coordinates: RecordCoordinates) -> tuple[SchemaVersion, int]:
        """The writer schema of ``data`` and where its body starts; raises ``DecodeError``."""


class SingleObjectFraming:
    """Avro single-object encoding; writer schemas are looked up in the catalog by fingerprint."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def prefix(self, schema: SchemaVersion, topic: str | None) -> bytes:
        """``C3 01`` plus the schema's 8-byte little-endian CRC-64-AVRO fingerprint."""
        return SINGLE_OBJECT_MAGIC + schema.fingerprint

    def writer(self, data: bytes, coordinates: RecordCoordinates) -> tuple[SchemaVersion, int]:
        """Read the header and find the writer schema in the catalog."""
        if data[:2] != SINGLE_OBJECT_MAGIC:
            raise BadMagicByteError(
                f"not Avro single-object encoding: starts with {data[:2].hex() or 'nothing'}, "
                f"expected c301",
                data=data,
                coordinates=coordinates,
            )
        if len(data) < 10:
            raise TruncatedRecordError(
                f"single-object header is {len(data)} bytes, expected 10",
                data=data,
                coordinates=coordinates,
            )
        schema = self.catalog.by_fingerprint(data[2:10])
        if schema is None:
            raise UnknownSchemaError(
                f"no schema in the catalog has fingerprint {data[2:10].hex()}",
                data=data,
                coordinates=coordinates,
            )
        return schema, 10


@dataclass(frozen=True, slots=True)
class _Plan:
    """How to read one writer schema into one reader model (cached per pair)."""

    reader_schema: dict[str, Any] | None
    from_datum: Callable[[dict[str, Any]], BaseModel]
    read: Reader | None  # the generated body reader, when no schema resolution is needed


class Codec:
    """Encode events to framed Avro bytes and decode them into reader models.

    Construction does no I/O beyond what the framing needs lazily; every schema is parsed once
    by the catalog, and each (model, schema) and (writer, reader) pair is compiled once.
    """

    def __init__(
        self,
        catalog: Catalog,
        models: Iterable[type[Event]] = (),
        *,
        framing: Framing | None = None,
    ) -> None:
        self.catalog = catalog
        self.framing: Framing = framing or SingleObjectFraming(catalog)
        self._bindings: dict[type[BaseModel], Binding] = {}
        self._readers: dict[str, type[Event]] = {}
        self._prefixes: dict[tuple[type[BaseModel], str | None], tuple[bytes, Binding]] = {}
        self._plans: dict[tuple[bytes, type[BaseModel] | None], _Plan] = {}
        self._body_readers: dict[bytes, Reader | None] = {}
        for model in models:
            self.register(model)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        models: Iterable[type[Event]] = (),
        *,
        catalog: Catalog | None = None,
        **registry_options: Any,
    ) -> Codec:
        """A codec for these settings: Confluent framing when a registry URL is set.

        Args:
            settings: supplies ``schemas_dir`` and ``schema_registry_url``.
            models: event classes to register (reader models for their subjects).
            catalog: an already loaded catalog (default: load ``settings.schemas_dir``).
            **registry_options: passed to :class:`pipeline.avro._registry.RegistryFraming`
                (``auto_register``, ``subject_name_strategy``).
        """
        catalog = catalog or Catalog.load(settings=settings)
        framing: Framing | None = None
        if settings.schema_registry_url:
            from ._registry import RegistryFraming, registry_client

            client = registry_client(settings.schema_registry_url)
            framing = RegistryFraming(client, catalog, **registry_options)
        return cls(catalog, models, framing=framing)

    def register(self, model: type[Event]) -> Binding:
        """Check a model against its schema version and use it as its subject's reader.

        The reader model of a subject is the registered model with the highest version.

        Raises:
            SchemaNotFoundError: the catalog has no such subject or version.
            SchemaMismatchError: the model does not match the schema.
        """
        binding = self._bindings.get(model)
        if binding is None:
            binding = bind(model, self.catalog.get(model.subject, model.version))
            self._bindings[model] = binding
        current = self._readers.get(model.subject)
        if current is None or current.version < model.version:
            self._readers[model.subject] = model
            self._plans = {k: v for k, v in self._plans.items() if k[1] is not None}
        return binding

    def reader_for(self, subject: str) -> type[Event] | None:
        """The model that decodes records of ``subject`` by default, if one is registered."""
        return self._readers.get(subject)

    # -- encoding -------------------------------------------------------------------------------

    def encode(self, event: Event, *, topic: str | None = None) -> bytes:
        """Encode an event: framing header plus Avro body.

        Args:
            event: the event; its class is registered on first use.
            topic: the destination topic (for registry subject naming); defaults to the
                event class's ``topic``.

        Raises:
            EncodeError: the event does not fit its schema (the message names the field).
        """
        key = (type(event), topic)
        cached = self._prefixes.get(key)
        if cached is None:
            binding = self.register(type(event))
            cached = (self.framing.prefix(binding.schema, topic or event.topic), binding)
            self._prefixes[key] = cached
        prefix, binding = cached
        try:
            if binding.write is not None:
                return binding.write(binding.to_datum(event), prefix)
            buffer = BytesIO()
            buffer.write(prefix)
            schemaless_writer(buffer, binding.schema.parsed, binding.to_datum(event))
        except Exception as exc:  # ValueError, TypeError, KeyError, AttributeError, ...
            raise diagnose(binding, event, exc) from exc
        return buffer.getvalue()

    def __call__(self, obj: Event | None, ctx: SerializationContext | None = None) -> bytes | None:
        """The confluent-kafka serializer contract: ``(obj, ctx) -> bytes | None``."""
        if obj is None:
            return None
        return self.encode(obj, topic=ctx.topic if ctx is not None else None)

    # -- decoding -------------------------------------------------------------------------------

    @overload
    def decode(
        self, data: bytes, reader: type[E], *, coordinates: RecordCoordinates | None = None
    ) -> E: ...
    @overload
    def decode(
        self, data: bytes, reader: None = None, *, coordinates: RecordCoordinates | None = None
    ) -> Event: ...
    def decode(
        self,
        data: bytes,
        reader: type[Event] | None = None,
        *,
        coordinates: RecordCoordinates | None = None,
    ) -> Event:
        """Decode framed bytes into a model, resolving the writer schema against the reader's.

        Args:
            data: the record value.
            reader: the model to read into; default: the registered model of the writer's
                subject.
            coordinates: where the record came from, carried by any ``DecodeError``.

        Raises:
            DecodeError: bad magic byte, unknown fingerprint or schema id, truncated body or
                trailing bytes, or a writer schema that does not resolve to the reader's.
        """
        where = coordinates or _NO_RECORD
        writer, offset = self.framing.writer(data, where)
        plan = self._plans.get((writer.fingerprint, reader))
        if plan is None:
            plan = self._plan(writer, reader, data, where)
        datum = _read_body(data, offset, writer, plan.reader_schema, where, plan.read)
        try:
            return plan.from_datum(datum)  # type: ignore[return-value]
        except Exception as exc:  # an enum symbol the model lacks, a failing validator, ...
            raise DecodeError(
                f"{writer.label} record does not convert to the model: {exc}",
                data=data,
                coordinates=where,
            ) from exc

    def decode_datum(
        self, data: bytes, *, coordinates: RecordCoordinates | None = None
    ) -> tuple[SchemaVersion, dict[str, Any]]:
        """Decode with the writer schema only, into a plain dict (for tools that show records).

        Raises:
            DecodeError: as :meth:`decode`.
        """
        where = coordinates or _NO_RECORD
        writer, offset = self.framing.writer(data, where)
        return writer, _read_body(data, offset, writer, None, where, self._body_reader(writer))

    def writer_schema(self, data: bytes) -> SchemaVersion:
        """The writer schema version named by the framing header.

        Raises:
            DecodeError: the header is malformed or names an unknown schema.
        """
        return self.framing.writer(data, _NO_RECORD)[0]

    def subject_of(self, data: bytes) -> str:
        """The subject of the schema the record was written with."""
        return self.writer_schema(data).subject

    def deserializer(
        self, reader: type[Event] | None = None
    ) -> Callable[[bytes | None, SerializationContext | None], Event | None]:
        """A confluent-kafka deserializer callable ``(data, ctx) -> Event | None``."""

        def deserialize(
            data: bytes | None, ctx: SerializationContext | None = None
        ) -> Event | None:
            if data is None:
                return None
            where = RecordCoordinates(topic=ctx.topic) if ctx is not None else None
            return self.decode(data, reader, coordinates=where)

        return deserialize

    def _plan(
        self,
        writer: SchemaVersion,
        reader: type[Event] | None,
        data: bytes,
        where: RecordCoordinates,
    ) -> _Plan:
        model = reader or self._readers.get(writer.subject)
        if model is None:
            raise UnknownSchemaError(
                f"no event model is registered for subject {writer.subject}",
                data=data,
                coordinates=where,
            )
        binding = self.register(model) if reader is not None else self._bindings[model]
        same = binding.schema.fingerprint == writer.fingerprint
        if same:
            plan = _Plan(None, binding.from_datum, self._body_reader(writer))
        else:
            plan = _Plan(binding.schema.parsed, binding.from_datum, None)
        self._plans[(writer.fingerprint, reader)] = plan
        return plan

    def _body_reader(self, writer: SchemaVersion) -> Reader | None:
        if writer.fingerprint not in self._body_readers:
            self._body_readers[writer.fingerprint] = compile_reader(writer.parsed, writer.named)
        return self._body_readers[writer.fingerprint]


def _read_body(
    data: bytes,
    offset: int,
    writer: SchemaVersion,
    reader_schema: dict[str, Any] | None,
    where: RecordCoordinates,
    fast: Reader | None,
) -> dict[str, Any]:
    """Read the Avro body at ``offset``: generated reader if given, else fastavro (resolving)."""
    datum: object
    try:
        if fast is not None:
            datum, end = fast(data, offset)
        else:
            buffer = BytesIO(data)
            buffer.seek(offset)
            datum = schemaless_reader(buffer, writer.parsed, reader_schema)
            end = buffer.tell()
    except (EOFError, IndexError) as exc:  # IndexError: the generated reader ran off the end
        raise TruncatedRecordError(
            f"{writer.label} body ends early", data=data, coordinates=where
        ) from exc
    except _FastavroResolutionError as exc:
        raise SchemaResolutionError(
            f"{writer.label} cannot be read with the reader schema: {exc}",
            data=data,
            coordinates=where,
        ) from exc
    except Exception as exc:  # corrupt bodies surface as many types (UnicodeDecodeError, ...)
        raise DecodeError(
            f"{writer.label} body is corrupt: {type(exc).__name__}: {exc}",
            data=data,
            coordinates=where,
        ) from exc
    if end != len(data):
        raise TruncatedRecordError(
            f"{writer.label} body has {len(data) - end} trailing byte(s)",
            data=data,
            coordinates=where,
        )
    if not isinstance(datum, dict):  # pragma: no cover - event schemas are records
        raise DecodeError(f"{writer.label} body is not a record", data=data, coordinates=where)
    return datum
