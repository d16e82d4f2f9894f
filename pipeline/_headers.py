"""Every Kafka header name the pipeline reads or writes; nothing else spells them.

CloudEvents Kafka binding (binary mode) for event metadata, W3C ``traceparent`` for tracing and
``pipeline-*`` for pipeline-internal metadata (DESIGN.md section 3).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = [
    "ACKED_BY",
    "ACK_TO",
    "ATTEMPT",
    "CE_ID",
    "CE_SOURCE",
    "CE_SPECVERSION",
    "CE_TIME",
    "CE_TYPE",
    "CONSUMER_GROUP",
    "CONTENT_TYPE",
    "CORRELATION_ID",
    "DEADLINE",
    "DELIVERED_AT",
    "DELIVER_AT",
    "ERROR_HEADERS",
    "ERROR_MESSAGE",
    "ERROR_TRACE",
    "ERROR_TYPE",
    "EXPIRES_AT",
    "FAILED_AT",
    "ORIGINAL_OFFSET",
    "ORIGINAL_PARTITION",
    "ORIGINAL_TIMESTAMP",
    "ORIGINAL_TOPIC",
    "REDRIVEN_AT",
    "REPLAYED_FROM",
    "REPLY_TO",
    "SCHEDULER_HEADERS",
    "SCHEDULER_SEQ",
    "TARGET_TOPIC",
    "TRACEPARENT",
    "Headers",
    "get_header",
    "without",
]

Headers = list[tuple[str, bytes | None]]

CE_SPECVERSION = "ce_specversion"
CE_ID = "ce_id"
CE_SOURCE = "ce_source"
CE_TYPE = "ce_type"
CE_TIME = "ce_time"
CONTENT_TYPE = "content-type"
TRACEPARENT = "traceparent"

DELIVER_AT = "pipeline-deliver-at"
TARGET_TOPIC = "pipeline-target-topic"
DELIVERED_AT = "pipeline-delivered-at"
ATTEMPT = "pipeline-attempt"
ORIGINAL_TOPIC = "pipeline-original-topic"
ORIGINAL_PARTITION = "pipeline-original-partition"
ORIGINAL_OFFSET = "pipeline-original-offset"
ORIGINAL_TIMESTAMP = "pipeline-original-timestamp"
CONSUMER_GROUP = "pipeline-consumer-group"
ERROR_TYPE = "pipeline-error-type"
ERROR_MESSAGE = "pipeline-error-message"
ERROR_TRACE = "pipeline-error-trace"
FAILED_AT = "pipeline-failed-at"
REPLAYED_FROM = "pipeline-replayed-from"
REDRIVEN_AT = "pipeline-redriven-at"
EXPIRES_AT = "pipeline-expires-at"
# Request-reply and quorum (README "Request-reply" and "Delivery modes"). A request carries
# where to reply, its correlation id and its deadline (epoch ms); the reply echoes the
# correlation id, and an error reply adds ERROR_TYPE and ERROR_MESSAGE. A quorum send carries
# ACK_TO and CORRELATION_ID; each group (or broadcast instance) that handled it acknowledges
# with a record on ACK_TO naming itself in ACKED_BY.
REPLY_TO = "pipeline-reply-to"
CORRELATION_ID = "pipeline-correlation-id"
DEADLINE = "pipeline-deadline"
ACK_TO = "pipeline-ack-to"
ACKED_BY = "pipeline-acked-by"
# Scheduler-internal: the entry offset, so equal due times keep their order across tier hops.
SCHEDULER_SEQ = "pipeline-scheduler-seq"

# Headers the scheduler consumes; it strips them before forwarding to the target topic.
SCHEDULER_HEADERS = frozenset({DELIVER_AT, TARGET_TOPIC, SCHEDULER_SEQ})

# What a redrive strips: the failure description and the attempt count (so the worker starts
# again at attempt 1). The original-coordinate headers stay, as provenance.
ERROR_HEADERS = frozenset({ERROR_TYPE, ERROR_MESSAGE, ERROR_TRACE, FAILED_AT})


def get_header(headers: Sequence[tuple[str, bytes | None]] | None, name: str) -> bytes | None:
    """Return the last value of header ``name`` (Kafka allows repeats; the last one wins)."""
    if not headers:
        return None
    for key, value in reversed(headers):
        if key == name:
            return value
    return None


def without(headers: Sequence[tuple[str, bytes | None]] | None, names: Iterable[str]) -> Headers:
    """Return ``headers`` minus every header whose name is in ``names``, order kept."""
    drop = set(names)
    return [(k, v) for k, v in headers or () if k not in drop]
