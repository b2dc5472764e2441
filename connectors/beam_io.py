"""Kafka I/O for Beam on kafka-python (the Java cross-language transforms are not used).

``ReadFromKafka`` is an unbounded splittable DoFn with one restriction per
(topic, partition): an offset range whose remainder is deferred after every
poll, with a manually advanced watermark. The same reader serves streaming
runs (no stop) and bounded runs (``idle_timeout_s``: a partition's read ends
once it has had nothing new for that long).

``WriteToKafka`` produces, flushes at the end of every bundle, and only then
commits the source offsets of what it wrote: at-least-once, nothing committed
that is not safely on its output topics. Downstream outputs are keyed, so a
replay after a crash rewrites the same keys.

What a crash replays is what the bundle in flight read, so the reader bounds
a bundle: once it has handed out ``commit_every_records`` records, or
``commit_every_s`` seconds have passed since the bundle started (downstream
work included: the stages are fused), it defers every partition untouched
and the runner ends the bundle, which flushes and commits. A catch-up over a
large backlog therefore commits every few seconds instead of once at the end
of a bundle covering the whole backlog.

Through a broker outage the reader polls on (an empty poll is not an error),
checks every few idle seconds whether the broker answers at all, logs when it
does not and when it is back, and gives up (``BrokerUnavailable``) after the
outage budget. On an operator's stop (:func:`connectors.delivery.request_stop`)
every partition's restriction ends at its next turn, so the pipeline finishes
its bundles, flushes, commits and returns.

Runner-agnostic: nothing here relies on FnApiRunner; on a cluster runner the
offset commit happens when the bundle completes, as it does here.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.transforms.core import RestrictionProvider
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Duration, Timestamp

from connectors import delivery, kafka_client
from connectors.confluent_fetcher import ConfluentPartitionFetcher
from connectors.connection import KafkaConnection
from connectors.fetcher import PartitionFetcher
from connectors.records import ClockTick, OutboundMessage
from connectors.sink import KafkaSink

_END = sys.maxsize


@dataclass(frozen=True)
class PartitionSeed:
    topic: str
    partition: int
    start_offset: int


# The "topic" of a clock seed: its partition is the shard, its offsets count ticks.
CLOCK = "<clock>"


@dataclass(frozen=True)
class Clock:
    """Ticks from the reader itself: every ``every_s`` seconds, one ClockTick per shard.

    Why the reader: a deadline must be acted on when it passes even when no record
    arrives, and the FnApiRunner fires timers early and busy-loops on re-armed ones
    (docs/runner-notes.md), while a second source Flattened with the reader would hold
    everything back until the read ends. So the one reader also reads the clock, as
    one more restriction per shard, and sleeps between ticks instead of spinning.
    A bounded read ticks once more when it ends, so deadlines passed by then count.
    """

    every_s: float
    shards: int


# Idle clocks for bounded reads. A bounded read ends only when EVERY partition
# of the read has been visited and found with nothing new since its last
# records (_IDLE_SINCE, per (read id, topic, partition)) and no partition of the
# read has had records for the window (_QUIET_SINCE, per read id): ending
# partitions one by one let a quiet topic (the results) stop while a busy one (a
# million listings) was still loading, so the results published afterwards were
# never read. The window counts from the read's last records rather than from
# each partition's first empty visit, which a hundred partitions waiting their
# turn delayed by seconds. Process-wide rather than per DoFn instance because a
# runner may hand a deferred remainder to a fresh instance.
# A bounded read therefore assumes its partitions are read in one process (the
# FnApiRunner, or Prism with the LOOPBACK environment); on a multi-worker runner
# run streaming instead.
_IDLE_SINCE: dict[tuple[str, str, int], float] = {}
_QUIET_SINCE: dict[str, float] = {}  # read id -> when it began or last got records
# Turns, in rounds: each partition of a read gets one turn per round, and a
# partition that had its turn gives way while others of the round still wait.
# The runner hands deferred partitions back in the same order every bundle, and a
# bundle ends when its time or records are spent, so without rounds the
# partitions at the end of that order never got a turn once the ones before them
# filled the bundle (a hundred idle partitions polling 20 ms each do): their
# records were never read and a bounded read never ended (make demo, step 6a).
# A bundle's bounds stay as they are: they bound what a crash replays.
_ROUND: dict[str, int] = {}  # read id -> current round
_TURN: dict[tuple[str, str, int], int] = {}  # partition -> round of its last turn
_ENDED: set[tuple[str, str, int]] = set()  # partitions whose restriction has ended
_IDLE_LOCK = threading.Lock()


def _all_idle(
    read_id: str, partitions: frozenset[tuple[str, int]], now: float, window_s: float
) -> bool:
    """Whether the read has had no records for the window and every partition has
    been visited since its last records. A partition not visited yet is not idle:
    its records may be the ones still to come."""
    with _IDLE_LOCK:
        return now - _QUIET_SINCE.get(read_id, now) >= window_s and all(
            (read_id, *tp) in _IDLE_SINCE for tp in partitions
        )


class _PartitionTracker(OffsetRestrictionTracker):
    """A partition's offsets, split only where the reader itself defers the rest.

    A runner may also split a running restriction at a fraction of what remains
    (Prism does, mid-bundle). A partition's remainder runs to an unbounded end, so
    such a split lands far past the partition's last offset; the residual's fetch
    from an offset Kafka does not have was reset, and the reader claimed an offset
    below the residual's start ("Position to be claimed cannot be smaller than the
    start position of the range"). Refused, the runner keeps the restriction whole.
    """

    def try_split(self, fraction_of_remainder: float) -> Any:
        if fraction_of_remainder != 0:
            return None
        return super().try_split(0)


class _PartitionRestrictions(RestrictionProvider):
    def initial_restriction(self, element: PartitionSeed) -> OffsetRange:
        return OffsetRange(element.start_offset, _END)

    def create_tracker(self, restriction: OffsetRange) -> OffsetRestrictionTracker:
        return _PartitionTracker(restriction)

    def restriction_size(self, element: PartitionSeed, restriction: OffsetRange) -> int:
        # Unknown backlog: a constant keeps runners from trying to split a live partition.
        return 1

    def split(self, element: PartitionSeed, restriction: OffsetRange) -> Iterator[OffsetRange]:
        yield restriction


_RESTRICTION_PARAM = beam.DoFn.RestrictionParam(_PartitionRestrictions())
_WATERMARK_PARAM = beam.DoFn.WatermarkEstimatorParam(ManualWatermarkEstimator.default_provider())


class _ReadPartitionFn(beam.DoFn):
    def __init__(
        self,
        kafka: KafkaConnection,
        read_id: str,
        partitions: frozenset[tuple[str, int]],
        idle_timeout_s: float | None,
        max_records_per_poll: int,
        poll_timeout_ms: int,
        clock: Clock | None = None,
        commit_group: str | None = None,
    ) -> None:
        self._clock = clock
        # commit what each bundle read once the runner has finalized it (see ReadFromKafka)
        self._commit_group = commit_group
        self._committer: Any = None
        self._bundle_read: dict[tuple[str, int], int] = {}
        self._bootstrap = kafka.bootstrap
        self._security = kafka.security
        self._read_id = read_id
        # every (topic, partition) of the read: a bounded read ends when all are idle
        self._partitions = partitions
        self._idle_timeout_s = idle_timeout_s
        self._max_records = max_records_per_poll
        self._poll_timeout_ms = poll_timeout_ms
        self._policy = kafka.delivery
        self._client = kafka.client
        self._fetcher: PartitionFetcher | ConfluentPartitionFetcher | None = None
        self._outage: delivery.OutageClock | None = None
        self._records_read = Metrics.counter("kafka_read", "records")
        # wall-clock ms of each poll that returned records: its min is when the read began
        self._polled_at = Metrics.distribution("kafka_read", "polled_at_ms")
        self._bundle_started: float | None = None
        self._bundle_records = 0

    def setup(self) -> None:
        fetcher = ConfluentPartitionFetcher if self._client == "confluent" else PartitionFetcher
        self._fetcher = fetcher(
            self._bootstrap,
            client_id=f"omm-read-{self._read_id[:8]}",
            security=self._security,
            policy=self._policy,
        )
        if self._commit_group is not None:
            self._committer = delivery.connect(
                lambda: kafka_client.admin(self._bootstrap, self._security, self._policy),
                f"connecting the offset committer ({self._bootstrap})",
                self._policy,
            )
        self._outage = delivery.OutageClock(
            f"reading ({self._bootstrap})",
            self._policy.outage_budget_s,
            self._policy.outage_log_after_s,
        )

    def start_bundle(self) -> None:
        self._bundle_started = None
        self._bundle_records = 0
        # a fresh map per bundle: the finalizer of the bundle before holds its own
        self._bundle_read = {}

    def _bundle_budget(self, now: float) -> int:
        """Records this bundle may still read (0: end the bundle so its outputs get committed)."""
        if self._bundle_started is None:
            self._bundle_started = now
        if now - self._bundle_started >= self._policy.commit_every_s:
            return 0
        return max(0, self._policy.commit_every_records - self._bundle_records)

    def teardown(self) -> None:
        if self._fetcher is not None:
            self._fetcher.close()
            self._fetcher = None
        if self._committer is not None:
            self._committer.close()
            self._committer = None

    def _commit_when_finalized(
        self, topic: str, partition: int, next_offset: int, finalizer: Any
    ) -> None:
        """Note what this bundle read; the first note of a bundle asks the runner to
        call back once the bundle is durable, and the callback commits it all."""
        if self._commit_group is None:
            return
        read = self._bundle_read
        if not read:
            finalizer.register(lambda: self._commit(read))
        read[(topic, partition)] = next_offset

    def _commit(self, read: dict[tuple[str, int], int]) -> None:
        if self._committer is not None and self._commit_group is not None and read:
            kafka_client.commit_offsets(self._committer, self._commit_group, read, self._policy)

    def process(
        self,
        seed: PartitionSeed,
        # Beam injects the bundle's finalizer, a RestrictionTrackerView and the
        # estimator; the defaults are Beam's parameter markers, hence Any. The
        # finalizer comes first: Beam passes it by position, the other two by name.
        finalizer: Any = beam.DoFn.BundleFinalizerParam,
        tracker: Any = _RESTRICTION_PARAM,
        watermark: Any = _WATERMARK_PARAM,
    ) -> Iterator[Any]:
        assert self._fetcher is not None and self._outage is not None
        start = tracker.current_restriction().start
        if delivery.stop_requested():
            # Claiming the last position ends this partition's restriction.
            tracker.try_claim(_END - 1)
            self._ended(seed)
            return
        if seed.topic == CLOCK:
            yield from self._tick(seed.partition, start, tracker, watermark)
            return
        idle_key = (self._read_id, seed.topic, seed.partition)
        with _IDLE_LOCK:
            _QUIET_SINCE.setdefault(self._read_id, time.monotonic())
        budget = self._bundle_budget(time.monotonic())
        if budget == 0 or not self._my_turn(idle_key):
            # untouched, for a later bundle: this one ends and gets committed
            tracker.defer_remainder()
            return
        if self._read_is_over(seed, start, time.monotonic()):
            # the read is over: end without another poll (a hundred idle partitions
            # polling once more each made a bounded read end seconds after it was over)
            tracker.try_claim(_END - 1)
            self._ended(seed)
            return
        records = self._fetcher.take(
            seed.topic, seed.partition, start, min(self._max_records, budget), self._poll_timeout_ms
        )
        now = time.monotonic()
        if records:
            self._polled_at.update(int(time.time() * 1000))
            with _IDLE_LOCK:
                _IDLE_SINCE.pop(idle_key, None)
                _QUIET_SINCE[self._read_id] = now
            self._outage.ok()
            newest = records[0].timestamp_ms
            deadline = (self._bundle_started or now) + self._policy.commit_every_s
            claimed = 0
            for i, rec in enumerate(records):
                if i and time.monotonic() >= deadline:
                    # downstream work made the bundle long: leave the rest for the next one
                    self._fetcher.unread(rec.topic, rec.partition, records[i:])
                    break
                if not tracker.try_claim(rec.offset):
                    return
                self._bundle_records += 1
                claimed += 1
                newest = max(newest, rec.timestamp_ms)
                yield TimestampedValue(rec, Timestamp(micros=rec.timestamp_ms * 1000))
            # once per poll, not per record: the estimator only needs the high mark
            ts = Timestamp(micros=newest * 1000)
            current = watermark.current_watermark()
            if current is None or ts > current:
                watermark.set_watermark(ts)
            self._records_read.inc(claimed)
            if claimed:
                self._commit_when_finalized(
                    seed.topic, seed.partition, records[claimed - 1].offset + 1, finalizer
                )
            tracker.defer_remainder()
            return
        # Nothing new: quiet, or the broker is gone. Ask it now and then; the
        # clock logs an outage and raises BrokerUnavailable once the budget is spent.
        self._fetcher.check_broker(
            self._outage, self._policy.outage_log_after_s / 2, self._policy.probe_timeout_ms
        )
        # An idle partition must not hold back event time downstream.
        idle_wm = Timestamp.now() - Duration(seconds=1)
        current = watermark.current_watermark()
        if current is None or idle_wm > current:
            watermark.set_watermark(idle_wm)
        if self._idle_timeout_s is not None:
            with _IDLE_LOCK:
                _IDLE_SINCE.setdefault(idle_key, now)
            # Idle = every partition empty-handed for the whole window AND this
            # one has nothing left to fetch: a partition can go a long time
            # between its turns while others are processed, which is not idleness.
            # An ended partition keeps its idle clock, so it counts as idle.
            if self._read_is_over(seed, start, now):
                # Claiming the last position ends this partition's restriction.
                tracker.try_claim(_END - 1)
                self._ended(seed)
                return
        tracker.defer_remainder(Duration(seconds=0.05))

    def _read_is_over(self, seed: PartitionSeed, start: int, now: float) -> bool:
        """Whether a bounded read is over for this partition: every partition of the
        read empty-handed for the whole window, and this one read to its end."""
        assert self._fetcher is not None
        return (
            self._idle_timeout_s is not None
            and _all_idle(self._read_id, self._partitions, now, self._idle_timeout_s)
            and self._fetcher.caught_up(seed.topic, seed.partition, start)
        )

    def _my_turn(self, key: tuple[str, str, int]) -> bool:
        """Whether this partition may read now: not if it had its turn this round while
        another partition of the read still waits for its own. Records it as served."""
        with _IDLE_LOCK:
            current = _ROUND.get(self._read_id, 0)
            if _TURN.get(key, -1) >= current:
                waiting = any(
                    _TURN.get(other, -1) < current
                    for other in ((self._read_id, t, p) for t, p in self._partitions)
                    if other not in _ENDED
                )
                if waiting:
                    return False
                current = _ROUND[self._read_id] = current + 1
            _TURN[key] = current
            return True

    def _ended(self, seed: PartitionSeed) -> None:
        with _IDLE_LOCK:
            _ENDED.add((self._read_id, seed.topic, seed.partition))

    def _tick(self, shard: int, start: int, tracker: Any, watermark: Any) -> Iterator[Any]:
        """A clock restriction's turn: a tick when one is due, the end with the read's."""
        assert self._clock is not None
        now = time.time()
        # the clock holds event time back no more than an idle partition does
        clock_wm = Timestamp.now() - Duration(seconds=1)
        current = watermark.current_watermark()
        if current is None or clock_wm > current:
            watermark.set_watermark(clock_wm)
        due = int(now // self._clock.every_s)
        ending = self._idle_timeout_s is not None and _all_idle(
            self._read_id, self._partitions, time.monotonic(), self._idle_timeout_s
        )
        if due >= start or ending:
            if not tracker.try_claim(max(due, start)):
                return
            yield TimestampedValue(
                ClockTick(shard, int(now * 1000)), Timestamp(micros=int(now * 1_000_000))
            )
        if ending:
            tracker.try_claim(_END - 1)
            return
        # not a spin: a turn that finds no tick due waits a little, like an idle poll
        time.sleep(min(self._poll_timeout_ms / 1000, max(0.0, (start * self._clock.every_s) - now)))
        tracker.defer_remainder(Duration(seconds=min(self._clock.every_s, 0.5)))


# Runners on which a reader must not ask for bundle finalization. Prism 2.77 answers a
# splittable reader's request with a FinalizeBundle the SDK worker can no longer serve
# ("Bundle is not in a finalizable state"), which fails the job. Prism keeps no state
# across restarts, so its stages rebuild from the earliest offsets and need no commit.
_NO_FINALIZATION = frozenset({"prismrunner"})


class ReadFromKafka(beam.PTransform):
    """Read topics as ``KafkaRecord`` elements, one restriction per partition.

    ``start``: ``"committed"`` resumes from the group's committed offsets
    (earliest where none), ``"earliest"`` re-reads everything (used to rebuild
    state on runners whose state does not survive a restart).
    ``from_earliest``: topics read from their beginning whatever ``start`` says
    (state rebuilt from them on every run, e.g. ingest's known task ids).
    ``commit_when_finalized``: the reader commits the offsets each bundle read
    once the runner has finalized that bundle (Beam's bundle finalization: on
    Flink after the checkpoint holding the bundle's state and outputs). For
    stateful stages, whose records mostly change state rather than write
    anything, so the writer cannot commit them. A stage whose every record is
    written (ingest) commits at its writer instead, after the flush.
    """

    def __init__(
        self,
        kafka: KafkaConnection,
        topics: Sequence[str],
        group_id: str,
        start: str = "committed",
        idle_timeout_s: float | None = None,
        max_records_per_poll: int = 20000,
        poll_timeout_ms: int = 20,
        from_earliest: Sequence[str] = (),
        clock: Clock | None = None,
        commit_when_finalized: bool = False,
    ) -> None:
        super().__init__()
        self._commit_when_finalized = commit_when_finalized
        self._from_earliest = frozenset(from_earliest)
        self._clock = clock
        if start not in ("committed", "earliest"):
            raise ValueError(f"start must be 'committed' or 'earliest', not {start!r}")
        # from the job: it travels with the DoFn to whichever worker runs it
        self._kafka = kafka
        self._topics = list(topics)
        self._group_id = group_id
        self._start = start
        self._idle_timeout_s = idle_timeout_s
        self._max_records = max_records_per_poll
        self._poll_timeout_ms = poll_timeout_ms

    def seeds(self) -> list[PartitionSeed]:
        bootstrap, sec = self._kafka.bootstrap, self._kafka.security
        parts = kafka_client.partitions_for(bootstrap, self._topics, sec)
        committed = (
            kafka_client.committed_offsets(bootstrap, self._group_id, self._topics, sec)
            if self._start == "committed"
            else {}
        )
        earliest = kafka_client.beginning_offsets(bootstrap, parts, sec)
        return [
            PartitionSeed(
                t,
                p,
                earliest[(t, p)]
                if t in self._from_earliest
                else committed.get((t, p), earliest[(t, p)]),
            )
            for t, ps in parts.items()
            for p in ps
        ]

    def _finalizes(self, pbegin: beam.pvalue.PBegin) -> bool:
        """Whether this read commits from bundle finalizers on the pipeline's runner."""
        runner = pbegin.pipeline.options.view_as(StandardOptions).runner
        return self._commit_when_finalized and str(runner or "").lower() not in _NO_FINALIZATION

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        # ONE reader seeded with every partition: a Flatten of several readers
        # would hold everything downstream until they all finish (docs/runner-notes.md).
        seeds = self.seeds()
        partitions = frozenset((s.topic, s.partition) for s in seeds)
        if self._clock is not None:
            first_tick = int(time.time() // self._clock.every_s)
            seeds += [
                PartitionSeed(CLOCK, shard, first_tick) for shard in range(self._clock.shards)
            ]
        return (
            pbegin
            | "Partitions" >> beam.Create(seeds)
            | "ReadPartitions"
            >> beam.ParDo(
                _ReadPartitionFn(
                    self._kafka,
                    uuid.uuid4().hex,
                    partitions,
                    self._idle_timeout_s,
                    self._max_records,
                    self._poll_timeout_ms,
                    self._clock,
                    self._group_id if self._finalizes(pbegin) else None,
                )
            )
        )


class _WriteFn(beam.DoFn):
    def __init__(
        self,
        sink_id: str,
        kafka: KafkaConnection,
        commit_group: str | None,
        producer_config: dict[str, Any],
    ):
        self._sink_id = sink_id
        self._kafka = kafka
        self._commit_group = commit_group
        self._producer_config = producer_config
        self._written = Metrics.counter("kafka_write", "records")
        self._sink: KafkaSink | None = None

    def setup(self) -> None:
        self._sink = KafkaSink.acquire(
            self._sink_id,
            self._kafka.bootstrap,
            self._commit_group,
            self._producer_config,
            self._kafka.delivery,
            self._kafka.security,
            self._kafka.client,
        )

    def teardown(self) -> None:
        if self._sink is not None:
            KafkaSink.release(self._sink_id)
            self._sink = None

    def process(self, message: OutboundMessage) -> None:
        assert self._sink is not None
        self._sink.send(message)

    def finish_bundle(self) -> None:
        assert self._sink is not None
        self._written.inc(self._sink.flush_and_commit())


class WriteToKafka(beam.PTransform):
    """Produce ``OutboundMessage`` elements; after each bundle's flush, commit their sources.

    ``commit_group``: the consumer group whose offsets are advanced past every
    source record written in the bundle (None: no commits, e.g. a replay).
    ``sink``: writers of one pipeline that name the same sink share one
    producer and one commit (see :mod:`connectors.sink`): use it instead of a
    Flatten before a single writer, which would stop the pipeline streaming.
    """

    def __init__(
        self,
        kafka: KafkaConnection,
        commit_group: str | None = None,
        producer_config: dict[str, Any] | None = None,
        sink: str | None = None,
    ) -> None:
        super().__init__()
        # from the job: it travels with the DoFn to whichever worker runs it
        self._kafka = kafka
        self._commit_group = commit_group
        self._producer_config = producer_config or {}
        self._sink_id = sink or uuid.uuid4().hex

    def expand(self, messages: beam.PCollection) -> beam.PCollection:
        return messages | "Produce" >> beam.ParDo(
            _WriteFn(self._sink_id, self._kafka, self._commit_group, self._producer_config)
        )
