"""One Kafka consumer serving many per-partition readers.

A splittable reader asks for "records of partition P from offset O" one
partition at a time. A consumer per partition costs a connection and a
metadata round trip each (seconds for a hundred partitions) and a blocking
poll each; instead one consumer fetches for every partition at once and
keeps what it got in per-partition buffers until that partition's reader
asks. Memory stays bounded because a reader fills only while the buffers
together hold less than ``max_buffered`` records (pausing busy partitions
instead was tried: a partition could stay paused with its reader waiting).

An empty poll means "nothing new" or "broker gone" alike (kafka-python's
consumer reconnects quietly), so an idle reader asks :meth:`check_broker`
now and then, which forces a fresh metadata round trip on a spare consumer.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from connectors import delivery, kafka_client
from connectors.records import KafkaRecord
from connectors.security import KafkaSecurity


class BufferedFetcher:
    """What every fetcher does the same way, whatever its client: per-partition buffers
    handed out from exactly the offset asked for, filled while they hold less than
    ``max_buffered`` records, and a broker probe when the reader has been quiet.

    A client's fetcher keys partitions as its client does (:meth:`_key`) and fills the
    buffers (:meth:`_fill`), assigns, rewinds and asks the broker (:meth:`_ask_broker`).
    """

    _max_buffered: int
    _buffers: dict[Any, deque[KafkaRecord]]
    # next offset the consumer will fetch for each assigned partition
    _fetch_pos: dict[Any, int]
    # when records last arrived or the broker last answered a probe
    _alive_at: float
    _probed_at: float

    def _key(self, topic: str, partition: int) -> Any:
        raise NotImplementedError

    def _assign(self, tp: Any, offset: int) -> None:
        raise NotImplementedError

    def _rewind(self, tp: Any, offset: int) -> None:
        raise NotImplementedError

    def _fill(self, timeout_ms: int, wanted: int) -> bool:
        """Fetch once into the buffers (about ``wanted`` records); whether anything arrived."""
        raise NotImplementedError

    def _ask_broker(self, timeout_ms: int) -> str | None:
        """Ask the broker for metadata: None when it answered, else why it did not."""
        raise NotImplementedError

    def take(
        self, topic: str, partition: int, offset: int, max_records: int, timeout_ms: int
    ) -> list[KafkaRecord]:
        """Up to ``max_records`` records of the partition starting exactly at ``offset``."""
        tp = self._key(topic, partition)
        if tp not in self._fetch_pos:
            self._assign(tp, offset)
        buffer = self._buffers[tp]
        expected_next = buffer[0].offset if buffer else self._fetch_pos[tp]
        if expected_next != offset:
            # a retried bundle, or a gap: fetch again from where the reader is
            self._rewind(tp, offset)
        timeout = timeout_ms if not buffer else 0
        while len(buffer) < max_records and self._buffered() < self._max_buffered:
            if not self._fill(timeout, max_records - len(buffer)):
                break
            timeout = 0  # take what is already fetched, do not wait for more
        return [buffer.popleft() for _ in range(min(max_records, len(buffer)))]

    def unread(self, topic: str, partition: int, records: list[KafkaRecord]) -> None:
        """Put back records taken but not used, so the next take starts with them."""
        self._buffers[self._key(topic, partition)].extendleft(reversed(records))

    def _buffered(self) -> int:
        return sum(len(b) for b in self._buffers.values())

    def check_broker(self, clock: delivery.OutageClock, every_s: float, timeout_ms: int) -> None:
        """Tell ``clock`` whether the broker answers, at most once per ``every_s`` of quiet.

        Records arriving prove it alive, so a busy reader never probes. The
        clock logs the outage and raises once its budget is spent.
        """
        now = time.monotonic()
        if now - self._alive_at < every_s or now - self._probed_at < every_s:
            return
        self._probed_at = now
        failure = self._ask_broker(timeout_ms)
        if failure is not None:
            clock.failing(f"no metadata answer within {timeout_ms} ms ({failure})")
            return
        self._alive_at = time.monotonic()
        clock.ok()


class PartitionFetcher(BufferedFetcher):
    def __init__(
        self,
        bootstrap: str,
        client_id: str,
        max_buffered: int = 100_000,
        security: KafkaSecurity | None = None,
        policy: delivery.DeliveryPolicy | None = None,
    ) -> None:
        self._bootstrap = bootstrap
        self._security = security
        self._policy = policy or delivery.policy()
        self._consumer = delivery.connect(
            lambda: kafka_client.consumer(
                bootstrap, security=security, policy=self._policy, client_id=client_id
            ),
            f"connecting the reader ({bootstrap})",
            self._policy,
        )
        self._probe: KafkaConsumer | None = None
        self._max_buffered = max_buffered
        self._buffers: dict[TopicPartition, deque[KafkaRecord]] = {}
        # next offset the consumer will fetch for each assigned partition
        self._fetch_pos: dict[TopicPartition, int] = {}
        # when records last arrived or the broker last answered a probe
        self._alive_at = time.monotonic()
        self._probed_at = 0.0

    def close(self) -> None:
        self._consumer.close()
        if self._probe is not None:
            self._probe.close()

    def _assign(self, tp: TopicPartition, offset: int) -> None:
        # assign() replaces the whole assignment and forgets positions: re-seek all.
        self._fetch_pos[tp] = offset
        self._buffers[tp] = deque()
        self._consumer.assign(list(self._fetch_pos))
        for other, pos in self._fetch_pos.items():
            self._consumer.seek(other, pos)

    def _rewind(self, tp: TopicPartition, offset: int) -> None:
        self._buffers[tp].clear()
        self._fetch_pos[tp] = offset
        self._consumer.seek(tp, offset)

    def _key(self, topic: str, partition: int) -> TopicPartition:
        return TopicPartition(topic, partition)

    def caught_up(self, topic: str, partition: int, offset: int) -> bool:
        """Whether ``offset`` is at the partition's end, by the high watermark of the last fetch.

        The cached watermark, not an ``end_offsets`` request: kafka-python 3.0.12
        was seen to block forever on that request from a consumer with fetches in
        flight. Unknown (no fetch answered yet) counts as not caught up.
        """
        tp = TopicPartition(topic, partition)
        if tp not in self._fetch_pos:
            return False  # not read here yet: its first take assigns it
        end = self._consumer.highwater(tp)
        if end is None:
            # no fetch answered since (re)assignment: ask a consumer with nothing in flight
            end = self._spare().end_offsets([tp])[tp]
        return bool(offset >= end)

    def _spare(self) -> KafkaConsumer:
        if self._probe is None:
            self._probe = delivery.connect(
                lambda: kafka_client.consumer(
                    self._bootstrap,
                    security=self._security,
                    policy=self._policy,
                    client_id="omm-read-probe",
                ),
                f"connecting the reader's probe ({self._bootstrap})",
                self._policy,
            )
        return self._probe

    def _ask_broker(self, timeout_ms: int) -> str | None:
        try:
            self._spare().bootstrap(timeout_ms=timeout_ms, refresh=True)
        except KafkaError as exc:
            if not exc.retriable:
                raise
            return str(exc)
        return None

    def _fill(self, timeout_ms: int, wanted: int) -> bool:
        # kafka-python's poll takes what its fetches brought, whatever is wanted
        polled: dict[TopicPartition, list[Any]] = self._consumer.poll(timeout_ms=timeout_ms)
        for tp, records in polled.items():
            if not records or tp not in self._buffers:
                continue
            buffer = self._buffers[tp]
            buffer.extend(
                KafkaRecord(
                    topic=r.topic,
                    partition=r.partition,
                    offset=r.offset,
                    key=r.key,
                    value=r.value,
                    headers=tuple(r.headers) if r.headers else (),
                    timestamp_ms=r.timestamp,
                )
                for r in records
            )
            self._fetch_pos[tp] = records[-1].offset + 1
        if any(polled.values()):
            self._alive_at = time.monotonic()
            return True
        return False
