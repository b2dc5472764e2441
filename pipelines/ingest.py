"""Ingest: platform and regulator feeds -> omm.valid.<entity>, or the DLQ and feedback.

    ReadFeeds -> ValidateRecords -+-> valid -------------------------> WriteValid
                                  +-> dead_letter --> ToDeadLetters -> WriteDeadLetters
                                  +-> health rows --> BatchWarnFeeds -> WriteHealth
                                  +-> held rows ----> CheckHeldFeeds -> WriteJudged
                                                      (omm.feed.health; held records of
                                                       quarantine-mode feeds: valid or
                                                       omm.quarantine.<entity>)

Every record read leaves as exactly one valid record, one quarantined record
or one dead letter (a DLQ copy plus a feedback record), so per source topic:
in = valid + quarantined + dead. The counts are Beam metrics (namespace
``ingest``). The writers share one producer and one offset commit
(connectors/sink.py).

Complaints leave with the consumer keyed and the text redacted, their
rejections echo no personal data, and their DLQ copy is redacted
(pipelines/dead_letter_privacy.py says what it keeps and why).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.metrics import Metrics

from connectors.beam_io import ReadFromKafka, WriteToKafka
from connectors.connection import KafkaConnection
from connectors.records import KafkaRecord, OutboundMessage
from connectors.topics import SourceTopic, TopicNames
from pipelines.dead_letter_privacy import protect_dead_letter
from pipelines.dead_letters import DeadLetter, ToDeadLetters
from pipelines.feed_health.stage import (
    BatchWarnFeeds,
    CheckFeedHealth,
    FeedHealthJob,
    HealthRow,
    KnownTask,
    feed_key,
    health_values,
)
from pipelines.feed_health.suites import SUITE_ENTITIES, FeedHealthConfig, SuiteConfig
from pipelines.rules.personal_data import PersonalDataConfig, Redactor, protect_complaint
from pipelines.rules.platforms import PlatformRegistry
from pipelines.rules.record_rules import (
    RecordRulesConfig,
    RuleViolation,
    check_record,
    rule_context,
)
from pipelines.running import counters, run
from schemas.models import ENTITY_MODELS, Complaint, utc_now
from schemas.registry import HEADER_LEN, CodecError, SchemaRegistry

STAGE = "ingest"
CONNECTOR = "omm-ingest"
VALID, DEAD, HEALTH, HELD = "valid", "dead_letter", "health", "held"
PROVENANCE_HEADER = "omm.source"


class _ValidateFn(beam.DoFn):
    """Decode the Avro single-object bytes, apply the record rules, protect personal data."""

    def __init__(
        self,
        job: IngestJob,
        sources: list[SourceTopic],
        task_topics: dict[str, str] | None = None,
    ):
        self._sources = {s.name: s for s in sources}
        # omm.tasks.<platform> -> platform: issued task ids feed the takedown suite
        self._task_topics = task_topics or {}
        self._topics = job.topics
        # entity -> "warn" | "quarantine", for feeds whose batches are health-checked
        self._health_modes = job.health_modes
        # entity -> the record fields its feed suite reads
        self._health_columns = job.health_columns
        self._pseudonym_key = job.pseudonym_key
        self._record_rules = job.record_rules
        self._personal_data = job.personal_data
        self._platforms = job.registry
        self._now: datetime = utc_now()

    def setup(self) -> None:
        self._registry = SchemaRegistry.load()
        self._redactor = Redactor.from_config(self._personal_data)
        self._current_headers = {
            e: self._registry.current(e).header for e in self._registry.entities()
        }
        self._counters: dict[tuple[str, str], Any] = {}
        self._valid_topics = {
            s.entity: self._topics.valid(s.entity) for s in self._sources.values()
        }

    def _count(self, what: str, topic: str) -> None:
        counter = self._counters.get((what, topic))
        if counter is None:
            name = f"{what}|{topic}" if topic else what
            counter = self._counters[(what, topic)] = Metrics.counter(STAGE, name)
        counter.inc()

    def start_bundle(self) -> None:
        # One clock reading per bundle: the future-skew rule needs "now", not nanoseconds.
        self._now = utc_now()
        self._contexts = {
            name: rule_context(self._record_rules, self._platforms, self._now, src.platform)
            for name, src in self._sources.items()
        }

    def process(self, rec: KafkaRecord) -> Iterator[Any]:
        if rec.topic in self._task_topics:  # not a feed record: outside the accounts
            yield from self._known_task(rec, self._task_topics[rec.topic])
            return
        self._count("in", rec.topic)
        source = self._sources[rec.topic]
        if rec.value is None:
            yield self._dead(rec, source, "DECODE", "EmptyValue", "record has no value (tombstone)")
            return
        try:
            _, decoded = self._registry.decode(rec.value, expected_entity=source.entity)
        except CodecError as exc:
            yield self._dead(rec, source, "DECODE", type(exc).__name__, exc.reason)
            return
        try:
            record = check_record(source.entity, decoded, self._contexts[rec.topic], self._redactor)
        except RuleViolation as exc:
            first = exc.first
            yield self._dead(
                rec,
                source,
                "RECORD_RULES",
                "RuleViolation",
                str(exc),
                record_id=str(decoded.get(_id_field(source.entity)) or "") or None,
                field=first.field,
                value=first.value,
                rule=first.rule,
                decoded=decoded,
            )
            return
        value: bytes = rec.value
        if isinstance(record, Complaint):
            record = protect_complaint(record, self._pseudonym_key, self._redactor)
            value = self._registry.encode(source.entity, record.to_record())
        elif value[:HEADER_LEN] != self._current_headers[source.entity]:
            # written with an older schema version: publish in the current one
            value = self._registry.encode(source.entity, record.to_record())
        # else: the bytes already are the canonical current-version record, pass them on
        # The message to write, made here rather than in a step of its own: one
        # element less per record through the runner (ingest's hot path).
        valid = valid_message(
            self._valid_topics[source.entity], record.kafka_key.encode("utf-8"), value, rec
        )
        health_mode = self._health_modes.get(source.entity)
        if health_mode is None:
            self._count("valid", rec.topic)
            yield valid
            return
        row_record = decoded if not isinstance(record, Complaint) else record.to_record()
        event = getattr(record, record.time_fields[0])
        held = valid if health_mode == "quarantine" else None
        if held is None:
            self._count("valid", rec.topic)
            yield valid
        values = health_values(row_record, self._health_columns[source.entity])
        yield pvalue.TaggedOutput(
            HELD if held is not None else HEALTH,
            (
                feed_key(source.platform, source.entity),
                HealthRow(values, int(event.timestamp() * 1000), rec.topic, held),
            ),
        )

    def _known_task(self, rec: KafkaRecord, platform: str) -> Iterator[pvalue.TaggedOutput]:
        mode = self._health_modes.get("takedown")
        if mode is None or rec.value is None:
            return
        try:
            _, task = self._registry.decode(rec.value, expected_entity="task")
        except CodecError:
            # omm's own output, not a platform's record: counted, never dead-lettered
            self._count_plain("tasks_unreadable")
            return
        self._count_plain("known_tasks")
        yield pvalue.TaggedOutput(
            HELD if mode == "quarantine" else HEALTH,
            (feed_key(platform, "takedown"), KnownTask(str(task["task_id"]))),
        )

    def _count_plain(self, what: str) -> None:
        # no "|topic": these are not part of any topic's in = out + dead account
        self._count(what, "")

    def _dead(
        self,
        rec: KafkaRecord,
        source: SourceTopic,
        stage: str,
        error_class: str,
        message: str,
        decoded: dict[str, Any] | None = None,
        **detail: str | None,
    ) -> pvalue.TaggedOutput:
        self._count("dead", rec.topic)
        letter = DeadLetter(
            record=rec,
            stage=stage,
            error_class=error_class,
            message=message,
            platform=source.platform,
            entity=source.entity,
            **detail,
        )
        # personal-data feeds (complaints): a redacted DLQ copy, no personal data echoed
        letter = protect_dead_letter(
            letter, source.entity, decoded, self._redactor, self._pseudonym_key, self._registry
        )
        return pvalue.TaggedOutput(DEAD, letter)


def _id_field(entity: str) -> str:
    return ENTITY_MODELS[entity].id_field


class ValidateRecords(beam.PTransform):
    """KafkaRecord -> its omm.valid.<entity> OutboundMessage (main) | DeadLetter (tag
    ``dead_letter``) | health rows.

    Records of health-checked feeds also leave on tag ``health`` as
    (platform|feed, HealthRow); those of quarantine-mode feeds leave only
    there, held until their batch is judged.
    """

    def __init__(
        self,
        job: IngestJob,
        sources: list[SourceTopic],
        task_topics: dict[str, str] | None = None,
    ):
        super().__init__()
        self._fn = _ValidateFn(job, sources, task_topics)

    def expand(self, records: beam.PCollection) -> pvalue.DoOutputsTuple:
        return records | "DecodeAndCheck" >> beam.ParDo(self._fn).with_outputs(
            DEAD, HEALTH, HELD, main=VALID
        )


def valid_message(topic: str, key: bytes, value: bytes, src: KafkaRecord) -> OutboundMessage:
    """A valid record's output, naming where it was read (header and offset commit)."""
    return OutboundMessage(
        topic=topic,
        key=key,
        value=value,
        headers=((PROVENANCE_HEADER, src.position.encode("utf-8")),),
        source=(src.topic, src.partition, src.offset),
    )


@dataclass(frozen=True)
class IngestJob:
    """Everything ingest's workers need, decided before the pipeline is built.

    The application (``omm.jobs``) makes it from the operator's settings and
    ``config/``; nothing in this pipeline reads either.
    """

    kafka: KafkaConnection
    topics: TopicNames
    group_id: str
    # every platform omm knows (a record naming another is refused) ...
    registry: PlatformRegistry
    # ... and those whose feeds this run reads
    platforms: tuple[str, ...]
    record_rules: RecordRulesConfig
    personal_data: PersonalDataConfig
    pseudonym_key: bytes
    feed_health: FeedHealthConfig
    # feed -> its expectation suite; empty: no feed health
    suites: Mapping[str, SuiteConfig] = field(default_factory=dict)
    # None: streaming; else a bounded run that ends after this long without records
    idle_timeout_s: float | None = None

    @property
    def health_modes(self) -> dict[str, str]:
        """entity -> on_failure mode of its expectation suite ("warn" | "quarantine")."""
        return {SUITE_ENTITIES[feed]: suite.on_failure for feed, suite in self.suites.items()}

    @property
    def health_columns(self) -> dict[str, tuple[str, ...]]:
        """entity -> the record fields its feed suite reads."""
        return {SUITE_ENTITIES[feed]: suite.source_columns for feed, suite in self.suites.items()}


class Ingest(beam.PTransform):
    def __init__(self, job: IngestJob):
        super().__init__()
        self._job = job

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        job = self._job
        sources = job.topics.sources(list(job.platforms))
        modes = job.health_modes
        # The takedown suite checks notices name tasks omm issued: the same one reader
        # also reads omm.tasks.<platform>, always from the start (docs/runner-notes.md: one reader
        # seeded with every partition, no Flatten of readers, no side-input reader).
        task_topics = {job.topics.tasks(p): p for p in job.platforms} if "takedown" in modes else {}
        records = pbegin | "ReadFeeds" >> ReadFromKafka(
            job.kafka,
            [s.name for s in sources] + list(task_topics),
            group_id=job.group_id,
            idle_timeout_s=job.idle_timeout_s,
            from_earliest=list(task_topics),
        )
        checked = records | "ValidateRecords" >> ValidateRecords(job, sources, task_topics)
        held_topics = frozenset(s.name for s in sources if modes.get(s.entity) == "quarantine")
        # Writers sharing one sink, not a Flatten into one writer: the
        # FnApiRunner materialises Flatten inputs, which would hold all output
        # back until the reader finishes (connectors/sink.py).
        sink = f"ingest-{uuid.uuid4().hex}"

        def write() -> WriteToKafka:
            return WriteToKafka(job.kafka, commit_group=job.group_id, sink=sink)

        valid = checked[VALID]
        dead = checked[DEAD] | "ToDeadLetters" >> ToDeadLetters(job.topics, CONNECTOR, held_topics)
        valid | "WriteValid" >> write()
        health = FeedHealthJob(
            topics=job.topics,
            config=job.feed_health,
            suites=job.suites,
            platform_ids=tuple(job.registry.ids),
            streaming=job.idle_timeout_s is None,
            kafka=job.kafka,
        )
        if any(mode == "warn" for mode in modes.values()):
            reports = checked[HEALTH] | "BatchWarnFeeds" >> BatchWarnFeeds(health)
            reports | "WriteHealth" >> write()
        if any(mode == "quarantine" for mode in modes.values()):
            judged = checked[HELD] | "CheckHeldFeeds" >> CheckFeedHealth(health)
            judged | "WriteJudged" >> write()
        return dead | "WriteDeadLetters" >> write()


@dataclass(frozen=True)
class TopicAccount:
    """Conservation account of one source topic: in = valid + quarantined + dead letters."""

    topic: str
    read: int
    valid: int
    dead: int
    quarantined: int = 0

    @property
    def balanced(self) -> bool:
        return self.read == self.valid + self.quarantined + self.dead


def accounts_from_metrics(result: Any) -> list[TopicAccount]:
    counts: dict[str, dict[str, int]] = {}
    for name, n in counters(result, STAGE).items():
        if "|" not in name:
            continue
        what, _, topic = name.partition("|")
        counts.setdefault(topic, {})[what] = n
    return [
        TopicAccount(
            topic, c.get("in", 0), c.get("valid", 0), c.get("dead", 0), c.get("quarantined", 0)
        )
        for topic, c in sorted(counts.items())
    ]


def run_ingest(job: IngestJob, pipeline_args: list[str] | None = None) -> list[TopicAccount]:
    """Build and run the ingest pipeline; return the per-topic accounts (bounded runs)."""
    result = run("Ingest", Ingest(job), pipeline_args or ["--runner=FnApiRunner"])
    return accounts_from_metrics(result)
