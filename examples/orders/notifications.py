"""Notifications: sends the customer a message when a ReminderDue arrives from the scheduler."""

from __future__ import annotations

import logging
import time

from consumers import Context, RetryPolicy, Worker, exponential
from pipeline.scheduler import DELIVERED_AT

from .events import ReminderDue
from .names import DemoNames

__all__ = ["app"]

log = logging.getLogger(__name__)
NAMES = DemoNames.from_env()

app = Worker(
    group=NAMES.notifications_group,
    topics=[NAMES.reminders],
    retry=RetryPolicy(max_attempts=3, backoff=exponential(base=0.5, max=2.0)),
    scheduler_topic=NAMES.scheduler_topic,
    commit_interval_s=0.5,
    drain_timeout_s=10.0,
)


@app.handler(ReminderDue)
def notify(reminder: ReminderDue, ctx: Context) -> None:
    """'Send' the reminder: log it with how late the scheduler delivered it."""
    due_ms = int(reminder.due_at.timestamp() * 1000)
    delivered = ctx.header(DELIVERED_AT)
    delivered_ms = int(delivered) if delivered else ctx.timestamp_ms
    log.debug(
        "reminder %s for order %s: delivered %+d ms after due, handled %+d ms after due",
        reminder.reminder_id,
        reminder.order_id,
        delivered_ms - due_ms,
        int(time.time() * 1000) - due_ms,
    )
