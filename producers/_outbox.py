"""The durable producer outbox: where a record goes when Kafka can't take it, and back.

Routing, for every ``send`` of a producer built with ``outbox=``:

* while Kafka is known to be down (a delivery timed out, the client reported all brokers
  down, or the local queue stayed full past ``max_block``), a record goes straight to the
  outbox; so does a record whose ``(topic, key)`` still has records in the outbox (it queues
  behind them, which keeps the key's order);
* otherwise it goes to Kafka; if its delivery then fails for a reason an outage explains
  (timeout, transport, purge at close), it is stored instead of failed.

A stored record's future resolves with ``DeliveryStatus.STORED`` once its row is committed
(writes are grouped: one transaction, one fsync, per batch). A drainer thread sends the outbox
back in ``seq`` (send) order, skipping keys with live sends still in flight, and deletes a
record only once Kafka acknowledged it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Set
from typing import Any, cast

from confluent_kafka import KafkaError, Message

from pipeline._errors import OutboxError, OutboxFull, PipelineError, QueueFullError

from ._client import ClientHolder
from ._outbox_drain import PassResult, drain_stream
from ._outbox_file import OutboxFile, Row, encode_headers
from ._outbox_metrics import OutboxMetrics
from ._outbox_records import (
    DOWN_CODES,
    STORABLE_CODES,
    OutboxConfig,
    PendingRow,
    Report,
    StoredMessage,
)

__all__ = ["Outbox"]

_LOG = logging.getLogger("producers.outbox")
Headers = list[tuple[str, bytes | None]] | None
Live = Callable[[str, bytes | None, bytes | None, Headers, Report], None]
_Key = tuple[str, bytes]


class _LiveReport:
    """A live send's delivery callback: a failure an outage explains is stored, not failed."""

    __slots__ = ("outbox", "report", "seq")

    def __init__(self, outbox: Outbox, seq: int, report: Report) -> None:
        self.outbox, self.seq, self.report = outbox, seq, report

    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        key = msg.key()
        if err is None or err.code() not in STORABLE_CODES:
            self.outbox.settle(msg.topic() or "", key)
            self.report(err, msg)
            return
        if err.code() in DOWN_CODES:
            self.outbox.down = True
        headers = encode_headers(cast(Headers, msg.headers()))
        row = PendingRow(self.seq, msg.topic() or "", key, msg.value(), headers, self.report, True)
        if not self.outbox.store(row, raise_full=False):
            self.report(err, msg)  # the outbox is full: the send fails, reported as such


class Outbox:
    """The outbox of one producer: the file, the routing state, the writer and drainer threads."""

    def __init__(
        self,
        config: OutboxConfig,
        client_config: dict[str, Any],
        metrics: OutboxMetrics,
        after_reports: Callable[[], None],
    ) -> None:
        self.config = config
        self.file = OutboxFile.open(config.path, config.synchronous)
        summary = self.file.summary()
        self.records, self.size_bytes = summary.records, summary.size_bytes
        self._pending: dict[_Key, int] = dict(summary.keys)
        self._inflight: dict[_Key, int] = {}
        self._next_seq = summary.last_seq + 1
        self.down = False
        self._cond = threading.Condition()
        self._queue: list[PendingRow] = []
        self._writing = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._metrics = metrics
        metrics.depth = lambda: (self.records, self.size_bytes)
        metrics.oldest = self._oldest
        self._after_reports = after_reports
        timeout_ms = int(client_config.get("message.timeout.ms", 300_000))
        self._drain_timeout = timeout_ms / 1000 + 5
        self._drain_client = ClientHolder(dict(client_config), background=False)

    # -- the send path ------------------------------------------------------------------------

    def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: Headers,
        report: Report,
        live: Live,
    ) -> None:
        """Queue one record live, or store it when Kafka is down or its key is in the outbox.

        Raises:
            OutboxFull: the record had to be stored and the outbox is at its cap.
        """
        if not self._threads:
            self.start()
        tk = None if key is None else (topic, key)
        with self._cond:
            seq = self._next_seq
            self._next_seq += 1
            direct = self.down or (tk is not None and tk in self._pending)
            if not direct and tk is not None:
                self._inflight[tk] = self._inflight.get(tk, 0) + 1
        if direct:
            row = PendingRow(seq, topic, key, value, encode_headers(headers), report, False)
            self.store(row, raise_full=True)
            return
        try:
            live(topic, value, key, headers, _LiveReport(self, seq, report))
        except QueueFullError:  # full past max_block: Kafka is not taking records
            self.down = True
            row = PendingRow(seq, topic, key, value, encode_headers(headers), report, True)
            self.store(row, raise_full=True)
        except BaseException:
            self.settle(topic, key)
            raise

    def settle(self, topic: str, key: bytes | None) -> None:
        """A live send of ``key`` has its outcome: it no longer holds the key's drain back."""
        if key is None:
            return
        with self._cond:
            _decrement(self._inflight, (topic, key))

    def store(self, row: PendingRow, *, raise_full: bool) -> bool:
        """Reserve room and queue ``row`` for the writer; False (or OutboxFull) when full."""
        size = row.size
        with self._cond:
            cfg = self.config
            if self.records + 1 > cfg.max_records or self.size_bytes + size > cfg.max_bytes:
                records, held = self.records, self.size_bytes
                full = True
            else:
                full = False
                self.records += 1
                self.size_bytes += size
                if row.key is not None:
                    tk = (row.topic, row.key)
                    self._pending[tk] = self._pending.get(tk, 0) + 1
                self._queue.append(row)
                self._cond.notify_all()
        if full:
            if row.from_live:
                self.settle(row.topic, row.key)
            if raise_full:
                raise OutboxFull(
                    f"outbox {cfg.path} is full ({records} records, {held} bytes; caps "
                    f"{cfg.max_records} records, {cfg.max_bytes} bytes): record for "
                    f"{row.topic} not stored",
                    records=records,
                    size_bytes=held,
                )
            return False
        return True

    # -- threads ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer and the drainer (on first use: no thread before a send or drain)."""
        with self._cond:
            if self._threads:
                return
            for target, name in (
                (self._write_loop, "outbox-writer"),
                (self._drain_loop, "outbox-drain"),
            ):
                thread = threading.Thread(target=target, name=name, daemon=True)
                self._threads.append(thread)
                thread.start()

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop.is_set():
                    self._cond.wait()
                if not self._queue:
                    return
                batch, self._queue = self._queue, []
                self._writing = len(batch)
            self._write(batch)
            with self._cond:
                self._writing = 0
                self._cond.notify_all()
            self._wake.set()

    def _write(self, batch: list[PendingRow]) -> None:
        try:
            self.file.insert((p.seq, p.topic, p.key, p.value, p.headers, p.size) for p in batch)
        except OutboxError as exc:
            _LOG.error("%s", exc)
            self._unreserve(batch)
            error = KafkaError(KafkaError._FS, f"not stored: {exc}")
            for p in batch:
                p.report(error, StoredMessage(p.topic, p.key))  # type: ignore[arg-type]
            self._after_reports()
            return
        topics: dict[str, int] = {}
        for p in batch:
            topics[p.topic] = topics.get(p.topic, 0) + 1
            if p.from_live:
                self.settle(p.topic, p.key)
        for topic, count in topics.items():
            self._metrics.stored(topic, count)
        for p in batch:
            p.report(None, StoredMessage(p.topic, p.key))  # type: ignore[arg-type]
        self._after_reports()

    def _unreserve(self, rows: list[PendingRow] | list[Row]) -> None:
        with self._cond:
            for row in rows:
                self.records -= 1
                self.size_bytes -= row.size
                if row.key is not None:
                    _decrement(self._pending, (row.topic, row.key))
                    if isinstance(row, PendingRow) and row.from_live:
                        _decrement(self._inflight, (row.topic, row.key))
            self._cond.notify_all()

    def _blocked(self) -> Set[_Key]:
        with self._cond:
            return set(self._inflight)

    def _drain_loop(self) -> None:
        while not self._stop.is_set():
            if self.records == 0:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            probe = self.down  # while Kafka is down, one record at a time
            try:
                results = drain_stream(
                    self.file,
                    self._drain_client.get(),
                    limit=1 if probe else self.config.drain_batch,
                    timeout=self._drain_timeout,
                    blocked=self._blocked,
                    passes=1 if probe else None,
                    on_pass=self._drained,
                )
            except PipelineError as exc:
                _LOG.warning("outbox drain failed: %s", exc)
                self._stop.wait(self.config.retry_interval)
                continue
            failed = [f for r in results for f in r.failed]
            if failed:
                _LOG.info(
                    "outbox: %d record(s) not sent back yet: %s", len(failed), failed[0][1].str()
                )
                self._stop.wait(self.config.retry_interval)
            elif not any(r.acked for r in results):
                self._stop.wait(0.02)  # every head key still has live sends in flight

    def _drained(self, result: PassResult) -> None:
        if result.acked:
            self.down = False
            self._unreserve(result.acked)
            for row in result.acked:
                self._metrics.drained(row.topic)
        for row, _err in result.failed:
            self._metrics.failed(row.topic)

    # -- waiting and closing ----------------------------------------------------------------

    def flush_writes(self, timeout: float) -> bool:
        """Wait until every queued record is written; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._writing:
                left = deadline - time.monotonic()
                if left <= 0 or not self._threads:
                    return False
                self._cond.wait(left)
        return True

    def drain(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for the outbox to empty; return how many remain."""
        self.start()
        self._wake.set()
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.records and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            return self.records

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, stop the threads, close the file (records stay for later)."""
        self.flush_writes(timeout)
        self._stop.set()
        self._wake.set()
        with self._cond:
            self._cond.notify_all()
        deadline = time.monotonic() + self._drain_timeout + 10
        for thread in self._threads:
            while thread.is_alive() and time.monotonic() < deadline:
                client = self._drain_client.ready
                if client is not None:
                    client.purge()  # a pass waiting on a broker that is down ends now
                thread.join(timeout=0.1)
        self._threads = []
        self._drain_client.close(5.0)
        self.file.close()

    def _oldest(self) -> float | None:
        try:
            return self.file.oldest_stored_at()
        except OutboxError:
            return None


def _decrement(counts: dict[_Key, int], tk: _Key) -> None:
    left = counts.get(tk, 0) - 1
    if left > 0:
        counts[tk] = left
    else:
        counts.pop(tk, None)
