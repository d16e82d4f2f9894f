"""The installed version of event-pipeline."""

__version__ = "0.1.0"
