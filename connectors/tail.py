"""Read a topic back as decoded dicts, for `omm tail`, the demo and tests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from kafka import TopicPartition

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
        partitions = consumer.partitions_for_topic(topic)
        if not partitions and security is not None:
            raise_if_unauthorized(bootstrap, [topic], security)
        if not partitions:
            raise MissingTopics([topic])
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
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
                    yield line
                    seen += 1
                    if max_records is not None and seen >= max_records:
                        return
    finally:
        consumer.close()
