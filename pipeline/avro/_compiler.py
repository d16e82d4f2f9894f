"""What the generated Avro writer and reader share: a namespace of generated functions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["RecordCompiler", "Unsupported"]


class Unsupported(Exception):
    """The schema uses something the generated code does not cover."""


class RecordCompiler:
    """Generates one function per named record (memoised, so recursive types work).

    Subclasses say what a record's function looks like (:meth:`record_source`); the functions
    and the helpers they call share one namespace.
    """

    kind = "code"  # names the generated source in tracebacks: <pipeline avro KIND NAME>

    def __init__(self, named: dict[str, Any], helpers: dict[str, Any]) -> None:
        self.named = named
        self.ns: dict[str, Any] = dict(helpers)
        self.records: dict[str, str] = {}
        self.count = 0

    def fresh(self, prefix: str) -> str:
        """A new name in the namespace."""
        self.count += 1
        return f"{prefix}{self.count}"

    def bind(self, prefix: str, value: Any) -> str:
        """Put ``value`` in the namespace under a new name, and return the name."""
        name = self.fresh(prefix)
        self.ns[name] = value
        return name

    def record(self, avro: dict[str, Any]) -> str:
        """Name of the generated function of a record schema."""
        full = avro["name"]
        if full in self.records:
            return self.records[full]
        name = self.records[full] = self.fresh("rec")
        self.define(self.record_source(name, avro), full)
        return name

    def record_source(self, name: str, avro: dict[str, Any]) -> list[str]:
        """The source lines of function ``name`` for a record schema."""
        raise NotImplementedError

    def define(self, lines: list[str], label: str) -> None:
        """Compile ``lines`` into the namespace."""
        source = "\n".join(lines)
        exec(compile(source, f"<pipeline avro {self.kind} {label}>", "exec"), self.ns)

    def entry(self, avro: dict[str, Any], source: Callable[[str], list[str]], name: str) -> Any:
        """Compile the top record and an entry function ``name`` around it; None if unsupported.

        Args:
            avro: the top record schema.
            source: given the record function's name, the entry function's source lines.
            name: the entry function's name in those lines.
        """
        try:
            record = self.record(avro)
        except Unsupported:
            return None
        self.define(source(record), avro["name"])
        return self.ns[name]
