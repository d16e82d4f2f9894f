"""CloudEvents (Kafka binding, binary mode) and W3C trace headers for every produced record."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pipeline._headers import (
    CE_ID,
    CE_SOURCE,
    CE_SPECVERSION,
    CE_TIME,
    CE_TYPE,
    CONTENT_TYPE,
    TRACEPARENT,
)

__all__ = [
    "AVRO_CONTENT_TYPE",
    "HeaderInput",
    "cloudevent_headers",
    "new_event_id",
    "traceparent",
]

AVRO_CONTENT_TYPE = b"application/avro"
# Extra headers a caller may pass: a mapping, or (name, value) pairs; str values become UTF-8.
HeaderInput = Mapping[str, str | bytes] | Sequence[tuple[str, str | bytes | None]] | None

_otel_inject: Callable[..., None] | None
try:  # opentelemetry-api is optional: install the `otel` extra to propagate traces.
    from opentelemetry.propagate import inject as _otel_inject
except ImportError:  # pragma: no cover - exercised when the extra is missing
    _otel_inject = None


_RANDOM_BATCH = 16 * 1024
_random = threading.local()


def new_event_id() -> bytes:
    """A random (version 4) UUID as ASCII bytes; reads the OS CSPRNG in batches."""
    state = _random.__dict__
    pool: bytes = state.get("pool", b"")
    pos: int = state.get("pos", len(pool))
    if pos + 16 > len(pool):
        pool, pos = os.urandom(_RANDOM_BATCH), 0
        state["pool"] = pool
    raw = bytearray(pool[pos : pos + 16])
    state["pos"] = pos + 16
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}".encode()


_time_cache: tuple[int, bytes] = (0, b"")


def _now_iso() -> bytes:
    """RFC 3339 UTC time with milliseconds, formatted once per millisecond."""
    global _time_cache
    ms = time.time_ns() // 1_000_000
    cached_ms, text = _time_cache  # one tuple: threads never see a mismatched pair
    if cached_ms != ms:
        text = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").encode()
        _time_cache = (ms, text)
    return text


def traceparent() -> bytes | None:
    """The W3C ``traceparent`` of the current OpenTelemetry context, if there is one."""
    if _otel_inject is None:
        return None
    carrier: dict[str, Any] = {}
    _otel_inject(carrier)
    value = carrier.get(TRACEPARENT)
    return value.encode() if isinstance(value, str) else None


def cloudevent_headers(source: bytes, ce_type: bytes) -> list[tuple[str, bytes | None]]:
    """Fresh CloudEvents headers: a new ``ce_id`` (UUID, the dedup key) and ``ce_time``."""
    headers: list[tuple[str, bytes | None]] = [
        (CE_SPECVERSION, b"1.0"),
        (CE_ID, new_event_id()),
        (CE_SOURCE, source),
        (CE_TYPE, ce_type),
        (CE_TIME, _now_iso()),
        (CONTENT_TYPE, AVRO_CONTENT_TYPE),
    ]
    trace = traceparent()
    if trace is not None:
        headers.append((TRACEPARENT, trace))
    return headers
