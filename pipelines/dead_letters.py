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
from typing import Any

import apache_beam as beam

from connectors.records import KafkaRecord, OutboundMessage
from connectors.topics import TopicNames
from pipelines.rules.record_rules import RuleViolation
from schemas.models import ENTITY_MODELS, utc_now
from schemas.registry import (
    CodecError,
    CorruptBody,
    EmptyValue,
    NotSingleObjectEncoded,
    SchemaRegistry,
    UnknownFingerprint,
    WrongEntity,
)

CONNECT_PREFIX = "__connect.errors."


@dataclass(frozen=True)
class DeadLetter:
    """A record a stage refused, with the reason in the domain's words."""

    record: KafkaRecord
    stage: str  # DECODE, RECORD_RULES, ...
    error_class: str
    message: str
    platform: str | None
    # the entity the source topic carries; see decoded_entity for what the bytes were
    entity: str | None = None
    record_id: str | None = None
    field: str | None = None
    value: str | None = None
    rule: str | None = None

    @property
    def decoded_entity(self) -> str | None:
        """The entity the bytes decoded as: None when they did not decode (stage DECODE),
        even though the source topic says which entity was expected (``entity``)."""
        return None if self.stage == "DECODE" else self.entity


# --- Kafka Connect error headers (DeadLetterQueueReporter) -------------------------
# Connect writes the *executing* stage's class (converter, transform) under
# ``class.name`` and the exception's under ``exception.class.name``, both fully
# qualified; DLQ tooling written for Connect reads them by these exact names.
ERROR_HEADER_ORIG_TOPIC = CONNECT_PREFIX + "topic"
ERROR_HEADER_ORIG_PARTITION = CONNECT_PREFIX + "partition"
ERROR_HEADER_ORIG_OFFSET = CONNECT_PREFIX + "offset"
ERROR_HEADER_CONNECTOR_NAME = CONNECT_PREFIX + "connector.name"
ERROR_HEADER_TASK_ID = CONNECT_PREFIX + "task.id"
ERROR_HEADER_STAGE = CONNECT_PREFIX + "stage"
ERROR_HEADER_EXECUTING_CLASS = CONNECT_PREFIX + "class.name"
ERROR_HEADER_EXCEPTION = CONNECT_PREFIX + "exception.class.name"
ERROR_HEADER_EXCEPTION_MESSAGE = CONNECT_PREFIX + "exception.message"

# The class doing the work at each stage (Connect's executingClass).
_EXECUTING_CLASSES = {
    "DECODE": f"{SchemaRegistry.__module__}.{SchemaRegistry.__qualname__}",
}
# Errors a stage reports by short name (Rejection.error_class) -> the defining class.
_ERROR_CLASSES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        CodecError,
        EmptyValue,
        NotSingleObjectEncoded,
        UnknownFingerprint,
        WrongEntity,
        CorruptBody,
        RuleViolation,
    )
}


def decode_or_dead_letter(
    registry: SchemaRegistry, rec: KafkaRecord, entity: str
) -> dict[str, Any] | DeadLetter:
    """A record of omm's own topics decoded as ``entity``, or the dead letter saying why not
    (what enforce and comply do with every record they read)."""
    try:
        return registry.decode(rec.value or b"", expected_entity=entity)[1]
    except CodecError as exc:
        return DeadLetter(rec, "DECODE", type(exc).__name__, exc.reason, None, entity)


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def executing_class(letter: DeadLetter) -> str:
    """Connect's ``class.name``: the class whose stage refused the record."""
    if letter.stage == "RECORD_RULES" and letter.entity in ENTITY_MODELS:
        return _qualified(ENTITY_MODELS[letter.entity])  # the model holds the record rules
    return _EXECUTING_CLASSES.get(letter.stage, f"{__name__}.{letter.stage}")


def exception_class(letter: DeadLetter) -> str:
    """Connect's ``exception.class.name``: the fully qualified class of the error."""
    cls = _ERROR_CLASSES.get(letter.error_class)
    return _qualified(cls) if cls is not None else letter.error_class


def _utf8(text: str) -> bytes:
    # a reason may quote a lone surrogate from a pushed line: escape, never fail the DLQ
    return text.encode("utf-8", "backslashreplace")


def dlq_headers(letter: DeadLetter, connector: str) -> tuple[tuple[str, bytes], ...]:
    rec = letter.record
    error_headers = {
        ERROR_HEADER_ORIG_TOPIC: rec.topic,
        ERROR_HEADER_ORIG_PARTITION: str(rec.partition),
        ERROR_HEADER_ORIG_OFFSET: str(rec.offset),
        ERROR_HEADER_CONNECTOR_NAME: connector,
        ERROR_HEADER_TASK_ID: "0",
        ERROR_HEADER_STAGE: letter.stage,
        ERROR_HEADER_EXECUTING_CLASS: executing_class(letter),
        ERROR_HEADER_EXCEPTION: exception_class(letter),
        ERROR_HEADER_EXCEPTION_MESSAGE: letter.message,
    }
    omm_headers = {
        "omm.errors.platform": letter.platform,
        "omm.errors.entity": letter.decoded_entity,
        "omm.errors.field": letter.field,
        "omm.errors.value": letter.value,
        "omm.errors.rule": letter.rule,
    }
    # Kafka Connect keeps the original headers and appends its own.
    return (
        rec.headers
        + tuple((k, _utf8(v)) for k, v in error_headers.items())
        + tuple((k, _utf8(v)) for k, v in omm_headers.items() if v is not None)
    )


# --- end of Kafka Connect error headers ----------------------------------------------


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
        "entity": letter.decoded_entity,
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
