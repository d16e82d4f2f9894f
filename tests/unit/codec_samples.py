"""Sample events of the example domain, shared by the codec, events and registry tests."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from examples.orders.events import (
    Address,
    Carrier,
    Dimensions,
    LineItem,
    OrderPlaced,
    OrderPlacedV1,
    Parcel,
    PaymentCaptured,
    PaymentMethod,
    ReminderDue,
    ReminderKind,
    SalesChannel,
    ShipmentRequested,
)
from pipeline.avro._catalog import Catalog
from pipeline.avro._events import Event

UTC = dt.UTC
CET = dt.timezone(dt.timedelta(hours=1))
MODELS: list[type[Event]] = [
    OrderPlacedV1,
    OrderPlaced,
    PaymentCaptured,
    ShipmentRequested,
    ReminderDue,
]
ADDRESS = Address(line1="Damrak 1", city="Amsterdam", postal_code="1012 LG", country="NL")


def catalog() -> Catalog:
    """The shipped catalog (the repo's schemas/)."""
    return Catalog.load()


def order_v1() -> OrderPlacedV1:
    return OrderPlacedV1(
        order_id=uuid.UUID("1b4e28ba-2fa1-11d2-883f-0016d3cca427"),
        customer_id="cust-42",
        placed_at=dt.datetime(2024, 2, 29, 23, 59, 59, 999000, tzinfo=CET),
        items=[
            LineItem(sku="SKU-1", quantity=3, unit_price=Decimal("19.99")),
            LineItem(sku="SKU-2", quantity=-(2**31), unit_price=Decimal("-0.01")),
        ],
        total=Decimal("9999999999.99"),
        currency="USD",
        shipping_address=ADDRESS,
        note="leave at the door ✓",
    )


def order_v2() -> OrderPlaced:
    return OrderPlaced(
        order_id=uuid.uuid4(),
        customer_id="cust-7",
        placed_at=dt.datetime(1969, 7, 20, 20, 17, 40, tzinfo=UTC),
        items=[LineItem(sku="A", quantity=1, unit_price=Decimal("0.10"))],
        total=Decimal("0.1"),
        shipping_address=ADDRESS,
        channel=SalesChannel.MOBILE,
        coupon_code="SPRING",
        attributes={"gift": "yes", "": ""},
    )


def samples() -> list[Event]:
    """One or more instances of every example model, covering every logical type."""
    return [
        order_v1(),
        order_v2(),
        PaymentCaptured(
            payment_id=uuid.uuid4(),
            order_id=uuid.uuid4(),
            amount=Decimal("1234567890.12"),
            currency="EUR",
            method=PaymentMethod.WALLET,
            captured_at=dt.datetime(2038, 1, 19, 3, 14, 8, 1000, tzinfo=UTC),
            fee=Decimal("0.0001"),
            metadata={"psp": "adyen"},
        ),
        PaymentCaptured(
            payment_id=uuid.uuid4(),
            order_id=uuid.uuid4(),
            amount=Decimal("-5.00"),
            currency="JPY",
            method=PaymentMethod.CARD,
            captured_at=dt.datetime(2024, 1, 1, tzinfo=UTC),
            card_last4="4242",
        ),
        ShipmentRequested(
            shipment_id=uuid.uuid4(),
            order_id=uuid.uuid4(),
            requested_at=dt.datetime(2024, 6, 1, 8, 0, tzinfo=UTC),
            ship_by=dt.date(2024, 6, 3),
            address=ADDRESS,
            parcels=[
                Parcel(weight_grams=1200),
                Parcel(weight_grams=80, dimensions_cm=Dimensions(length=10, width=5, height=2)),
            ],
            carrier=Carrier.POSTNL,
            express=True,
        ),
        ShipmentRequested(
            shipment_id=uuid.uuid4(),
            order_id=uuid.uuid4(),
            requested_at=dt.datetime(2024, 6, 1, 8, 0, tzinfo=UTC),
            ship_by=dt.date(1, 1, 1),
            address=ADDRESS,
            parcels=[],
        ),
        ReminderDue(
            reminder_id=uuid.uuid4(),
            order_id=uuid.uuid4(),
            due_at=dt.datetime(2030, 12, 31, 23, 0, tzinfo=UTC),
            due_date=dt.date(9999, 12, 31),
            kind=ReminderKind.SHIPMENT_DELAYED,
            message="",
            attempt=3,
            tags=["a", "b"],
        ),
    ]
