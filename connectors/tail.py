"""Read a topic back as decoded dicts, for `omm tail`, the demo and tests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaTimeoutError

from connectors import kafka_client
from connectors.acl import raise_if_unauthorized
from connectors.probe import MissingTopics
from connectors.security import KafkaSecurity
from schemas.registry import CodecError, SchemaRegistry


def decode_value(registry: SchemaRegistry, value: bytes | None) -> dict[str, Any]:
    if value is None:
        return {"value": None}
    try:
        entity, record = registry.decode(value)
    except CodecError as exc:
        return {
            "value_hex": value[:64].hex(),
            "value_bytes": len(value),
            "decode_error": exc.reason,
        }
    return {"entity": entity, "value": record}


def _line(registry: SchemaRegistry, rec: ConsumerRecord) -> dict[str, Any]:
    line: dict[str, Any] = {
        "topic": rec.topic,
        "partition": rec.partition,
        "offset": rec.offset,
        "timestamp_ms": rec.timestamp,
        "key": rec.key.decode("utf-8", "replace") if rec.key is not None else None,
    }
    if rec.headers:
        line["headers"] = {k: v.decode("utf-8", "replace") for k, v in rec.headers}
    line.update(decode_value(registry, rec.value))
    return line


def _assigned(
    consumer: KafkaConsumer, bootstrap: str, topic: str, security: KafkaSecurity | None
) -> list[TopicPartition]:
    partitions = consumer.partitions_for_topic(topic)
    if not partitions and security is not None:
        raise_if_unauthorized(bootstrap, [topic], security)
    if not partitions:
        raise MissingTopics([topic])
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    return tps


def tail_records(
    bootstrap: str,
    topic: str,
    from_beginning: bool = True,
    max_records: int | None = None,
    timeout_s: float = 5.0,
    security: KafkaSecurity | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield the topic's records until ``max_records`` or ``timeout_s`` without a new one."""
    registry = SchemaRegistry.load()
    consumer = kafka_client.consumer(bootstrap, security=security, max_poll_records=2000)
    try:
        tps = _assigned(consumer, bootstrap, topic, security)
        if from_beginning:
            consumer.seek_to_beginning(*tps)
        else:
            consumer.seek_to_end(*tps)
        seen = 0
        last = time.monotonic()
        while time.monotonic() - last < timeout_s:
            batch = consumer.poll(timeout_ms=200)
            for records in batch.values():
                for rec in records:
                    last = time.monotonic()
                    yield _line(registry, rec)
                    seen += 1
                    if max_records is not None and seen >= max_records:
                        return
    finally:
        consumer.close()


def read_to_end(
    bootstrap: str,
    topic: str,
    security: KafkaSecurity | None = None,
    timeout_s: float = 60.0,
) -> Iterator[dict[str, Any]]:
    """Every record the topic holds now, decoded as by :func:`tail_records`, each
    partition in offset order (so for one key, oldest first).

    Ends at the end offsets seen when it starts, not after a quiet spell, so a
    command reading a whole topic waits for nothing; ``timeout_s`` bounds the read
    (KafkaTimeoutError: the broker stopped answering part-way).
    """
    registry = SchemaRegistry.load()
    consumer = kafka_client.consumer(bootstrap, security=security, max_poll_records=2000)
    try:
        tps = _assigned(consumer, bootstrap, topic, security)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise KafkaTimeoutError(f"{topic} not read to its end within {timeout_s:g}s")
            for tp, records in consumer.poll(timeout_ms=200).items():
                for rec in records:
                    if rec.offset < ends[tp]:
                        yield _line(registry, rec)
    finally:
        consumer.close()
