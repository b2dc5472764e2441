"""Feed health inside ingest: batches of validated records per platform and feed,
validated with the Great Expectations suites in ``config/expectations``.

    valid records --KeyByFeed--> CheckFeedHealth (stateful: a bag per platform|feed)
    issued tasks (omm.tasks.<platform>, same reader) --> the ids known per platform|takedowns
        --> omm.feed.health (one FeedHealth per batch)
        --> held records of quarantine-mode feeds: omm.valid.<entity>, or
            omm.quarantine.<entity> when a critical expectation failed

A batch closes at a size bound, or when its window ends: a fixed event-time
window in streaming runs, the whole run in bounded (``--until-idle``) runs.
Feeds in ``warn`` mode (the default) pass their records on at once and only
send their values here; feeds in ``quarantine`` mode hold their records here
until their batch is judged, and their offsets are committed only then.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import apache_beam as beam
from apache_beam.coders import PickleCoder, StrUtf8Coder, VarIntCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import (
    BagStateSpec,
    ReadModifyWriteStateSpec,
    SetStateSpec,
    TimerSpec,
    on_timer,
)
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from connectors import kafka_client
from connectors.connection import KafkaConnection
from connectors.records import OutboundMessage
from connectors.topics import TopicNames
from pipelines.feed_health.suites import FeedHealthConfig, SuiteConfig
from schemas.feeds import FEED_NAMES
from schemas.registry import CodecError, SchemaRegistry

if TYPE_CHECKING:
    from pipelines.feed_health.gx import FeedValidator

STAGE = "ingest"
QUARANTINE_HEADER = "omm.quarantine.reason"


@dataclass(frozen=True)
class FeedHealthJob:
    """Everything a feed-health stage's workers need (part of the ingest job)."""

    topics: TopicNames
    config: FeedHealthConfig
    # feed -> its suite, as loaded from config/expectations
    suites: Mapping[str, SuiteConfig]
    # what `value_set_from: platforms` expands to: every platform omm knows
    platform_ids: tuple[str, ...]
    streaming: bool
    # lets the takedown suite re-read omm.tasks.<platform> (see _BatchJudge); None: never
    kafka: KafkaConnection | None = None


class HealthRow(NamedTuple):
    """One validated record as the health check needs it: only the suite's columns,
    timestamps as epoch milliseconds (it is pickled into state once per record)."""

    values: tuple[Any, ...]  # in the order of the feed suite's source_columns
    event_ms: int
    source_topic: str
    # quarantine-mode feeds: the valid message, held until the batch is judged
    held: OutboundMessage | None = None


class KnownTask(NamedTuple):
    """A task omm issued to the platform of the key it travels under (``platform|takedowns``):
    read from ``omm.tasks.<platform>`` by ingest's one reader, so the takedown suite can
    tell a notice answering a real task from one naming a task that never existed."""

    task_id: str


HealthInput = HealthRow | KnownTask


def health_values(record: dict[str, Any], columns: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(
        int(v.timestamp() * 1000) if isinstance(v, datetime) else v
        for v in (record.get(c) for c in columns)
    )


def feed_key(platform: str | None, entity: str) -> str:
    return f"{platform or 'regulator'}|{FEED_NAMES[entity]}"


def _prepared_validator(job: FeedHealthJob) -> FeedValidator:
    import great_expectations  # noqa: F401  (import first: it configures its loggers)

    from pipelines.feed_health.gx import FeedValidator

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    validator = FeedValidator(job.suites, job.platform_ids)
    validator.prepare()
    return validator


class _BatchJudge:
    """Validates a batch with the feed's suite and says where its held records go."""

    def __init__(self, job: FeedHealthJob) -> None:
        # Great Expectations is imported and its suites built once per worker (~3 s,
        # ~130 MB), in the background: the reader starts meanwhile, and the first
        # batch to judge waits for it. A bounded run over a handful of records ended
        # seconds later when the read waited for this first.
        setup = concurrent.futures.ThreadPoolExecutor(1, "omm-gx-setup")
        self._ready = setup.submit(_prepared_validator, job)
        setup.shutdown(wait=False)  # the thread ends once the validator is ready
        self._registry = SchemaRegistry.load()
        self._topics = job.topics
        self._kafka = job.kafka
        self._batches = Metrics.counter(STAGE, "health_batches")
        self._refreshes = Metrics.counter(STAGE, "known_task_refreshes")
        self._counters: dict[tuple[str, str], Any] = {}

    def _count(self, what: str, topic: str, n: int) -> None:
        counter = self._counters.get((what, topic))
        if counter is None:
            counter = self._counters[(what, topic)] = Metrics.counter(STAGE, f"{what}|{topic}")
        counter.inc(n)

    def judge(
        self, key: str, batch: list[HealthRow], known_tasks: AbstractSet[str] = frozenset()
    ) -> Iterator[OutboundMessage]:
        """Validate one batch; its FeedHealth message, then its held records' messages.

        ``known_tasks``: ids of the tasks issued to the key's platform (so far)."""
        if not batch:
            return
        platform, feed = key.split("|", 1)
        times = [r.event_ms for r in batch]
        validator = self._ready.result()
        columns = validator.suite_for(feed).source_columns
        if "task_id" in columns:
            known_tasks = self._complete(platform, known_tasks, columns, batch)
        health = validator.validate(
            platform,
            feed,
            [dict(zip(columns, r.values, strict=True)) for r in batch],
            datetime.fromtimestamp(min(times) / 1000, UTC),
            datetime.fromtimestamp(max(times) / 1000, UTC),
            known_task_ids=known_tasks,
        )
        quarantined = health.quarantine()
        self._batches.inc()
        record = {**health.to_record(), "quarantined": quarantined}
        yield OutboundMessage(
            topic=self._topics.feed_health,
            key=health.key.encode(),
            value=self._registry.encode("feed_health", record),
        )
        reason = "; ".join(
            f"{o.expectation}: observed {o.observed}, expected {o.threshold}"
            for o in health.critical_failures()
        )
        for row in batch:
            if row.held is None:
                continue
            if quarantined:
                entity = self._registry.decode(row.held.value or b"")[0]
                self._count("quarantined", row.source_topic, 1)
                yield OutboundMessage(
                    topic=self._topics.quarantine(entity),
                    key=row.held.key,
                    value=row.held.value,
                    headers=(*row.held.headers, (QUARANTINE_HEADER, reason.encode())),
                    source=row.held.source,
                )
            else:
                self._count("valid", row.source_topic, 1)
                yield row.held

    def _complete(
        self,
        platform: str,
        known: AbstractSet[str],
        columns: tuple[str, ...],
        batch: list[HealthRow],
    ) -> AbstractSet[str]:
        """The issued ids, re-read from omm.tasks.<platform> when the batch names one the
        stream has not brought yet: a batch may be judged before the reader reached the
        task (bundles of different partitions arrive in any order)."""
        at = columns.index("task_id")
        named = {r.values[at] for r in batch if r.values[at] is not None}
        if not named - known or self._kafka is None:
            return known
        self._refreshes.inc()
        return frozenset(known) | issued_task_ids(
            self._kafka, self._topics.tasks(platform), self._registry
        )


def issued_task_ids(
    kafka: KafkaConnection,
    topic: str,
    registry: SchemaRegistry,
    timeout_s: float = 30.0,
) -> frozenset[str]:
    """Every task id on ``topic`` up to its end offset now (tasks are kept forever)."""
    from kafka import TopicPartition

    consumer = kafka_client.consumer(
        kafka.bootstrap, security=kafka.security, policy=kafka.delivery
    )
    try:
        parts = kafka_client.retrying(lambda: consumer.partitions_for_topic(topic)) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        ids: set[str] = set()
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} to offset {ends} took over {timeout_s}s")
            for records in consumer.poll(timeout_ms=200).values():
                for r in records:
                    try:
                        ids.add(str(registry.decode(r.value or b"", "task")[1]["task_id"]))
                    except CodecError:
                        continue  # omm's own output; an unreadable one names no task
        return frozenset(ids)
    finally:
        consumer.close()


class _FeedHealthFn(beam.DoFn):
    """What both feed-health stages share: their settings and a batch judge per worker."""

    def __init__(self, job: FeedHealthJob):
        self._job = job
        self._cfg = job.config
        self._streaming = job.streaming

    def setup(self) -> None:
        self._batch_judge = _BatchJudge(self._job)


class _CheckFeedHealthFn(_FeedHealthFn):
    """Quarantine-mode feeds: records held in state until their batch is judged."""

    ROWS = BagStateSpec("rows", PickleCoder())
    # a plain value, not a combining state: with the runner's state cache off,
    # reading a combining state fetches every accumulator added so far (O(n) per
    # record, quadratic per batch)
    COUNT = ReadModifyWriteStateSpec("count", VarIntCoder())
    # ids of the tasks issued to this key's platform; kept across batches
    KNOWN = SetStateSpec("known_tasks", StrUtf8Coder())
    CLOSE = TimerSpec("close", TimeDomain.WATERMARK)

    def _window_end(self, event_ms: int) -> Timestamp:
        if not self._streaming:
            return GlobalWindow().max_timestamp()
        size = self._cfg.window_seconds * 1000
        return Timestamp(micros=((event_ms // size) + 1) * size * 1000)

    def process(
        self,
        element: tuple[str, HealthInput],
        rows: Any = beam.DoFn.StateParam(ROWS),
        count: Any = beam.DoFn.StateParam(COUNT),
        known: Any = beam.DoFn.StateParam(KNOWN),
        close: Any = beam.DoFn.TimerParam(CLOSE),
    ) -> Iterator[OutboundMessage]:
        key, row = element
        if isinstance(row, KnownTask):
            known.add(row.task_id)
            return
        rows.add(row)
        seen = (count.read() or 0) + 1
        count.write(seen)
        if seen == 1:
            close.set(self._window_end(row.event_ms))
        if seen >= self._cfg.batch_rows:
            yield from self._judge(key, rows, count, known)

    @on_timer(CLOSE)
    def _on_close(
        self,
        key: Any = beam.DoFn.KeyParam,
        fire_at: Any = beam.DoFn.TimestampParam,
        rows: Any = beam.DoFn.StateParam(ROWS),
        count: Any = beam.DoFn.StateParam(COUNT),
        known: Any = beam.DoFn.StateParam(KNOWN),
        close: Any = beam.DoFn.TimerParam(CLOSE),
    ) -> Iterator[OutboundMessage]:
        if self._streaming and time.time() < fire_at.micros / 1e6:
            # FnApiRunner fires event-time timers early (docs/runner-notes.md): re-arm until due.
            close.set(fire_at)
            return
        yield from self._judge(key, rows, count, known)

    def _judge(self, key: str, rows: Any, count: Any, known: Any) -> Iterator[OutboundMessage]:
        batch: list[HealthRow] = list(rows.read())
        rows.clear()
        count.clear()
        yield from self._batch_judge.judge(key, batch, frozenset(known.read()))


class _WarnBatchesFn(_FeedHealthFn):
    """Warn-mode feeds in streaming runs: their records are already on their way, so
    only the values are batched, in the worker's memory (no state, no shuffle: it runs
    fused with the reader). A batch closes at ``batch_rows``, or once it is
    ``window_seconds`` old (processing time). A crash loses at most an unreported
    batch, never a record. (Bounded runs: :class:`_WholeRunBatchesFn`.)"""

    def setup(self) -> None:
        super().setup()
        self._open: dict[str, list[HealthRow]] = {}
        self._opened_at: dict[str, float] = {}
        # platform|takedowns -> ids of the tasks issued to that platform (this worker
        # reads them, with the feeds, from the start of omm.tasks.<platform> every run)
        self._known: dict[str, set[str]] = {}

    def process(self, element: tuple[str, HealthInput]) -> Iterator[OutboundMessage]:
        key, row = element
        if isinstance(row, KnownTask):
            self._known.setdefault(key, set()).add(row.task_id)
            return
        batch = self._open.setdefault(key, [])
        if not batch:
            self._opened_at[key] = time.monotonic()
        batch.append(row)
        if len(batch) >= self._cfg.batch_rows:
            yield from self._batch_judge.judge(key, self._open.pop(key), self._known_for(key))

    def _known_for(self, key: str) -> frozenset[str]:
        return frozenset(self._known.get(key, ()))

    def finish_bundle(self) -> Iterator[WindowedValue]:
        now = time.monotonic()
        for key in list(self._open):
            if now - self._opened_at[key] >= self._cfg.window_seconds:
                batch = self._open.pop(key)
                for message in self._batch_judge.judge(key, batch, self._known_for(key)):
                    yield WindowedValue(message, Timestamp.now(), (GlobalWindow(),))


class _FeedHealthStage(beam.PTransform):
    fn: type[_FeedHealthFn]

    def __init__(self, job: FeedHealthJob):
        super().__init__()
        self._job = job
        self._fn = self.fn(job)

    def expand(self, rows: beam.PCollection) -> beam.PCollection:
        return rows | "ValidateBatches" >> beam.ParDo(self._fn).with_input_types(
            tuple[str, HealthInput]
        )


class _WholeRunBatchesFn(_FeedHealthFn):
    """Warn-mode feeds in bounded runs: one key's rows of the whole run (and the ids of
    the tasks issued to its platform), judged in batches of ``batch_rows``.

    Grouped by the runner, not cut at bundle ends: where a bundle ends is the runner's
    choice (Prism ends one at every deferred partition, the FnApiRunner after a round of
    all of them), so "the first bundle that brings a batch nothing new" made batches of
    one partition's poll on Prism and of the whole run on the FnApiRunner. A GroupByKey
    of a bounded read is the whole run on every runner. Rows are sorted first, so the
    same inputs make the same batches whatever the read order."""

    def process(self, element: tuple[str, Iterable[HealthInput]]) -> Iterator[OutboundMessage]:
        key, items = element
        rows: list[HealthRow] = []
        known: set[str] = set()
        for item in items:
            if isinstance(item, KnownTask):
                known.add(item.task_id)
            else:
                rows.append(item)
        rows.sort(key=lambda r: (r.event_ms, r.source_topic, repr(r.values)))
        size = self._cfg.batch_rows
        for start in range(0, len(rows), size):
            yield from self._batch_judge.judge(key, rows[start : start + size], frozenset(known))


class BatchWarnFeeds(_FeedHealthStage):
    """(platform|feed, HealthRow) of warn-mode feeds -> feed-health records."""

    fn = _WarnBatchesFn

    def expand(self, rows: beam.PCollection) -> beam.PCollection:
        if self._job.streaming:
            return super().expand(rows)
        # str keys: a deterministic key coder, as grouping requires
        return (
            rows
            | "GroupWholeRun" >> beam.GroupByKey().with_input_types(tuple[str, HealthInput])
            | "ValidateBatches" >> beam.ParDo(_WholeRunBatchesFn(self._job))
        )


class CheckFeedHealth(_FeedHealthStage):
    """(platform|feed, HealthRow) of quarantine-mode feeds -> feed-health records and
    the held records' messages."""

    fn = _CheckFeedHealthFn
