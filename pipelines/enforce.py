"""Enforce: failed results x live listings -> delisting and remediation tasks, from both sides.

    ReadValid -> DecodeFacts -> KeyByProduct -> JoinResultsAndListings -> ToTopics -> WriteTasks

One reader feeds all three inputs (omm.valid.listings, omm.valid.inspections
and the regulator's omm.review.decisions), seeded with every partition of
each: a Flatten of several readers would hold everything downstream until they
all ended (docs/runner-notes.md). Per product key,
:mod:`pipelines.rules.enforcement` folds the listing observations and results
into tasks by event time: a result meets a listing that was on sale when the
result was published (or is put back on sale after), an overturned result
withdraws the tasks it caused. A regulator's CONFIRM of an uncertain match
issues its tasks, a REJECT keeps the pair from ever becoming one; each goes to
every key of the inspected product it names (its pair is decided under one of
them). Decisions on disputed tasks (UPHOLD, WITHDRAW) are the compliance
pipeline's: counted, left on the topic. Task ids are deterministic.

Two ways to run the fold, chosen by ``EnforceJob.in_event_order`` (by default:
bounded batch runs in event order, everything else as events arrive):

- in event order (bounded): a GroupByKey holds each key's events until the
  read ends, then they are folded sorted by event time. The records written
  are a function of the inputs alone, whatever the partitions and the read
  order, so a replay writes the same tasks, byte for byte. Nothing is emitted
  before the read ends.
- as events arrive (streaming): the fold runs live over Beam state (the
  stateful stage stays fused with the reader, so it works live). It cannot wait for
  the future: an observation read after a result it precedes is late
  evidence, and a task that evidence shows was never due is withdrawn with a
  reason saying so. The tasks in force end the same as in event order.

State recovery: Beam state lives in the runner. On the FnApiRunner it dies
with the process, so every run reads both inputs from the earliest offsets
and rebuilds it (tasks re-emitted are identical, keyed by task_id). On Flink
or Dataflow, state is checkpointed/persisted by the runner; start from the
committed offsets there instead (``start="committed"``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.coders import PickleCoder
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.transforms.userstate import BagStateSpec, ReadModifyWriteStateSpec

from connectors import kafka_client
from connectors.beam_io import ReadFromKafka, WriteToKafka
from connectors.connection import KafkaConnection
from connectors.records import KafkaRecord, OutboundMessage
from connectors.sink import KafkaSink
from connectors.topics import TopicNames
from pipelines.dead_letters import DeadLetter, ToDeadLetters, decode_or_dead_letter
from pipelines.rules.enforcement import (
    REVIEW,
    TASK,
    Emitted,
    EnforcementConfig,
    JoinEvent,
    JoinState,
    ListingFact,
    ResultFact,
    compact_observations,
    decision_keys,
    fold_in_event_order,
    listing_fact,
    listing_keys,
    result_fact,
    result_keys,
    step,
)
from pipelines.rules.review import DecisionFact, decision_fact
from pipelines.running import account, run
from schemas.registry import SchemaRegistry

log = logging.getLogger(__name__)

STAGE = "enforce"
CONNECTOR = "omm-enforce"
DEAD = "dead_letter"
UNKEYED = "unkeyed"


@dataclass(frozen=True)
class TaskOut:
    record: dict[str, Any]


@dataclass(frozen=True)
class ReviewOut:
    record: dict[str, Any]


class _DecodeFactsFn(beam.DoFn):
    """Valid records and decisions -> (join key, fact) pairs, one per key the fact belongs to."""

    def __init__(self, entities: Mapping[str, str], cfg: EnforcementConfig):
        self._entities = dict(entities)  # topic -> entity it carries
        self._cfg = cfg

    def setup(self) -> None:
        self._registry = SchemaRegistry.load()
        self._in = Metrics.counter(STAGE, "in")
        self._keyed = Metrics.counter(STAGE, "keyed")
        self._unkeyed = Metrics.counter(STAGE, "unkeyed")
        self._dead = Metrics.counter(STAGE, "dead")
        self._decisions = Metrics.counter(STAGE, "decisions")
        self._disputes = Metrics.counter(STAGE, "disputes")

    def process(self, rec: KafkaRecord) -> Iterator[Any]:
        self._in.inc()
        entity = self._entities[rec.topic]
        record = decode_or_dead_letter(self._registry, rec, entity)
        if isinstance(record, DeadLetter):
            self._dead.inc()
            yield pvalue.TaggedOutput(DEAD, record)
            return
        fact: ListingFact | ResultFact | DecisionFact
        if entity == "listing":
            fact = listing_fact(record, rec.position)
            keys = listing_keys(fact, self._cfg)
        elif entity == "inspection":
            fact = result_fact(record, rec.position)
            keys = result_keys(fact, self._cfg)
        else:
            fact = decision_fact(record, rec.position)
            self._decisions.inc()
            if not fact.decides_a_match:
                # UPHOLD / WITHDRAW of a disputed task: the compliance pipeline acts on it
                self._disputes.inc()
                return
            keys = decision_keys(fact, self._cfg)
        if not keys:
            # e.g. a listing with neither brand+model, model-like title token nor GTIN,
            # or a decision naming no product: nothing can match it. Counted, not lost:
            # it stays on its topic.
            self._unkeyed.inc()
            yield pvalue.TaggedOutput(UNKEYED, fact)
            return
        self._keyed.inc()
        for key in keys:
            yield (key, fact)


def _out(emitted: Emitted) -> TaskOut | ReviewOut:
    kind, record = emitted
    return TaskOut(record) if kind == TASK else ReviewOut(record)


class _Counters:
    def __init__(self) -> None:
        self._tasks = Metrics.counter(STAGE, "tasks")
        self._reviews = Metrics.counter(STAGE, "reviews")
        self._withdrawn = Metrics.counter(STAGE, "withdrawn")

    def count(self, emitted: Emitted) -> None:
        kind, record = emitted
        if kind == REVIEW:
            self._reviews.inc()
        elif record["state"] == "WITHDRAWN":
            self._withdrawn.inc()
        else:
            self._tasks.inc()


class _FoldInEventOrderFn(beam.DoFn):
    """Bounded runs: all of a key's events at once, folded in event-time order.

    The GroupByKey before this step is the listing side's watermark for a
    bounded read: a result is decided only once every observation has been
    read, so no DELIST goes out for a listing whose removal was read late.
    """

    def __init__(self, cfg: EnforcementConfig):
        self._cfg = cfg

    def setup(self) -> None:
        self._counters = _Counters()

    def process(self, element: tuple[str, Iterable[JoinEvent]]) -> Iterator[TaskOut | ReviewOut]:
        key, events = element
        for emitted in fold_in_event_order(key, events, self._cfg):
            self._counters.count(emitted)
            yield _out(emitted)


class _BagView:
    """A state bag as a re-iterable that is read only if the fold looks at it."""

    def __init__(self, bag: Any) -> None:
        self._bag = bag

    def __iter__(self) -> Iterator[Any]:
        return iter(self._bag.read())


class _IssuedView(Mapping[str, Mapping[str, Any]]):
    """The issued bag as task id -> latest record, read on first use."""

    def __init__(self, bag: Any) -> None:
        self._bag = bag
        self._latest: dict[str, Mapping[str, Any]] | None = None

    def _read(self) -> dict[str, Mapping[str, Any]]:
        if self._latest is None:
            self._latest = {}
            for entry in self._bag.read():
                self._latest[entry.get("task_id") or entry["review_id"]] = entry
        return self._latest

    def __getitem__(self, record_id: str) -> Mapping[str, Any]:
        return self._read()[record_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._read())


class _DecisionsView(Mapping[str, DecisionFact]):
    """The decisions state as review id -> decision in force, read on first use (most
    events decide no pair, and those never look)."""

    def __init__(self, cell: Any) -> None:
        self._cell = cell
        self._latest: dict[str, DecisionFact] | None = None

    def _read(self) -> dict[str, DecisionFact]:
        if self._latest is None:
            self._latest = self._cell.read() or {}
        return self._latest

    def __getitem__(self, review_id: str) -> DecisionFact:
        return self._read()[review_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._read())


class _JoinLiveFn(beam.DoFn):
    """Streaming: per product key, each event folded as it arrives (late evidence corrected)."""

    LISTINGS = BagStateSpec("listings", PickleCoder())
    RESULTS = ReadModifyWriteStateSpec("results", PickleCoder())
    ISSUED = BagStateSpec("issued", PickleCoder())
    DECISIONS = ReadModifyWriteStateSpec("decisions", PickleCoder())

    def __init__(self, cfg: EnforcementConfig):
        self._cfg = cfg

    def setup(self) -> None:
        self._counters = _Counters()

    def process(
        self,
        element: tuple[str, JoinEvent],
        listings: Any = beam.DoFn.StateParam(LISTINGS),
        results: Any = beam.DoFn.StateParam(RESULTS),
        issued: Any = beam.DoFn.StateParam(ISSUED),
        decisions: Any = beam.DoFn.StateParam(DECISIONS),
    ) -> Iterator[TaskOut | ReviewOut]:
        key, event = element
        saved: tuple[dict[str, ResultFact], dict[str, ResultFact]] | None = results.read()
        known, issued_as = saved if saved is not None else ({}, {})
        in_force = _DecisionsView(decisions)
        state = JoinState(_BagView(listings), known, issued_as, _IssuedView(issued), in_force)
        change = step(key, state, event, self._cfg)
        if change.decision is not None:
            decisions.write({**in_force, change.decision.subject: change.decision})
        if change.observation is not None:
            listings.add(change.observation)
        if change.result is not None or change.issued_as is not None:
            if change.result is not None:
                known[change.result.inspection_id] = change.result
            if change.issued_as is not None:
                issued_as[change.issued_as.inspection_id] = change.issued_as
            results.write((known, issued_as))
            self._compact(listings)
        for emitted in change.emitted:
            kind, record = emitted
            issued.add(record if kind == TASK else {"review_id": record["review_id"]})
            self._counters.count(emitted)
            yield _out(emitted)

    @staticmethod
    def _compact(listings: Any) -> None:
        # on the (rare) result path, which reads the bag anyway: keep each listing's changes
        observations = list(listings.read())
        kept = compact_observations(observations)
        if len(observations) > 2 * len(kept) + 64:
            listings.clear()
            for obs in kept:
                listings.add(obs)


class JoinResultsAndListings(beam.PTransform):
    """Per product key: listings x results, from both sides.

    ``in_event_order``: hold every key's events until the read ends and fold them
    in event-time order (bounded runs: the tasks are a function of the inputs,
    whatever the read order); otherwise fold each event as it arrives (streaming).
    """

    def __init__(self, cfg: EnforcementConfig, in_event_order: bool = True):
        super().__init__()
        self._cfg = cfg
        self._in_event_order = in_event_order

    def expand(self, keyed: beam.PCollection) -> beam.PCollection:
        # str keys: a deterministic key coder, as grouping and stateful processing require
        if self._in_event_order:
            return (
                keyed
                | "GroupByProductKey" >> beam.GroupByKey().with_input_types(tuple[str, Any])
                | "FoldInEventOrder" >> beam.ParDo(_FoldInEventOrderFn(self._cfg))
            )
        return keyed | "JoinPerProductKey" >> beam.ParDo(_JoinLiveFn(self._cfg)).with_input_types(
            tuple[str, Any]
        )


@dataclass(frozen=True)
class WriterWarmUp:
    """The writer's shared sink, and the topics its producer should know before the first
    record is read.

    Why: kafka-python fetches a topic's metadata on the first send to it, blocking
    about 0.1 s per topic, so the first FAIL after start, whose tasks go to ten
    platform topics, waited about a second for metadata (measured: 1.1-1.2 s to its
    tenth task against 0.14 s for later ones at 100 k live listings, ``python -m
    omm.bench``). Fetched in ``setup``, before any bundle, the wait is paid at start.
    """

    sink: str  # the WriteToKafka sink id: the same producer the writer uses
    kafka: KafkaConnection
    topics: tuple[str, ...]


def warm_writer(warm: WriterWarmUp) -> KafkaSink:
    """The writer's sink (acquired: release it), its producer holding metadata for those
    of ``warm.topics`` that exist. Best effort: a topic missing or not described now is
    left to the first send, which has the sink's outage handling; the pipeline is not
    failed for a warm-up."""
    # the same arguments as WriteToKafka(kafka, sink=...) gives it: whichever sets up first
    # makes the one producer both use
    sink = KafkaSink.acquire(
        warm.sink, warm.kafka.bootstrap, None, {}, warm.kafka.delivery, warm.kafka.security
    )
    try:
        # one metadata request says which exist: the producer would wait its whole
        # send_block_s on each missing one (a platform whose topic is not created yet)
        probe = kafka_client.consumer(
            warm.kafka.bootstrap, security=warm.kafka.security, policy=warm.kafka.delivery
        )
        try:
            existing = probe.topics()
        finally:
            probe.close()
        sink.warm([topic for topic in warm.topics if topic in existing])
    except Exception as exc:  # never fails the pipeline: the first send fetches what is missing
        log.warning("enforce: writer not warmed at start (%r): metadata fetched on first send", exc)
    return sink


class _EncodeFn(beam.DoFn):
    """Tasks and reviews to Kafka messages; in ``setup``, warms the writer (see WriterWarmUp)."""

    def __init__(self, topics: TopicNames, warm: WriterWarmUp | None = None) -> None:
        self._topics = topics
        self._warm = warm

    def setup(self) -> None:
        self._registry = SchemaRegistry.load()
        self._sink: KafkaSink | None = None
        if self._warm is not None:
            self._sink = warm_writer(self._warm)

    def teardown(self) -> None:
        if self._warm is not None and getattr(self, "_sink", None) is not None:
            KafkaSink.release(self._warm.sink)
            self._sink = None

    def process(self, out: TaskOut | ReviewOut) -> Iterator[OutboundMessage]:
        if isinstance(out, TaskOut):
            yield OutboundMessage(
                topic=self._topics.tasks(out.record["platform"]),
                key=out.record["task_id"].encode(),
                value=self._registry.encode("task", out.record),
            )
        else:
            yield OutboundMessage(
                topic=self._topics.review,
                key=out.record["review_id"].encode(),
                value=self._registry.encode("match_review", out.record),
            )


class ToTopics(beam.PTransform):
    """Tasks to the addressed platform's topic, reviews to omm.review.matches, keyed by id.
    ``warm``: the writer that will write them, warmed before the first record."""

    def __init__(self, topics: TopicNames, warm: WriterWarmUp | None = None):
        super().__init__()
        self._topics = topics
        self._warm = warm

    def expand(self, outputs: beam.PCollection) -> beam.PCollection:
        return outputs | "Encode" >> beam.ParDo(_EncodeFn(self._topics, self._warm))


@dataclass(frozen=True)
class EnforceJob:
    """Everything enforce's workers need, decided before the pipeline is built
    (the application makes it: ``omm.jobs``)."""

    kafka: KafkaConnection
    topics: TopicNames
    # deadlines, matching, calendar and legal bases (config/enforcement.yaml and its files)
    config: EnforcementConfig
    idle_timeout_s: float | None = None
    start: str = "earliest"  # see the module docstring: state is rebuilt on this runner
    # None: in event order for a bounded batch run, as events arrive otherwise (see Enforce)
    in_event_order: bool | None = None
    max_records_per_poll: int = 20000
    # every platform a task may be addressed to: their task topics are warmed at start
    platforms: tuple[str, ...] = ()

    @property
    def group_id(self) -> str:
        return f"{self.topics.prefix}omm.enforce"


class Enforce(beam.PTransform):
    def __init__(self, job: EnforceJob):
        super().__init__()
        self._job = job

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        job = self._job
        listings_topic, inspections_topic = (
            job.topics.valid("listing"),
            job.topics.valid("inspection"),
        )
        entities = {
            listings_topic: "listing",
            inspections_topic: "inspection",
            job.topics.decisions: "review_decision",
        }
        records = pbegin | "ReadValid" >> ReadFromKafka(
            job.kafka,
            list(entities),
            group_id=job.group_id,
            start=job.start,
            idle_timeout_s=job.idle_timeout_s,
            max_records_per_poll=job.max_records_per_poll,
            # most records change state, not outputs: committed once the runner
            # has finalized their bundle (on Flink, after its checkpoint)
            commit_when_finalized=True,
        )
        facts = records | "DecodeFacts" >> beam.ParDo(
            _DecodeFactsFn(entities, job.config)
        ).with_outputs(DEAD, UNKEYED, main="keyed")
        in_event_order = job.in_event_order
        if in_event_order is None:
            # A bounded batch run can afford to wait for the end of its read, and
            # only then are its tasks independent of the read order. A streaming
            # run (or a bounded one measured for latency) decides as events arrive.
            streaming = pbegin.pipeline.options.view_as(StandardOptions).streaming
            in_event_order = job.idle_timeout_s is not None and not streaming
        outputs = facts["keyed"] | "JoinResultsAndListings" >> JoinResultsAndListings(
            job.config, in_event_order
        )
        # two writers sharing one sink rather than a Flatten (see connectors/sink.py)
        sink = f"enforce-{uuid.uuid4().hex}"
        warm = WriterWarmUp(
            sink,
            job.kafka,
            (*(job.topics.tasks(p) for p in job.platforms), job.topics.review),
        )
        tasks = outputs | "ToTopics" >> ToTopics(job.topics, warm)

        dead = facts[DEAD] | "ToDeadLetters" >> ToDeadLetters(job.topics, CONNECTOR)
        tasks | "WriteTasks" >> WriteToKafka(job.kafka, sink=sink)
        return dead | "WriteDeadLetters" >> WriteToKafka(job.kafka, sink=sink)


@dataclass(frozen=True)
class EnforceAccount:
    """What enforce read and made. ``read`` counts every record of the three topics;
    ``decisions`` is the part of it that was a regulator's decision, and ``disputes``
    the part of those left to the compliance pipeline (UPHOLD, WITHDRAW)."""

    read: int
    keyed: int
    unkeyed: int
    dead: int
    tasks: int
    reviews: int
    withdrawn: int
    decisions: int = 0
    disputes: int = 0

    @property
    def balanced(self) -> bool:
        return self.read == self.keyed + self.unkeyed + self.dead + self.disputes


def account_from_metrics(result: Any) -> EnforceAccount:
    return account(EnforceAccount, result, STAGE)


def run_enforce(job: EnforceJob, pipeline_args: list[str]) -> EnforceAccount:
    return account_from_metrics(run("Enforce", Enforce(job), pipeline_args))
