"""The Avro codec: typed events, the schema catalog, compatibility checks and wire framing.

What it holds: ``Event`` and ``Record`` (pydantic models bound to a schema), the ``Catalog`` of
every published ``.avsc`` version, the compatibility checker, model <-> datum conversion, the
generated per-schema reader and writer, single-object and Confluent registry framing, and the
``Codec`` that puts them together.

It may import the core (``pipeline._*``) and third-party libraries. It never imports another
capability package, ``producers``, ``consumers`` or ``pipeline.cli``.
"""

from ._catalog import Catalog, CompatibilityMode, SchemaVersion, crc64_avro, default_schemas_dir
from ._codec import SINGLE_OBJECT_MAGIC, Codec, Framing, SingleObjectFraming
from ._compat import Incompatibility, check_catalog, check_pair, check_subject
from ._events import Event, Record, check_model
from ._registry import CONFLUENT_MAGIC, RegistryFraming, registry_client, registry_latest

__all__ = [
    "CONFLUENT_MAGIC",
    "SINGLE_OBJECT_MAGIC",
    "Catalog",
    "Codec",
    "CompatibilityMode",
    "Event",
    "Framing",
    "Incompatibility",
    "Record",
    "RegistryFraming",
    "SchemaVersion",
    "SingleObjectFraming",
    "check_catalog",
    "check_model",
    "check_pair",
    "check_subject",
    "crc64_avro",
    "default_schemas_dir",
    "registry_client",
    "registry_latest",
]
