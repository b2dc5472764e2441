"""What the broker knows about a pipeline's progress, read without joining any group.

`omm status` and the metrics endpoint take their figures from here, so they work
from any machine and for any runner: the log end offset of each partition, the
first offset written since a moment (``offsets_for_times``: how many records
arrived in a window), and the offsets each consumer group committed, with the
time each commit carries in its metadata (:func:`kafka_client.commit_metadata`).
Nothing here subscribes or commits, so reading never disturbs a running pipeline.

The latest record per key of a compacted topic (comply's statuses) is read by
:class:`LatestByKey`, which keeps its position between reads: a scrape every
few seconds reads only what was written since the last one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaTimeoutError

from connectors import kafka_client
from connectors.security import KafkaSecurity
from connectors.tail import decode_value
from schemas.registry import SchemaRegistry

Partition = tuple[str, int]


@dataclass(frozen=True)
class Commit:
    """A group's committed next offset on one partition, and when it was committed
    (epoch ms; None when the commit says nothing about its time)."""

    offset: int
    at_ms: int | None


@dataclass(frozen=True)
class OffsetsSnapshot:
    """The broker's offsets at one moment, for the topics and groups asked about.

    ``ends``: the log end offset (the next offset to be written) per partition;
    ``since``: per partition, the first offset whose timestamp is at or after
    ``since_ms`` (the end offset when none is), so ``ends - since`` records
    arrived since then; ``commits``: per group, its commits on those partitions.
    Topics that do not exist are left out (``missing``).
    """

    since_ms: int
    ends: dict[Partition, int]
    since: dict[Partition, int]
    commits: dict[str, dict[Partition, Commit]]
    missing: frozenset[str] = field(default_factory=frozenset)


def read_offsets(
    bootstrap: str,
    topics: Iterable[str],
    groups: Iterable[str],
    since_ms: int,
    security: KafkaSecurity | None = None,
    timeout_s: float | None = None,
) -> OffsetsSnapshot:
    """One snapshot: end offsets, offsets at ``since_ms`` and the groups' commits.

    ``timeout_s`` bounds the connection and each request (None: the delivery policy's).
    """
    wanted = sorted(set(topics))
    overrides: dict[str, Any] = {}
    if timeout_s is not None:
        overrides = {"bootstrap_timeout_ms": max(1, int(timeout_s * 1000))}
    probe = kafka_client.consumer(bootstrap, security=security, **overrides)
    try:
        tps: list[TopicPartition] = []
        missing: set[str] = set()
        for topic in wanted:
            parts = probe.partitions_for_topic(topic)
            if not parts:
                missing.add(topic)
                continue
            tps.extend(TopicPartition(topic, p) for p in sorted(parts))
        ends_found = probe.end_offsets(tps) if tps else {}
        at_found = probe.offsets_for_times({tp: since_ms for tp in tps}) if tps else {}
    finally:
        probe.close()
    ends = {(tp.topic, tp.partition): int(o) for tp, o in ends_found.items()}
    since = {}
    for tp, found in at_found.items():
        key = (tp.topic, tp.partition)
        # None: nothing was written at or after since_ms, so none arrived in the window
        since[key] = int(found.offset) if found is not None else ends[key]
    present = {tp.topic for tp in tps}
    return OffsetsSnapshot(
        since_ms=since_ms,
        ends=ends,
        since=since,
        commits=read_commits(bootstrap, groups, present, security, timeout_s),
        missing=frozenset(missing),
    )


def read_commits(
    bootstrap: str,
    groups: Iterable[str],
    topics: Iterable[str],
    security: KafkaSecurity | None = None,
    timeout_s: float | None = None,
) -> dict[str, dict[Partition, Commit]]:
    """Each group's commits on ``topics`` (a group that never committed: empty).

    A coordinator still loading is retried for ``timeout_s`` (None: 30 s), not for a
    pipeline's outage budget: whoever asks (a command, a scrape) wants an answer soon.
    """
    ids = sorted(set(groups))
    if not ids:
        return {}
    wanted = set(topics)
    overrides: dict[str, Any] = {}
    if timeout_s is not None:
        overrides = {"bootstrap_timeout_ms": max(1, int(timeout_s * 1000))}
    client = kafka_client.admin(bootstrap, security, **overrides)
    try:
        found = kafka_client.retrying(
            lambda: client.list_group_offsets({g: None for g in ids}),
            timeout_s if timeout_s is not None else 30.0,
        )
    finally:
        client.close()
    out: dict[str, dict[Partition, Commit]] = {g: {} for g in ids}
    for group, offsets in found.items():
        for tp, meta in offsets.items():
            if tp.topic in wanted and meta.offset >= 0:
                at_ms = kafka_client.committed_at_ms(meta.metadata)
                out.setdefault(group, {})[(tp.topic, tp.partition)] = Commit(meta.offset, at_ms)
    return out


def timestamps_at(
    bootstrap: str,
    positions: Mapping[Partition, int],
    security: KafkaSecurity | None = None,
    timeout_s: float = 10.0,
) -> dict[Partition, int]:
    """The timestamp (epoch ms) of the record at each position: for a committed offset
    with a lag, when the oldest record still waiting was written. A position past the
    end, or one nothing answered for within ``timeout_s``, is left out."""
    if not positions:
        return {}
    # one small fetch per partition: only the first record's timestamp is wanted
    probe = kafka_client.consumer(
        bootstrap,
        security=security,
        max_partition_fetch_bytes=64 * 1024,
        fetch_max_bytes=4 * 1024 * 1024,
        max_poll_records=len(positions) * 8,
    )
    try:
        tps = {TopicPartition(t, p): offset for (t, p), offset in positions.items()}
        probe.assign(list(tps))
        for tp, offset in tps.items():
            probe.seek(tp, offset)
        found: dict[Partition, int] = {}
        deadline = time.monotonic() + timeout_s
        while len(found) < len(tps) and time.monotonic() < deadline:
            for tp, records in probe.poll(timeout_ms=200).items():
                key = (tp.topic, tp.partition)
                if records and key not in found:
                    found[key] = int(records[0].timestamp)
                    probe.pause(tp)
        return found
    finally:
        probe.close()


T = TypeVar("T")


class LatestByKey(Generic[T]):
    """The latest decoded value per key of a (compacted) topic, as compaction leaves it:
    a later record replaces an earlier one, a tombstone removes its key.

    ``project`` keeps only what is needed of each value (memory grows with the keys,
    not the records). :meth:`refresh` reads from where the last one stopped to the
    end offsets seen as it starts (and whatever the last poll brought past them), so it
    waits for no quiet spell.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        project: Callable[[Mapping[str, Any]], T],
        security: KafkaSecurity | None = None,
    ) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._project = project
        self._security = security
        self._registry = SchemaRegistry.load()
        self._consumer: KafkaConsumer | None = None
        self._tps: list[TopicPartition] = []
        self.latest: dict[bytes, T] = {}
        self.undecoded = 0

    def _open(self) -> KafkaConsumer:
        consumer = kafka_client.consumer(
            self._bootstrap, security=self._security, max_poll_records=5000
        )
        parts = consumer.partitions_for_topic(self._topic)
        if not parts:
            consumer.close()
            raise LookupError(f"topic {self._topic!r} does not exist (run `omm topics create`)")
        self._tps = [TopicPartition(self._topic, p) for p in sorted(parts)]
        consumer.assign(self._tps)
        consumer.seek_to_beginning(*self._tps)
        return consumer

    def refresh(self, timeout_s: float = 60.0) -> dict[bytes, T]:
        """Read what was written since the last refresh; the latest value per key."""
        if self._consumer is None:
            self._consumer = self._open()
        consumer = self._consumer
        ends = consumer.end_offsets(self._tps)
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in self._tps):
            if time.monotonic() > deadline:
                raise KafkaTimeoutError(f"{self._topic} not read to its end within {timeout_s:g}s")
            for records in consumer.poll(timeout_ms=200).values():
                for rec in records:
                    # past ``ends`` too: the position moved past it, the next read starts after
                    if rec.key is None:
                        continue
                    decoded = decode_value(self._registry, rec.value)
                    if "decode_error" in decoded:
                        self.undecoded += 1
                    elif decoded["value"] is None:
                        self.latest.pop(rec.key, None)
                    else:
                        self.latest[rec.key] = self._project(decoded["value"])
        return self.latest

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
