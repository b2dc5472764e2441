"""Small helpers that let an integration test read like its scenario."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

from connectors import kafka_client
from connectors.topics import TopicNames
from omm.config import resolved_topics
from schemas.registry import CodecError, SchemaRegistry

REGISTRY = SchemaRegistry.load()


def delist_task(
    task_id: str,
    platform: str,
    listing_id: str,
    issued: Any,
    deadline: Any,
    seller_id: str = "s-1",
    **changes: Any,
) -> dict[str, Any]:
    """A DELIST task record as enforce issues them (a FAIL of the kettle by brand and model)."""
    return {
        "task_id": task_id,
        "kind": "DELIST",
        "platform": platform,
        "seller_id": seller_id,
        "listing_id": listing_id,
        "inspection_id": "SAMR-2026-00001",
        "product_key": "midea|midea|KX2000A",
        "brand": "Midea",
        "model": "KX-2000A",
        "manufacturer": None,
        "verdict": "FAIL",
        "match_method": "BRAND_MODEL",
        "match_confidence": 0.95,
        "legal_basis": "Product Quality Law Art. 49",
        "reason": "failed sampling inspection",
        "state": "ISSUED",
        "deadline_at": deadline,
        "issued_at": issued,
        "evidence_ref": "omm.valid.inspections/0/1",
        **changes,
    }


def fresh_namespace(platforms: list[str], bootstrap: str) -> TopicNames:
    """A private set of catalog topics (for the given platforms) under a unique prefix."""
    topics = TopicNames(prefix=f"t{uuid.uuid4().hex[:10]}.")
    kafka_client.create_topics(
        bootstrap, resolved_topics(only_platforms=platforms), prefix=topics.prefix
    )
    return topics


def produce_raw(
    bootstrap: str, topic: str, values: Iterable[tuple[bytes | None, bytes | None]]
) -> int:
    producer = kafka_client.producer(bootstrap)
    n = 0
    for key, value in values:
        producer.send(topic, key=key, value=value)
        n += 1
    producer.flush()
    producer.close()
    return n


def produce_avro(
    bootstrap: str, topic: str, entity: str, records: Iterable[dict[str, Any]], key_field: str
) -> int:
    """Encode with the current schema as a platform's own producer would; no rules checked."""
    return produce_raw(
        bootstrap,
        topic,
        ((str(r[key_field]).encode(), REGISTRY.encode(entity, r)) for r in records),
    )


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]
    record: dict[str, Any] | None  # decoded when it is Avro single-object

    @property
    def entity(self) -> str | None:
        return self.record.get("__entity") if self.record else None


def read_all(
    bootstrap: str, topic: str, expect: int | None = None, timeout_s: float = 10.0
) -> list[Message]:
    """Every record on the topic (stops early once ``expect`` records arrived)."""
    consumer = kafka_client.consumer(bootstrap)
    tps = kafka_client.assign_topics(consumer, [topic], "beginning")
    ends = consumer.end_offsets(tps)
    out: list[Message] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            for r in records:
                try:
                    entity, decoded = REGISTRY.decode(r.value) if r.value else (None, None)
                    record = {**decoded, "__entity": entity} if decoded is not None else None
                except CodecError:
                    record = None
                out.append(
                    Message(
                        r.topic,
                        r.partition,
                        r.offset,
                        r.key,
                        r.value,
                        {k: v.decode("utf-8", "replace") for k, v in (r.headers or [])},
                        record,
                    )
                )
        done = all(consumer.position(tp) >= ends[tp] for tp in tps)
        if (expect is None and done) or (expect is not None and len(out) >= expect and done):
            break
    consumer.close()
    return out


def ingest_until_idle(
    bootstrap: str,
    topics: TopicNames,
    platforms: list[str],
    config_dir: str | None = None,
    idle_s: float = 3.0,
) -> dict[str, Any]:
    """Run the real ingest pipeline (bounded) and return its accounts by unprefixed topic."""
    from omm.jobs import ingest_job
    from pipelines.ingest import run_ingest

    job = ingest_job(
        bootstrap,
        topics,
        platforms=platforms,
        group_id=f"{topics.prefix}ingest",
        key=b"test-key-not-a-secret",
        idle_timeout_s=idle_s,
        config_dir=Path(config_dir) if config_dir else None,
    )
    accounts = run_ingest(job, ["--runner=FnApiRunner"])
    return {topics.strip(a.topic): a for a in accounts}


def copy_topics(
    bootstrap: str, source: TopicNames, target: TopicNames, names: Iterable[str]
) -> int:
    """Copy each catalog topic (unprefixed name) from ``source`` to ``target``: every record to
    the same partition with its key, value, headers and timestamp, in order, so offsets, event
    times and record times are the same and two runs over the two namespaces read the same
    inputs. Returns how many records were copied."""
    consumer = kafka_client.consumer(bootstrap)
    producer = kafka_client.producer(bootstrap)
    copied = 0
    for name in names:
        topic = f"{source.prefix}{name}"
        tps = kafka_client.assign_topics(consumer, [topic], "beginning")
        ends = consumer.end_offsets(tps)
        deadline = time.monotonic() + 30.0
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} to its end within 30 s")
            for records in consumer.poll(timeout_ms=200).values():
                for r in records:
                    producer.send(
                        f"{target.prefix}{name}",
                        key=r.key,
                        value=r.value,
                        headers=list(r.headers or []),
                        partition=r.partition,
                        timestamp_ms=r.timestamp,
                    )
                    copied += 1
    producer.flush()
    producer.close()
    consumer.close()
    return copied


def unprefixed(value: Any, prefix: str) -> Any:
    """``value`` with every occurrence of a topic namespace's prefix taken out of its strings
    (and of the strings in its lists, tuples, dicts and dataclasses, the latter as dicts): what
    two namespaces' outputs differ by."""
    if is_dataclass(value) and not isinstance(value, type):
        return unprefixed(asdict(value), prefix)
    if isinstance(value, str):
        return value.replace(prefix, "")
    if isinstance(value, bytes):
        return value.replace(prefix.encode("utf-8"), b"")
    if isinstance(value, dict):
        return {unprefixed(k, prefix): unprefixed(v, prefix) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(unprefixed(v, prefix) for v in value)
    return value
