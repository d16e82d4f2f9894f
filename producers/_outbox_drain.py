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

from ._outbox_file import OutboxFile, Row

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

    def report_for(row: Row) -> Callable[[KafkaError | None, Message], None]:
        def report(err: KafkaError | None, _msg: Message) -> None:
            if err is None:
                result.acked.append(row)
            else:
                result.failed.append((row, err))

        return report

    for row in rows:
        refused = _produce(client, row, report_for(row))
        if refused is not None:  # later rows wait for the next pass: they may share its key
            result.failed.append((row, refused))
            break
    if client.flush(timeout):
        client.purge()  # what did not finish in time fails now and stays in the outbox
        client.flush(5.0)
    if result.acked:
        file.delete([row.seq for row in result.acked])
    return result


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
                headers = cast(list[tuple[str, str | bytes | None]], row.headers)
                client.produce(row.topic, row.value, row.key, headers=headers, on_delivery=report)
            else:
                client.produce(row.topic, row.value, row.key, on_delivery=report)
            return None
        except BufferError:
            client.poll(0.05)  # the local queue frees room as reports are served
        except KafkaException as exc:
            err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            return err or KafkaError(KafkaError._FAIL, str(exc))
