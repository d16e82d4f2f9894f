"""The demo's orchestration: start the services, run traffic, drain, stop, summarise."""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient
from rich.console import Console

from consumers import ensure_worker_topics
from examples.orders.names import NAMESPACE_ENV, DemoNames
from pipeline._errors import PipelineError
from pipeline._names import dlq_topic, retry_topic
from pipeline._settings import Settings, load_settings
from pipeline.lag import LagOptions, LagPoller

from ._services import Service, child_env, free_port, http_text, wait_all_ready
from ._summary import Summary, worker_outcomes
from ._tally import Tally

__all__ = ["main"]

TIERS = "1s,2s,4s,8s,16s,32s,1m"  # the demo's delays are seconds: a short ladder is enough
WORKERS = ("payments", "fulfillment", "notifications")
console = Console(highlight=False)
if not console.is_terminal:  # logs and CI: wide enough for the dead-letter table
    console = Console(highlight=False, width=120)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipeline.demo", description=__doc__)
    p.add_argument("--duration", type=float, default=60.0, help="seconds of order traffic")
    p.add_argument("--rate", type=float, default=20.0, help="orders per second")
    p.add_argument("--poison-every", type=int, default=50, help="every Nth order is poison")
    p.add_argument("--reminder-every", type=int, default=5, help="every Nth order gets a reminder")
    p.add_argument("--keep-running", action="store_true", help="leave the services up after")
    p.add_argument("--summary-json", type=Path, help="also write the summary here as JSON")
    p.add_argument("--namespace", default="", help="prefix of every topic and group")
    p.add_argument("--topics-file", type=Path, default=Path("examples/topics.toml"))
    p.add_argument("--lag-port", type=int, default=9308, help="port of `pipeline lag serve`")
    p.add_argument("--partitions", type=int, default=3, help="of retry, DLQ and scheduler topics")
    p.add_argument("--drain-timeout", type=float, default=90.0, help="max seconds to drain")
    p.add_argument("--log-dir", type=Path, help="service logs (default: a temporary directory)")
    p.add_argument("--bootstrap-servers", help="overrides PIPELINE_BOOTSTRAP_SERVERS")
    return p


def _pipeline_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "pipeline"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "pipeline"]


class Demo:
    """One run of the demo."""

    def __init__(self, args: argparse.Namespace, settings: Settings) -> None:
        self.args = args
        self.settings = settings
        self.names = DemoNames(args.namespace)
        self.log_dir: Path = args.log_dir or Path(tempfile.mkdtemp(prefix="pipeline-demo-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.env = child_env(
            {
                "PIPELINE_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
                NAMESPACE_ENV: args.namespace,
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.pipeline = _pipeline_cmd()
        self.services: list[Service] = []
        self.workers: dict[str, Service] = {}
        self.order_service: Service | None = None
        self.tally = Tally(self.names, settings)
        self.stop_requested = threading.Event()
        self.started = time.monotonic()
        self.traffic_seconds = 0.0

    # -- steps ----------------------------------------------------------------------------------

    def step(self, text: str) -> None:
        elapsed = time.monotonic() - self.started
        console.print(f"[dim]{elapsed:6.1f}s[/] [bold cyan]▶[/] {text}")

    def apply_topics(self) -> None:
        spec = self.args.topics_file
        if self.names.namespace:  # the same spec, every topic under the namespace
            text = re.sub(
                r"^\[topics\.([\w.-]+)\]",
                lambda m: f'[topics."{self.names.name(m.group(1))}"]',
                spec.read_text(),
                flags=re.MULTILINE,
            )
            spec = self.log_dir / "topics.toml"
            spec.write_text(text)
        service = Service("topics-apply", [*self.pipeline, "topics", "apply", str(spec)],
                          self.log_dir, self.env)  # fmt: skip
        self.step(f"pipeline topics apply {spec}")
        service.start()
        code = service.wait(120)
        service.close_log()
        if code not in (0, 3):  # 3: drift, reported and left alone
            raise PipelineError(f"topics apply failed (exit {code}):\n{service.tail()}")
        console.print(_indent(service.tail(12)))

    def create_worker_topics(self) -> None:
        """Create the workers' retry and DLQ topics and wait until the brokers show them.

        ``pipeline worker run`` creates them too, but right before it subscribes: a topic the
        consumer's first metadata lacks is only picked up at the next metadata refresh
        (minutes), so the worker would not consume its retry topic meanwhile.
        """
        topics = []
        for group in self.names.worker_groups:
            report = ensure_worker_topics(self.settings, group, partitions=self.args.partitions)
            topics += [retry_topic(group), dlq_topic(group)]
            for topic in report.created:
                console.print(f"    created topic {topic}")
        admin = AdminClient(self.settings.admin_config())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            meta = admin.list_topics(timeout=10).topics
            if all(
                t in meta and meta[t].error is None and meta[t].partitions
                and all(p.leader >= 0 for p in meta[t].partitions.values())
                for t in topics
            ):  # fmt: skip
                return
            time.sleep(0.5)
        raise PipelineError(f"worker topics not visible after 60 s: {topics}")

    def start_services(self) -> None:
        n, parts = self.names, str(self.args.partitions)
        scheduler = Service(
            "scheduler",
            [*self.pipeline, "scheduler", "run", "--topic", n.scheduler_topic,
             "--group", n.scheduler_group, "--dlq-topic", n.scheduler_dlq, "--tiers", TIERS,
             "--partitions", parts, "--instance-id", n.name("demo-scheduler"),
             "--metrics-host", "127.0.0.1", "--metrics-port", str(free_port())],
            self.log_dir, self.env,
        )  # fmt: skip
        scheduler.metrics_port = int(scheduler.argv[-1])
        groups = "|".join(re.escape(g) for g in (*n.worker_groups, n.scheduler_group))
        lag = Service(
            "lag-exporter",
            [*self.pipeline, "lag", "serve", "--port", str(self.args.lag_port),
             "--host", "127.0.0.1", "--interval", "2s", "--groups", f"^({groups})$"],
            self.log_dir, self.env, metrics_port=self.args.lag_port,
        )  # fmt: skip
        self.services = [scheduler, lag]
        for name in WORKERS:
            port = free_port()
            worker = Service(
                name,
                [*self.pipeline, "worker", "run", f"examples.orders.{name}:app",
                 "--partitions", parts, "--metrics-host", "127.0.0.1",
                 "--metrics-port", str(port)],
                self.log_dir, self.env, metrics_port=port,
            )  # fmt: skip
            self.workers[name] = worker
            self.services.append(worker)
        for service in self.services:
            self.step(f"{service.name}: {_show(service.argv, self.pipeline)}")
            service.start()
        not_ready = wait_all_ready(self.services, timeout=120)
        if not_ready:
            details = "\n".join(f"--- {s.name}:\n{s.tail()}" for s in not_ready)
            raise PipelineError(f"services not ready in 120 s: {details}")
        self.step("all services ready (/readyz)")

    def run_traffic(self) -> dict[str, Any]:
        a = self.args
        report_path = self.log_dir / "order-service.json"
        report_path.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "examples.orders.order_service",
                "--rate", str(a.rate), "--duration", str(a.duration),
                "--poison-every", str(a.poison_every), "--reminder-every", str(a.reminder_every),
                "--report", str(report_path)]  # fmt: skip
        service = Service("order-service", argv, self.log_dir, self.env)
        self.order_service = service
        self.tally.mark_start()
        self.step(f"order service: {_show(argv, self.pipeline)}")
        started = time.monotonic()
        service.start()
        last = started
        deadline = started + a.duration + 60
        while service.running() and time.monotonic() < deadline:
            if self.stop_requested.is_set():
                service.terminate()
            self.tally.poll(0.5)
            if time.monotonic() - last >= 5:
                last = time.monotonic()
                self.progress()
        code = service.stop(30)
        self.traffic_seconds = time.monotonic() - started
        if not report_path.exists():
            raise PipelineError(f"the order service wrote no report (exit {code}):\n"
                                f"{service.tail()}")  # fmt: skip
        report: dict[str, Any] = json.loads(report_path.read_text())
        report["exit_code"] = code
        self.step(f"order service done: {report['orders']} orders ({report['poison']} poison), "
                  f"{report['reminders']} reminders, {report['failed']} failed sends")  # fmt: skip
        return report

    def progress(self) -> None:
        t = self.tally
        console.print(
            f"[dim]{time.monotonic() - self.started:6.1f}s[/]   orders {t.order_records}  "
            f"paid {len(t.paid)}  shipped {len(t.shipments)}  "
            f"dead-lettered {len(t.dead_lettered_orders)}  retries {sum(t.retries.values())}  "
            f"reminders {len(t.reminders)}"
        )

    def lag(self, poller: LagPoller) -> dict[str, int | None]:
        snapshot = poller.poll_once()
        groups = (*self.names.worker_groups, self.names.scheduler_group)
        return {
            g: (snapshot.groups[g].lag if g in snapshot.groups and not snapshot.groups[g].stale
                else None)
            for g in groups
        }  # fmt: skip

    def drain(self, report: dict[str, Any], poller: LagPoller) -> dict[str, int | None]:
        """Wait until every order is accounted for and the lag is 0 (bounded)."""
        self.step("draining: waiting until every order is handled and every lag is 0")
        deadline = time.monotonic() + self.args.drain_timeout
        last = time.monotonic()
        lag: dict[str, int | None] = {}
        while time.monotonic() < deadline and not self.stop_requested.is_set():
            self.tally.poll(0.5)
            t = self.tally
            done = (
                t.order_records >= report["orders"]
                and not t.lost_orders()
                and not t.unshipped()
                and len(t.reminders) >= report["reminders"]
            )
            if done:
                lag = self.lag(poller)
                if all(v == 0 for v in lag.values()):
                    self.step(f"drained: lag {lag}")
                    return lag
            if time.monotonic() - last >= 5:
                last = time.monotonic()
                self.progress()
        lag = self.lag(poller)
        self.step(f"drain timed out after {self.args.drain_timeout:g}s: lag {lag}")
        return lag

    def scrape_outcomes(self) -> dict[str, dict[str, int]]:
        return {
            self.names.name(name): worker_outcomes(http_text(f"{w.url}/metrics"))
            for name, w in self.workers.items()
        }

    def stop_services(self) -> dict[str, int | None]:
        """Stop every service gracefully; their exit codes (None: had to be killed)."""
        if self.stop_requested.is_set():
            # After Ctrl-C in a terminal the services got the SIGINT too and are stopping;
            # a second signal could hit one while Python finalizes, so give them time first.
            deadline = time.monotonic() + 15
            while any(s.running() for s in self.services) and time.monotonic() < deadline:
                time.sleep(0.2)
        self.step("stopping the services (SIGTERM)")
        for service in self.services:
            service.terminate()
        codes = {s.name: s.stop(45) for s in self.services}
        for service in self.services:
            if codes[service.name] != 0:
                console.print(f"[red]{service.name} exited {codes[service.name]}[/]; log tail:")
                console.print(_indent(service.tail()))
        return codes

    def dlq_listing(self, since_ms: int) -> list[dict[str, Any]]:
        since = datetime.fromtimestamp(since_ms / 1000, UTC).isoformat(timespec="milliseconds")
        argv = [*self.pipeline, "dlq", "list", "-g", self.names.payments_group, "--since", since,
                "-n", "1000", "-o", "json"]  # fmt: skip
        self.step(f"{_show(argv, self.pipeline)}")
        proc = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            console.print(f"[red]dlq list failed[/]: {proc.stderr.strip()}")
            return []
        listing: list[dict[str, Any]] = json.loads(proc.stdout)
        return listing

    def wait_for_stop_request(self) -> None:
        console.print(
            f"\n[bold]--keep-running[/]: the services stay up (logs in {self.log_dir}).\n"
            f"  lag exporter:  curl http://127.0.0.1:{self.args.lag_port}/metrics\n"
            f"  lag:           pipeline lag show\n"
            f"  scheduler:     pipeline scheduler status --topic {self.names.scheduler_topic} "
            f"--tiers {TIERS}\n"
            f"  dead letters:  pipeline dlq list -g {self.names.payments_group}\n"
            f"  orders:        pipeline consume -t {self.names.orders} --from-beginning -n 3\n"
            f"  more orders:   python -m examples.orders.order_service --rate 5 --duration 30\n"
            "Press Ctrl-C to stop the services "
            "(the broker keeps running; stop it with scripts/kafka-local down)."
        )
        self.stop_requested.wait()


def _show(argv: list[str] | tuple[str, ...] | Any, pipeline: list[str]) -> str:
    argv = list(argv)
    if argv[: len(pipeline)] == pipeline:
        argv = ["pipeline", *argv[len(pipeline) :]]
    elif argv and argv[0] == sys.executable:
        argv = ["python", *argv[1:]]
    return " ".join(argv)


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())


def run(args: argparse.Namespace) -> int:
    settings = load_settings(bootstrap_servers=args.bootstrap_servers)
    demo = Demo(args, settings)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: demo.stop_requested.set())
    console.print(
        f"[bold]event-pipeline demo[/]: the example order system on {settings.bootstrap_servers}"
        f" for {args.duration:g}s at {args.rate:g} orders/s (logs: {demo.log_dir})"
    )
    poller = LagPoller(settings, LagOptions(interval=1.0, timeout=10.0))
    exit_codes: dict[str, int | None] = {}
    try:
        demo.apply_topics()
        demo.create_worker_topics()
        demo.start_services()
        report = demo.run_traffic()
        lag = demo.drain(report, poller)
        outcomes = demo.scrape_outcomes()
        if args.keep_running:
            _summary(demo, report, lag, outcomes, {}).render(console)
            demo.wait_for_stop_request()
        exit_codes = demo.stop_services()
        exit_codes["order-service"] = report.get("exit_code")
        demo.tally.poll(1.0)
        lag = demo.lag(poller)  # after the workers' final commits
        summary = _summary(demo, report, lag, outcomes, exit_codes)
        summary.dlq_listing = demo.dlq_listing(report["started_at_ms"])
    except PipelineError as exc:
        console.print(f"[red bold]demo failed[/]: {exc}")
        demo.stop_services()
        return 1
    finally:
        for service in demo.services:
            if service.running():
                service.stop(10)
        poller.stop()
        demo.tally.close()
    summary.wall_seconds = time.monotonic() - demo.started
    summary.check()
    console.rule("summary")
    summary.render(console)
    console.print(f"[dim]service logs: {demo.log_dir}[/]")
    if args.summary_json is not None:
        args.summary_json.write_text(json.dumps(summary.to_json(), indent=2, default=str) + "\n")
    if demo.stop_requested.is_set() and not args.keep_running:
        return 130
    return 1 if summary.failures else 0


def _summary(
    demo: Demo,
    report: dict[str, Any],
    lag: dict[str, int | None],
    outcomes: dict[str, dict[str, int]],
    exit_codes: dict[str, int | None],
) -> Summary:
    summary = Summary(demo.names, demo.tally, report, lag, outcomes, exit_codes, [],
                      demo.traffic_seconds, time.monotonic() - demo.started)  # fmt: skip
    summary.check()
    return summary


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m pipeline.demo``."""
    args = _parser().parse_args(argv)
    try:
        return run(args)
    except PipelineError as exc:
        console.print(f"[red bold]demo failed[/]: {exc}")
        return 1
