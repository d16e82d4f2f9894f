"""The demo's child processes: start with a log file, wait until ready, stop gracefully."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

__all__ = ["Service", "child_env", "free_port", "http_ok", "http_text", "wait_all_ready"]


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """Whether GET ``url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status) == 200
    except (OSError, urllib.error.URLError):
        return False


def http_text(url: str, timeout: float = 2.0) -> str:
    """The body of GET ``url`` ('' when it does not answer)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return bytes(resp.read()).decode()
    except (OSError, urllib.error.URLError):
        return ""


@dataclass
class Service:
    """One child process of the demo, its output going to ``<log_dir>/<name>.log``."""

    name: str
    argv: Sequence[str]
    log_dir: Path
    env: dict[str, str]
    metrics_port: int | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    terminated: bool = False
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}" if self.metrics_port else ""

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self._log.write(f"$ {' '.join(self.argv)}\n".encode())
        self._log.flush()
        self.proc = subprocess.Popen(
            list(self.argv), stdout=self._log, stderr=subprocess.STDOUT, env=self.env
        )

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ready(self) -> bool:
        """Alive, and its ``/readyz`` answers 200 (when it serves one)."""
        if not self.running():
            return False
        return not self.metrics_port or http_ok(f"{self.url}/readyz")

    def wait(self, timeout: float) -> int | None:
        """The exit code, or None if it still runs after ``timeout`` seconds."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def terminate(self) -> None:
        """Send SIGTERM (a graceful stop) once, if it still runs.

        Only once: a second SIGTERM can land while the interpreter is finalizing, after Python
        restored the default disposition, and kill a process that was stopping cleanly.
        """
        if self.running() and self.proc is not None and not self.terminated:
            self.terminated = True
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float) -> int | None:
        """SIGTERM, wait ``timeout`` seconds, then SIGKILL; the exit code (None if killed)."""
        self.terminate()
        code = self.wait(timeout)
        if code is None and self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
        self.close_log()
        return code

    def close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def tail(self, lines: int = 15) -> str:
        """The last lines of its log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def wait_all_ready(services: Sequence[Service], timeout: float) -> list[Service]:
    """Wait until every service is ready; return those that are not (died or timed out)."""
    deadline = time.monotonic() + timeout
    pending = list(services)
    while pending and time.monotonic() < deadline:
        pending = [s for s in pending if not s.ready()]
        if any(not s.running() for s in pending):
            break
        if pending:
            time.sleep(0.3)
    return [s for s in services if not s.ready()]


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The demo's environment plus ``extra``."""
    return {**os.environ, **extra}
