"""Fault-test helpers: find a partition's leader in the cluster metadata, and bounce it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from confluent_kafka.admin import AdminClient


class Cluster(Protocol):
    """What the bouncer needs of tests.conftest.PrivateKafka."""

    bootstrap: str

    def node(self, command: str, node: int, timeout: float = 300) -> None: ...


def partition_leader(bootstrap: str, topic: str, partition: int = 0, timeout: float = 30) -> int:
    """The node id that leads ``topic``/``partition`` now (metadata from the cluster)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout
    while True:
        try:
            meta = admin.list_topics(topic=topic, timeout=5)
            leader = meta.topics[topic].partitions[partition].leader
            if leader >= 0:
                return int(leader)
        except Exception:  # retried until the deadline; metadata may be moving
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{topic}[{partition}] has no leader after {timeout}s")
        time.sleep(0.2)


def kill_leader(cluster: Cluster, topic: str, partition: int = 0) -> int:
    """SIGKILL the leader of ``topic``/``partition``; return its node id."""
    leader = partition_leader(cluster.bootstrap, topic, partition)
    cluster.node("kill", leader)
    return leader


@dataclass
class LeaderBouncer:
    """A thread that kill -9s the partition leader ``times`` times, restarting it each time.

    ``before_kill`` runs just before each kill (a test records in-flight figures there);
    ``gap`` is the time between a restart and the next kill.
    """

    cluster: Cluster
    topic: str
    times: int = 5
    partition: int = 0
    gap: float = 2.0
    before_kill: Callable[[int], None] | None = None
    killed: list[int] = field(default_factory=list)
    error: BaseException | None = None
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> LeaderBouncer:
        self._thread = threading.Thread(target=self._run, name="leader-bouncer", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            for i in range(self.times):
                if self._stop.wait(self.gap):
                    return
                if self.before_kill is not None:
                    self.before_kill(i)
                node = kill_leader(self.cluster, self.topic, self.partition)
                self.killed.append(node)
                self.cluster.node("start", node)
        except BaseException as exc:  # re-raised by join()
            self.error = exc

    @property
    def done(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()

    def join(self, timeout: float = 600) -> list[int]:
        """Wait for every bounce; re-raise a failure from the thread; return the killed nodes."""
        assert self._thread is not None
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._stop.set()
            raise AssertionError(f"leader bouncer still running after {timeout}s")
        if self.error is not None:
            raise self.error
        return self.killed


@dataclass
class Audit:
    """What a verifier read, against what was expected: the figures a fault test prints."""

    expected: int
    read: int
    lost: int
    duplicates: int
    order_violations: int
    unexpected: int

    def line(self, name: str, **extra: object) -> str:
        more = "".join(f", {k.replace('_', ' ')} {v}" for k, v in extra.items())
        return (
            f"{name}: expected {self.expected}, read {self.read}, lost {self.lost}, "
            f"duplicates {self.duplicates}, order violations {self.order_violations}, "
            f"unexpected {self.unexpected}{more}"
        )


def audit(records: list[tuple[bytes, int]], expected: set[int]) -> Audit:
    """Audit ``(key, seq)`` pairs in the order they were read (per partition, by offset).

    A duplicate is a second sighting of a seq; an order violation is a first sighting whose seq
    is lower than an earlier first sighting of the same key (seqs rise per key on the way in).
    ``unexpected`` counts seqs outside ``expected`` (for P2: sends reported failed that the
    broker kept anyway, which is allowed).
    """
    seen: dict[int, int] = {}
    last: dict[bytes, int] = {}
    violations = 0
    for key, seq in records:
        seen[seq] = seen.get(seq, 0) + 1
        if seen[seq] > 1:
            continue
        if seq < last.get(key, -1):
            violations += 1
        last[key] = max(seq, last.get(key, -1))
    return Audit(
        expected=len(expected),
        read=len(records),
        lost=len(expected - set(seen)),
        duplicates=sum(n - 1 for n in seen.values()),
        order_violations=violations,
        unexpected=len(set(seen) - expected),
    )


def send_paced(
    send: Callable[[int], object], total: int, bouncer: LeaderBouncer, chunk: int, every: float
) -> list[object]:
    """Call ``send(seq)`` for 0..total-1, ``chunk`` at a time every ``every`` seconds while the
    bouncer runs (then at full speed), so the bounces hit the stream mid-way. Returns results."""
    out: list[object] = []
    started = time.monotonic()
    for seq in range(total):
        out.append(send(seq))
        if seq % chunk == chunk - 1:  # paces the sends across the bounces; waits for nothing
            due = started + every * (seq + 1) / chunk
            while not bouncer.done and time.monotonic() < due:
                time.sleep(0.05)
    return out
