"""ClientHolder: lazy creation, and a fatal error raised once then a rebuilt client (no broker)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from pipeline import FatalProducerError, load_settings
from producers._client import ClientHolder


class FatalError:
    """Stands in for a librdkafka KafkaError whose fatal() is true."""

    def fatal(self) -> bool:
        return True

    def str(self) -> str:
        return "Broker: Producer fenced by newer instance"


def test_no_client_until_first_use() -> None:
    holder = ClientHolder(load_settings(bootstrap_servers="127.0.0.1:1").producer_config())
    assert not holder.started
    holder.get()
    assert holder.started
    assert holder.close(0.1) == 0


def test_fatal_error_is_raised_once_and_client_rebuilt() -> None:
    holder = ClientHolder(load_settings(bootstrap_servers="127.0.0.1:1").producer_config())
    first = holder.get()
    holder._on_error(FatalError())  # type: ignore[arg-type]
    with pytest.raises(FatalProducerError, match=r"fenced by newer instance.*rebuilt"):
        holder.get()
    second = holder.get()
    assert second is not first
    assert holder.generation == 2
    assert holder.get() is second  # no error the second time
    holder.close(0.1)


def test_non_fatal_errors_do_not_rebuild() -> None:
    holder = ClientHolder(load_settings(bootstrap_servers="127.0.0.1:1").producer_config())
    client = holder.get()
    holder._on_error(KafkaError(KafkaError._TRANSPORT))
    assert holder.get() is client
    holder.close(0.1)
