"""The demo's summary: numbers from Kafka, the invariants they must keep, and how to print them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from examples.orders.names import DemoNames

from ._tally import Tally

__all__ = ["Summary", "percentile", "worker_outcomes"]

_DLQ_ROWS = 10  # dead letters shown; `pipeline dlq list` shows them all


def percentile(values: list[int], q: float) -> int | None:
    """Nearest-rank percentile of ``values`` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def worker_outcomes(metrics_text: str) -> dict[str, int]:
    """``pipeline_worker_records_total`` summed per outcome, from a /metrics page."""
    out: dict[str, int] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name != "pipeline_worker_records":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                outcome = sample.labels.get("outcome", "")
                out[outcome] = out.get(outcome, 0) + int(sample.value)
    return out


@dataclass
class Summary:
    """Everything the demo reports; ``failures`` lists the invariants that broke."""

    names: DemoNames
    tally: Tally
    service_report: dict[str, Any]
    lag: dict[str, int | None]
    outcomes: dict[str, dict[str, int]]
    exit_codes: dict[str, int | None]
    dlq_listing: list[dict[str, Any]]
    traffic_seconds: float
    wall_seconds: float = 0.0
    failures: list[str] = field(default_factory=list)

    def check(self) -> list[str]:
        """Evaluate the invariants; fill and return ``failures``."""
        t, report, f = self.tally, self.service_report, []
        if report.get("failed") or report.get("orders", -1) != t.order_records:
            f.append(
                f"orders: service sent {report.get('orders')} ({report.get('failed')} failed), "
                f"Kafka has {t.order_records}"
            )
        if lost := t.lost_orders():
            f.append(f"{len(lost)} order(s) lost: neither paid nor dead-lettered")
        if unshipped := t.unshipped():
            f.append(f"{len(unshipped)} paid order(s) never reached fulfillment's output")
        if len(t.reminders) != report.get("reminders", -1):
            f.append(
                f"reminders: {report.get('reminders')} scheduled, {len(t.reminders)} delivered"
            )
        if t.early:
            f.append(f"{len(t.early)} reminder(s) delivered early")
        dlq = t.dead_lettered_orders
        if dlq != set(report.get("poison_order_ids", [])) or len(dlq) != report.get("poison"):
            f.append(f"dead letters: {len(dlq)} order(s), {report.get('poison')} poison injected")
        if other := [d for d in t.dead_letters if d.group != self.names.payments_group]:
            f.append(f"{len(other)} unexpected dead letter(s) in fulfillment or notifications")
        for group, lag in self.lag.items():
            if lag != 0:
                f.append(f"group {group} not drained: lag {lag}")
        for service, code in self.exit_codes.items():
            if code != 0:
                f.append(f"{service} did not stop cleanly (exit {code})")
        if t.undecodable:
            f.append(f"{t.undecodable} record(s) could not be decoded")
        self.failures = f
        return f

    def to_json(self) -> dict[str, Any]:
        t, report = self.tally, self.service_report
        lateness = t.lateness_ms
        groups = {}
        for group in self.names.worker_groups:
            outcomes = self.outcomes.get(group, {})
            groups[group] = {
                "handled": outcomes.get("ok", 0),
                "retried": outcomes.get("retried", 0),
                "dead_lettered": outcomes.get("dead_lettered", 0),
                "retry_records": t.retries.get(group, 0),
                "dlq_records": sum(1 for d in t.dead_letters if d.group == group),
                "lag": self.lag.get(group),
            }
        return {
            "ok": not self.failures,
            "failures": self.failures,
            "namespace": self.names.namespace,
            "traffic_seconds": round(self.traffic_seconds, 1),
            "wall_seconds": round(self.wall_seconds, 1),
            "injected": {
                "orders": report.get("orders"),
                "poison": report.get("poison"),
                "reminders": report.get("reminders"),
                "failed_sends": report.get("failed"),
            },
            "produced": {
                self.names.orders: t.order_records,
                self.names.payments: sum(t.payments.values()),
                self.names.shipments: sum(t.shipments.values()),
                self.names.reminders: sum(t.reminders.values()),
            },
            "groups": groups,
            "lost": len(t.lost_orders()),
            "unshipped": len(t.unshipped()),
            "duplicates": t.duplicates(),
            "reminders": {
                "scheduled": report.get("reminders"),
                "delivered": len(t.reminders),
                "early": len(t.early),
                "lateness_ms": {
                    "p50": percentile(lateness, 50),
                    "p99": percentile(lateness, 99),
                    "max": max(lateness) if lateness else None,
                },
            },
            "lag": self.lag,
            "dlq": {
                "records": len(t.dead_lettered_orders),
                "poison_injected": report.get("poison"),
                "entries": self.dlq_listing,
            },
            "exit_codes": self.exit_codes,
        }

    def render(self, console: Console) -> None:
        data = self.to_json()
        ok, bad = "[green]✓[/]", "[red]✗[/]"

        produced = Table(title="produced per topic", title_justify="left")
        produced.add_column("topic")
        produced.add_column("records", justify="right")
        for topic, n in data["produced"].items():
            produced.add_row(topic, str(n))
        console.print(produced)

        groups = Table(title="consumer groups", title_justify="left")
        for col in ("group", "handled", "retried", "dead-lettered", "final lag"):
            groups.add_column(col, justify="left" if col == "group" else "right")
        for group, g in data["groups"].items():
            lag = g["lag"]
            groups.add_row(
                group, str(g["handled"]), str(g["retried"]), str(g["dlq_records"]),
                f"{lag} {ok if lag == 0 else bad}",
            )  # fmt: skip
        sched = self.names.scheduler_group
        if sched in self.lag:
            lag = self.lag[sched]
            groups.add_row(sched, "", "", "", f"{lag} {ok if lag == 0 else bad}")
        console.print(groups)

        rem = data["reminders"]
        lat = rem["lateness_ms"]
        checks = Table(title="invariants", title_justify="left")
        checks.add_column("check")
        checks.add_column("value", justify="right")
        checks.add_column("")
        dup = data["duplicates"]
        rows = [
            ("orders injected / on Kafka",
             f"{data['injected']['orders']} / {data['produced'][self.names.orders]}",
             data["injected"]["orders"] == data["produced"][self.names.orders]),
            ("lost orders", str(data["lost"]), data["lost"] == 0),
            ("paid but not shipped", str(data["unshipped"]), data["unshipped"] == 0),
            ("duplicates (at-least-once; not a failure)",
             f"pay {dup['payments']} · ship {dup['shipments']} · rem {dup['reminders']}", True),
            ("reminders scheduled / delivered", f"{rem['scheduled']} / {rem['delivered']}",
             rem["scheduled"] == rem["delivered"]),
            ("reminder lateness p50 / p99 / max",
             f"{lat['p50']} / {lat['p99']} / {lat['max']} ms", True),
            ("reminders early", str(rem["early"]), rem["early"] == 0),
            ("dead letters / poison orders injected",
             f"{data['dlq']['records']} / {data['dlq']['poison_injected']}",
             data["dlq"]["records"] == data["dlq"]["poison_injected"]),
            ("lag drained", "yes" if all(v == 0 for v in self.lag.values()) else "no",
             all(v == 0 for v in self.lag.values())),
        ]  # fmt: skip
        for name, value, good in rows:
            checks.add_row(name, value, ok if good else bad)
        console.print(checks)

        entries = data["dlq"]["entries"]
        dlq = Table(
            title=f"{self.names.payments_group}.dlq ({len(entries)} record(s))",
            title_justify="left",
        )
        for col in ("p:offset", "key (order id)", "error type", "attempts", "message"):
            dlq.add_column(col)
        for e in entries[:_DLQ_ROWS]:
            message = str(e.get("error_message") or "")
            dlq.add_row(
                f"{e.get('partition')}:{e.get('offset')}", str(e.get("key")),
                str(e.get("error_type")).rpartition(".")[2], str(e.get("attempts")),
                message if len(message) <= 36 else message[:35] + "…",
            )  # fmt: skip
        console.print(dlq)
        if len(entries) > _DLQ_ROWS:
            console.print(f"  … and {len(entries) - _DLQ_ROWS} more")
        group = self.names.payments_group
        console.print(
            f"  inspect: [bold]pipeline dlq list -g {group}[/]  ·  "
            f"[bold]pipeline dlq show -g {group} -p P --offset N[/]  ·  "
            f"redrive: [bold]pipeline dlq redrive -g {group} --execute[/]"
        )
        if self.failures:
            console.print(f"\n[red bold]FAILED[/]: {len(self.failures)} invariant(s) broke:")
            for failure in self.failures:
                console.print(f"  [red]✗[/] {failure}")
        else:
            console.print(
                f"\n[green bold]OK[/]: 0 lost, 0 early, lag drained, "
                f"{data['dlq']['records']} dead letters = poison orders injected "
                f"({data['wall_seconds']} s)"
            )
