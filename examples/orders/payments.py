"""Payments: captures the payment of every OrderPlaced and emits PaymentCaptured.

Failures are injected so the demo shows the retry path and the dead-letter path:

- about 10% of orders (chosen from a hash of the order id, so the choice survives restarts) fail
  with :class:`TransientError` on their first attempt and succeed on the retry;
- poison orders (customer id ``poison-...``) always fail with :class:`PaymentDeclined`; after
  ``max_attempts`` they end in ``payments.dlq``.
"""

from __future__ import annotations

import hashlib
import logging
from uuid import NAMESPACE_URL, UUID, uuid5

from consumers import Context, RetryPolicy, Worker, exponential

from .events import OrderPlaced, PaymentCaptured, PaymentMethod
from .names import DemoNames
from .order_service import POISON_PREFIX, now_ms

__all__ = ["PaymentDeclined", "TransientError", "app", "is_transient", "payment_id"]

log = logging.getLogger(__name__)
NAMES = DemoNames.from_env()
TRANSIENT_PERCENT = 10


class TransientError(Exception):
    """The payment provider timed out; a retry succeeds."""


class PaymentDeclined(Exception):
    """The payment provider refused the order, every time."""


def is_transient(order_id: UUID) -> bool:
    """Whether this order's first attempt fails (deterministic per order id)."""
    digest = hashlib.sha256(order_id.bytes).digest()
    return int.from_bytes(digest[:4], "big") % 100 < TRANSIENT_PERCENT


def payment_id(order_id: UUID) -> UUID:
    """The payment id of an order: stable, so a duplicate capture is recognisable."""
    return uuid5(NAMESPACE_URL, f"payment:{order_id}")


app = Worker(
    group=NAMES.payments_group,
    topics=[NAMES.orders],
    retry=RetryPolicy(max_attempts=3, backoff=exponential(base=0.5, max=2.0, jitter=0.1)),
    scheduler_topic=NAMES.scheduler_topic,
    commit_interval_s=0.5,
    drain_timeout_s=10.0,
)


@app.handler(OrderPlaced)
def capture(order: OrderPlaced, ctx: Context) -> None:
    """Capture the payment, or fail as the injected failures say."""
    if order.customer_id.startswith(POISON_PREFIX):
        raise PaymentDeclined(f"card of {order.customer_id} declined (attempt {ctx.attempt})")
    if ctx.attempt == 1 and is_transient(order.order_id):
        raise TransientError(f"payment provider timed out for order {order.order_id}")
    payment = PaymentCaptured(
        payment_id=payment_id(order.order_id),
        order_id=order.order_id,
        amount=order.total,
        currency=order.currency,
        method=PaymentMethod.CARD,
        captured_at=now_ms(),
        card_last4=f"{order.order_id.int % 10000:04d}",
        metadata={"attempt": str(ctx.attempt)},
    )
    ctx.producer.send(payment, key=ctx.key, topic=NAMES.payments)
    if ctx.attempt > 1:
        log.info("order %s paid on attempt %d", order.order_id, ctx.attempt)
