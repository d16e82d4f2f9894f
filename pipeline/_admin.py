"""Admin-client access with confluent-kafka errors translated to the pipeline's error tree."""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any, TypeVar

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ClusterMetadata

from ._errors import (
    AuthenticationError,
    AuthorizationError,
    KafkaOperationError,
    KafkaUnavailableError,
    PipelineError,
    TopicError,
)
from ._settings import Settings

__all__ = [
    "admin_client",
    "check_reachable",
    "cluster_metadata",
    "group_denied",
    "kafka_error",
    "missing_topic",
    "resolve",
    "resolve_all",
    "security_failure",
]

T = TypeVar("T")

_UNAVAILABLE = {
    KafkaError._TRANSPORT,
    KafkaError._TIMED_OUT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._RESOLVE,
    KafkaError.BROKER_NOT_AVAILABLE,
}


_DENIED = {
    KafkaError.TOPIC_AUTHORIZATION_FAILED: "topic",
    KafkaError.GROUP_AUTHORIZATION_FAILED: "group",
    KafkaError.CLUSTER_AUTHORIZATION_FAILED: "cluster",
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: "transactional id",
}
_SASL_HINT = (
    "check PIPELINE_SASL_USERNAME, the password (PIPELINE_SASL_PASSWORD or "
    "PIPELINE_SASL_PASSWORD_FILE) and PIPELINE_SASL_MECHANISM"
)
_TLS_HINT = "check PIPELINE_SSL_CA_LOCATION (the CA that signed the brokers' certificates)"


def security_failure(err: KafkaError) -> str | None:
    """Why the cluster refused us, and what to check, for an authentication or TLS failure."""
    text = err.str()
    if err.code() in (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED):
        return f"authentication failed: {text}; {_SASL_HINT}"
    if err.code() == KafkaError._SSL or "SSL handshake failed" in text:
        return f"TLS failed: {text}; {_TLS_HINT}"
    return None


def missing_topic(topic: str, found: Any) -> PipelineError:
    """Why metadata has no usable ``topic``: an ACL denies describing it, or it does not exist.

    ``found`` is the topic's ``TopicMetadata`` (or None). Kafka answers a denied topic with
    TOPIC_AUTHORIZATION_FAILED instead of its partitions; saying "does not exist" would send
    the user looking for the wrong problem.
    """
    error = getattr(found, "error", None)
    if error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
        return AuthorizationError(
            f"not authorized to describe topic {topic!r}: an ACL denies it to this user"
        )
    return TopicError(f"topic {topic!r} does not exist (see `pipeline topics list`)")


def group_denied(settings: Settings, group: str, timeout: float = 10.0) -> bool:
    """Whether an ACL keeps this user from describing ``group``.

    Listing groups leaves out the ones a user may not describe, so a denied group looks like a
    missing one; describing it by name tells the two apart.
    """
    admin = admin_client(settings)
    future = admin.describe_consumer_groups([group], request_timeout=timeout)[group]
    try:
        future.result(timeout=timeout + 5)
    except KafkaException as exc:
        err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
        return err is not None and err.code() == KafkaError.GROUP_AUTHORIZATION_FAILED
    except TimeoutError:
        return False
    return False


def admin_client(settings: Settings, **overrides: Any) -> AdminClient:
    """Build an AdminClient from settings (librdkafka connects lazily, in the background)."""
    return AdminClient(settings.admin_config(**overrides))


def kafka_error(exc: BaseException, doing: str, servers: str | None = None) -> PipelineError:
    """Translate a confluent-kafka exception raised while ``doing`` something."""
    err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
    if err is not None and (reason := security_failure(err)) is not None:
        where = f" at {servers}" if servers else ""
        return AuthenticationError(f"Kafka{where} refused us while {doing}: {reason}")
    if err is not None and err.code() in _DENIED:
        return AuthorizationError(
            f"{doing}: not authorized ({_DENIED[err.code()]} ACL denies it): {err.str()}"
        )
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


_ATTEMPT_S = 3.0  # one DescribeCluster of the start-up check (it asks again until its timeout)


def check_reachable(settings: Settings, timeout: float = 10.0, *, require: bool = True) -> None:
    """Raise ``KafkaUnavailableError`` unless the cluster answers within ``timeout`` seconds.

    librdkafka clients retry an unreachable cluster in the background for as long as they live,
    so a service started against a wrong address would wait forever, and a producer would fail
    every record one by one. Commands call this first to say it once, in one line (exit 1).

    Over SASL or TLS it also fails fast, with ``AuthenticationError`` (exit 2), when the cluster
    refuses the credentials or the certificate cannot be verified: librdkafka reports that
    through its error callback within a second or two, and would otherwise retry until
    ``timeout`` with only "transport failure" to show for it. With ``require=False`` only that
    refusal raises: an unreachable cluster is left for the caller to find.
    """
    refused: list[str] = []

    def on_error(err: KafkaError) -> None:
        reason = security_failure(err)
        if reason is not None:
            refused.append(reason)

    admin = admin_client(settings, error_cb=on_error)
    servers = settings.bootstrap_servers
    start = time.monotonic()
    while True:
        # Short attempts: a request waiting on a broker that has just died (the controller it
        # was sent to, say) times out and goes to another one within ``timeout``.
        attempt = min(_ATTEMPT_S, max(1.0, start + timeout - time.monotonic()))
        try:
            future = admin.describe_cluster(request_timeout=attempt)
        except KafkaException as exc:
            raise kafka_error(exc, "connecting", servers) from exc
        deadline = time.monotonic() + attempt + 5
        while not future.done() and time.monotonic() < deadline:
            admin.poll(0.1)  # serves the error callback
            if refused:
                raise AuthenticationError(
                    f"Kafka at {servers} refused the connection: {refused[0]}"
                )
        if not require:
            return
        try:
            resolve(future, "connecting", 5.0, servers)
            return
        except KafkaUnavailableError:
            # One broker of several went away while it answered or was asked (a transport
            # failure or a timeout, say a broker restarting): ask again until ``timeout``.
            if time.monotonic() - start >= timeout:
                raise
            admin.poll(0.5)
