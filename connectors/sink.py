"""A producer shared by every writer of one pipeline in a worker process.

A pipeline writes valid records and dead letters from two branches. Joining
them with a Flatten before one writer would break fusion on the FnApiRunner
(it materialises Flatten inputs, so nothing is written until the reader
finishes). Instead each branch ends in its own writer, and the writers share
this sink: all of a bundle's elements are processed before any writer's
``finish_bundle``, so the first one to finish flushes everything the bundle
sent, from both branches, and only then commits the source offsets.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from kafka import KafkaAdminClient, KafkaProducer

from connectors import kafka_client
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
        security: KafkaSecurity | None = None,
    ):
        self._producer: KafkaProducer = kafka_client.producer(
            bootstrap, security, **producer_config
        )
        self._admin: KafkaAdminClient | None = (
            kafka_client.admin(bootstrap, security) if commit_group else None
        )
        self._commit_group = commit_group
        self._lock = threading.Lock()
        self._positions: dict[tuple[str, int], int] = {}
        self._failures: list[BaseException] = []
        self._pending = 0

    @classmethod
    def acquire(
        cls,
        sink_id: str,
        bootstrap: str,
        commit_group: str | None,
        producer_config: dict[str, Any],
        security: KafkaSecurity | None = None,
    ) -> KafkaSink:
        with cls._registry_lock:
            sink, users = cls._shared.get(sink_id, (None, 0))
            if sink is None:
                sink = cls(bootstrap, commit_group, producer_config, security)
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

    def send(self, message: OutboundMessage) -> None:
        future = self._producer.send(
            message.topic, key=message.key, value=message.value, headers=list(message.headers)
        )
        future.add_errback(self._failures.append)
        with self._lock:
            self._pending += 1
            if message.source is not None:
                topic, partition, offset = message.source
                if offset > self._positions.get((topic, partition), -1):
                    self._positions[(topic, partition)] = offset

    def flush_and_commit(self) -> int:
        """Flush every send so far; then commit the sources written. Returns records flushed."""
        with self._lock:
            positions, self._positions = self._positions, {}
            flushed, self._pending = self._pending, 0
        self._producer.flush()
        if self._failures:
            failures, self._failures = self._failures, []
            # Raising fails the bundle; the runner retries it and nothing of it
            # is committed: at-least-once.
            raise WriteFailed(f"{len(failures)} Kafka writes failed: {failures[0]!r}")
        if self._commit_group and positions and self._admin is not None:
            kafka_client.commit_offsets(
                self._admin,
                self._commit_group,
                {tp: offset + 1 for tp, offset in positions.items()},
            )
        return flushed

    def close(self) -> None:
        self._producer.close()
        if self._admin is not None:
            self._admin.close()
