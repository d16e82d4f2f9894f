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
    "cloudevent_headers_of",
    "new_event_id",
    "traceparent",
]

AVRO_CONTENT_TYPE = b"application/avro"
# Extra headers a caller may pass: a mapping, or (name, value) pairs; str values become UTF-8.
HeaderInput = Mapping[str, str | bytes] | Sequence[tuple[str, str | bytes | None]] | None

_otel_inject: Callable[..., None] | None
_otel_current: Callable[[], object]
_otel_textmap: Callable[[], object]
try:  # opentelemetry-api is optional: install the `otel` extra to propagate traces.
    from opentelemetry.context import get_current as _otel_current
    from opentelemetry.propagate import get_global_textmap as _otel_textmap
    from opentelemetry.propagate import inject as _otel_inject
except ImportError:  # pragma: no cover - exercised when the extra is missing
    _otel_inject = None


_ID_BATCH = 512  # ids made per refill: one urandom call and one hex() for all of them
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}  # RFC 4122 variant digit
_random = threading.local()


def _forget_ids() -> None:  # a forked child must not hand out its parent's unused ids
    global _random
    _random = threading.local()


os.register_at_fork(after_in_child=_forget_ids)


def _refill() -> list[bytes]:
    h = os.urandom(16 * _ID_BATCH).hex()
    v = _VARIANT
    ids = [  # version 4 (the 13th digit), variant 10xx (the 17th), 122 random bits
        f"{h[i : i + 8]}-{h[i + 8 : i + 12]}-4{h[i + 13 : i + 16]}-"
        f"{v[h[i + 16]]}{h[i + 17 : i + 20]}-{h[i + 20 : i + 32]}".encode()
        for i in range(0, 32 * _ID_BATCH, 32)
    ]
    ids.reverse()  # handed out with pop(), cheapest from the end
    return ids


def new_event_id() -> bytes:
    """A random (version 4) UUID as ASCII bytes; made in batches from the OS CSPRNG."""
    ids: list[bytes] | None = getattr(_random, "ids", None)
    if not ids:
        ids = _random.ids = _refill()
    return ids.pop()


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


_trace_cache: tuple[object, object, bytes | None] = (None, None, None)


def traceparent() -> bytes | None:
    """The W3C ``traceparent`` of the current OpenTelemetry context, if there is one.

    Contexts are immutable, so the value is injected once per (context, propagator) pair:
    consecutive sends in one span (or outside any span) reuse it.
    """
    global _trace_cache
    if _otel_inject is None:
        return None
    context = _otel_current()
    propagator = _otel_textmap()
    cached_context, cached_propagator, value = _trace_cache
    if context is cached_context and propagator is cached_propagator:
        return value
    carrier: dict[str, Any] = {}
    _otel_inject(carrier, context)
    text = carrier.get(TRACEPARENT)
    value = text.encode() if isinstance(text, str) else None
    _trace_cache = (context, propagator, value)
    return value


_SPECVERSION = (CE_SPECVERSION, b"1.0")
_CONTENT_TYPE = (CONTENT_TYPE, AVRO_CONTENT_TYPE)


def cloudevent_headers(source: bytes, ce_type: bytes) -> list[tuple[str, bytes | None]]:
    """Fresh CloudEvents headers: a new ``ce_id`` (UUID, the dedup key) and ``ce_time``."""
    return cloudevent_headers_of((CE_SOURCE, source), (CE_TYPE, ce_type))


def cloudevent_headers_of(
    source: tuple[str, bytes], ce_type: tuple[str, bytes]
) -> list[tuple[str, bytes | None]]:
    """:func:`cloudevent_headers` from prebuilt ``(name, value)`` pairs (cached by producers)."""
    headers: list[tuple[str, bytes | None]] = [
        _SPECVERSION,
        (CE_ID, new_event_id()),
        source,
        ce_type,
        (CE_TIME, _now_iso()),
        _CONTENT_TYPE,
    ]
    trace = traceparent()
    if trace is not None:
        headers.append((TRACEPARENT, trace))
    return headers
