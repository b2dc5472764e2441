"""Dead letters: what went wrong with a record, and how it leaves a stage.

A dead letter goes two ways: the original bytes to ``omm.dlq`` with Kafka
Connect's ``__connect.errors.*`` headers (so existing DLQ tooling reads them),
and a decoded ``Rejection`` to the sender's feedback topic telling them what to
fix. ``ToDeadLetters`` is the stage every pipeline ends its dead letters with.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import apache_beam as beam

from connectors.records import KafkaRecord, OutboundMessage
from omm.topics import TopicNames
from schemas.models import utc_now
from schemas.registry import SchemaRegistry

CONNECT_PREFIX = "__connect.errors."


@dataclass(frozen=True)
class DeadLetter:
    """A record a stage refused, with the reason in the domain's words."""

    record: KafkaRecord
    stage: str  # DECODE, RECORD_RULES, ...
    error_class: str
    message: str
    platform: str | None
    entity: str | None = None
    record_id: str | None = None
    field: str | None = None
    value: str | None = None
    rule: str | None = None


def dlq_headers(letter: DeadLetter, connector: str) -> tuple[tuple[str, bytes], ...]:
    rec = letter.record
    error_headers = {
        "topic": rec.topic,
        "partition": str(rec.partition),
        "offset": str(rec.offset),
        "connector.name": connector,
        "task.id": "0",
        "stage": letter.stage,
        "class.name": letter.error_class,
        "exception.message": letter.message,
    }
    omm_headers = {
        "omm.errors.platform": letter.platform,
        "omm.errors.entity": letter.entity,
        "omm.errors.field": letter.field,
        "omm.errors.value": letter.value,
        "omm.errors.rule": letter.rule,
    }
    # Kafka Connect keeps the original headers and appends its own.
    return (
        rec.headers
        + tuple((CONNECT_PREFIX + k, v.encode("utf-8")) for k, v in error_headers.items())
        + tuple((k, v.encode("utf-8")) for k, v in omm_headers.items() if v is not None)
    )


def rejection_record(letter: DeadLetter, rejected_at: datetime) -> dict[str, object]:
    rec = letter.record
    return {
        "rejection_id": rec.position,
        "platform": letter.platform or "regulator",
        "source_topic": rec.topic,
        "source_partition": rec.partition,
        "source_offset": rec.offset,
        "record_key": rec.key.decode("utf-8", "replace") if rec.key is not None else None,
        "record_id": letter.record_id,
        "entity": letter.entity,
        "stage": letter.stage,
        "error_class": letter.error_class,
        "field": letter.field,
        "value": letter.value,
        "rule": letter.rule,
        "message": letter.message,
        "rejected_at": rejected_at,
    }


def dead_letter_messages(
    letter: DeadLetter,
    topics: TopicNames,
    registry: SchemaRegistry,
    connector: str,
    rejected_at: datetime,
) -> tuple[OutboundMessage, OutboundMessage]:
    """The DLQ copy (original bytes) and the sender's feedback record, both keyed by position."""
    rec = letter.record
    source = (rec.topic, rec.partition, rec.offset)
    dlq = OutboundMessage(
        topic=topics.dlq,
        key=rec.key,
        value=rec.value,
        headers=dlq_headers(letter, connector),
        source=source,
    )
    feedback = OutboundMessage(
        topic=topics.feedback(letter.platform),
        key=rec.position.encode("utf-8"),
        value=registry.encode("rejection", rejection_record(letter, rejected_at)),
        source=source,
    )
    return dlq, feedback


class _ToMessagesFn(beam.DoFn):
    def __init__(self, topics: TopicNames, connector: str, uncommitted: frozenset[str]):
        self._topics = topics
        self._connector = connector
        self._uncommitted = uncommitted

    def setup(self) -> None:
        self._registry = SchemaRegistry.load()

    def process(self, letter: DeadLetter) -> Iterator[OutboundMessage]:
        for message in dead_letter_messages(
            letter, self._topics, self._registry, self._connector, utc_now()
        ):
            if letter.record.topic in self._uncommitted:
                # that partition's valid records are held elsewhere (e.g. for a
                # feed-health verdict): only their writer may advance its offsets
                message = dataclasses.replace(message, source=None)
            yield message


class ToDeadLetters(beam.PTransform):
    """Each dead letter -> its DLQ copy and the sender's feedback record."""

    def __init__(
        self,
        topics: TopicNames,
        connector: str,
        uncommitted_topics: frozenset[str] = frozenset(),
    ):
        super().__init__()
        self._fn = _ToMessagesFn(topics, connector, uncommitted_topics)

    def expand(self, dead: beam.PCollection) -> beam.PCollection:
        return dead | "ToMessages" >> beam.ParDo(self._fn)
