"""Fulfillment: ships every paid order (PaymentCaptured to ShipmentRequested)."""

from __future__ import annotations

from datetime import timedelta
from uuid import NAMESPACE_URL, uuid5

from consumers import Context, RetryPolicy, Worker, exponential

from .events import Address, Carrier, Parcel, PaymentCaptured, ShipmentRequested
from .names import DemoNames
from .order_service import now_ms

__all__ = ["app"]

NAMES = DemoNames.from_env()
_CARRIERS = tuple(Carrier)

app = Worker(
    group=NAMES.fulfillment_group,
    topics=[NAMES.payments],
    retry=RetryPolicy(max_attempts=3, backoff=exponential(base=0.5, max=2.0)),
    scheduler_topic=NAMES.scheduler_topic,
    commit_interval_s=0.5,
    drain_timeout_s=10.0,
)


@app.handler(PaymentCaptured)
def request_shipment(payment: PaymentCaptured, ctx: Context) -> None:
    """One parcel per order, shipped within two days."""
    now = now_ms()
    shipment = ShipmentRequested(
        shipment_id=uuid5(NAMESPACE_URL, f"shipment:{payment.order_id}"),
        order_id=payment.order_id,
        requested_at=now,
        ship_by=(now + timedelta(days=2)).date(),
        # The demo's payment event carries no address; a real service would look it up.
        address=Address(line1="1 Warehouse Road", city="Utrecht", postal_code="3500", country="NL"),
        parcels=[Parcel(weight_grams=250 + payment.order_id.int % 2000)],
        carrier=_CARRIERS[payment.order_id.int % len(_CARRIERS)],
        express=payment.amount > 100,
    )
    ctx.producer.send(shipment, key=ctx.key, topic=NAMES.shipments)
