"""Helpers to run ``pipeline worker run`` in subprocesses and check what they recorded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import ConsumerGroupState, KafkaException
from confluent_kafka.admin import AdminClient

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Proc:
    args: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        log = self.log.open("ab")
        self.popen = subprocess.Popen(self.args, env=self.env, cwd=REPO, stdout=log, stderr=log)
        log.close()
        return self

    def kill(self) -> None:
        assert self.popen is not None
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(30)

    def terminate(self, timeout: float = 60) -> int:
        assert self.popen is not None
        self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout)

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


def worker_proc(
    app: str,
    log: Path,
    env: dict[str, str],
    *extra: str,
) -> Proc:
    full = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    full.update(env)
    args = [sys.executable, "-m", "pipeline", "worker", "run", app, "--no-create-topics", *extra]
    return Proc(args, full, log)


@dataclass
class Tally:
    handled: int
    unique: int
    duplicates: int
    missing: int
    order_violations: int


def tally(out: Path, keys: int, per_key: int) -> Tally:
    """Read ``pid key seq ...`` lines: count duplicates, losses and per-key order violations."""
    lines = out.read_text().splitlines() if out.exists() else []
    seen: Counter[tuple[str, int]] = Counter()
    last: dict[tuple[str, str], int] = defaultdict(lambda: -1)
    violations = 0
    for line in lines:
        pid, key, seq_text = line.split()[:3]
        seq = int(seq_text)
        seen[(key, seq)] += 1
        # Within one process, a key's events are handled in order; a redelivery after a crash
        # happens in a new process (or after a revoke, starting below the last one seen).
        if seq <= last[(pid, key)] and seen[(key, seq)] == 1:
            violations += 1
        last[(pid, key)] = seq
    expected = {(f"k{k}", s) for k in range(keys) for s in range(per_key)}
    return Tally(
        handled=len(lines),
        unique=len(seen),
        duplicates=len(lines) - len(seen),
        missing=len(expected - set(seen)),
        order_violations=violations,
    )


def group_settled(
    bootstrap: str, group: str, topic: str, partitions: int, members: int | None = None
) -> bool:
    """Whether the group is stable, with ``members`` members (any number if None) that own
    all ``partitions`` partitions of ``topic``.

    Count the members: right after the first one joins, it owns everything and the group is
    stable, before the others' joins start the rebalance that hands partitions out.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    except KafkaException:  # the coordinator is still loading, or moving
        return False
    if description.state != ConsumerGroupState.STABLE:
        return False
    if members is not None and len(description.members) != members:
        return False
    owned = {
        tp.partition
        for member in description.members
        for tp in (member.assignment.topic_partitions if member.assignment else [])
        if tp.topic == topic
    }
    return len(owned) == partitions
