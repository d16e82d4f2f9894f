"""Topic and group names of the example order system, optionally under a namespace.

The namespace (``DEMO_NAMESPACE``, empty by default) prefixes every topic and group, so a test
can run the demo on a shared cluster without meeting other runs. Empty, the names are the ones
of ``examples/topics.toml`` and the example event classes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pipeline.scheduler import SchedulerConfig

__all__ = ["NAMESPACE_ENV", "DemoNames"]

NAMESPACE_ENV = "DEMO_NAMESPACE"


@dataclass(frozen=True)
class DemoNames:
    """Every name the example order system uses, under ``namespace``."""

    namespace: str = ""

    @classmethod
    def from_env(cls) -> DemoNames:
        """The names under ``$DEMO_NAMESPACE`` (empty: the plain names)."""
        return cls(os.environ.get(NAMESPACE_ENV, ""))

    def name(self, base: str) -> str:
        """``base`` under the namespace."""
        return f"{self.namespace}{base}"

    @property
    def orders(self) -> str:
        return self.name("orders")

    @property
    def payments(self) -> str:
        return self.name("payments")

    @property
    def shipments(self) -> str:
        return self.name("shipments")

    @property
    def reminders(self) -> str:
        return self.name("reminders")

    @property
    def scheduler_topic(self) -> str:
        return self.name(SchedulerConfig.topic)

    @property
    def scheduler_group(self) -> str:
        return self.name(SchedulerConfig.group)

    @property
    def scheduler_dlq(self) -> str:
        return self.name(SchedulerConfig.dlq_topic)

    @property
    def payments_group(self) -> str:
        return self.name("payments")

    @property
    def fulfillment_group(self) -> str:
        return self.name("fulfillment")

    @property
    def notifications_group(self) -> str:
        return self.name("notifications")

    @property
    def worker_groups(self) -> tuple[str, str, str]:
        return (self.payments_group, self.fulfillment_group, self.notifications_group)

    @property
    def event_topics(self) -> tuple[str, str, str, str]:
        return (self.orders, self.payments, self.shipments, self.reminders)
