"""``python -m pipeline.demo``: run the example order system end to end and check it.

It runs the project's own commands as a user would (``pipeline topics apply``, ``pipeline
scheduler run``, ``pipeline lag serve``, three ``pipeline worker run``, the example order
service), lets traffic flow, drains, stops everything, and prints a summary computed from
Kafka. It exits 1 when an invariant broke: a lost order, an early reminder, lag left over, or
a dead-letter count that differs from the poison orders injected.

It is a composition root: it may import everything, including ``examples.orders``.
"""

from ._run import main

__all__ = ["main"]
