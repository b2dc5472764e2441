"""Enforce: failed results x live listings -> delisting and remediation tasks, from both sides.

    ReadValid -> DecodeFacts -> KeyByProduct -> JoinResultsAndListings -> ToTopics -> WriteTasks

One reader feeds both inputs (omm.valid.listings and omm.valid.inspections)
so the stateful join runs live (BEAM-NOTES: a Flatten of two readers would
hold everything until they finish). Per product key the state holds the
listing observations (a bag, folded to the live ones when a result needs
them) and the results; a result finds every live listing, a listing finds
every active result (re-listing prevention), an overturned result withdraws
the tasks it caused. Task ids are deterministic, so a replay re-emits the
same tasks under the same keys.

State recovery: Beam state lives in the runner. On the FnApiRunner it dies
with the process, so every run reads both inputs from the earliest offsets
and rebuilds it (tasks re-emitted are identical, keyed by task_id). On Flink
or Dataflow, state is checkpointed/persisted by the runner; start from the
committed offsets there instead (``start="committed"``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.coders import PickleCoder
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms.userstate import BagStateSpec, ReadModifyWriteStateSpec

from connectors.beam_io import ReadFromKafka, WriteToKafka
from connectors.records import KafkaRecord, OutboundMessage
from connectors.security import KafkaSecurity
from omm.settings import get_settings
from omm.topics import TopicNames
from pipelines.dead_letters import DeadLetter, ToDeadLetters
from pipelines.rules.enforcement import (
    EnforcementConfig,
    ListingFact,
    PairOutcome,
    ResultFact,
    compacted,
    decide,
    ever_active,
    listing_fact,
    listing_keys,
    live_listings,
    load_enforcement_config,
    result_fact,
    result_keys,
    scope_of,
    withdrawals,
)
from pipelines.rules.enforcement import Scope as _Scope
from schemas.registry import CodecError, SchemaRegistry

STAGE = "enforce"
CONNECTOR = "omm-enforce"
DEAD = "dead_letter"
# results state: "<id>" -> latest version; "issued-as:<id>" -> the version an overturn undoes
_ISSUED_AS = "issued-as:"
UNKEYED = "unkeyed"


@dataclass(frozen=True)
class TaskOut:
    record: dict[str, Any]


@dataclass(frozen=True)
class ReviewOut:
    record: dict[str, Any]


def _config(config_dir: str | None) -> EnforcementConfig:
    return load_enforcement_config(Path(config_dir) if config_dir else get_settings().config_dir)


class _DecodeFactsFn(beam.DoFn):
    """Valid records -> (join key, fact) pairs, one per key the fact belongs to."""

    def __init__(self, listings_topic: str, inspections_topic: str, config_dir: str | None):
        self._entities = {listings_topic: "listing", inspections_topic: "inspection"}
        self._config_dir = config_dir

    def setup(self) -> None:
        self._registry = SchemaRegistry.load()
        self._cfg = _config(self._config_dir)
        self._in = Metrics.counter(STAGE, "in")
        self._keyed = Metrics.counter(STAGE, "keyed")
        self._unkeyed = Metrics.counter(STAGE, "unkeyed")
        self._dead = Metrics.counter(STAGE, "dead")

    def process(self, rec: KafkaRecord) -> Iterator[Any]:
        self._in.inc()
        entity = self._entities[rec.topic]
        try:
            _, record = self._registry.decode(rec.value or b"", expected_entity=entity)
        except CodecError as exc:
            self._dead.inc()
            yield pvalue.TaggedOutput(
                DEAD,
                DeadLetter(rec, "DECODE", type(exc).__name__, exc.reason, None, entity),
            )
            return
        fact: ListingFact | ResultFact
        if entity == "listing":
            fact = listing_fact(record, rec.position)
            keys = listing_keys(fact, self._cfg)
        else:
            fact = result_fact(record, rec.position)
            keys = result_keys(fact, self._cfg)
        if not keys:
            # e.g. a listing with neither brand+model, model-like title token nor GTIN:
            # nothing can match it. Counted, not lost: it stays on omm.valid.listings.
            self._unkeyed.inc()
            yield pvalue.TaggedOutput(UNKEYED, fact)
            return
        self._keyed.inc()
        for key in keys:
            yield (key, fact)


class _JoinFn(beam.DoFn):
    """Per product key: listings x results, from both sides."""

    LISTINGS = BagStateSpec("listings", PickleCoder())
    RESULTS = ReadModifyWriteStateSpec("results", PickleCoder())
    ISSUED = BagStateSpec("issued", PickleCoder())

    def __init__(self, config_dir: str | None):
        self._config_dir = config_dir

    def setup(self) -> None:
        self._cfg = _config(self._config_dir)
        self._tasks = Metrics.counter(STAGE, "tasks")
        self._reviews = Metrics.counter(STAGE, "reviews")
        self._withdrawn = Metrics.counter(STAGE, "withdrawn")

    def process(
        self,
        element: tuple[str, ListingFact | ResultFact],
        listings: Any = beam.DoFn.StateParam(LISTINGS),
        results: Any = beam.DoFn.StateParam(RESULTS),
        issued: Any = beam.DoFn.StateParam(ISSUED),
    ) -> Iterator[TaskOut | ReviewOut]:
        key, fact = element
        if isinstance(fact, ListingFact):
            yield from self._on_listing(key, fact, listings, results, issued)
        else:
            yield from self._on_result(key, fact, listings, results, issued)

    def _on_listing(
        self, key: str, listing: ListingFact, listings: Any, results: Any, issued: Any
    ) -> Iterator[TaskOut | ReviewOut]:
        listings.add(listing)
        known: dict[str, ResultFact] = results.read() or {}
        if not known or not listing.active:
            return  # the common case: nothing was ever published for this product
        state = _IssuedState(issued)
        for result_id, result in known.items():
            if result_id.startswith(_ISSUED_AS):
                continue
            if result.status == "OVERTURNED":
                issued_as = known.get(_ISSUED_AS + result_id)
                yield from self._emit_withdrawals(
                    withdrawals(result, listing, key, self._cfg, issued_as), state
                )
            elif scope_of(result) is not _Scope.NONE:
                yield from self._emit(decide(result, listing, key, self._cfg), state)
        state.save()

    def _on_result(
        self, key: str, result: ResultFact, listings: Any, results: Any, issued: Any
    ) -> Iterator[TaskOut | ReviewOut]:
        known: dict[str, ResultFact] = results.read() or {}
        previous = known.get(result.inspection_id)
        known[result.inspection_id] = result
        if result.status == "OVERTURNED" and previous is not None:
            # remember the version that issued the tasks: withdrawals keep its dates
            known[_ISSUED_AS + result.inspection_id] = (
                known.get(_ISSUED_AS + result.inspection_id) or previous
            )
        results.write(known)
        if result.status != "OVERTURNED" and scope_of(result) is _Scope.NONE:
            return
        observations = list(listings.read())
        state = _IssuedState(issued)
        if result.status == "OVERTURNED":
            issued_as = known.get(_ISSUED_AS + result.inspection_id)
            for listing in ever_active(observations).values():
                yield from self._emit_withdrawals(
                    withdrawals(result, listing, key, self._cfg, issued_as), state
                )
            state.save()
            return
        live = live_listings(observations)
        if len(observations) > 2 * len(live) + 64:
            kept = compacted(observations)
            listings.clear()
            for obs in kept:
                listings.add(obs)
        for listing in live.values():
            yield from self._emit(decide(result, listing, key, self._cfg), state)
        state.save()

    def _emit(self, outcome: PairOutcome, state: _IssuedState) -> Iterator[TaskOut | ReviewOut]:
        for task in outcome.tasks:
            if state.record(task):
                self._tasks.inc()
                yield TaskOut(task)
        review = outcome.review
        if review is not None and state.record({"task_id": review["review_id"], "state": "REVIEW"}):
            self._reviews.inc()
            yield ReviewOut(review)

    def _emit_withdrawals(
        self, tasks: list[dict[str, Any]], state: _IssuedState
    ) -> Iterator[TaskOut]:
        for task in tasks:
            if state.record(task):
                self._withdrawn.inc()
                yield TaskOut(task)


class _IssuedState:
    """The latest state of every task this key emitted, to emit each state once."""

    def __init__(self, bag: Any) -> None:
        self._bag = bag
        self._states = {t["task_id"]: t["state"] for t in bag.read()}
        self._new: list[dict[str, Any]] = []

    def record(self, task: dict[str, Any]) -> bool:
        """Whether this (task, state) is new; remembers it."""
        if self._states.get(task["task_id"]) == task["state"]:
            return False
        self._states[task["task_id"]] = task["state"]
        self._new.append({"task_id": task["task_id"], "state": task["state"]})
        return True

    def save(self) -> None:
        for entry in self._new:
            self._bag.add(entry)
        self._new = []


class JoinResultsAndListings(beam.PTransform):
    def __init__(self, config_dir: str | None):
        super().__init__()
        self._config_dir = config_dir

    def expand(self, keyed: beam.PCollection) -> beam.PCollection:
        # str keys: a deterministic key coder, as stateful processing requires
        return keyed | "JoinPerProductKey" >> beam.ParDo(
            _JoinFn(self._config_dir)
        ).with_input_types(tuple[str, Any])


class ToTopics(beam.PTransform):
    """Tasks to the addressed platform's topic, reviews to omm.review.matches, keyed by id."""

    def __init__(self, topics: TopicNames):
        super().__init__()
        self._topics = topics

    def expand(self, outputs: beam.PCollection) -> beam.PCollection:
        topics = self._topics

        class _Encode(beam.DoFn):
            def setup(self) -> None:
                self._registry = SchemaRegistry.load()

            def process(self, out: TaskOut | ReviewOut) -> Iterator[OutboundMessage]:
                if isinstance(out, TaskOut):
                    yield OutboundMessage(
                        topic=topics.tasks(out.record["platform"]),
                        key=out.record["task_id"].encode(),
                        value=self._registry.encode("task", out.record),
                    )
                else:
                    yield OutboundMessage(
                        topic=topics.review,
                        key=out.record["review_id"].encode(),
                        value=self._registry.encode("match_review", out.record),
                    )

        return outputs | "Encode" >> beam.ParDo(_Encode())


@dataclass(frozen=True)
class EnforceJob:
    bootstrap: str
    topics: TopicNames
    idle_timeout_s: float | None = None
    config_dir: str | None = None
    start: str = "earliest"  # see the module docstring: state is rebuilt on this runner
    # the pipelines' principal on a secured cluster; None: unsecured
    security: KafkaSecurity | None = None


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
        records = pbegin | "ReadValid" >> ReadFromKafka(
            job.bootstrap,
            [listings_topic, inspections_topic],
            group_id=f"{job.topics.prefix}omm.enforce",
            start=job.start,
            idle_timeout_s=job.idle_timeout_s,
            security=job.security,
        )
        facts = records | "DecodeFacts" >> beam.ParDo(
            _DecodeFactsFn(listings_topic, inspections_topic, job.config_dir)
        ).with_outputs(DEAD, UNKEYED, main="keyed")
        outputs = facts["keyed"] | "JoinResultsAndListings" >> JoinResultsAndListings(
            job.config_dir
        )
        tasks = outputs | "ToTopics" >> ToTopics(job.topics)

        dead = facts[DEAD] | "ToDeadLetters" >> ToDeadLetters(job.topics, CONNECTOR)
        # two writers sharing one sink rather than a Flatten (see connectors/sink.py)
        sink = f"enforce-{uuid.uuid4().hex}"
        tasks | "WriteTasks" >> WriteToKafka(job.bootstrap, sink=sink, security=job.security)
        return dead | "WriteDeadLetters" >> WriteToKafka(
            job.bootstrap, sink=sink, security=job.security
        )


@dataclass(frozen=True)
class EnforceAccount:
    read: int
    keyed: int
    unkeyed: int
    dead: int
    tasks: int
    reviews: int
    withdrawn: int

    @property
    def balanced(self) -> bool:
        return self.read == self.keyed + self.unkeyed + self.dead


def account_from_metrics(result: Any) -> EnforceAccount:
    counts: dict[str, int] = {}
    for counter in result.metrics().query()["counters"]:
        if counter.key.metric.namespace == STAGE:
            name = counter.key.metric.name
            counts[name] = counts.get(name, 0) + (counter.committed or counter.attempted or 0)
    return EnforceAccount(
        read=counts.get("in", 0),
        keyed=counts.get("keyed", 0),
        unkeyed=counts.get("unkeyed", 0),
        dead=counts.get("dead", 0),
        tasks=counts.get("tasks", 0),
        reviews=counts.get("reviews", 0),
        withdrawn=counts.get("withdrawn", 0),
    )


def run_enforce(job: EnforceJob, pipeline_args: list[str]) -> EnforceAccount:
    pipeline = beam.Pipeline(options=PipelineOptions(pipeline_args))
    _ = pipeline | "Enforce" >> Enforce(job)
    result = pipeline.run()
    result.wait_until_finish()
    return account_from_metrics(result)
