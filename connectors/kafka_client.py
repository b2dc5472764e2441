"""kafka-python clients with the settings omm relies on, in one place.

Producers are tuned for throughput with durability (acks=all, batching,
zstd); consumers never auto-commit, because offsets are committed only after
the outputs of what was read are flushed (DESIGN.md §4, Delivery).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError, NoError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata, TopicPartition

from connectors.acl import raise_if_unauthorized
from connectors.security import KafkaSecurity, client_kwargs, login_errors
from omm.config import ResolvedTopic

PRODUCER_DEFAULTS: dict[str, Any] = {
    "acks": "all",
    "linger_ms": 20,
    "batch_size": 256 * 1024,
    "compression_type": "zstd",
    "max_request_size": 4 * 1024 * 1024,
    "retries": 5,
}

CONSUMER_DEFAULTS: dict[str, Any] = {
    "enable_auto_commit": False,
    "auto_offset_reset": "earliest",
    "max_poll_records": 5000,
    "fetch_max_bytes": 32 * 1024 * 1024,
    "max_partition_fetch_bytes": 8 * 1024 * 1024,
}


def producer(
    bootstrap: str, security: KafkaSecurity | None = None, **overrides: Any
) -> KafkaProducer:
    with login_errors(security, bootstrap):
        return KafkaProducer(
            bootstrap_servers=bootstrap.split(","),
            **{**PRODUCER_DEFAULTS, **client_kwargs(security), **overrides},
        )


def consumer(
    bootstrap: str,
    group_id: str | None = None,
    security: KafkaSecurity | None = None,
    **overrides: Any,
) -> KafkaConsumer:
    with login_errors(security, bootstrap):
        return KafkaConsumer(
            bootstrap_servers=bootstrap.split(","),
            group_id=group_id,
            **{**CONSUMER_DEFAULTS, **client_kwargs(security), **overrides},
        )


def admin(bootstrap: str, security: KafkaSecurity | None = None) -> KafkaAdminClient:
    with login_errors(security, bootstrap):
        return KafkaAdminClient(
            bootstrap_servers=bootstrap.split(","), client_id="omm-admin", **client_kwargs(security)
        )


def create_topics(
    bootstrap: str,
    topics: Iterable[ResolvedTopic],
    prefix: str = "",
    security: KafkaSecurity | None = None,
) -> list[str]:
    """Create the topics that do not exist yet and wait for their leaders; return those created.

    Idempotent: existing topics are left alone (their settings are not changed).
    """
    client = admin(bootstrap, security)
    try:
        existing = set(client.list_topics())
        wanted = {
            prefix + t.name: {
                "num_partitions": t.partitions,
                "replication_factor": t.replication_factor,
                "configs": t.kafka_config(),
            }
            for t in topics
            if prefix + t.name not in existing
        }
        if not wanted:
            return []
        try:
            client.create_topics(wanted, wait_for_metadata=True)
        except TopicAlreadyExistsError:
            # another process created some concurrently: create the rest one by one
            for name, spec in wanted.items():
                with contextlib.suppress(TopicAlreadyExistsError):
                    client.create_topics({name: spec}, wait_for_metadata=True)
        return sorted(wanted)
    finally:
        client.close()


def partitions_for(
    bootstrap: str, topics: Iterable[str], security: KafkaSecurity | None = None
) -> dict[str, list[int]]:
    """Partition ids per topic; a missing topic is an error naming it."""
    probe = consumer(bootstrap, security=security)
    try:
        out: dict[str, list[int]] = {}
        for topic in topics:
            parts = probe.partitions_for_topic(topic)
            if not parts and security is not None:
                raise_if_unauthorized(bootstrap, [topic], security)
            if not parts:
                raise LookupError(f"topic {topic!r} does not exist (run `omm topics create`)")
            out[topic] = sorted(parts)
        return out
    finally:
        probe.close()


def beginning_offsets(
    bootstrap: str, parts: dict[str, list[int]], security: KafkaSecurity | None = None
) -> dict[tuple[str, int], int]:
    probe = consumer(bootstrap, security=security)
    try:
        found = probe.beginning_offsets(
            [TopicPartition(t, p) for t, ps in parts.items() for p in ps]
        )
        return {(tp.topic, tp.partition): offset for tp, offset in found.items()}
    finally:
        probe.close()


def committed_offsets(
    bootstrap: str, group_id: str, topics: Iterable[str], security: KafkaSecurity | None = None
) -> dict[tuple[str, int], int]:
    """The group's committed next-offsets for the given topics' partitions (absent if none)."""
    wanted = set(topics)
    client = admin(bootstrap, security)
    try:
        offsets = retrying(lambda: client.list_group_offsets({group_id: None}).get(group_id, {}))
    finally:
        client.close()
    return {
        (tp.topic, tp.partition): meta.offset
        for tp, meta in offsets.items()
        if tp.topic in wanted and meta.offset >= 0
    }


def commit_offsets(
    client: KafkaAdminClient, group_id: str, positions: dict[tuple[str, int], int]
) -> None:
    """Commit next-offsets for a group that reads by assignment (no members, so no generation)."""
    errors = retrying(
        lambda: client.alter_group_offsets(
            group_id,
            {TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in positions.items()},
        )
    )
    failed = {tp: err for tp, err in errors.items() if err is not NoError}
    if failed:
        raise CommitFailed(f"offset commit for group {group_id!r} failed: {failed}")


class CommitFailed(RuntimeError):
    pass


T = TypeVar("T")


def retrying(call: Callable[[], T], timeout_s: float = 30.0) -> T:
    """Retry a call while Kafka says the error is transient (a coordinator still
    loading on a fresh broker, a leader moving), up to ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        try:
            return call()
        except KafkaError as exc:
            if not exc.retriable or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
