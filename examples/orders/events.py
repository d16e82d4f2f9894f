"""The example domain the demo uses: orders, payments, shipping and reminders."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import ClassVar
from uuid import UUID

from pydantic import AwareDatetime, Field

from pipeline import Event, Record

__all__ = [
    "Address",
    "Carrier",
    "Dimensions",
    "LineItem",
    "OrderPlaced",
    "OrderPlacedV1",
    "Parcel",
    "PaymentCaptured",
    "PaymentMethod",
    "ReminderDue",
    "ReminderKind",
    "SalesChannel",
    "ShipmentRequested",
]


class Address(Record):
    """A postal address (``orders.Address`` and ``shipping.Address`` have the same shape)."""

    line1: str
    city: str
    postal_code: str
    country: str


class LineItem(Record):
    """One line of an order."""

    sku: str
    quantity: int
    unit_price: Decimal


class SalesChannel(enum.StrEnum):
    """Where an order was placed."""

    WEB = "WEB"
    MOBILE = "MOBILE"
    STORE = "STORE"


class OrderPlacedV1(Event):
    """A customer placed an order (schema v1, kept for producers not yet on v2)."""

    subject: ClassVar[str] = "orders.OrderPlaced"
    version: ClassVar[int] = 1
    topic: ClassVar[str | None] = "orders"

    order_id: UUID
    customer_id: str
    placed_at: AwareDatetime
    items: list[LineItem]
    total: Decimal
    currency: str = "EUR"
    shipping_address: Address
    note: str | None = None


class OrderPlaced(Event):
    """A customer placed an order (schema v2: adds channel, coupon and attributes)."""

    subject: ClassVar[str] = "orders.OrderPlaced"
    version: ClassVar[int] = 2
    topic: ClassVar[str | None] = "orders"

    order_id: UUID
    customer_id: str
    placed_at: AwareDatetime
    items: list[LineItem]
    total: Decimal
    currency: str = "EUR"
    shipping_address: Address
    note: str | None = None
    channel: SalesChannel = SalesChannel.WEB
    coupon_code: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)


class PaymentMethod(enum.StrEnum):
    """How a payment was made."""

    CARD = "CARD"
    BANK_TRANSFER = "BANK_TRANSFER"
    WALLET = "WALLET"


class PaymentCaptured(Event):
    """The payment provider captured money for an order."""

    subject: ClassVar[str] = "payments.PaymentCaptured"
    version: ClassVar[int] = 1
    topic: ClassVar[str | None] = "payments"

    payment_id: UUID
    order_id: UUID
    amount: Decimal
    currency: str
    method: PaymentMethod
    captured_at: AwareDatetime
    fee: Decimal | None = None
    card_last4: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class Dimensions(Record):
    """Parcel size in centimetres."""

    length: int
    width: int
    height: int


class Parcel(Record):
    """One parcel of a shipment."""

    weight_grams: int
    dimensions_cm: Dimensions | None = None


class Carrier(enum.StrEnum):
    """Who carries a shipment."""

    DHL = "DHL"
    UPS = "UPS"
    POSTNL = "POSTNL"


class ShipmentRequested(Event):
    """The warehouse is asked to ship (part of) an order."""

    subject: ClassVar[str] = "shipping.ShipmentRequested"
    version: ClassVar[int] = 1
    topic: ClassVar[str | None] = "shipments"

    shipment_id: UUID
    order_id: UUID
    requested_at: AwareDatetime
    ship_by: dt.date
    address: Address
    parcels: list[Parcel]
    carrier: Carrier | None = None
    express: bool = False


class ReminderKind(enum.StrEnum):
    """What a reminder is about."""

    PAYMENT_OVERDUE = "PAYMENT_OVERDUE"
    SHIPMENT_DELAYED = "SHIPMENT_DELAYED"
    REVIEW_REQUEST = "REVIEW_REQUEST"


class ReminderDue(Event):
    """A reminder fell due (published through the delayed-delivery scheduler)."""

    subject: ClassVar[str] = "reminders.ReminderDue"
    version: ClassVar[int] = 1
    topic: ClassVar[str | None] = "reminders"

    reminder_id: UUID
    order_id: UUID | None = None
    due_at: AwareDatetime
    due_date: dt.date
    kind: ReminderKind
    message: str
    attempt: int = 0
    tags: list[str] = Field(default_factory=list)
