"""A consume-transform-produce worker: each ReminderDue is re-emitted to WORKER_OUTPUT_TOPIC.

Run with ``--exactly-once`` for the transactional test. Environment: WORKER_GROUP,
WORKER_TOPIC, WORKER_OUTPUT_TOPIC.
"""

from __future__ import annotations

import os

from consumers import Context, Worker
from examples.orders.events import ReminderDue
from pipeline._settings import load_settings

OUTPUT = os.environ["WORKER_OUTPUT_TOPIC"]

app = Worker(
    group=os.environ["WORKER_GROUP"],
    topics=[os.environ["WORKER_TOPIC"]],
    settings=load_settings(),
)


@app.handler(ReminderDue)
def transform(event: ReminderDue, ctx: Context) -> None:
    out = event.model_copy(update={"message": event.message.upper()})
    ctx.producer.send(out, key=ctx.key, topic=OUTPUT)
