"""A producer shared by every writer of one pipeline in a worker process.

A pipeline writes valid records and dead letters from two branches. Joining
them with a Flatten before one writer would break fusion on the FnApiRunner
(it materialises Flatten inputs, so nothing is written until the reader
finishes). Instead each branch ends in its own writer, and the writers share
this sink: all of a bundle's elements are processed before any writer's
``finish_bundle``, so the first one to finish flushes everything the bundle
sent, from both branches, and only then commits the source offsets.

Through a broker outage the sink waits rather than fails: its producer keeps
every record of the bundle for the whole outage budget (retried in order),
a send that blocks on metadata is tried again, and the commit is retried;
the log says when Kafka went away and when it came back. Only when the
budget is spent does it raise :class:`~connectors.delivery.BrokerUnavailable`.
"""

from __future__ import annotations

import threading
import time
from typing import Any, ClassVar

from kafka import KafkaAdminClient

from connectors import delivery, kafka_client
from connectors.partitioning import partition_for
from connectors.producers import ClientName, NotAcknowledged, Producer, SendBlocked, make_producer
from connectors.records import OutboundMessage
from connectors.security import KafkaSecurity


class WriteFailed(RuntimeError):
    pass


class KafkaSink:
    _shared: ClassVar[dict[str, tuple[KafkaSink, int]]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        bootstrap: str,
        commit_group: str | None,
        producer_config: dict[str, Any],
        policy: delivery.DeliveryPolicy | None = None,
        security: KafkaSecurity | None = None,
        client: ClientName = "kafka-python",
    ):
        self._policy = policy or delivery.policy()
        self._bootstrap = bootstrap
        self._security = security
        # ``producer_config``: overrides in the chosen client's own terms
        self._producer: Producer = delivery.connect(
            lambda: make_producer(client, bootstrap, security, self._policy, producer_config),
            f"connecting the writer ({bootstrap})",
            self._policy,
        )
        try:
            self._admin: KafkaAdminClient | None = (
                delivery.connect(
                    lambda: kafka_client.admin(bootstrap, security, self._policy),
                    f"connecting the offset committer ({bootstrap})",
                    self._policy,
                )
                if commit_group
                else None
            )
        except BaseException:
            # a set-up the runner retries must not leave a producer (thread, sockets) behind
            self._producer.abandon()
            raise
        self._commit_group = commit_group
        self._lock = threading.Lock()
        self._positions: dict[tuple[str, int], int] = {}
        self._pending = 0
        # topic -> partition count, for partitioning keyed records here (see
        # connectors.partitioning); forgotten at every flush, so a topic that
        # gains partitions is seen within a bundle
        self._partition_counts: dict[str, int] = {}

    @classmethod
    def acquire(
        cls,
        sink_id: str,
        bootstrap: str,
        commit_group: str | None,
        producer_config: dict[str, Any],
        policy: delivery.DeliveryPolicy | None = None,
        security: KafkaSecurity | None = None,
        client: ClientName = "kafka-python",
    ) -> KafkaSink:
        with cls._registry_lock:
            sink, users = cls._shared.get(sink_id, (None, 0))
            if sink is None:
                sink = cls(bootstrap, commit_group, producer_config, policy, security, client)
            cls._shared[sink_id] = (sink, users + 1)
            return sink

    @classmethod
    def release(cls, sink_id: str) -> None:
        with cls._registry_lock:
            sink, users = cls._shared.get(sink_id, (None, 0))
            if sink is None:
                return
            if users <= 1:
                del cls._shared[sink_id]
                sink.close()
            else:
                cls._shared[sink_id] = (sink, users - 1)

    def _outage(self, what: str, since: float | None = None) -> delivery.OutageClock:
        return delivery.OutageClock(
            f"{what} ({self._bootstrap})",
            self._policy.outage_budget_s,
            self._policy.outage_log_after_s,
            since,
        )

    def send(self, message: OutboundMessage) -> None:
        # send() blocks while it has no metadata for the topic (or no buffer
        # room): during an outage that is SendBlocked after send_block_s,
        # tried again until the outage budget is spent.
        clock: delivery.OutageClock | None = None  # made on the first failure only: hot path
        started = time.monotonic()
        while True:
            try:
                self._producer.send(
                    message.topic,
                    message.key,
                    message.value,
                    message.headers,
                    self._partition(message.topic, message.key),
                )
            except SendBlocked as exc:
                if clock is None:
                    clock = self._outage(f"writing to {message.topic}", since=started)
                clock.failing(exc)
                continue
            if clock is not None:
                clock.ok()
            break
        with self._lock:
            self._pending += 1
            if message.source is not None:
                topic, partition, offset = message.source
                if offset > self._positions.get((topic, partition), -1):
                    self._positions[(topic, partition)] = offset

    def warm(self, topics: list[str]) -> None:
        """Fetch the metadata of ``topics`` now, before the first record to them: a first
        send to a topic otherwise waits for it (about 0.1 s per topic). Topics that do not
        exist must not be named: the producer would wait its send_block_s on each."""
        for topic in topics:
            if topic not in self._partition_counts:
                self._partition_counts[topic] = self._producer.partition_count(topic)

    def knows(self, topic: str) -> bool:
        """Whether the writer holds the topic's metadata (a send to it will not wait)."""
        return topic in self._partition_counts

    def _partition(self, topic: str, key: bytes | None) -> int | None:
        """Kafka's default partition for ``key`` (None: unkeyed, the client spreads them;
        or the client computes Java's partition itself, in C)."""
        if key is None or self._producer.partitions_keys_itself:
            return None
        count = self._partition_counts.get(topic)
        if count is None:
            # blocks for metadata like send() does: SendBlocked in an outage
            count = self._partition_counts[topic] = self._producer.partition_count(topic)
        return partition_for(key, count)

    def _flush(self) -> None:
        """Wait until every send so far is acknowledged or has failed, saying so in an outage."""
        clock = self._outage("waiting for write acknowledgements", since=time.monotonic())
        slice_s = self._policy.outage_log_after_s / 2
        while True:
            try:
                self._producer.flush(slice_s)
            except NotAcknowledged:
                # Not acknowledged yet: the producer itself keeps retrying
                # (its delivery timeout covers the outage budget).
                clock.failing("no acknowledgement")
                continue
            clock.ok()
            return

    def flush_and_commit(self) -> int:
        """Flush every send so far; then commit the sources written. Returns records flushed."""
        with self._lock:
            positions, self._positions = self._positions, {}
            flushed, self._pending = self._pending, 0
        self._flush()
        self._partition_counts.clear()
        failures = self._producer.take_failures()
        if failures:
            expired = [f for f in failures if getattr(f, "retriable", False)]
            if expired and len(expired) == len(failures):
                # the producer retried for its whole delivery timeout (>= the outage budget)
                raise delivery.BrokerUnavailable(
                    f"Kafka did not acknowledge {len(failures)} writes within "
                    f"{self._policy.outage_budget_s:.0f}s ({self._bootstrap}, outage budget "
                    f"OMM_OUTAGE_BUDGET_S): giving up; nothing of them was committed, "
                    f"rerun to resume. Last error: {failures[-1]!r}"
                )
            # Raising fails the bundle; nothing of it is committed: at-least-once.
            raise WriteFailed(f"{len(failures)} Kafka writes failed: {failures[0]!r}")
        if self._commit_group and positions and self._admin is not None:
            kafka_client.commit_offsets(
                self._admin,
                self._commit_group,
                {tp: offset + 1 for tp, offset in positions.items()},
                self._policy,
            )
        return flushed

    def close(self) -> None:
        self._producer.close()
        if self._admin is not None:
            self._admin.close()
