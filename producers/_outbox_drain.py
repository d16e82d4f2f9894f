"""One drain pass: send the outbox's head back to Kafka, delete what Kafka acknowledged.

Shared by the producer's drainer thread and ``pipeline outbox drain``. A record is deleted only
after its delivery report says the cluster has it, so a crash between the acknowledgement and
the delete re-sends at most one pass (``limit`` records): those are the only duplicates a
drain can make.
"""

from __future__ import annotations

from collections.abc import Callable, Set
from dataclasses import dataclass, field
from typing import cast

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from ._outbox_file import OutboxFile, Row, decode_headers, encode_headers

__all__ = ["PassResult", "drain_pass"]

_PAGES = 8  # head pages read per pass when keys with live sends in flight are skipped


@dataclass
class PassResult:
    """What one pass did: the acknowledged rows (deleted) and the failed ones (kept)."""

    acked: list[Row] = field(default_factory=list)
    failed: list[tuple[Row, KafkaError]] = field(default_factory=list)
    skipped: int = 0


def drain_pass(
    file: OutboxFile,
    client: Producer,
    *,
    limit: int,
    timeout: float,
    blocked: Callable[[], Set[tuple[str, bytes]]] = frozenset,
) -> PassResult:
    """Send up to ``limit`` head records in ``seq`` order, wait for them, delete the acked.

    Keys in ``blocked()`` (live sends of that key still in flight) are skipped for this pass,
    with every later record of theirs, so a key's records still leave in order.

    A record librdkafka refuses outright (an unknown topic, say) counts as failed and ends
    the pass; it stays at the head of the outbox until Kafka takes it.

    Raises:
        OutboxError: the file could not be read or written.
    """
    rows = _pick(file, limit, blocked())
    result = PassResult()
    if not rows:
        return result
    failures: list[tuple[KafkaError, Message]] = []

    def report(err: KafkaError | None, msg: Message) -> None:  # one callback for the pass
        if err is not None:
            failures.append((err, msg))

    sent = rows
    produce = client.produce
    for i, row in enumerate(rows):
        try:  # the common case inline; _produce() waits for room and maps refusals
            if row.headers:
                headers = cast(list[tuple[str, str | bytes | None]], decode_headers(row.headers))
                produce(row.topic, row.value, row.key, headers=headers, on_delivery=report)
            else:
                produce(row.topic, row.value, row.key, on_delivery=report)
            continue
        except (BufferError, KafkaException):
            refused = _produce(client, row, report)
        if refused is not None:  # later rows wait for the next pass: they may share its key
            result.failed.append((row, refused))
            sent = rows[:i]
            break
    if client.flush(timeout):
        client.purge()  # what did not finish in time fails now and stays in the outbox
        client.flush(5.0)
    result.acked = _acked(sent, failures, result.failed)
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


def _pick(file: OutboxFile, limit: int, blocked: Set[tuple[str, bytes]]) -> list[Row]:
    picked: list[Row] = []
    after = -1
    for _ in range(_PAGES):
        page = file.head(limit, after)
        for row in page:
            if row.key is not None and (row.topic, row.key) in blocked:
                continue
            picked.append(row)
            if len(picked) >= limit:
                return picked
        if len(page) < limit or not blocked:
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
