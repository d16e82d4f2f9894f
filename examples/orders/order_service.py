"""An example order service: emits OrderPlaced at a steady rate, and some ReminderDue later.

    python -m examples.orders.order_service --rate 20 --duration 60 \
        [--poison-every 50] [--reminder-every 5] [--report report.json]

Every ``--poison-every``-th order is a poison order (customer ``poison-<n>``) that the example
payments worker always fails, so it ends in ``payments.dlq``. Every ``--reminder-every``-th
order also schedules a ``ReminderDue`` a few seconds ahead through the scheduler. It stops after
``--duration`` seconds (0: never) or on SIGINT/SIGTERM, flushes, and prints a one-line JSON
report (also written to ``--report``): what it sent, and how many sends failed.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from uuid import UUID, uuid4

from pipeline import PipelineError
from producers import DeliveryResult, EventProducer

from .events import (
    Address,
    LineItem,
    OrderPlaced,
    ReminderDue,
    ReminderKind,
    SalesChannel,
)
from .names import DemoNames

__all__ = ["Report", "main", "make_order", "make_reminder", "now_ms"]

POISON_PREFIX = "poison-"
_CITIES = ("Amsterdam", "Berlin", "Lisbon", "Oslo", "Turin", "Ghent")
_SKUS = ("SKU-KETTLE", "SKU-MUG", "SKU-TEA-250G", "SKU-FILTER", "SKU-SPOON")


def now_ms() -> datetime:
    """The current time in UTC, truncated to milliseconds (the schemas' precision)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def make_order(seq: int, *, poison: bool, run_id: str) -> OrderPlaced:
    """Order number ``seq``: a few line items, a customer, an address."""
    items = [
        LineItem(
            sku=_SKUS[(seq + i) % len(_SKUS)],
            quantity=1 + (seq + i) % 3,
            unit_price=Decimal(f"{4 + (seq * 7 + i) % 40}.{(seq + i) % 100:02d}"),
        )
        for i in range(1 + seq % 3)
    ]
    total = sum((item.unit_price * item.quantity for item in items), Decimal("0"))
    city = _CITIES[seq % len(_CITIES)]
    return OrderPlaced(
        order_id=uuid4(),
        customer_id=f"{POISON_PREFIX}{seq}" if poison else f"customer-{seq % 997}",
        placed_at=now_ms(),
        items=items,
        total=total,
        shipping_address=Address(
            line1=f"{1 + seq % 200} Main Street", city=city, postal_code=f"{1000 + seq % 9000}",
            country="NL",
        ),
        channel=list(SalesChannel)[seq % len(SalesChannel)],
        attributes={"demo_run": run_id, "seq": str(seq)},
    )  # fmt: skip


def make_reminder(order_id: UUID, seq: int, due_at: datetime) -> ReminderDue:
    """A payment reminder for ``order_id``, due at ``due_at`` (millisecond precision)."""
    return ReminderDue(
        reminder_id=uuid4(),
        order_id=order_id,
        due_at=due_at,
        due_date=due_at.date(),
        kind=ReminderKind.PAYMENT_OVERDUE,
        message=f"order #{seq} is waiting for payment",
        tags=["demo"],
    )


@dataclass
class Report:
    """What the service sent (printed as one JSON line at exit)."""

    run_id: str
    orders: int = 0
    poison: int = 0
    reminders: int = 0
    delivered: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    poison_order_ids: list[str] = field(default_factory=list)
    started_at_ms: int = 0
    stopped_at_ms: int = 0

    def on_delivery(self, result: DeliveryResult | None, error: Exception | None) -> None:
        """Delivery callback: count the outcome (called from the producer's poll thread)."""
        if error is None:
            self.delivered += 1
        else:
            self.failed += 1
            if len(self.errors) < 10:
                self.errors.append(str(error))


def run(args: argparse.Namespace, stop: threading.Event) -> Report:
    """Send orders at ``args.rate`` per second until ``args.duration`` passes or ``stop``."""
    names = DemoNames(args.namespace)
    report = Report(run_id=uuid4().hex[:12], started_at_ms=int(time.time() * 1000))
    interval = 1.0 / args.rate
    started = time.monotonic()
    deadline = started + args.duration if args.duration > 0 else math.inf
    with EventProducer(
        source="demo/order-service", scheduler_topic=names.scheduler_topic
    ) as producer:
        seq = 0
        while not stop.is_set():
            due = started + seq * interval
            if due >= deadline:
                break
            if (wait := due - time.monotonic()) > 0 and stop.wait(wait):
                break
            seq += 1
            poison = bool(args.poison_every) and seq % args.poison_every == 0
            order = make_order(seq, poison=poison, run_id=report.run_id)
            key = str(order.order_id)
            producer.send(order, key=key, topic=names.orders, on_delivery=report.on_delivery)
            report.orders += 1
            if poison:
                report.poison += 1
                report.poison_order_ids.append(key)
            if args.reminder_every and seq % args.reminder_every == 0:
                ahead = timedelta(seconds=args.reminder_delay + seq % 3)
                reminder = make_reminder(order.order_id, seq, now_ms() + ahead)
                producer.send(
                    reminder,
                    key=key,
                    topic=names.reminders,
                    deliver_at=reminder.due_at,
                    on_delivery=report.on_delivery,
                )
                report.reminders += 1
    report.stopped_at_ms = int(time.time() * 1000)
    return report


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m examples.orders.order_service", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rate", type=float, default=20.0, help="orders per second")
    parser.add_argument(
        "--duration", type=float, default=60.0, help="seconds to run (0: until stopped)"
    )
    parser.add_argument("--poison-every", type=int, default=50, help="0 disables poison orders")
    parser.add_argument("--reminder-every", type=int, default=5, help="0 disables reminders")
    parser.add_argument(
        "--reminder-delay", type=float, default=3.0, help="seconds ahead (plus 0-2 s)"
    )
    parser.add_argument("--namespace", default=DemoNames.from_env().namespace)
    parser.add_argument("--report", type=Path, help="also write the JSON report here")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: run, print the report; exit 1 if a send failed."""
    args = _parser().parse_args(argv)
    if args.rate <= 0:
        print("--rate must be > 0", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        report = run(args, stop)
    except PipelineError as exc:
        print(f"order-service: {exc}", file=sys.stderr)
        return 1
    line = json.dumps(asdict(report), sort_keys=True)
    if args.report is not None:
        args.report.write_text(line + "\n")
    print(line, flush=True)
    return 1 if report.failed or report.delivered != report.orders + report.reminders else 0


if __name__ == "__main__":
    sys.exit(main())
