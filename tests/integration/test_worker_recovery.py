"""Recovery after ``kill -9``: how fast the group resumes, and how much it redoes (slow).

Three ``pipeline worker run`` processes share a group; events arrive live at about 1,000/s.
The busiest worker is killed three times, 6 s apart, and restarted 0.5 s after each kill. With
the worker's default settings (no session-timeout override), for the classic protocol with
dynamic and with static members, and for KIP-848:

- **resume time**: for each kill, how long until every partition that had records waiting
  is handled again (the killed worker's partitions wait for the group to move them);
- **duplicates**: at most what the killed worker had in flight (scraped from its
  ``/metrics`` right before the kill) plus what it handled in the last commit interval.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from consumers import WorkerOptions, ensure_worker_topics
from producers import EventProducer
from tests.helpers import free_port, wait_until
from tests.integration.test_worker_procs import Proc, group_settled, tally, worker_proc
from tests.integration.test_worker_support import create_topics, reminder, settings_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

KEYS, PER_KEY = 200, 100  # 20k events
RATE = 1000.0  # events per second
PARTITIONS = 6
RESUME_GOAL_S = 15.0
COMMIT_INTERVAL_S = WorkerOptions().commit_interval_s  # the default
RECORDER = "tests.workers.recorder:app"


@dataclass
class Kill:
    at: float
    pid: int
    in_flight: float
    recent: int = 0  # records the victim handled in the commit interval before the kill
    resume_s: float = 0.0


def _in_flight(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("pipeline_worker_in_flight"):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError("no pipeline_worker_in_flight in /metrics")


def _produce_live(bootstrap: str, topic: str, done: threading.Event) -> None:
    """Send KEYS x PER_KEY events at about RATE per second (seq-major, so keys interleave)."""
    start = time.monotonic()
    with EventProducer(settings_for(bootstrap), registry=CollectorRegistry()) as producer:
        n = 0
        for seq in range(PER_KEY):
            for k in range(KEYS):
                producer.send(reminder(f"k{k}", seq), key=f"k{k}", topic=topic)
                n += 1
            ahead = n / RATE - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)  # pacing the load, not waiting for a result
    done.set()


def _handled(out: Path) -> list[tuple[int, int, float]]:
    """``(pid, partition, time)`` of every handled record."""
    rows = []
    for line in out.read_text().splitlines():
        pid, _key, _seq, partition, at = line.split()
        rows.append((int(pid), int(partition), float(at)))
    return rows


def _resume_after(rows: list[tuple[int, int, float]], at: float) -> float:
    """Seconds after ``at`` until every partition that had work is handled again."""
    first: dict[int, float] = {}
    for _, partition, t in rows:
        if t > at:
            first[partition] = min(first.get(partition, t), t)
    return max((t - at for t in first.values()), default=0.0)


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("protocol", "static"), [("classic", False), ("classic", True), ("consumer", False)]
)
def test_group_resumes_quickly_and_redoes_little_after_kill_9(
    bootstrap_servers: str,
    unique: Callable[[str], str],
    tmp_path: Path,
    protocol: str,
    static: bool,
) -> None:
    topic, group = unique("wk-rec"), unique("wk-rec-g")
    create_topics(bootstrap_servers, [topic], partitions=PARTITIONS)
    ensure_worker_topics(settings_for(bootstrap_servers), group, partitions=3)
    out = tmp_path / "handled.txt"
    env = {
        "PIPELINE_BOOTSTRAP_SERVERS": bootstrap_servers,
        "PIPELINE_GROUP_PROTOCOL": protocol,
        "WORKER_GROUP": group,
        "WORKER_TOPIC": topic,
        "WORKER_OUT": str(out),
        "WORKER_SLEEP_MS": "1",
        "WORKER_COMMIT_INTERVAL_S": str(COMMIT_INTERVAL_S),
    }
    ports = [free_port() for _ in range(3)]

    def proc(i: int) -> Proc:
        extra = ["--static", "--instance-id", f"{group}-w{i}"] if static else []
        args = ["--concurrency", "4", "--metrics-port", str(ports[i]), *extra]
        return worker_proc(RECORDER, tmp_path / f"w{i}.log", env, *args)

    procs = [proc(i).start() for i in range(3)]
    produced = threading.Event()
    producer = threading.Thread(
        target=_produce_live, args=(bootstrap_servers, topic, produced), daemon=True
    )
    kills: list[Kill] = []
    try:
        wait_until(
            lambda: group_settled(bootstrap_servers, group, topic, PARTITIONS, members=3),
            timeout=120,
        )
        producer.start()
        wait_until(lambda: tally(out, KEYS, PER_KEY).unique > 1000, timeout=60)
        for n in range(3):
            if n:
                time.sleep(max(0.0, kills[-1].at + 6.0 - time.time()))  # the kill schedule
            i = _busiest(procs, out)
            victim = procs[i]
            assert victim.popen is not None
            in_flight = _in_flight(ports[i])
            kills.append(Kill(time.time(), victim.popen.pid, in_flight))
            victim.kill()
            time.sleep(0.5)  # the scenario restarts the victim 0.5 s after the kill
            victim.start()
            wait_until(lambda port=ports[i]: _scrapes(port), timeout=60)
        wait_until(produced.is_set, timeout=120)
        wait_until(lambda: tally(out, KEYS, PER_KEY).missing == 0, timeout=240, interval=0.5)
    finally:
        for p in procs:
            if p.alive():
                p.terminate()
    result = tally(out, KEYS, PER_KEY)
    rows = _handled(out)
    for kill in kills:
        kill.recent = sum(
            1 for pid, _, t in rows if pid == kill.pid and kill.at - COMMIT_INTERVAL_S <= t
        )
        kill.resume_s = _resume_after(rows, kill.at)
    bound = sum(k.in_flight + k.recent for k in kills)
    mode = f"{protocol}{' static' if static else ''}"
    print(
        f"\n{mode}: resume after each kill (s) {[round(k.resume_s, 1) for k in kills]}; "
        f"duplicates {result.duplicates} (bound {bound:.0f}: in flight "
        f"{[int(k.in_flight) for k in kills]} + last {COMMIT_INTERVAL_S:g}s "
        f"{[k.recent for k in kills]}); {result}"
    )
    assert result.missing == 0
    assert result.order_violations == 0
    assert max(k.resume_s for k in kills) <= RESUME_GOAL_S, kills
    assert result.duplicates <= bound, kills


def _busiest(procs: list[Proc], out: Path) -> int:
    """The worker that handled the most records in the last second (it owns partitions)."""
    since = time.time() - 1.0
    counts = {p.popen.pid: 0 for p in procs if p.popen is not None}
    for pid, _, t in _handled(out):
        if t >= since and pid in counts:
            counts[pid] += 1
    busiest = max(counts, key=lambda pid: counts[pid])
    return next(i for i, p in enumerate(procs) if p.popen is not None and p.popen.pid == busiest)


def _scrapes(port: int) -> bool:
    try:
        _in_flight(port)
    except OSError:
        return False
    return True
