"""The status figures read from the broker: which groups and topics each pipeline
has, and one look at them (:class:`StatusReader`). `omm status` prints a look
(:mod:`omm.status`), /metrics exports one per scrape (:mod:`omm.metrics`); the
figures themselves are computed in :mod:`omm.figures`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from connectors.topics import TopicNames
from omm.figures import (
    DEAD_LETTER,
    OUTCOMES,
    QUARANTINED,
    VALID,
    IngestOutput,
    PartitionReading,
    SourceFigures,
    TaskCounts,
    ingest_output,
    task_counts,
)
from omm.settings import Settings, get_settings
from schemas.feeds import FEED_NAMES

if TYPE_CHECKING:
    from connectors.offsets import LatestByKey, OffsetsSnapshot, Partition
    from connectors.security import KafkaSecurity

# kafka is imported where it is used: every `omm` command imports this module.

PIPELINES = ("ingest", "enforce", "comply", "intel")


@dataclass(frozen=True)
class Watched:
    """One pipeline as the broker sees it: the group it commits as, the topics it reads."""

    pipeline: str
    group_id: str
    sources: tuple[str, ...]


def watched(
    topics: TopicNames, platforms: Sequence[str], group_prefix: str, pipelines: Sequence[str]
) -> list[Watched]:
    """The pipelines' groups and source topics, as omm/jobs.py and the pipelines name them
    (tests/unit/test_status.py holds the two together). Ingest's task topics are left
    out: it re-reads them whole on every start, so they have no lag to speak of."""
    known = {
        "ingest": Watched(
            "ingest",
            f"{group_prefix}.{topics.prefix}ingest",
            tuple(s.name for s in topics.sources(list(platforms))),
        ),
        "enforce": Watched(
            "enforce",
            f"{topics.prefix}omm.enforce",
            (topics.valid("listing"), topics.valid("inspection"), topics.decisions),
        ),
        "comply": Watched(
            "comply",
            f"{topics.prefix}omm.comply",
            (
                *(topics.tasks(p) for p in platforms),
                topics.valid("listing"),
                topics.valid("takedown"),
                topics.decisions,
            ),
        ),
        "intel": Watched(
            "intel",
            f"{topics.prefix}omm.intel",
            tuple(topics.valid(e) for e in ("complaint", "penalty", "inspection", "listing")),
        ),
    }
    unknown = [p for p in pipelines if p not in known]
    if unknown:
        raise ValueError(f"unknown pipeline(s) {unknown}: omm has {', '.join(PIPELINES)}")
    return [known[p] for p in pipelines]


def ingest_outcomes(topics: TopicNames) -> dict[str, str]:
    """Ingest's output topics, each with what a record written there became."""
    out = {topics.valid(e): VALID for e in FEED_NAMES}
    out.update({topics.quarantine(e): QUARANTINED for e in FEED_NAMES if e != "penalty"})
    out[topics.dlq] = DEAD_LETTER
    return out


@dataclass(frozen=True)
class Status:
    """Every figure of one look at the broker."""

    at_ms: int
    window_s: float
    sources: list[SourceFigures]
    ingest: IngestOutput | None  # None: ingest not watched
    tasks: list[TaskCounts] | None  # None: comply not watched
    undecoded_statuses: int = 0

    def to_json(self) -> dict[str, Any]:
        """The figures for scripts (`omm status --json`), every partition included."""
        return {
            "at_ms": self.at_ms,
            "window_s": self.window_s,
            "sources": [
                {
                    "pipeline": s.pipeline,
                    "topic": s.topic,
                    "end_offset": s.end,
                    "committed_offset": s.committed,
                    "lag": s.lag,
                    "lag_s": s.lag_s(self.at_ms),
                    "commit_age_s": s.commit_age_s(self.at_ms),
                    "records_in_window": s.in_window,
                    "records_per_second": s.records_per_second,
                    "partitions": [
                        {
                            "partition": p.partition,
                            "end_offset": p.end,
                            "committed_offset": p.committed,
                            "lag": p.lag,
                            "lag_s": p.lag_s(self.at_ms),
                            "commit_age_s": p.commit_age_s(self.at_ms),
                            "records_in_window": p.in_window,
                        }
                        for p in s.partitions
                    ],
                }
                for s in self.sources
            ],
            "ingest": None
            if self.ingest is None
            else {
                "records_in_window": {o: self.ingest.count(o) for o in OUTCOMES},
                "records_per_second": self.ingest.records_per_second,
                "dead_letter_ratio": self.ingest.dead_letter_ratio,
                "quarantine_ratio": self.ingest.quarantine_ratio,
            },
            "tasks": None
            if self.tasks is None
            else {t.platform: {"open": t.open, **dict(t.by_state)} for t in self.tasks},
            "undecoded_statuses": self.undecoded_statuses,
        }


def _task_of(value: Mapping[str, Any]) -> tuple[str, str]:
    return str(value["platform"]), str(value["status"])


class StatusReader:
    """Reads a :class:`Status` from the broker, as often as asked.

    Keeps the compliance-status reader between looks, so a Prometheus scrape reads
    only the statuses written since the last one; offsets are asked afresh each time.
    """

    def __init__(
        self,
        bootstrap: str,
        topics: TopicNames,
        platforms: Sequence[str],
        *,
        group_prefix: str,
        window_s: float,
        pipelines: Sequence[str] = PIPELINES,
        security: KafkaSecurity | None = None,
        timeout_s: float | None = None,
    ) -> None:
        if window_s <= 0:
            raise ValueError(f"the window lasts more than 0 seconds, not {window_s}")
        self.bootstrap = bootstrap
        self.topics = topics
        self.window_s = window_s
        self.watched = watched(topics, platforms, group_prefix, pipelines)
        self._security = security
        self._timeout_s = timeout_s
        self._outcomes = ingest_outcomes(topics) if "ingest" in pipelines else {}
        self._counts_tasks = "comply" in pipelines
        self._statuses: LatestByKey[tuple[str, str]] | None = None

    @property
    def topics_read(self) -> list[str]:
        """Every topic a look reads (for a command to check up front)."""
        wanted = {t for w in self.watched for t in w.sources} | set(self._outcomes)
        if self._counts_tasks:
            wanted.add(self.topics.compliance_status)
        return sorted(wanted)

    def read(self, now_ms: int | None = None) -> Status:
        from connectors.offsets import LatestByKey, read_offsets

        at_ms = int(time.time() * 1000) if now_ms is None else now_ms
        sources = {t for w in self.watched for t in w.sources}
        snapshot = read_offsets(
            self.bootstrap,
            sources | set(self._outcomes),
            [w.group_id for w in self.watched],
            since_ms=at_ms - int(self.window_s * 1000),
            security=self._security,
            timeout_s=self._timeout_s,
        )
        waiting = {
            (group, tp): commit.offset
            for group, commits in snapshot.commits.items()
            for tp, commit in commits.items()
            if commit.offset < snapshot.ends.get(tp, 0)
        }
        waited = self._waiting_since(waiting)
        figures = [
            SourceFigures(w.pipeline, topic, readings, self.window_s)
            for w in self.watched
            for topic in w.sources
            if (readings := _readings(snapshot, topic, w.group_id, waited))
        ]
        ingest = None
        if self._outcomes:
            outputs = [r for t in self._outcomes for r in _readings(snapshot, t, None, {})]
            ingest = ingest_output(outputs, self._outcomes, self.window_s)
        tasks = None
        undecoded = 0
        if self._counts_tasks:
            if self._statuses is None:
                self._statuses = LatestByKey(
                    self.bootstrap, self.topics.compliance_status, _task_of, self._security
                )
            try:
                latest = self._statuses.refresh()
            except Exception:
                # a reader that failed half-way starts over at the next look
                self._statuses.close()
                self._statuses = None
                raise
            tasks = task_counts(latest.values())
            undecoded = self._statuses.undecoded
        return Status(at_ms, self.window_s, figures, ingest, tasks, undecoded)

    def _waiting_since(
        self, waiting: Mapping[tuple[str, Partition], int]
    ) -> dict[tuple[str, Partition], int]:
        """Per (group, partition) with a lag, the time of the record at its committed
        offset. One read per distinct position: groups at the same offset share it, and
        a partition two groups left at different offsets is read once for each."""
        from connectors.offsets import timestamps_at

        wanted = set((tp, offset) for (_, tp), offset in waiting.items())
        times: dict[tuple[Partition, int], int] = {}
        while wanted:
            batch: dict[Partition, int] = {}
            for tp, offset in sorted(wanted):
                batch.setdefault(tp, offset)
            found = timestamps_at(
                self.bootstrap,
                batch,
                self._security,
                self._timeout_s if self._timeout_s is not None else 10.0,
            )
            times.update({(tp, o): found[tp] for tp, o in batch.items() if tp in found})
            wanted -= set(batch.items())
        return {
            key: times[(key[1], offset)]
            for key, offset in waiting.items()
            if (key[1], offset) in times
        }

    def close(self) -> None:
        if self._statuses is not None:
            self._statuses.close()
            self._statuses = None


def _readings(
    snapshot: OffsetsSnapshot,
    topic: str,
    group_id: str | None,
    waited: Mapping[tuple[str, tuple[str, int]], int],
) -> tuple[PartitionReading, ...]:
    commits = snapshot.commits.get(group_id, {}) if group_id is not None else {}
    out = []
    for (t, partition), end in sorted(snapshot.ends.items()):
        if t != topic:
            continue
        commit = commits.get((t, partition))
        out.append(
            PartitionReading(
                topic=t,
                partition=partition,
                end=end,
                at_window_start=snapshot.since.get((t, partition), end),
                committed=commit.offset if commit is not None else None,
                committed_at_ms=commit.at_ms if commit is not None else None,
                waiting_since_ms=waited.get((group_id, (t, partition)))
                if group_id is not None
                else None,
            )
        )
    return tuple(out)


def reader_for(
    bootstrap: str,
    prefix: str,
    platforms: Sequence[str] | None = None,
    pipelines: Sequence[str] = PIPELINES,
    window_s: float | None = None,
    settings: Settings | None = None,
) -> StatusReader:
    """A reader with this process's settings (groups, credentials, window, timeouts)."""
    from omm.config import load_platforms

    settings = settings or get_settings()
    return StatusReader(
        bootstrap,
        TopicNames(prefix),
        list(platforms) if platforms else load_platforms().ids,
        group_prefix=settings.consumer_group_prefix,
        window_s=window_s if window_s is not None else settings.status_window_s,
        pipelines=pipelines,
        security=settings.kafka_security(),
        timeout_s=settings.kafka_probe_timeout_s,
    )
