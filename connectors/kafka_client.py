"""kafka-python clients with the settings omm relies on, in one place.

Producers are tuned for throughput with durability (acks=all, batching,
zstd) and retry a send until the delivery timeout of the current
:class:`~connectors.delivery.DeliveryPolicy` passes, as Kafka's own producer
does (no retry count: a fixed count of 100 ms retries gave up half a second
into a leader election). Consumers never auto-commit, because offsets are
committed only after the outputs of what was read are flushed (docs/design.md §4,
Delivery).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal, TypeVar

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError, NoError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata, TopicPartition

from connectors import delivery
from connectors.acl import raise_if_unauthorized
from connectors.security import KafkaSecurity, client_kwargs, login_errors
from connectors.topics import ResolvedTopic

# No "retries": kafka-python's default is unbounded, and the delivery timeout
# (from the policy, see producer()) is what bounds a send, as in Kafka's own.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "acks": "all",
    "linger_ms": 20,
    "batch_size": 256 * 1024,
    "compression_type": "zstd",
    "max_request_size": 4 * 1024 * 1024,
}

CONSUMER_DEFAULTS: dict[str, Any] = {
    "enable_auto_commit": False,
    "auto_offset_reset": "earliest",
    "max_poll_records": 5000,
    "fetch_max_bytes": 32 * 1024 * 1024,
    "max_partition_fetch_bytes": 8 * 1024 * 1024,
}


def producer(
    bootstrap: str,
    security: KafkaSecurity | None = None,
    policy: delivery.DeliveryPolicy | None = None,
    **overrides: Any,
) -> KafkaProducer:
    timing = (policy or delivery.policy()).producer_config()
    with login_errors(security, bootstrap):
        return KafkaProducer(
            bootstrap_servers=bootstrap.split(","),
            **{**PRODUCER_DEFAULTS, **timing, **client_kwargs(security), **overrides},
        )


def consumer(
    bootstrap: str,
    group_id: str | None = None,
    security: KafkaSecurity | None = None,
    policy: delivery.DeliveryPolicy | None = None,
    **overrides: Any,
) -> KafkaConsumer:
    timing = (policy or delivery.policy()).client_config()
    with login_errors(security, bootstrap):
        return KafkaConsumer(
            bootstrap_servers=bootstrap.split(","),
            group_id=group_id,
            **{**CONSUMER_DEFAULTS, **timing, **client_kwargs(security), **overrides},
        )


# beyond the producer's delivery timeout, after which every record has an outcome
ACK_MARGIN_S = 10.0


def send_acknowledged(
    bootstrap: str,
    topic: str,
    key: bytes,
    value: bytes,
    security: KafkaSecurity | None = None,
    policy: delivery.DeliveryPolicy | None = None,
) -> tuple[int, int]:
    """Send one record and wait until the broker acknowledged it (acks=all);
    its (partition, offset). Raises the KafkaError of a send that failed."""
    client = producer(bootstrap, security, policy)
    try:
        future = client.send(topic, key=key, value=value)
        client.flush()
        bound_s = client.config["delivery_timeout_ms"] / 1000 + ACK_MARGIN_S
        meta = future.get(timeout=bound_s)
        return meta.partition, meta.offset
    finally:
        client.close()


def admin(
    bootstrap: str,
    security: KafkaSecurity | None = None,
    policy: delivery.DeliveryPolicy | None = None,
    **overrides: Any,
) -> KafkaAdminClient:
    settings = {
        "client_id": "omm-admin",
        **(policy or delivery.policy()).client_config(),
        **client_kwargs(security),
        **overrides,
    }
    with login_errors(security, bootstrap):
        return KafkaAdminClient(bootstrap_servers=bootstrap.split(","), **settings)


def create_topics(
    bootstrap: str,
    topics: Iterable[ResolvedTopic],
    prefix: str = "",
    leader_wait_s: float | None = None,
    security: KafkaSecurity | None = None,
    extra_config: dict[str, str] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet, wait until every partition of every
    wanted topic (new or not) has a leader; return those created.

    Idempotent: existing topics are left alone (their settings are not changed).
    Waiting for existing topics too matters: a topic another process has just
    created exists before its partitions have leaders, and a producer writing
    then gets NotLeaderForPartition. ``extra_config`` is added to every new topic's
    settings (the benchmark's ``message.timestamp.type=LogAppendTime``).
    """
    wait_s = delivery.policy().leader_wait_s if leader_wait_s is None else leader_wait_s
    all_wanted = [prefix + t.name for t in topics]
    specs = {
        prefix + t.name: {
            "num_partitions": t.partitions,
            "replication_factor": t.replication_factor,
            "configs": {**t.kafka_config(), **(extra_config or {})},
        }
        for t in topics
    }
    client = admin(bootstrap, security)
    try:
        existing = set(client.list_topics())
        wanted = {name: spec for name, spec in specs.items() if name not in existing}
        if wanted:
            try:
                client.create_topics(wanted, wait_for_metadata=False)
            except TopicAlreadyExistsError:
                # another process created some concurrently: create the rest one by one
                for name, spec in wanted.items():
                    with contextlib.suppress(TopicAlreadyExistsError):
                        client.create_topics({name: spec}, wait_for_metadata=False)
        wait_for_leaders(client, all_wanted, wait_s)
        return sorted(wanted)
    finally:
        client.close()


class LeadersNotReady(RuntimeError):
    pass


def leaderless_partitions(client: KafkaAdminClient, topics: list[str]) -> list[str]:
    """``topic/partition`` (or ``topic``) of every wanted partition without a leader yet."""
    missing: list[str] = []
    described = {t["name"]: t for t in client.describe_topics(topics)}
    for name in topics:
        topic = described.get(name)
        if topic is None or topic.get("error_code", 0) != 0 or not topic.get("partitions"):
            missing.append(name)
            continue
        missing.extend(
            f"{name}/{p['partition_index']}"
            for p in topic["partitions"]
            if p.get("error_code", 0) != 0 or p.get("leader_id", -1) < 0
        )
    return missing


def wait_for_leaders(client: KafkaAdminClient, topics: list[str], timeout_s: float) -> None:
    """Poll metadata until every partition of ``topics`` has a leader, up to ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        try:
            missing = leaderless_partitions(client, topics)
        except KafkaError as exc:
            if not exc.retriable:
                raise
            missing = [f"metadata unavailable ({exc})"]
        if not missing:
            return
        if time.monotonic() >= deadline:
            shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
            raise LeadersNotReady(
                f"{len(missing)} partition(s) still without a leader after {timeout_s:.0f}s: "
                f"{shown} (is the broker overloaded? raise OMM_LEADER_WAIT_S)"
            )
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


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


def assign_topics(
    consumer: KafkaConsumer, topics: Iterable[str], at: Literal["beginning", "end"]
) -> list[TopicPartition]:
    """Assign ``consumer`` every partition of ``topics`` it knows of, each at its beginning
    or its end; the partitions assigned."""
    tps = [
        TopicPartition(topic, p)
        for topic in topics
        for p in sorted(consumer.partitions_for_topic(topic) or [])
    ]
    consumer.assign(tps)
    if at == "beginning":
        consumer.seek_to_beginning(*tps)
    else:
        consumer.seek_to_end(*tps)
    return tps


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
        offsets = delivery.ride_out(
            lambda: client.list_group_offsets({group_id: None}).get(group_id, {}),
            f"reading the committed offsets of group {group_id!r}",
        )
    finally:
        client.close()
    return {
        (tp.topic, tp.partition): meta.offset
        for tp, meta in offsets.items()
        if tp.topic in wanted and meta.offset >= 0
    }


def commit_offsets(
    client: KafkaAdminClient,
    group_id: str,
    positions: dict[tuple[str, int], int],
    policy: delivery.DeliveryPolicy | None = None,
) -> None:
    """Commit next-offsets for a group that reads by assignment (no members, so no generation).

    Retried through a broker outage, up to the policy's outage budget.
    """
    metadata = commit_metadata(time.time())
    offsets = {
        TopicPartition(t, p): OffsetAndMetadata(o, metadata, -1) for (t, p), o in positions.items()
    }

    def attempt() -> dict[TopicPartition, Any]:
        errors = client.alter_group_offsets(group_id, offsets)
        failed = {tp: err for tp, err in errors.items() if err is not NoError}
        # Per-partition errors come back as values, not raised: a coordinator
        # moving or loading after a broker restart must be retried like an outage.
        retriable = [err for err in failed.values() if getattr(err, "retriable", False)]
        if retriable:
            raise retriable[0](f"offset commit for group {group_id!r}: {failed}")
        return failed

    failed = delivery.ride_out(attempt, f"committing offsets of group {group_id!r}", policy)
    if failed:
        raise CommitFailed(f"offset commit for group {group_id!r} failed: {failed}")


class CommitFailed(RuntimeError):
    pass


# The broker keeps no time with a committed offset, so each commit carries its own:
# `omm status` tells from it how long ago a group last committed, from any machine.
_COMMITTED_AT = "omm:committed_at_ms="


def commit_metadata(now_s: float) -> str:
    """The metadata string committed with an offset: when it was committed."""
    return f"{_COMMITTED_AT}{int(now_s * 1000)}"


def committed_at_ms(metadata: str | None) -> int | None:
    """When an offset was committed (epoch ms), from its metadata; None when it says
    nothing (committed by an older omm or another tool)."""
    if not metadata or not metadata.startswith(_COMMITTED_AT):
        return None
    digits = metadata[len(_COMMITTED_AT) :]
    return int(digits) if digits.isdigit() else None


T = TypeVar("T")


def retrying(call: Callable[[], T], timeout_s: float = 30.0) -> T:
    """Retry a call while Kafka says the error is transient (a coordinator still
    loading on a fresh broker, a leader moving), up to ``timeout_s``.

    For short waits with a fixed deadline; a streaming pipeline's waits use
    :func:`connectors.delivery.ride_out` (the outage budget, logged).
    """
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


def delete_namespace(
    bootstrap: str, prefix: str, group_prefix: str, wait_s: float = 60.0
) -> list[str]:
    """Delete every topic named ``<prefix>…`` and the consumer groups named after the
    namespace; return the topics deleted, once the broker no longer lists them.

    Waits because Kafka deletes asynchronously: a topic re-created under the same
    name too early would be refused, or deleted after the fact. Group ids follow
    the pipelines' patterns, ``<prefix>…`` and ``<group_prefix>.<prefix>…``.
    """
    if not prefix.endswith(".") or len(prefix) < 2:
        # an empty prefix would be every topic of the cluster
        raise ValueError(f"a namespace prefix ends with '.', like 'demo.', not {prefix!r}")
    client = admin(bootstrap)
    try:
        doomed = sorted(t for t in client.list_topics() if t.startswith(prefix))
        if doomed:
            client.delete_topics(doomed)
        owned = (prefix, f"{group_prefix}.{prefix}")
        mine = [g["group_id"] for g in client.list_groups() if g["group_id"].startswith(owned)]
        if mine:
            client.delete_groups(mine)
        deadline = time.monotonic() + wait_s
        while any(t.startswith(prefix) for t in client.list_topics()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics under {prefix!r} still listed after {wait_s:g}s")
            time.sleep(0.2)
        return doomed
    finally:
        client.close()
