"""The confluent-kafka producer behind an EventProducer: built lazily, polled, rebuilt on fatal."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from pipeline._errors import FatalProducerError, KafkaOperationError
from pipeline._produce import purge_and_report

__all__ = ["INLINE_POLL_MASK", "ClientHolder"]

_LOG = logging.getLogger("producers")
POLL_INTERVAL_S = 0.05
IDLE_AFTER_S = 0.02  # the background thread polls once sends pause this long
INLINE_POLL_MASK = 31  # the sending thread polls once every 32 records


class ClientHolder:
    """Owns one ``confluent_kafka.Producer`` at a time and a thread that serves its callbacks.

    With ``background=False`` there is no such thread: callbacks run only on the threads that
    send, flush or close. ``on_error`` sees every error librdkafka reports (the outbox watches
    for all brokers down).

    Nothing touches the network until :meth:`get` is first called. A fatal error (reported by
    librdkafka's error callback) is raised once to the next caller as ``FatalProducerError``,
    and the client is replaced by a fresh one for later sends.
    """

    def __init__(
        self,
        config: dict[str, Any],
        *,
        after_poll: Callable[[], None] | None = None,
        background: bool = True,
        on_error: Callable[[KafkaError], None] | None = None,
    ) -> None:
        self._config = config
        self._background = background
        self._after_poll = after_poll
        self._on_error_hook = on_error
        self._lock = threading.Lock()
        self._client: Producer | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._fatal: KafkaError | None = None
        self.transactional = "transactional.id" in config
        self.generation = 0
        self._last_inline = 0.0
        # The client for the send fast path: None until built, and from the moment a fatal
        # error is reported until get() has raised it and rebuilt the client.
        self.ready: Producer | None = None

    @property
    def started(self) -> bool:
        """Whether a client exists."""
        return self._client is not None

    def get(self) -> Producer:
        """The current client, created (and its transactions initialised) on first use.

        Raises:
            FatalProducerError: the previous client hit a fatal error; a new one is built for
                the next call.
        """
        client = self._client
        if client is not None and self._fatal is None:
            return client
        with self._lock:
            if self._fatal is not None:
                err, self._fatal = self._fatal, None
                self._discard()
                raise FatalProducerError(
                    f"the idempotent producer hit a fatal error: {err.str()}; the client has "
                    "been rebuilt and later sends use the new one"
                )
            if self._client is None:
                self._client = self.ready = self._build()
            return self._client

    def _build(self) -> Producer:
        config = {**self._config, "error_cb": self._on_error}
        try:
            client = Producer(config)
            if self.transactional:
                client.init_transactions(30)
        except KafkaException as exc:
            raise KafkaOperationError(f"creating the producer failed: {exc.args[0]}") from exc
        self.generation += 1
        if not self._background:
            return client
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._poll_loop, args=(client,), name="producer-poll", daemon=True
        )
        self._thread.start()
        return client

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            _LOG.error("fatal producer error: %s", err.str())
            self._fatal = err
            self.ready = None
        else:
            _LOG.debug("producer error (librdkafka retries it): %s", err.str())
        if self._on_error_hook is not None:
            self._on_error_hook(err)

    def serve(self, client: Producer) -> None:
        """Serve the delivery reports that are ready, on the caller's thread.

        The producer calls this every ``INLINE_POLL_MASK + 1`` sends. While the caller keeps
        sending, reports are served here, as in a hand-written produce/poll loop, and the
        background thread stays idle: two threads taking turns on the GIL for every report
        would cost more than the reports themselves.
        """
        self._last_inline = time.monotonic()
        if client.poll(0) and self._after_poll is not None:
            self._after_poll()

    def _poll_loop(self, client: Producer) -> None:
        """Serve delivery reports when the application is not sending (and so not polling)."""
        while not self._stop.is_set():
            if time.monotonic() - self._last_inline < IDLE_AFTER_S:
                self._stop.wait(IDLE_AFTER_S)
                continue
            client.poll(POLL_INTERVAL_S)
            if self._after_poll is not None:
                self._after_poll()

    def _discard(self) -> None:
        """Drop the current client: fail what it still holds, stop its poll thread."""
        client, self._client = self._client, None
        self.ready = None
        if client is None:
            return
        purge_and_report(client)  # fails queued records' futures instead of leaving them pending
        self._stop_thread()

    def _stop_thread(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._thread = None

    def close(self, timeout: float) -> int:
        """Flush for up to ``timeout`` seconds, then purge; return how many were undelivered."""
        with self._lock:
            client = self._client
            if client is None:
                return 0
            remaining = client.flush(timeout)
            if remaining:
                purge_and_report(client)
            self._stop_thread()
            if self._after_poll is not None:
                self._after_poll()
            self._client = self.ready = None
            return int(remaining)
