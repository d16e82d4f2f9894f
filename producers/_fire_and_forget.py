"""The fire-and-forget client: non-idempotent, ``acks=1``, no retries, no future per record."""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message

from pipeline._produce import refused

from ._client import INLINE_POLL_MASK, ClientHolder
from ._mode_metrics import ModeMetrics

__all__ = ["FireAndForget", "fire_and_forget_config"]

# Idempotence, transactions and the outbox make no sense for a client that promises nothing.
_DROP_KEYS = ("transactional.id", "enable.idempotence", "acks", "retries", "on_delivery")


def fire_and_forget_config(config: dict[str, Any]) -> dict[str, Any]:
    """The producer config of the fire-and-forget client, derived from the regular one."""
    out = {k: v for k, v in config.items() if k not in _DROP_KEYS}
    out.update(
        {
            "enable.idempotence": False,
            "acks": 1,
            "retries": 0,
            "max.in.flight.requests.per.connection": 5,
            "delivery.report.only.error": True,
        }
    )
    return out


class FireAndForget:
    """Sends records with no per-record callback; a record the cluster refuses is counted.

    librdkafka reports failures only (``delivery.report.only.error``) to one client-wide
    callback that bumps ``pipeline_producer_records_dropped_total{topic}``. A full local queue
    drops the record too (counted), so a send never blocks and never raises for delivery.
    """

    def __init__(self, config: dict[str, Any], metrics: ModeMetrics) -> None:
        self._metrics = metrics
        self._holder = ClientHolder({**fire_and_forget_config(config), "on_delivery": self._report})
        self._sends = 0

    def _report(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._metrics.dropped.labels(msg.topic() or "").inc()

    def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: list[tuple[str, bytes | None]] | None,
    ) -> None:
        """Queue one record; never waits and never raises for a delivery failure."""
        holder = self._holder
        client = holder.ready or holder.get()
        try:
            if headers:
                client.produce(topic, value, key, headers=headers)  # type: ignore[arg-type]
            else:
                client.produce(topic, value, key)
        except BufferError:
            self._metrics.dropped.labels(topic).inc()
        except KafkaException as exc:
            raise refused(exc, topic, len(value or b"")) from exc
        self._sends += 1
        if not self._sends & INLINE_POLL_MASK:
            holder.serve(client)

    def __len__(self) -> int:
        return len(self._holder.get()) if self._holder.started else 0

    def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` for queued records; return how many are left."""
        return int(self._holder.get().flush(timeout)) if self._holder.started else 0

    def close(self, timeout: float) -> None:
        """Flush; records still queued after ``timeout`` are purged (dropped and counted)."""
        self._holder.close(timeout)
