"""The example order system that ``make demo`` runs: events, an order service and three workers.

- ``examples.orders.events``: the domain events (``OrderPlaced``, ``PaymentCaptured``, ...).
- ``examples.orders.order_service``: ``python -m examples.orders.order_service`` emits orders.
- ``examples.orders.payments``, ``.fulfillment``, ``.notifications``: workers, run with
  ``pipeline worker run examples.orders.payments:app``.
- ``examples.orders.names``: every topic and group name, under ``$DEMO_NAMESPACE``.
"""

from .names import NAMESPACE_ENV, DemoNames

__all__ = ["NAMESPACE_ENV", "DemoNames"]
