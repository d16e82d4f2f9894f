"""Whether a record expired: its ``pipeline-expires-at`` header (epoch ms or ISO-8601)."""

from __future__ import annotations

from datetime import datetime

__all__ = ["expired"]


def expired(raw: bytes | None, now_ms: int) -> bool:
    """Whether a ``pipeline-expires-at`` value (epoch ms or ISO-8601) has passed."""
    if raw is None:
        return False
    text = raw.decode("ascii", "replace").strip()
    try:
        at = int(text) if text.isdigit() else int(datetime.fromisoformat(text).timestamp() * 1000)
    except ValueError:
        return False
    return at <= now_ms
