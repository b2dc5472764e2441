"""The producer behind a sink: kafka-python (the default) or confluent-kafka (optional).

omm is designed on kafka-python, and it stays the default. Its producer is pure
Python, though: on ingest's hot path the send alone (record accumulator,
batching, CRC, the sender thread) took about as long as all of Beam. The
optional client is confluent-kafka, whose wheels bundle librdkafka (C), chosen
with ``OMM_KAFKA_CLIENT=confluent``; it carries the job's connection, so a
worker never reads a setting. Both sit behind :class:`Producer`, with the same
contract the sink relies on:

- ``send`` queues a record or raises :class:`SendBlocked` (no metadata, no
  buffer room: an outage, tried again by the sink within its budget);
- ``flush`` returns once every record sent so far is acknowledged or failed,
  or raises :class:`NotAcknowledged` after its timeout (the sink waits on);
- failed records are reported by :meth:`Producer.take_failures`, each
  exception with ``retriable`` true when the client gave up only because the
  broker stayed away for its whole delivery timeout.

Both retry a send until the policy's delivery timeout, keep records in order
per partition, and put a keyed record on the partition Kafka's Java client
would (the sink passes it: :mod:`connectors.partitioning`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal, Protocol

from connectors import delivery
from connectors.security import KafkaSecurity

# No Kafka client is imported at module level: omm.settings names ClientName, and the
# CLI starts without loading either library.

ClientName = Literal["kafka-python", "confluent"]
CLIENTS: tuple[ClientName, ...] = ("kafka-python", "confluent")


class SendBlocked(Exception):
    """The client could not take the record now (no metadata or no buffer room)."""


class NotAcknowledged(Exception):
    """Some records were still unacknowledged when a flush's timeout passed."""


class DeliveryFailed(RuntimeError):
    """A record the client gave up on; ``retriable``: because the broker stayed away."""

    def __init__(self, message: str, retriable: bool) -> None:
        super().__init__(message)
        self.retriable = retriable


class Producer(Protocol):
    # True when the client's own partitioner is Java's murmur2 done in C, so the sink
    # need not compute partitions in Python (connectors.partitioning)
    partitions_keys_itself: bool

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        partition: int | None,
    ) -> None: ...

    def partition_count(self, topic: str) -> int: ...

    def flush(self, timeout_s: float) -> None: ...

    def take_failures(self) -> list[BaseException]: ...

    def close(self) -> None: ...

    def abandon(self) -> None: ...


class KafkaPythonProducer:
    # Java's hash too, but byte by byte in Python, with a sort per send
    partitions_keys_itself = False

    def __init__(
        self,
        bootstrap: str,
        security: KafkaSecurity | None,
        policy: delivery.DeliveryPolicy,
        overrides: dict[str, Any],
    ) -> None:
        from kafka import KafkaProducer

        from connectors import kafka_client

        config = {**policy.producer_config(streaming=True), **overrides}
        self._producer: KafkaProducer = kafka_client.producer(bootstrap, security, policy, **config)
        self._failures: list[BaseException] = []

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        partition: int | None,
    ) -> None:
        from kafka.errors import KafkaTimeoutError

        try:
            future = self._producer.send(
                topic, key=key, value=value, headers=list(headers), partition=partition
            )
        except KafkaTimeoutError as exc:
            raise SendBlocked(str(exc)) from exc
        future.add_errback(self._failures.append)

    def partition_count(self, topic: str) -> int:
        from kafka.errors import KafkaTimeoutError

        try:
            return len(self._producer.partitions_for(topic))
        except KafkaTimeoutError as exc:
            raise SendBlocked(str(exc)) from exc

    def flush(self, timeout_s: float) -> None:
        from kafka.errors import KafkaTimeoutError

        try:
            self._producer.flush(timeout=timeout_s)
        except KafkaTimeoutError as exc:
            raise NotAcknowledged(str(exc)) from exc

    def take_failures(self) -> list[BaseException]:
        failures, self._failures = self._failures, []
        return failures

    def close(self) -> None:
        self._producer.close()

    def abandon(self) -> None:
        self._producer.close(timeout=0)


# librdkafka error names that mean "the broker was away", not "the record is bad"
_OUTAGE_ERRORS = frozenset(
    {"_MSG_TIMED_OUT", "_TIMED_OUT", "_TRANSPORT", "_ALL_BROKERS_DOWN", "_RESOLVE"}
)


def confluent_config(
    bootstrap: str, security: KafkaSecurity | None, policy: delivery.DeliveryPolicy
) -> dict[str, Any]:
    """librdkafka producer settings matching kafka_client.PRODUCER_DEFAULTS and the policy."""
    from connectors import kafka_client

    timing = policy.producer_config(streaming=True)
    defaults = kafka_client.PRODUCER_DEFAULTS
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "acks": defaults["acks"],
        "linger.ms": defaults["linger_ms"],
        "batch.size": defaults["batch_size"],
        "compression.type": defaults["compression_type"],
        "message.max.bytes": defaults["max_request_size"],
        "delivery.timeout.ms": timing["delivery_timeout_ms"],
        "retry.backoff.ms": timing["retry_backoff_ms"],
        "reconnect.backoff.max.ms": timing["reconnect_backoff_max_ms"],
        "request.timeout.ms": timing["request_timeout_ms"],
        # Java's partitioner for any keyed record sent without a partition
        "partitioner": "murmur2_random",
    }
    if security is not None and security.protocol != "PLAINTEXT":
        config["security.protocol"] = security.protocol
        if security.uses_sasl:
            config["sasl.mechanism"] = security.sasl_mechanism
            config["sasl.username"] = security.username
            config["sasl.password"] = security.resolve_password()
        if security.uses_tls:
            for ours, theirs in (
                ("ssl_cafile", "ssl.ca.location"),
                ("ssl_certfile", "ssl.certificate.location"),
                ("ssl_keyfile", "ssl.key.location"),
            ):
                if getattr(security, ours):
                    config[theirs] = getattr(security, ours)
            if not security.ssl_check_hostname:
                config["ssl.endpoint.identification.algorithm"] = "none"
    return config


class ConfluentProducer:
    # "partitioner": "murmur2_random" below
    partitions_keys_itself = True

    def __init__(
        self,
        bootstrap: str,
        security: KafkaSecurity | None,
        policy: delivery.DeliveryPolicy,
        overrides: dict[str, Any],
    ) -> None:
        from confluent_kafka import Producer as RdProducer

        self._policy = policy
        config = {**confluent_config(bootstrap, security, policy), **overrides}
        config["on_delivery"] = self._delivered
        # librdkafka's own log lines go through the "kafka" logger, which omm's
        # runner already quiets through an outage
        config["logger"] = logging.getLogger("kafka.librdkafka")
        self._producer = RdProducer(config)
        self._failures: list[BaseException] = []

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._failures.append(
                DeliveryFailed(
                    f"{err.name()}: {err.str()} ({msg.topic()})",
                    retriable=err.retriable() or err.name() in _OUTAGE_ERRORS,
                )
            )

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        partition: int | None,
    ) -> None:
        kwargs: dict[str, Any] = {"key": key, "value": value}
        if headers:
            kwargs["headers"] = list(headers)
        if partition is not None:
            kwargs["partition"] = partition
        try:
            self._producer.produce(topic, **kwargs)
        except BufferError as exc:
            # the local queue is full: let librdkafka deliver (and call back) a while
            self._producer.poll(self._policy.send_block_s / 10)
            raise SendBlocked(str(exc)) from exc

    def partition_count(self, topic: str) -> int:
        from confluent_kafka import KafkaException

        try:
            meta = self._producer.list_topics(topic, timeout=self._policy.send_block_s)
        except KafkaException as exc:
            raise SendBlocked(str(exc)) from exc
        found = meta.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise SendBlocked(f"no metadata for {topic}: {found.error if found else 'absent'}")
        return len(found.partitions)

    def flush(self, timeout_s: float) -> None:
        left = self._producer.flush(timeout_s)
        if left:
            raise NotAcknowledged(f"{left} records not acknowledged yet")

    def take_failures(self) -> list[BaseException]:
        failures, self._failures = self._failures, []
        return failures

    def close(self) -> None:
        self._producer.flush(self._policy.delivery_timeout_s)

    def abandon(self) -> None:
        self._producer.purge()


def make_producer(
    client: ClientName,
    bootstrap: str,
    security: KafkaSecurity | None,
    policy: delivery.DeliveryPolicy,
    overrides: dict[str, Any],
) -> KafkaPythonProducer | ConfluentProducer:
    if client == "confluent":
        return ConfluentProducer(bootstrap, security, policy, overrides)
    if client == "kafka-python":
        return KafkaPythonProducer(bootstrap, security, policy, overrides)
    raise ValueError(f"unknown Kafka client {client!r}; expected one of {CLIENTS}")
