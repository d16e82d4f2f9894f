"""``DeliveryGuarantee``: the one enum of delivery modes, shared by producers and workers."""

from __future__ import annotations

import enum

from ._errors import ConfigError

__all__ = ["DeliveryGuarantee", "parse_guarantee"]


class DeliveryGuarantee(enum.StrEnum):
    """What a send (producer side) or a worker (consumer side) promises; README "Delivery modes"."""

    FIRE_AND_FORGET = "fire-and-forget"
    """Producer: a separate non-idempotent client (acks=1, no retries, no future); drops counted."""
    AT_LEAST_ONCE = "at-least-once"
    """Both sides: the default. Idempotent producer; a worker commits after handling."""
    EXACTLY_ONCE = "exactly-once"
    """Worker: consume-transform-produce in one transaction (``read_committed`` input)."""
    BROADCAST = "broadcast"
    """Worker: every running instance reads every partition (assign(), no shared group)."""
    QUORUM = "quorum"
    """Producer: the send resolves once N distinct groups or broadcast instances acknowledged."""


def parse_guarantee(value: str | DeliveryGuarantee) -> DeliveryGuarantee:
    """The guarantee named by ``value`` (``at-least-once``, ``AT_LEAST_ONCE``, ``at_least_once``).

    Raises:
        ConfigError: no such guarantee (the message lists the valid ones).
    """
    if isinstance(value, DeliveryGuarantee):
        return value
    text = str(value).strip().lower().replace("_", "-")
    try:
        return DeliveryGuarantee(text)
    except ValueError:
        names = ", ".join(g.value for g in DeliveryGuarantee)
        raise ConfigError(f"unknown delivery guarantee {value!r}; use one of: {names}") from None
