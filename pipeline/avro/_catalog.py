"""The schema catalog: every published ``.avsc`` version, its subject, mode and fingerprint."""

from __future__ import annotations

import enum
import json
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

from pipeline._errors import SchemaError, SchemaNotFoundError
from pipeline._settings import Settings

__all__ = [
    "COMPATIBILITY_FILE",
    "Catalog",
    "CompatibilityMode",
    "SchemaVersion",
    "crc64_avro",
    "default_schemas_dir",
]

COMPATIBILITY_FILE = "compatibility.toml"
_FILE_NAME = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)\.v(?P<version>[1-9][0-9]*)\.avsc$")


class CompatibilityMode(enum.StrEnum):
    """How the versions of one subject must relate (Confluent Schema Registry names)."""

    BACKWARD = "BACKWARD"
    """Each version reads records written with the version before it."""
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    """Each version reads records written with every earlier version."""
    FORWARD = "FORWARD"
    """The version before each version reads its records."""
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    """Every earlier version reads records of each later version."""
    FULL = "FULL"
    """BACKWARD and FORWARD against the version before."""
    FULL_TRANSITIVE = "FULL_TRANSITIVE"
    """BACKWARD and FORWARD against every earlier version."""
    NONE = "NONE"
    """No check."""

    @property
    def backward(self) -> bool:
        """Whether new versions must read old records."""
        return self.name.startswith(("BACKWARD", "FULL"))

    @property
    def forward(self) -> bool:
        """Whether old versions must read new records."""
        return self.name.startswith(("FORWARD", "FULL"))

    @property
    def transitive(self) -> bool:
        """Whether the check runs against every earlier version, not only the previous one."""
        return self.name.endswith("_TRANSITIVE")


def crc64_avro(canonical_form: str) -> bytes:
    """The CRC-64-AVRO fingerprint of a parsing canonical form, as 8 little-endian bytes.

    Args:
        canonical_form: the schema's parsing canonical form.

    Returns:
        The 8 bytes that follow ``C3 01`` in Avro single-object encoding.
    """
    # fastavro renders the fingerprint as hex of the little-endian bytes.
    return bytes.fromhex(fingerprint(canonical_form, "CRC-64-AVRO"))


@dataclass(frozen=True, eq=False)
class SchemaVersion:
    """One published version of a subject, parsed once."""

    subject: str
    version: int
    raw: dict[str, Any]
    parsed: dict[str, Any] = field(repr=False)
    named: dict[str, Any] = field(repr=False)
    canonical: str = field(repr=False)
    fingerprint: bytes
    path: Path | None = None

    @classmethod
    def from_json(
        cls,
        raw: dict[str, Any],
        *,
        subject: str | None = None,
        version: int = 0,
        path: Path | None = None,
    ) -> SchemaVersion:
        """Parse one schema and compute its canonical form and fingerprint.

        Args:
            raw: the schema as decoded JSON.
            subject: the subject; defaults to the record's full name.
            version: the version number within the subject (0 when unknown).
            path: the file it came from, for messages.

        Raises:
            SchemaError: the schema is not valid Avro.
        """
        named: dict[str, Any] = {}
        where = path or subject or "schema"
        try:
            parsed = parse_schema(raw, named_schemas=named)
            canonical = to_parsing_canonical_form(parsed)
        except Exception as exc:  # fastavro raises several unrelated types for bad schemas
            raise SchemaError(f"{where}: invalid Avro schema: {exc}") from exc
        if not isinstance(parsed, dict) or parsed.get("type") != "record":
            raise SchemaError(f"{where}: an event schema must be a named record")
        name = str(parsed["name"])
        return cls(
            subject=subject or name,
            version=version,
            raw=raw,
            parsed=parsed,
            named=named,
            canonical=canonical,
            fingerprint=crc64_avro(canonical),
            path=path,
        )

    @property
    def fullname(self) -> str:
        """The record's full Avro name."""
        return str(self.parsed["name"])

    @property
    def label(self) -> str:
        """``subject v<N>`` for messages."""
        return f"{self.subject} v{self.version}"


def default_schemas_dir(settings: Settings | None = None) -> Path:
    """Where the catalog lives: ``PIPELINE_SCHEMAS_DIR``, the wheel's bundled copy, or the repo's.

    Args:
        settings: settings whose ``schemas_dir`` wins when set.
    """
    if settings is not None and settings.schemas_dir is not None:
        return settings.schemas_dir
    package = Path(__file__).resolve().parent.parent  # the ``pipeline`` package
    bundled = package / "_bundled_schemas"
    if bundled.is_dir():
        return bundled
    return package.parent / "schemas"


class Catalog:
    """Every schema version under one directory, indexed by subject and by fingerprint."""

    def __init__(
        self,
        versions: Mapping[str, list[SchemaVersion]],
        modes: Mapping[str, CompatibilityMode] | None = None,
        *,
        default_mode: CompatibilityMode = CompatibilityMode.BACKWARD,
        root: Path | None = None,
    ) -> None:
        self.root = root
        self.default_mode = default_mode
        self._versions = {s: sorted(v, key=lambda sv: sv.version) for s, v in versions.items()}
        self._modes = dict(modes or {})
        self._by_fingerprint: dict[bytes, SchemaVersion] = {}
        for subject, chain in self._versions.items():
            _check_chain(subject, chain)
            for sv in chain:
                other = self._by_fingerprint.setdefault(sv.fingerprint, sv)
                if other is not sv:
                    raise SchemaError(
                        f"{sv.label} and {other.label} have the same canonical form "
                        f"(fingerprint {sv.fingerprint.hex()}); publish a version only once"
                    )
        unknown = sorted(set(self._modes) - set(self._versions))
        if unknown:
            raise SchemaError(
                f"{COMPATIBILITY_FILE} names unknown subject(s): {', '.join(unknown)}"
            )

    @classmethod
    def load(
        cls, directory: Path | str | None = None, *, settings: Settings | None = None
    ) -> Catalog:
        """Load every ``<Name>.v<N>.avsc`` below a directory plus its ``compatibility.toml``.

        Args:
            directory: the schemas directory; defaults to :func:`default_schemas_dir`.
            settings: used to find the default directory.

        Raises:
            SchemaError: a file is malformed, misnamed, or a version chain has a gap.
        """
        root = Path(directory) if directory is not None else default_schemas_dir(settings)
        if not root.is_dir():
            raise SchemaError(f"schemas directory {root} does not exist")
        versions: dict[str, list[SchemaVersion]] = {}
        for path in sorted(root.rglob("*.avsc")):
            sv = _load_file(path)
            versions.setdefault(sv.subject, []).append(sv)
        default, modes = _load_modes(root / COMPATIBILITY_FILE)
        return cls(versions, modes, default_mode=default, root=root)

    def __iter__(self) -> Iterator[SchemaVersion]:
        for subject in self.subjects():
            yield from self._versions[subject]

    def subjects(self) -> list[str]:
        """Every subject, sorted."""
        return sorted(self._versions)

    def versions(self, subject: str) -> list[SchemaVersion]:
        """Every version of a subject, oldest first.

        Raises:
            SchemaNotFoundError: the subject is unknown.
        """
        try:
            return list(self._versions[subject])
        except KeyError:
            raise SchemaNotFoundError(f"unknown subject {subject!r}") from None

    def get(self, subject: str, version: int | None = None) -> SchemaVersion:
        """One version of a subject; the latest when ``version`` is None.

        Raises:
            SchemaNotFoundError: the subject or version is unknown.
        """
        chain = self.versions(subject)
        if version is None:
            return chain[-1]
        for sv in chain:
            if sv.version == version:
                return sv
        raise SchemaNotFoundError(f"{subject} has no version {version} (latest is v{len(chain)})")

    def by_fingerprint(self, fp: bytes) -> SchemaVersion | None:
        """The version whose CRC-64-AVRO fingerprint is ``fp``, if any."""
        return self._by_fingerprint.get(fp)

    def mode(self, subject: str) -> CompatibilityMode:
        """The declared compatibility mode of a subject."""
        return self._modes.get(subject, self.default_mode)


def _load_file(path: Path) -> SchemaVersion:
    match = _FILE_NAME.match(path.name)
    if match is None:
        raise SchemaError(f"{path}: schema files are named <RecordName>.v<N>.avsc")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SchemaError(f"{path}: cannot read JSON: {exc}") from exc
    sv = SchemaVersion.from_json(raw, version=int(match["version"]), path=path)
    short = sv.fullname.rpartition(".")[2]
    if short != match["name"]:
        raise SchemaError(f"{path}: file is named for {match['name']} but defines {short}")
    return sv


def _check_chain(subject: str, chain: list[SchemaVersion]) -> None:
    expected = list(range(1, len(chain) + 1))
    found = [sv.version for sv in chain]
    if found != expected:
        raise SchemaError(
            f"{subject}: versions must run v1..vN without gaps or repeats, found "
            + ", ".join(f"v{v}" for v in found)
        )


def _load_modes(path: Path) -> tuple[CompatibilityMode, dict[str, CompatibilityMode]]:
    if not path.is_file():
        return CompatibilityMode.BACKWARD, {}
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SchemaError(f"{path}: {exc}") from exc
    unknown_keys = sorted(set(doc) - {"default", "subjects"})
    if unknown_keys:
        raise SchemaError(f"{path}: unknown key(s) {', '.join(unknown_keys)}")
    default = _mode(path, "default", doc.get("default", "BACKWARD"))
    subjects = doc.get("subjects", {})
    if not isinstance(subjects, dict):
        raise SchemaError(f"{path}: [subjects] must be a table of subject = MODE")
    return default, {s: _mode(path, s, m) for s, m in subjects.items()}


def _mode(path: Path, key: str, value: object) -> CompatibilityMode:
    try:
        return CompatibilityMode(str(value).upper())
    except ValueError:
        modes = ", ".join(m.value for m in CompatibilityMode)
        raise SchemaError(f"{path}: {key} = {value!r} is not one of {modes}") from None
