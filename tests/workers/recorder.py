"""A worker that appends ``pid key seq partition time`` per handled event to a file.

For the crash and restart tests. Configured by environment: WORKER_GROUP, WORKER_TOPIC,
WORKER_OUT (the file), WORKER_SLEEP_MS, WORKER_MAX_IN_FLIGHT, WORKER_COMMIT_INTERVAL_S.
"""

from __future__ import annotations

import os
import time

from consumers import Context, Worker
from examples.orders.events import ReminderDue
from pipeline._settings import load_settings

_SLEEP = float(os.environ.get("WORKER_SLEEP_MS", "0")) / 1000
_FD = os.open(os.environ["WORKER_OUT"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
_PID = os.getpid()

app = Worker(
    group=os.environ["WORKER_GROUP"],
    topics=[os.environ["WORKER_TOPIC"]],
    settings=load_settings(),
    commit_interval_s=float(os.environ.get("WORKER_COMMIT_INTERVAL_S", "0.5")),
    revoke_timeout_s=30.0,
    drain_timeout_s=20.0,
    max_in_flight=int(os.environ.get("WORKER_MAX_IN_FLIGHT", "2000")),
)


@app.handler(ReminderDue)
def record(event: ReminderDue, ctx: Context) -> None:
    if _SLEEP:
        time.sleep(_SLEEP)
    key = (ctx.key or b"").decode()
    line = f"{_PID} {key} {event.attempt} {ctx.partition} {time.time():.3f}\n"
    os.write(_FD, line.encode())  # one write: atomic append
