"""A request-reply worker: replies ``echo:<message>`` (tagged with its pid) to each request.

For the RPC process tests. Configured by environment: WORKER_GROUP, WORKER_TOPIC and
WORKER_SLEEP_MS (handler time).
"""

from __future__ import annotations

import os
import time

from consumers import Context, Worker
from examples.orders.events import ReminderDue
from pipeline._settings import load_settings

_SLEEP = float(os.environ.get("WORKER_SLEEP_MS", "0")) / 1000
_PID = str(os.getpid())

app = Worker(
    group=os.environ["WORKER_GROUP"],
    topics=[os.environ["WORKER_TOPIC"]],
    settings=load_settings(),
)


@app.handler(ReminderDue)
def echo(event: ReminderDue, ctx: Context) -> ReminderDue:
    if _SLEEP:
        time.sleep(_SLEEP)
    if event.message.startswith("boom"):
        raise RuntimeError(f"no good: {event.message}")
    return event.model_copy(update={"message": f"echo:{event.message}", "tags": [_PID]})
