"""Read the counts in a background thread and keep the latest snapshot (for ``lag serve``)."""

from __future__ import annotations

import logging
import threading

from pipeline._errors import PipelineError
from pipeline._settings import Settings

from ._model import StatsSnapshot
from ._reader import StatsOptions, StatsReader

__all__ = ["StatsPoller"]

_LOG = logging.getLogger("pipeline.stats")


class StatsPoller:
    """Run :meth:`StatsReader.read` every ``interval`` seconds in a daemon thread.

    Readers take ``snapshot`` (swapped atomically), so a scrape never calls Kafka. A failed
    read keeps the last snapshot and counts in ``errors``.
    """

    def __init__(
        self, settings: Settings, options: StatsOptions | None = None, interval: float = 30.0
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        self._reader = StatsReader(settings, options)
        self.interval = interval
        self._snapshot = StatsSnapshot()
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def snapshot(self) -> StatsSnapshot:
        """The latest snapshot (empty before the first read)."""
        return self._snapshot

    def read_once(self) -> StatsSnapshot:
        """One read in the caller's thread; never raises (a failure is logged and counted)."""
        try:
            self._snapshot = self._reader.read()
        except PipelineError as exc:
            self.errors += 1
            _LOG.warning("stats read failed: %s", exc)
        except Exception:  # the thread must survive anything
            self.errors += 1
            _LOG.exception("stats read crashed")
        return self._snapshot

    def start(self) -> None:
        """Read in a daemon thread until ``stop()``."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="pipeline-stats", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and close the reader."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._reader.options.timeout * 6 + 5)
            self._thread = None
        self._reader.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.read_once()
            self._stop.wait(self.interval)
