"""Example workers of the order system (``make demo``): payments, fulfillment, notifications.

Run each with ``pipeline worker run consumers.examples.payments:app`` (and ``fulfillment``,
``notifications``). ``DEMO_NAMESPACE`` prefixes their topics and groups.
"""
