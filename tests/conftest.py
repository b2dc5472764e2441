"""Session-wide fixtures: one real Kafka broker for the whole test run.

docs/design.md §4: no mock broker anywhere. The suite starts the same embedded
Apache Kafka that ``omm broker start`` runs, in a throwaway home on free
ports, or uses the cluster named by ``OMM_TEST_BOOTSTRAP`` (CI with a
service container, or a broker you already have running while iterating).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from kafka import KafkaAdminClient

from connectors.broker.manager import EmbeddedKafka, free_port


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap servers of the broker every integration test talks to."""
    external = os.environ.get("OMM_TEST_BOOTSTRAP", "").strip()
    if external:
        yield external
        return
    port = free_port()
    controller_port = free_port()
    while controller_port == port:
        controller_port = free_port()
    broker = EmbeddedKafka(
        tmp_path_factory.mktemp("kafka"), port=port, controller_port=controller_port
    )
    # Generous: the first run on a machine also fetches the jars with Maven.
    status = broker.start(timeout_s=180.0)
    try:
        yield status.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def unique_topic(kafka_bootstrap: str) -> Iterator[Callable[..., str]]:
    """Factory ``unique_topic(prefix, partitions=1) -> name`` for a fresh, ready topic.

    Names carry a uuid so tests never see each other's records, even on a
    shared external broker; the topics are deleted afterwards for the same
    reason. Creation waits until every partition has a leader, so a producer
    can write at once.
    """
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="omm-tests")
    created: list[str] = []

    def make(prefix: str, partitions: int = 1) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        admin.create_topics(
            # replication_factor -1: the broker's default (1 on the embedded one).
            {name: {"num_partitions": partitions, "replication_factor": -1}},
            wait_for_metadata=True,
        )
        created.append(name)
        return name

    try:
        yield make
    finally:
        if created:
            with contextlib.suppress(Exception):  # hygiene only; never fail a test here
                admin.delete_topics(created)
        admin.close()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--kafka-client",
        choices=["kafka-python", "confluent"],
        default=None,
        help="the client pipelines write with (OMM_KAFKA_CLIENT) for this run, e.g. to run "
        "tests/integration/test_ingest.py on confluent-kafka",
    )


def pytest_configure(config: pytest.Config) -> None:
    client = config.getoption("--kafka-client")
    if client:
        # before any settings are read; subprocesses (the CLI tests) inherit it too
        os.environ["OMM_KAFKA_CLIENT"] = client
