"""The feed-health record: what ingest publishes on ``omm.feed.health`` per batch judged.

:class:`FeedHealth` (``schemas/avro/feed_health/v1.avsc``) holds one
:class:`ExpectationOutcome` per expectation of the feed's suite, each with what was
observed and what was expected, in words a platform engineer can act on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class ExpectationOutcome:
    """The result of one expectation on one batch, as published on ``omm.feed.health``."""

    expectation: str  # e.g. "expect_column_values_to_not_be_null(brand)"
    column: str | None
    success: bool
    observed: str  # observed value rendered, e.g. "0.62 of 9 rows non-null (3 unexpected)"
    threshold: str  # e.g. "mostly >= 0.90"
    critical: bool
    description: str
    #: The observed value as a number: share of rows meeting a row-by-row expectation, or
    #: the statistic of an aggregate one; None when there is none (e.g. an error).
    observed_value: float | None = None
    #: The GX kwargs as JSON, so Data Docs can be rebuilt from the record alone.
    kwargs_json: str = "{}"

    @property
    def expectation_type(self) -> str:
        """The snake-case GX expectation type, e.g. ``expect_column_values_to_not_be_null``."""
        return self.expectation.split("(", 1)[0]

    def to_record(self) -> dict[str, Any]:
        return {
            "expectation": self.expectation,
            "column": self.column,
            "success": self.success,
            "observed": self.observed,
            "observed_value": self.observed_value,
            "threshold": self.threshold,
            "critical": self.critical,
            "description": self.description,
            "kwargs_json": self.kwargs_json,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ExpectationOutcome:
        value = record.get("observed_value")
        return cls(
            expectation=str(record["expectation"]),
            column=record.get("column"),
            success=bool(record["success"]),
            observed=str(record["observed"]),
            threshold=str(record["threshold"]),
            critical=bool(record["critical"]),
            description=str(record["description"]),
            observed_value=float(value) if value is not None else None,
            kwargs_json=str(record.get("kwargs_json") or "{}"),
        )


@dataclass(frozen=True)
class FeedHealth:
    """Health of one platform's feed over one window (an ``omm.feed.health`` record)."""

    platform: str
    feed: str
    window_start: datetime
    window_end: datetime
    rows: int
    success: bool
    outcomes: tuple[ExpectationOutcome, ...]
    validated_at: datetime
    suite: str = ""
    on_failure: str = "warn"

    @property
    def key(self) -> str:
        """Kafka key on ``omm.feed.health``: the latest record per key is the current health."""
        return f"{self.platform}:{self.feed}"

    def failing(self) -> list[ExpectationOutcome]:
        """The expectations the batch did not meet, critical or not, in suite order."""
        return [o for o in self.outcomes if not o.success]

    def critical_failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if o.critical and not o.success]

    def quarantine(self, on_failure: str | None = None) -> bool:
        """True when ``on_failure`` (default: the suite's) is ``quarantine`` and a critical
        expectation failed."""
        mode = self.on_failure if on_failure is None else on_failure
        return mode == "quarantine" and bool(self.critical_failures())

    def summary(self) -> str:
        """One line for logs and the demo, naming the failing expectations."""
        head = f"{self.platform}/{self.feed}: {self.rows} rows"
        failing = self.failing()
        if not failing:
            return f"{head}, all {len(self.outcomes)} expectations met"
        parts = [
            f"{o.expectation} observed {o.observed}, expected {o.threshold}"
            + (" [critical]" if o.critical else "")
            for o in failing
        ]
        verdict = "QUARANTINED" if self.quarantine() else "warning"
        return f"{head}, {verdict}: " + "; ".join(parts)

    def to_record(self) -> dict[str, Any]:
        """The record for ``SchemaRegistry.encode("feed_health", ...)`` (feed_health v1)."""
        return {
            "platform": self.platform,
            "feed": self.feed,
            "suite": self.suite,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "rows": self.rows,
            "success": self.success,
            "on_failure": self.on_failure,
            "quarantined": self.quarantine(),
            "outcomes": [o.to_record() for o in self.outcomes],
            "validated_at": self.validated_at,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> FeedHealth:
        """Rebuild from a decoded ``feed_health`` record (e.g. read back from the topic)."""
        return cls(
            platform=str(record["platform"]),
            feed=str(record["feed"]),
            window_start=as_utc(record["window_start"]),
            window_end=as_utc(record["window_end"]),
            rows=int(record["rows"]),
            success=bool(record["success"]),
            outcomes=tuple(ExpectationOutcome.from_record(o) for o in record["outcomes"]),
            validated_at=as_utc(record["validated_at"]),
            suite=str(record.get("suite") or ""),
            on_failure=str(record.get("on_failure") or "warn"),
        )


# --------------------------------------------------------------------------- validator


def as_utc(value: datetime | int) -> datetime:
    if isinstance(value, int):
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def to_millis(value: datetime) -> datetime:
    """UTC, truncated to milliseconds: what Avro timestamp-millis keeps."""
    value = as_utc(value)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def now_millis() -> datetime:
    return to_millis(datetime.now(UTC))
