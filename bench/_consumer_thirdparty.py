"""Run by ``bench consumer`` in its own virtualenv: quixstreams or FastStream on one topic.

Usage: ``python _consumer_thirdparty.py FRAMEWORK BOOTSTRAP TOPIC N`` with the writer schema
(JSON) on stdin. Prints records per second, first handled to last, as its last line. It
imports nothing from the project, so it runs with the frameworks' own dependency pins.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from io import BytesIO
from typing import Any

from fastavro import parse_schema, schemaless_reader


def _decoder(schema: dict[str, Any]) -> Any:
    parsed = parse_schema(schema)

    def decode(value: bytes) -> dict[str, Any]:
        buf = BytesIO(value)
        buf.seek(10)  # single-object header: C3 01 + 8-byte fingerprint
        return schemaless_reader(buf, parsed, None)  # type: ignore[return-value]

    return decode


class _Marks:
    def __init__(self, n: int) -> None:
        self.n, self.count, self.first, self.last = n, 0, 0.0, 0.0

    def tick(self) -> bool:
        self.count += 1
        if self.count == 1:
            self.first = time.perf_counter()
        if self.count >= self.n:
            self.last = time.perf_counter()
            return True
        return False

    def rate(self) -> float:
        return (self.n - 1) / (self.last - self.first)


def run_quix(bootstrap: str, topic: str, n: int, decode: Any) -> float:
    from quixstreams import Application
    from quixstreams.models.serializers import Deserializer

    class AvroDeserializer(Deserializer):
        def __call__(self, value: bytes, ctx: Any) -> Any:
            return decode(value)

    app = Application(
        broker_address=bootstrap,
        consumer_group=f"bench-quix-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        processing_guarantee="at-least-once",
        commit_interval=1.0,
        auto_create_topics=False,
    )
    marks = _Marks(n)

    def on_row(value: Any) -> None:
        if marks.tick():
            app.stop()

    sdf = app.dataframe(app.topic(topic, value_deserializer=AvroDeserializer()))
    sdf.update(on_row)
    app.run()
    return marks.rate()


def run_faststream(bootstrap: str, topic: str, n: int, decode: Any) -> float:
    from faststream import AckPolicy
    from faststream.confluent import KafkaBroker, KafkaMessage

    broker = KafkaBroker(bootstrap, logger=None)
    marks = _Marks(n)
    done = asyncio.Event()

    @broker.subscriber(
        topic,
        group_id=f"bench-faststream-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.ACK,  # at-least-once: commit after the handler
    )
    async def handle(msg: KafkaMessage) -> None:
        decode(msg.body)
        if marks.tick():
            done.set()

    async def main() -> None:
        await broker.start()
        await done.wait()
        await broker.stop()

    asyncio.run(main())
    return marks.rate()


def main() -> int:
    framework, bootstrap, topic, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    decode = _decoder(json.loads(sys.stdin.read()))
    runner = run_quix if framework == "quixstreams" else run_faststream
    print(runner(bootstrap, topic, n, decode))
    return 0


if __name__ == "__main__":
    sys.exit(main())
