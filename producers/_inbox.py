"""The reply inbox of one client process: its reply topic, a reader thread, pending requests.

Replies to :meth:`EventProducer.request` and quorum acknowledgements both arrive on the one
reply topic of the process (``pipeline.reply.<client id>.<token>``), created on first use and
deleted on close. The reader thread matches each record to a pending entry by its
``pipeline-correlation-id`` and resolves it; entries whose timeout passed fail, and a record
for one of them (late) or for no known entry is dropped and counted, never given to another.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, cast

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition
from confluent_kafka.admin import NewTopic

from pipeline._admin import admin_client, resolve
from pipeline._errors import DecodeError, RemoteError, RequestError, RequestTimeout
from pipeline._headers import ACKED_BY, CORRELATION_ID, ERROR_MESSAGE, ERROR_TYPE, Headers
from pipeline._names import reply_topic
from pipeline._settings import Settings
from pipeline.avro._codec import Codec
from pipeline.avro._events import Event

from ._mode_metrics import ModeMetrics

__all__ = ["Inbox", "Pending", "Resolve"]

_LOG = logging.getLogger("producers")
Resolve = Callable[[Any, BaseException | None], None]
_REMEMBER_EXPIRED = 100_000  # correlation ids of timed-out entries kept to tell "late"
_WANTED = frozenset({CORRELATION_ID, ERROR_TYPE, ERROR_MESSAGE, ACKED_BY})


class Pending:
    """One request waiting for its reply, or one quorum send waiting for N acknowledgements."""

    __slots__ = ("acked", "deadline", "reply", "required", "resolve", "started")

    def __init__(
        self,
        resolve: Resolve,
        deadline: float,
        *,
        reply: type[Event] | None = None,
        required: int = 0,
    ) -> None:
        self.resolve = resolve
        self.deadline = deadline  # time.monotonic()
        self.reply = reply
        self.required = required  # 0: a request; N > 0: a quorum send
        self.acked: list[str] = []
        self.started = time.monotonic()


def _headers_of(msg: Message) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    for name, value in cast(Headers, msg.headers() or []):
        if name in _WANTED:
            out[name] = value  # the last one wins, as get_header
    return out


class Inbox:
    """The reply topic and the thread that reads it (nothing connects before :meth:`start`)."""

    def __init__(
        self,
        settings: Settings,
        codec: Callable[[], Codec],
        metrics: ModeMetrics,
        *,
        partitions: int = 1,
    ) -> None:
        self._settings = settings
        self._codec = codec
        self._metrics = metrics
        self._reply_ok = metrics.replies.labels("ok")  # the hot path: children looked up once
        self._request_ok = metrics.requests.labels("ok")
        self._partitions = partitions
        self.topic = reply_topic(settings.client_id, uuid.uuid4().hex[:12])
        self._lock = threading.Lock()
        self._pending: dict[bytes, Pending] = {}
        self._deadlines: list[tuple[float, bytes]] = []
        self._expired: OrderedDict[bytes, None] = OrderedDict()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._consumer: Consumer | None = None
        self._created = False

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """Whether the reader thread runs."""
        return self._thread is not None

    def start(self) -> None:
        """Create the reply topic and start reading it (once; later calls return at once)."""
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is not None:
                return
            admin = admin_client(self._settings)
            futures = admin.create_topics(
                [NewTopic(self.topic, self._partitions, 1, config={"retention.ms": "3600000"})]
            )
            resolve(futures[self.topic], f"creating reply topic {self.topic}", 30)
            self._created = True
            config = self._settings.consumer_config(
                f"{self.topic}.reader",
                **{
                    "enable.auto.commit": False,
                    "isolation.level": "read_committed",  # an aborted reply never resolves
                    "fetch.wait.max.ms": 5,
                },
            )
            consumer = Consumer(config)
            # A fresh topic only this process reads: from the beginning, so nothing is missed.
            consumer.assign(
                [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in range(self._partitions)]
            )
            self._consumer = consumer
            self._stop.clear()
            thread = threading.Thread(target=self._loop, name="reply-inbox", daemon=True)
            self._thread = thread
            thread.start()

    def close(self) -> None:
        """Stop reading, fail what is pending, delete the reply topic."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=10)
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.close()
        with self._lock:
            pending, self._pending = self._pending, {}
            self._deadlines.clear()
        for entry in pending.values():
            entry.resolve(None, RequestError("the producer was closed before a reply arrived"))
        if self._created:
            self._created = False
            try:
                admin = admin_client(self._settings)
                resolve(admin.delete_topics([self.topic])[self.topic], "deleting reply topic", 30)
            except Exception as exc:  # closing must finish; a leftover topic is only clutter
                _LOG.warning("could not delete reply topic %s: %s", self.topic, exc)

    # -- pending entries ----------------------------------------------------------------------

    def add(self, correlation_id: bytes, entry: Pending) -> None:
        """Wait for replies (or acks) carrying ``correlation_id``."""
        with self._lock:
            self._pending[correlation_id] = entry
            heapq.heappush(self._deadlines, (entry.deadline, correlation_id))

    def fail(self, correlation_id: bytes, exc: BaseException) -> None:
        """Fail a pending entry now (its request could not be sent)."""
        with self._lock:
            entry = self._pending.pop(correlation_id, None)
        if entry is not None:
            entry.resolve(None, exc)

    def __len__(self) -> int:
        return len(self._pending)

    # -- the reader thread --------------------------------------------------------------------

    def _loop(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while not self._stop.is_set():
            try:
                messages = consumer.consume(500, 0.02)
            except Exception as exc:  # pragma: no cover - a closed consumer while stopping
                _LOG.warning("reply inbox: %s", exc)
                break
            for msg in messages:
                if msg.error() is None:
                    self._on_record(msg)
                elif msg.error().code() != KafkaError._PARTITION_EOF:  # type: ignore[union-attr]
                    _LOG.debug("reply inbox: %s", msg.error())
            self._expire(time.monotonic())

    def _expire(self, now: float) -> None:
        deadlines = self._deadlines
        if not deadlines or deadlines[0][0] > now:
            return
        gone: list[Pending] = []
        with self._lock:
            while deadlines and deadlines[0][0] <= now:
                _, cid = heapq.heappop(deadlines)
                entry = self._pending.pop(cid, None)
                if entry is not None:
                    gone.append(entry)
                    self._remember(cid)
        for entry in gone:
            if entry.required:
                self._metrics.quorum.labels("not_reached").inc()
                entry.resolve(list(entry.acked), None)  # the caller raises QuorumNotReached
            else:
                self._metrics.requests.labels("timeout").inc()
                waited = now - entry.started
                entry.resolve(None, RequestTimeout(f"no reply within {waited:.3f}s"))

    def _remember(self, cid: bytes) -> None:
        expired = self._expired
        expired[cid] = None
        if len(expired) > _REMEMBER_EXPIRED:
            expired.popitem(last=False)

    def _on_record(self, msg: Message) -> None:
        headers = _headers_of(msg)
        cid = headers.get(CORRELATION_ID)
        with self._lock:
            entry = self._pending.get(cid) if cid else None
            if entry is not None and not entry.required:
                del self._pending[cid]  # type: ignore[arg-type]
        if entry is None:
            late = cid is not None and cid in self._expired
            self._metrics.replies.labels("late" if late else "unknown").inc()
            if not late:
                _LOG.warning("reply inbox: dropped a record with unknown correlation id %r", cid)
            return
        if entry.required:
            self._ack(cid, entry, headers)  # type: ignore[arg-type]
        else:
            self._reply(entry, msg, headers)

    def _ack(self, cid: bytes, entry: Pending, headers: dict[str, bytes | None]) -> None:
        who = (headers.get(ACKED_BY) or b"").decode("utf-8", "replace")
        if not who:
            self._metrics.replies.labels("malformed").inc()
            return
        if who in entry.acked:
            return  # a redelivered record acknowledged twice by one group counts once
        entry.acked.append(who)
        if len(entry.acked) < entry.required:
            return
        with self._lock:
            done = self._pending.pop(cid, None) is not None
        if done:
            self._metrics.quorum.labels("reached").inc()
            entry.resolve(list(entry.acked), None)

    def _reply(self, entry: Pending, msg: Message, headers: dict[str, bytes | None]) -> None:
        error_type = headers.get(ERROR_TYPE)
        if error_type is not None:
            message = (headers.get(ERROR_MESSAGE) or b"").decode("utf-8", "replace")
            self._metrics.replies.labels("error").inc()
            self._metrics.requests.labels("remote_error").inc()
            entry.resolve(None, RemoteError(error_type.decode("utf-8", "replace"), message))
            return
        value = msg.value()
        try:
            if value is None:
                raise DecodeError("the reply has neither a value nor an error type")
            assert entry.reply is not None
            reply = self._codec().decode(value, entry.reply)
        except DecodeError as exc:
            self._metrics.replies.labels("malformed").inc()
            self._metrics.requests.labels("failed").inc()
            entry.resolve(None, DecodeError(f"malformed reply: {exc}"))
            return
        self._reply_ok.inc()
        self._request_ok.inc()
        entry.resolve(reply, None)
