"""An in-memory test kit for worker apps: ``from consumers.testing import TestPipeline``.

It runs the app's own processing code (the poll loop, codec, handlers, retries, dead letters,
dedup, offsets) with in-memory partitions and scheduler under it, on a fake clock.
"""

from ._clock import FakeClock
from ._pipeline import Record, TestPipeline

__all__ = ["FakeClock", "Record", "TestPipeline"]
