"""A rate-limited producer on the real broker: paced sends, and a clear error past max_block."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from pipeline import RateLimitExceeded, Settings
from producers import EventProducer
from tests.helpers import create_topic, read_topic

pytestmark = pytest.mark.kafka


def test_producer_rate_limit_paces_sends_and_raises_past_max_block(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    topic = unique("prod-rate")
    create_topic(bootstrap_servers, topic)
    settings = Settings(bootstrap_servers=bootstrap_servers)
    with EventProducer(settings, registry=CollectorRegistry(), rate_limit=100) as producer:
        start = time.monotonic()
        futures = [producer.send_bytes(topic, b"x%d" % i, key=b"k") for i in range(310)]
        took = time.monotonic() - start
        assert all(f.result(timeout=30).offset >= 0 for f in futures)
    assert 2.7 <= took <= 3.6, f"310 sends at 100/s (burst 10) took {took:.2f}s"
    assert len(read_topic(bootstrap_servers, topic, 310)) == 310

    with EventProducer(
        settings, registry=CollectorRegistry(), rate_limit=1, max_block=0.05
    ) as producer:
        producer.send_bytes(topic, b"first").result(timeout=30)  # the burst: one token
        with pytest.raises(RateLimitExceeded, match=r"1/s within 0\.05s"):
            producer.send_bytes(topic, b"second")
