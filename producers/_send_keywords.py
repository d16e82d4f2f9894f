"""The keyword arguments of ``send`` besides ``guarantee``, written once for both producers.

``EventProducer.send`` and ``AsyncEventProducer.send`` overload on ``guarantee`` (``QUORUM``
returns a quorum future or result); every other keyword is the same in each overload, so the
overloads take them as ``**options: Unpack[...]`` of these typed dicts.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TypedDict

from ._delivery import DeliveryCallback
from ._headers import HeaderInput
from ._sending import Key

__all__ = ["EventSendKeywords", "SendKeywords"]


class SendKeywords(TypedDict, total=False):
    """``AsyncEventProducer.send``'s keywords besides ``guarantee`` (all optional)."""

    key: Key
    topic: str | None
    headers: HeaderInput
    deliver_at: datetime | None
    delay: timedelta | None
    priority: int | None
    required_acks: int | None
    timeout: float


class EventSendKeywords(SendKeywords, total=False):
    """``EventProducer.send``'s keywords besides ``guarantee``: also ``on_delivery``."""

    on_delivery: DeliveryCallback | None
