"""The request bodies of the console API (pydantic: a bad body is a 422 naming the field)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline._delay import parse_duration
from pipeline._errors import ConfigError
from pipeline.ops._dead_letters import DeadLetterFilter

__all__ = ["DeadLetterQuery", "EnqueueRequest", "RedriveRequest"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeadLetterQuery(_Body):
    """Which dead letters a list or redrive selects (every field optional)."""

    error_type: str | None = Field(None, description="Qualified name or its last dotted part.")
    key: str | None = Field(None, description="Only records with this key (UTF-8).")
    since: AwareDatetime | None = Field(None, description="Dead-lettered at or after this time.")
    until: AwareDatetime | None = Field(None, description="Dead-lettered before this time.")

    def selector(self) -> DeadLetterFilter:
        """The ops filter these fields describe."""
        return DeadLetterFilter(
            since_ms=int(self.since.timestamp() * 1000) if self.since else None,
            until_ms=int(self.until.timestamp() * 1000) if self.until else None,
            error_type=self.error_type or None,
            key=self.key.encode() if self.key else None,
        )


class RedriveRequest(_Body):
    """``POST /groups/{group}/dead-letters/redrive``: the safe redrive of ``pipeline dlq``."""

    dry_run: bool = Field(True, description="Only count what would be sent (the default).")
    filter: DeadLetterQuery = Field(default_factory=DeadLetterQuery)
    limit: int | None = Field(
        None, ge=1, le=100_000, description="Send at most this many records in this run."
    )
    again: bool = Field(False, description="Also send copies: redriven before, failed again.")
    rate: float = Field(100.0, gt=0, le=100_000, description="Records per second.")


class EnqueueRequest(_Body):
    """``POST /events/{subject}``: one event, as JSON, validated by the subject's model."""

    event: dict[str, Any] = Field(description="The event's fields, as in `pipeline produce`.")
    key: str | None = Field(None, description="Record key (default: the model's key).")
    topic: str | None = Field(None, description="Destination (default: the model's topic).")
    delay: str | None = Field(None, description="Deliver through the scheduler after: 30s, 5m.")
    deliver_at: AwareDatetime | None = Field(
        None, description="Deliver through the scheduler at this time (with a timezone)."
    )

    @field_validator("delay")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_duration(value)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _one_schedule(self) -> EnqueueRequest:
        if self.delay is not None and self.deliver_at is not None:
            raise ValueError("give delay or deliver_at, not both")
        return self

    @property
    def delay_td(self) -> timedelta | None:
        return timedelta(milliseconds=parse_duration(self.delay)) if self.delay else None
