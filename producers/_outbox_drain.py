"""Draining: send the outbox back to Kafka in ``seq`` order, delete what Kafka acknowledged.

Shared by the producer's drainer thread and ``pipeline outbox drain``. A drain is a stream of
passes of ``limit`` records; while one pass waits for its acknowledgements the next one is
read and queued, so at most two passes are in flight. A record is deleted only after its
delivery report says the cluster has it, so a crash between an acknowledgement and the delete
re-sends at most two passes (``2 * limit`` records): the only duplicates a drain makes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Set
from dataclasses import dataclass, field
from typing import cast

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from ._outbox_file import OutboxFile, Row, decode_headers, encode_headers

__all__ = ["PassResult", "drain_pass", "drain_stream"]

_PAGES = 8  # head pages read per pass when keys with live sends in flight are skipped
_Key = tuple[str, bytes]


@dataclass
class PassResult:
    """What one pass did: the acknowledged rows (deleted) and the failed ones (kept)."""

    acked: list[Row] = field(default_factory=list)
    failed: list[tuple[Row, KafkaError]] = field(default_factory=list)


@dataclass
class _Pass:
    """A pass in flight: its rows and the reports still to come."""

    rows: list[Row]
    result: PassResult
    waiting: int = 0
    failures: list[tuple[KafkaError, Message]] = field(default_factory=list)

    def report(self, err: KafkaError | None, msg: Message) -> None:  # one callback per pass
        self.waiting -= 1
        if err is not None:
            self.failures.append((err, msg))


def drain_pass(
    file: OutboxFile,
    client: Producer,
    *,
    limit: int,
    timeout: float,
    blocked: Callable[[], Set[_Key]] = frozenset,
) -> PassResult:
    """One pass: up to ``limit`` head records, sent, waited for, the acked deleted."""
    results = drain_stream(file, client, limit=limit, timeout=timeout, blocked=blocked, passes=1)
    return results[0] if results else PassResult()


def drain_stream(
    file: OutboxFile,
    client: Producer,
    *,
    limit: int,
    timeout: float,
    blocked: Callable[[], Set[_Key]] = frozenset,
    passes: int | None = None,
    on_pass: Callable[[PassResult], None] = lambda _r: None,
) -> list[PassResult]:
    """Passes until the outbox (minus blocked keys) is empty, a pass fails, or ``passes`` ran.

    Keys in ``blocked()`` (read once: live sends of that key still in flight) are skipped with
    every later record of theirs, so a key's records still leave in order. A record
    librdkafka refuses outright (an unknown topic, say) fails and ends the stream; it stays at
    the head of the outbox until Kafka takes it. ``on_pass`` sees each finished pass.

    Raises:
        OutboxError: the file could not be read or written.
    """
    skip = set(blocked())
    after, inflight = -1, None
    done: list[PassResult] = []
    while True:
        rows = [] if passes is not None and len(done) + (inflight is not None) >= passes else (
            _pick(file, limit, skip, after)
        )  # fmt: skip
        nxt = _send(client, rows) if rows else None
        if nxt is not None:
            after = rows[-1].seq
        if inflight is not None:
            done.append(_finish(file, client, inflight, timeout))
            on_pass(done[-1])
            if done[-1].failed:  # Kafka is not taking records: stop, the caller retries later
                if nxt is not None:
                    done.append(_finish(file, client, nxt, timeout))
                    on_pass(done[-1])
                return done
        if nxt is None:
            return done
        if nxt.result.failed:  # refused while queueing: nothing more this stream
            done.append(_finish(file, client, nxt, timeout))
            on_pass(done[-1])
            return done
        inflight = nxt


def _send(client: Producer, rows: list[Row]) -> _Pass:
    """Queue ``rows`` in order; a refused row ends the pass there (later rows may share its key)."""
    batch = _Pass(rows, PassResult())
    produce, report = client.produce, batch.report
    for i, row in enumerate(rows):
        batch.waiting += 1
        try:  # the common case inline; _produce() waits for room and maps refusals
            if row.headers:
                headers = cast(list[tuple[str, str | bytes | None]], decode_headers(row.headers))
                produce(row.topic, row.value, row.key, headers=headers, on_delivery=report)
            else:
                produce(row.topic, row.value, row.key, on_delivery=report)
            continue
        except (BufferError, KafkaException):
            refused = _produce(client, row, report)
        if refused is not None:
            batch.waiting -= 1
            batch.result.failed.append((row, refused))
            batch.rows = rows[:i]
            break
    return batch


def _finish(file: OutboxFile, client: Producer, batch: _Pass, timeout: float) -> PassResult:
    """Wait for the pass's reports (purging what is late), delete its acknowledged rows."""
    deadline = time.monotonic() + timeout
    while batch.waiting > 0 and time.monotonic() < deadline:
        client.poll(0.05)  # returns as soon as a report is served
    if batch.waiting > 0:
        client.purge()  # what did not finish in time fails now and stays in the outbox
        client.flush(5.0)
    result = batch.result
    result.acked = _acked(batch.rows, batch.failures, result.failed)
    if result.acked:
        file.delete([row.seq for row in result.acked])
    return result


def _acked(
    sent: list[Row],
    failures: list[tuple[KafkaError, Message]],
    failed: list[tuple[Row, KafkaError]],
) -> list[Row]:
    """The sent rows minus those whose report failed (matched on topic, key, value, headers).

    Two rows that match are the same record twice, so which of them is kept does not matter.
    """
    if not failures:
        return sent
    missing: dict[tuple[str, bytes | None, bytes | None, bytes], list[KafkaError]] = {}
    for err, msg in failures:
        headers = encode_headers(cast(list[tuple[str, bytes | None]], msg.headers() or []))
        missing.setdefault((msg.topic() or "", msg.key(), msg.value(), headers), []).append(err)
    acked = []
    for row in sent:
        errors = missing.get((row.topic, row.key, row.value, row.headers))
        if errors:
            failed.append((row, errors.pop()))
        else:
            acked.append(row)
    return acked


def _pick(file: OutboxFile, limit: int, skip: Set[_Key], after: int) -> list[Row]:
    picked: list[Row] = []
    for _ in range(_PAGES):
        page = file.head(limit, after)
        for row in page:
            if row.key is not None and (row.topic, row.key) in skip:
                continue
            picked.append(row)
            if len(picked) >= limit:
                return picked
        if len(page) < limit or not skip:
            break
        after = page[-1].seq
    return picked


def _produce(
    client: Producer, row: Row, report: Callable[[KafkaError | None, Message], None]
) -> KafkaError | None:
    while True:
        try:
            if row.headers:
                headers = cast(list[tuple[str, str | bytes | None]], decode_headers(row.headers))
                client.produce(row.topic, row.value, row.key, headers=headers, on_delivery=report)
            else:
                client.produce(row.topic, row.value, row.key, on_delivery=report)
            return None
        except BufferError:
            client.poll(0.05)  # the local queue frees room as reports are served
        except KafkaException as exc:
            err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            return err or KafkaError(KafkaError._FAIL, str(exc))
