"""The example order system's producer side (``make demo``): an order service."""

from .names import DemoNames

__all__ = ["DemoNames"]
