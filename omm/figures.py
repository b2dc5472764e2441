"""The figures an operator watches, computed from plain offsets and statuses.

No Kafka here: :mod:`omm.status` reads the broker (:mod:`connectors.offsets`) and
hands this module numbers, so every figure is tested without a broker
(tests/unit/test_status.py) and `omm status` and `/metrics` cannot disagree.

- **lag**: log end offset minus the group's committed offset, per partition:
  records written but not yet committed as processed; and in seconds, how long
  the oldest of them (the record at the committed offset) has waited.
- **commit age**: now minus the time the commit carries in its metadata. A
  partition that gets no records gets no commits, so an age alone is no alarm;
  an age with a lag is (the pipeline is stuck or gone).
- **records per second**: records written to a topic in the window, divided by
  the window. On a source topic that is what arrives for the pipeline; on
  ingest's outputs (valid, quarantined, dead letters: every record read leaves
  as exactly one) it is what ingest processed, whence the two ratios.
- **open tasks**: per platform, the tasks whose latest compliance status still
  asks something of someone (see :data:`OPEN_STATES`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pipelines.rules.compliance import (
    COMPLETED_LATE,
    COMPLETED_ON_TIME,
    DISPUTED,
    ISSUED,
    OVERDUE,
    RELISTED,
    WITHDRAWN,
)

# Open: the platform still has to act (ISSUED, OVERDUE, RELISTED: the listing is back
# up) or the regulator has to decide (DISPUTED). Done: completed on time or late, or
# withdrawn by omm.
OPEN_STATES = (ISSUED, OVERDUE, RELISTED, DISPUTED)
CLOSED_STATES = (COMPLETED_ON_TIME, COMPLETED_LATE, WITHDRAWN)
STATES = OPEN_STATES + CLOSED_STATES

# what each of ingest's output topics says a record became
VALID, QUARANTINED, DEAD_LETTER = "valid", "quarantined", "dead_letter"
OUTCOMES = (VALID, QUARANTINED, DEAD_LETTER)


@dataclass(frozen=True)
class PartitionReading:
    """One partition of a source topic as the broker saw it."""

    topic: str
    partition: int
    end: int  # log end offset: the next offset to be written
    at_window_start: int  # first offset written at or after the window's start (end if none)
    committed: int | None = None  # the group's committed next offset; None: never committed
    committed_at_ms: int | None = None  # when, from the commit's metadata
    waiting_since_ms: int | None = None  # timestamp of the record at the committed offset

    @property
    def in_window(self) -> int:
        """Records written to the partition during the window."""
        return max(0, self.end - self.at_window_start)

    @property
    def lag(self) -> int | None:
        """Records written and not yet committed; None when the group never committed."""
        if self.committed is None:
            return None
        # a topic deleted and re-created (or truncated) can leave a commit past the end
        return max(0, self.end - self.committed)

    def lag_s(self, now_ms: int) -> float | None:
        """How long the oldest record not yet committed has waited: 0 without a lag, None
        when the group never committed or that record's time is unknown."""
        lag = self.lag
        if lag is None:
            return None
        if lag == 0:
            return 0.0
        if self.waiting_since_ms is None:
            return None
        return max(0.0, (now_ms - self.waiting_since_ms) / 1000)

    def commit_age_s(self, now_ms: int) -> float | None:
        """Seconds since the commit, never negative (clocks of two machines differ)."""
        if self.committed_at_ms is None:
            return None
        return max(0.0, (now_ms - self.committed_at_ms) / 1000)


@dataclass(frozen=True)
class SourceFigures:
    """One pipeline's view of one source topic: its partitions' readings summed."""

    pipeline: str
    topic: str
    partitions: tuple[PartitionReading, ...]
    window_s: float

    @property
    def end(self) -> int:
        return sum(p.end for p in self.partitions)

    @property
    def committed(self) -> int | None:
        """Sum of the committed offsets; None when no partition was ever committed."""
        done = [p.committed for p in self.partitions if p.committed is not None]
        return sum(done) if done else None

    @property
    def lag(self) -> int | None:
        """Records not yet committed, summed over the partitions the group committed on;
        None when it committed on none (a pipeline that does not commit, or that never
        ran). A partition never committed on has no lag to add: ingest commits each
        partition at the end of the first bundle that read it, so that lasts one bundle."""
        lags = [p.lag for p in self.partitions if p.lag is not None]
        return sum(lags) if lags else None

    def lag_s(self, now_ms: int) -> float | None:
        """How long the oldest record waiting on any partition has waited; None when no
        partition's wait is known."""
        waits = [w for p in self.partitions if (w := p.lag_s(now_ms)) is not None]
        return max(waits) if waits else None

    def commit_age_s(self, now_ms: int) -> float | None:
        """Age of the most recent commit on any partition: how long since the pipeline
        last reported progress on this topic. None when no commit says when it was made."""
        ages = [a for p in self.partitions if (a := p.commit_age_s(now_ms)) is not None]
        return min(ages) if ages else None

    @property
    def in_window(self) -> int:
        return sum(p.in_window for p in self.partitions)

    @property
    def records_per_second(self) -> float:
        return per_second(self.in_window, self.window_s)


def per_second(records: int, window_s: float) -> float:
    if window_s <= 0:
        raise ValueError(f"a window lasts more than 0 seconds, not {window_s}")
    return records / window_s


@dataclass(frozen=True)
class IngestOutput:
    """What ingest wrote in the window, by outcome: every record it read leaves as
    exactly one of valid, quarantined or dead letter (its account), so these are
    what it processed in the window."""

    valid: int
    quarantined: int
    dead_letters: int
    window_s: float

    @property
    def processed(self) -> int:
        return self.valid + self.quarantined + self.dead_letters

    @property
    def records_per_second(self) -> float:
        return per_second(self.processed, self.window_s)

    def count(self, outcome: str) -> int:
        return {VALID: self.valid, QUARANTINED: self.quarantined, DEAD_LETTER: self.dead_letters}[
            outcome
        ]

    def per_second(self, outcome: str) -> float:
        return per_second(self.count(outcome), self.window_s)

    @property
    def dead_letter_ratio(self) -> float | None:
        """Share of what ingest processed in the window that became a dead letter;
        None when it processed nothing (no share to speak of)."""
        return self.dead_letters / self.processed if self.processed else None

    @property
    def quarantine_ratio(self) -> float | None:
        return self.quarantined / self.processed if self.processed else None


def ingest_output(
    readings: Iterable[PartitionReading], outcome_of: Mapping[str, str], window_s: float
) -> IngestOutput:
    """Sum the window's records per outcome; ``outcome_of`` maps each output topic to
    :data:`VALID`, :data:`QUARANTINED` or :data:`DEAD_LETTER`."""
    counts: Counter[str] = Counter()
    for r in readings:
        counts[outcome_of[r.topic]] += r.in_window
    return IngestOutput(counts[VALID], counts[QUARANTINED], counts[DEAD_LETTER], window_s)


@dataclass(frozen=True)
class TaskCounts:
    """Tasks of one platform by their latest compliance status."""

    platform: str
    by_state: Mapping[str, int]

    @property
    def open(self) -> int:
        return sum(self.by_state.get(s, 0) for s in OPEN_STATES)

    @property
    def closed(self) -> int:
        return sum(self.by_state.get(s, 0) for s in CLOSED_STATES)


def task_counts(latest: Iterable[tuple[str, str]]) -> list[TaskCounts]:
    """Per platform (sorted), its tasks counted by state, from the latest
    (platform, status) of each task."""
    per: dict[str, Counter[str]] = {}
    for platform, state in latest:
        per.setdefault(platform, Counter())[state] += 1
    return [TaskCounts(p, dict(per[p])) for p in sorted(per)]
