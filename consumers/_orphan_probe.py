"""The orphan check's admin calls, in a child process of their own.

librdkafka 2.16 can abort the whole process (``rd_kafka_enq_once_del_source_return: Assertion
`eonce->refcnt > 0' failed``) when a coordinator-targeted admin request such as
DescribeConsumerGroups loses its connection while it is sent: a use-after-free in
``rd_kafka_admin_coord_request`` (confluentinc/librdkafka#5397, open). The worker's orphan
check describes its group every few seconds, so a broker bounce could take the worker down with
it. Here the describe runs in a long-lived child (``python -m consumers._orphan_probe``): should
librdkafka abort there, the check fails, the child is started again for the next one, and the
worker goes on.

Protocol, one JSON object per line: the parent writes the admin client config first (on the
child's stdin, never on its command line: it may hold a SASL password), then one request per
check, ``{"group": ..., "topics": [...]}``; the child answers
``{"state": ..., "owned": [[topic, partition], ...], "counts": {topic: partitions}}`` or
``{"error": "..."}``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import selectors
import subprocess
import sys
import threading
from collections import deque
from typing import IO, Any

__all__ = ["OrphanProbe", "ProbeDied", "ProbeError", "ProbeResult"]

_LOG = logging.getLogger("consumers")
_START_S = 30.0  # the child imports confluent-kafka before it answers its first request
_ANSWER_S = 40.0  # describe (10 s request, 15 s wait) plus list_topics (10 s), with room

ProbeResult = tuple[str, list[tuple[str, int]], dict[str, int]]
"""The group's state, the partitions its members own, and the partition count of each topic."""


class ProbeError(Exception):
    """A check did not answer: the admin call failed (the broker is down, ...)."""


class ProbeDied(ProbeError):
    """The child process exited or did not answer in time (it is started again next time)."""


class OrphanProbe:
    """The parent's side: one child process, started on first use and again after it died.

    Not thread-safe: one check at a time (the orphan watch runs one thread at a time).
    """

    def __init__(self, admin_config: dict[str, Any], answer_s: float = _ANSWER_S) -> None:
        self._answer_s = answer_s
        self._config = {k: v for k, v in admin_config.items() if k != "logger"}
        self._child: subprocess.Popen[bytes] | None = None
        self._stderr: deque[str] = deque(maxlen=5)
        self._first = True
        self._closed = False
        self.restarts = 0

    def check(self, group: str, topics: list[str]) -> ProbeResult:
        """Describe ``group`` and count the partitions of ``topics`` (in the child).

        Raises:
            ProbeError: the answer is an error.
            ProbeDied: the child died or did not answer in time.
        """
        if self._closed:
            raise ProbeError("the orphan check is closed")
        child = self._ensure()
        request = json.dumps({"group": group, "topics": topics}) + "\n"
        try:
            assert child.stdin is not None
            child.stdin.write(request.encode())
            child.stdin.flush()
        except OSError:
            raise self._died(child) from None
        timeout = _START_S + self._answer_s if self._first else self._answer_s
        line = _read_line(child.stdout, timeout)
        if line is None:
            raise self._died(child)
        self._first = False
        answer = json.loads(line)
        if "error" in answer:
            raise ProbeError(answer["error"])
        owned = [(str(t), int(p)) for t, p in answer["owned"]]
        return str(answer["state"]), owned, {str(t): int(n) for t, n in answer["counts"].items()}

    def close(self) -> None:
        """Stop the child (end of its input: it exits; killed if it does not within 5 s)."""
        self._closed = True
        child, self._child = self._child, None
        if child is None:
            return
        try:
            assert child.stdin is not None
            child.stdin.close()
            child.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            child.kill()
            child.wait(5)
        _close_pipes(child)

    def _ensure(self) -> subprocess.Popen[bytes]:
        child = self._child
        if child is not None and child.poll() is None:
            return child
        child = self._child = subprocess.Popen(
            [sys.executable, "-m", "consumers._orphan_probe"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._first = True
        self._stderr.clear()
        threading.Thread(
            target=self._collect, args=(child.stderr,), name="orphan-probe-stderr", daemon=True
        ).start()
        assert child.stdin is not None
        child.stdin.write((json.dumps(self._config) + "\n").encode())
        child.stdin.flush()
        return child

    def _collect(self, stream: IO[bytes] | None) -> None:
        """Keep the child's last stderr lines (librdkafka's own log and an abort message)."""
        assert stream is not None
        with stream:  # to the child's end
            for raw in stream:
                line = raw.decode(errors="replace").rstrip()
                if line:
                    self._stderr.append(line)
                    _LOG.debug("orphan probe: %s", line)

    def _died(self, child: subprocess.Popen[bytes]) -> ProbeError:
        """The child exited or hung: stop it; the next check starts a new one."""
        if self._closed:
            return ProbeError("the orphan check is closed")
        self._child = None
        if child.poll() is None:
            child.kill()
        code = child.wait(5)
        _close_pipes(child)
        self.restarts += 1
        last = self._stderr[-1] if self._stderr else "no output"
        how = "did not answer in time" if code == -9 else f"exited with {code}"
        return ProbeDied(f"the orphan check's admin process {how} ({last})")


def _close_pipes(child: subprocess.Popen[bytes]) -> None:
    """Close our ends of a finished child's stdin and stdout (stderr closes with its reader)."""
    for stream in (child.stdin, child.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):  # a broken pipe's unflushed write
                stream.close()


def _read_line(stream: IO[bytes] | None, timeout: float) -> bytes | None:
    """One line from ``stream`` within ``timeout`` seconds; None at its end or on a timeout."""
    assert stream is not None
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout):
            return None
    line = stream.readline()
    return line or None


def _serve() -> int:  # pragma: no cover - runs in the child process (tested through the parent)
    from confluent_kafka.admin import AdminClient

    config = json.loads(sys.stdin.readline())
    admin = AdminClient(config)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            group, topics = request["group"], request["topics"]
            described = admin.describe_consumer_groups([group], request_timeout=10)
            d = described[group].result(timeout=15)
            owned = [
                [tp.topic, tp.partition]
                for m in d.members
                for tp in (m.assignment.topic_partitions if m.assignment else [])
            ]
            meta = admin.list_topics(timeout=10)
            counts = {t: len(meta.topics[t].partitions) for t in topics if t in meta.topics}
            state = getattr(d.state, "name", str(d.state))
            answer: dict[str, Any] = {
                "state": "Stable" if state == "STABLE" else state,
                "owned": owned,
                "counts": counts,
            }
        except Exception as exc:  # one failed check: say why, wait for the next request
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_serve())
