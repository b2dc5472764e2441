"""The reader's shared consumer on confluent-kafka (``OMM_KAFKA_CLIENT=confluent``).

The same contract as :class:`connectors.fetcher.PartitionFetcher` (one consumer
fetching for every partition of a read, per-partition buffers, records handed
out from exactly the offset asked for), on librdkafka: kafka-python parses
every fetched record batch in Python, about an eighth of ingest's time. Records
come out as :class:`~connectors.records.KafkaRecord` directly.

librdkafka prefetches assigned partitions into its own queue, bounded by
``queued.max.messages.kbytes``; the per-partition buffers here are bounded by
``max_buffered`` as in the kafka-python fetcher.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from connectors import delivery
from connectors.fetcher import BufferedFetcher
from connectors.records import KafkaRecord
from connectors.security import KafkaSecurity

# librdkafka's "no offset known yet" for a watermark it has not fetched
_UNKNOWN = -1001


def consumer_config(
    bootstrap: str, client_id: str, security: KafkaSecurity | None, policy: delivery.DeliveryPolicy
) -> dict[str, Any]:
    from connectors import kafka_client
    from connectors.producers import confluent_config

    # the connection and security settings shared with the producer, none of its batching
    shared = confluent_config(bootstrap, security, policy)
    keep = {"bootstrap.servers", "reconnect.backoff.max.ms"} | {
        k for k in shared if k.startswith(("security.", "sasl.", "ssl."))
    }
    defaults = kafka_client.CONSUMER_DEFAULTS
    return {
        **{k: v for k, v in shared.items() if k in keep},
        "client.id": client_id,
        # required by the client, never joined: partitions are assigned, offsets
        # committed by the sink after its flush
        "group.id": f"{client_id}-unused",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "fetch.max.bytes": defaults["fetch_max_bytes"],
        "max.partition.fetch.bytes": defaults["max_partition_fetch_bytes"],
    }


class ConfluentPartitionFetcher(BufferedFetcher):
    def __init__(
        self,
        bootstrap: str,
        client_id: str,
        max_buffered: int = 100_000,
        security: KafkaSecurity | None = None,
        policy: delivery.DeliveryPolicy | None = None,
    ) -> None:
        import logging

        from confluent_kafka import Consumer

        self._policy = policy or delivery.policy()
        config = consumer_config(bootstrap, client_id, security, self._policy)
        config["logger"] = logging.getLogger("kafka.librdkafka")
        self._consumer = Consumer(config)
        self._max_buffered = max_buffered
        self._buffers: dict[tuple[str, int], deque[KafkaRecord]] = {}
        # next offset the consumer will fetch for each assigned partition
        self._fetch_pos: dict[tuple[str, int], int] = {}
        self._alive_at = time.monotonic()
        self._probed_at = 0.0

    def close(self) -> None:
        self._consumer.close()

    def _assign(self, tp: tuple[str, int], offset: int) -> None:
        from confluent_kafka import TopicPartition

        self._fetch_pos[tp] = offset
        self._buffers[tp] = deque()
        self._consumer.incremental_assign([TopicPartition(tp[0], tp[1], offset)])

    def _rewind(self, tp: tuple[str, int], offset: int) -> None:
        from confluent_kafka import TopicPartition

        self._buffers[tp].clear()
        self._fetch_pos[tp] = offset
        self._consumer.seek(TopicPartition(tp[0], tp[1], offset))

    def _key(self, topic: str, partition: int) -> tuple[str, int]:
        return (topic, partition)

    def caught_up(self, topic: str, partition: int, offset: int) -> bool:
        """Whether ``offset`` is at the partition's end, by the last fetch's high watermark
        (asked of the broker when no fetch has answered yet)."""
        from confluent_kafka import TopicPartition

        tp = TopicPartition(topic, partition)
        _, high = self._consumer.get_watermark_offsets(tp, cached=True)
        if high == _UNKNOWN or high is None:
            _, high = self._consumer.get_watermark_offsets(
                tp, timeout=self._policy.probe_timeout_ms / 1000
            )
        return bool(offset >= high)

    def _ask_broker(self, timeout_ms: int) -> str | None:
        from confluent_kafka import KafkaException

        try:
            self._consumer.list_topics(timeout=timeout_ms / 1000)
        except KafkaException as exc:
            return str(exc)
        return None

    def _fill(self, timeout_ms: int, wanted: int) -> bool:
        from confluent_kafka import KafkaError, KafkaException

        # Any: the stubs allow None for what a fetched (error-free) message always has
        messages: list[Any] = self._consumer.consume(max(wanted, 1), timeout_ms / 1000)
        got = False
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF or err.retriable():
                    continue
                if err.fatal():
                    raise KafkaException(err)
                continue  # a transient fetch error: librdkafka retries on its own
            tp = (msg.topic(), msg.partition())
            buffer = self._buffers.get(tp)
            if buffer is None:
                continue
            offset = msg.offset()
            if offset < self._fetch_pos[tp]:
                # already buffered or handed out (offsets may jump: compaction, markers)
                continue
            headers = msg.headers()
            buffer.append(
                KafkaRecord(
                    topic=tp[0],
                    partition=tp[1],
                    offset=offset,
                    key=msg.key(),
                    value=msg.value(),
                    headers=tuple(headers) if headers else (),
                    timestamp_ms=msg.timestamp()[1],
                )
            )
            self._fetch_pos[tp] = offset + 1
            got = True
        if got:
            self._alive_at = time.monotonic()
        return got
