"""Admin-client access with confluent-kafka errors translated to the pipeline's error tree."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any, TypeVar

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ClusterMetadata

from ._errors import KafkaOperationError, KafkaUnavailableError, PipelineError
from ._settings import Settings

__all__ = [
    "admin_client",
    "check_reachable",
    "cluster_metadata",
    "kafka_error",
    "resolve",
    "resolve_all",
]

T = TypeVar("T")

_UNAVAILABLE = {
    KafkaError._TRANSPORT,
    KafkaError._TIMED_OUT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._RESOLVE,
    KafkaError.BROKER_NOT_AVAILABLE,
}


def admin_client(settings: Settings, **overrides: Any) -> AdminClient:
    """Build an AdminClient from settings (librdkafka connects lazily, in the background)."""
    return AdminClient(settings.admin_config(**overrides))


def kafka_error(exc: BaseException, doing: str, servers: str | None = None) -> PipelineError:
    """Translate a confluent-kafka exception raised while ``doing`` something."""
    err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
    if err is not None and err.code() in _UNAVAILABLE:
        where = f" at {servers}" if servers else ""
        return KafkaUnavailableError(
            f"cannot reach Kafka{where} while {doing}: {err.str()}; is the broker running "
            "and PIPELINE_BOOTSTRAP_SERVERS right?"
        )
    detail = err.str() if err is not None else str(exc)
    return KafkaOperationError(f"{doing} failed: {detail}")


def resolve(
    future: Future[T], doing: str, timeout: float | None = None, servers: str | None = None
) -> T:
    """Wait for an admin future, translating failures to ``PipelineError``.

    ``servers`` (the bootstrap servers) is named in the message when Kafka cannot be reached.
    """
    try:
        return future.result(timeout=timeout)
    except KafkaException as exc:
        raise kafka_error(exc, doing, servers) from exc
    except TimeoutError as exc:
        raise KafkaUnavailableError(f"{doing} timed out after {timeout}s") from exc


def resolve_all(
    futures: Mapping[Any, Future[T]], doing: str, timeout: float | None = None
) -> dict[Any, T | PipelineError]:
    """Wait for every future; each value is its result or the translated error."""
    out: dict[Any, T | PipelineError] = {}
    for key, future in futures.items():
        try:
            out[key] = resolve(future, f"{doing} {key}", timeout)
        except PipelineError as exc:
            out[key] = exc
    return out


def cluster_metadata(
    admin: AdminClient, settings: Settings, timeout: float = 10.0
) -> ClusterMetadata:
    """Fetch cluster metadata, raising ``KafkaUnavailableError`` with a clear sentence."""
    try:
        return admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise kafka_error(exc, "fetching metadata", settings.bootstrap_servers) from exc


def check_reachable(settings: Settings, timeout: float = 10.0) -> None:
    """Raise ``KafkaUnavailableError`` unless the cluster answers within ``timeout`` seconds.

    librdkafka clients retry an unreachable cluster in the background for as long as they live,
    so a service started against a wrong address would wait forever, and a producer would fail
    every record one by one. Commands call this first to say it once, in one line (exit 1).
    """
    admin = admin_client(settings)
    try:
        future = admin.describe_cluster(request_timeout=timeout)
    except KafkaException as exc:
        raise kafka_error(exc, "connecting", settings.bootstrap_servers) from exc
    resolve(future, "connecting", timeout + 5, settings.bootstrap_servers)
