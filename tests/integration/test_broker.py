"""The embedded broker behaves like a broker an operator can rely on.

These tests run their OWN EmbeddedKafka (own home, own free ports) because
they stop and restart it; the session broker other tests share must stay up.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from connectors.broker.manager import EmbeddedKafka, free_port

pytestmark = pytest.mark.integration


def _two_free_ports() -> tuple[int, int]:
    port = free_port()
    controller_port = free_port()
    while controller_port == port:
        controller_port = free_port()
    return port, controller_port


def _accepts(bootstrap: str) -> bool:
    host, port = bootstrap.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedKafka]:
    port, controller_port = _two_free_ports()
    broker = EmbeddedKafka(
        tmp_path_factory.mktemp("own-kafka"), port=port, controller_port=controller_port
    )
    broker.start(timeout_s=180.0)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def broker(own_broker: EmbeddedKafka) -> EmbeddedKafka:
    """The module's broker, running at the start of each test whatever the last one did."""
    own_broker.start()
    return own_broker


def test_restart_keeps_topics_and_records(broker: EmbeddedKafka) -> None:
    topic = f"restart-{uuid.uuid4().hex[:8]}"
    sent = [(f"key-{i}".encode(), f"value-{i}-{'x' * i}".encode()) for i in range(200)]
    with KafkaAdminClient(bootstrap_servers=broker.bootstrap) as admin:
        admin.create_topics(
            {topic: {"num_partitions": 3, "replication_factor": 1}}, wait_for_metadata=True
        )
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    for key, value in sent:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()

    assert broker.stop() is True
    assert not broker.status().running
    assert not _accepts(broker.bootstrap)

    status = broker.start()
    assert status.running

    with KafkaAdminClient(bootstrap_servers=broker.bootstrap) as admin:
        assert topic in admin.list_topics()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=15_000,
    )
    received: list[tuple[bytes, bytes]] = []
    for record in consumer:
        received.append((record.key, record.value))
        if len(received) == len(sent):
            break
    consumer.close()
    assert sorted(received) == sorted(sent)


def test_status_follows_the_process(broker: EmbeddedKafka) -> None:
    up = broker.status()
    assert up.running
    assert up.pid is not None
    os.kill(up.pid, 0)  # a live process, not just a pid file
    assert up.bootstrap == broker.bootstrap == f"127.0.0.1:{broker.port}"
    assert up.home == broker.home
    assert up.kafka_version in up.describe()
    assert up.bootstrap in up.describe() and str(up.pid) in up.describe()
    # The broker logs through SLF4J 2 -> log4j2 into the file status names,
    # not to the console (the 1.7 API would silently log nowhere).
    assert "Kafka Server started" in up.log_file.read_text()
    assert "SLF4J" not in (up.log_file.parent / "kafka.out").read_text()

    assert broker.stop() is True
    down = broker.status()
    assert not down.running
    assert down.pid is None
    assert down.bootstrap == broker.bootstrap
    assert "not running" in down.describe()
    assert not _accepts(broker.bootstrap)
    assert broker.stop() is False  # nothing left to stop


def test_start_is_idempotent(broker: EmbeddedKafka) -> None:
    first = broker.status()
    again = broker.start()
    assert again.running and again.pid == first.pid

    # Another manager on the same home (a second `omm broker start` in another
    # shell, here with other ports) finds the running broker rather than
    # launching a second one, and reports where it really listens.
    port, controller_port = _two_free_ports()
    other = EmbeddedKafka(broker.home, port=port, controller_port=controller_port)
    seen = other.start()
    assert seen.pid == first.pid
    assert seen.bootstrap == broker.bootstrap
    assert not _accepts(other.bootstrap)


def test_session_broker_serves_unique_topics(
    kafka_bootstrap: str, unique_topic: Callable[..., str]
) -> None:
    name = unique_topic("smoke", partitions=2)
    assert name.startswith("smoke-")
    assert unique_topic("smoke") != name
    with KafkaAdminClient(bootstrap_servers=kafka_bootstrap) as admin:
        (described,) = admin.describe_topics([name])
    assert len(described["partitions"]) == 2


def test_broker_home_layout(broker: EmbeddedKafka) -> None:
    """What the docs promise an operator finds in the home directory."""
    home: Path = broker.home
    assert (home / "data" / "meta.properties").is_file()
    assert (home / "broker.pid").read_text().strip() == str(broker.status().pid)
    props = (home / "server.properties").read_text()
    assert "auto.create.topics.enable=false" in props
    assert f"PLAINTEXT://127.0.0.1:{broker.port}" in props
