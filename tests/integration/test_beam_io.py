"""The Beam Kafka reader (connectors/beam_io.py) against the real broker."""

from __future__ import annotations

import threading
import uuid

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

from connectors import kafka_client
from connectors.beam_io import ReadFromKafka
from connectors.connection import KafkaConnection
from connectors.delivery import DeliveryPolicy
from connectors.topics import ResolvedTopic


def _topic(name: str, partitions: int) -> ResolvedTopic:
    return ResolvedTopic(
        name=name,
        entity=None,
        partitions=partitions,
        replication_factor=1,
        retention_ms=3_600_000,
        cleanup_policy="delete",
    )


def test_the_last_partitions_get_their_turn_when_the_first_fill_every_bundle(
    kafka_bootstrap: str,
) -> None:
    # Many quiet partitions first, the records last. Each quiet partition's turn
    # waits one poll (20 ms), so they alone outlast the bundle's time slice; the
    # runner hands the partitions back in the same order every bundle, and the
    # reader used to skip the last ones every time: never read, never idle, a
    # bounded run that never ended (seen in `make demo` on a busy machine).
    run = uuid.uuid4().hex[:8]
    quiet, busy = f"{run}.quiet", f"{run}.busy"
    kafka_client.create_topics(kafka_bootstrap, [_topic(quiet, 60), _topic(busy, 1)])
    producer = kafka_client.producer(kafka_bootstrap)
    for i in range(30):
        producer.send(busy, key=b"k", value=f"record {i}".encode())
    producer.flush()
    producer.close()
    kafka = KafkaConnection(kafka_bootstrap, delivery=DeliveryPolicy(commit_every_s=0.2))

    failures: list[BaseException] = []

    def read() -> None:
        try:
            with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
                topics = (
                    p
                    | ReadFromKafka(
                        kafka, [quiet, busy], group_id=run, start="earliest", idle_timeout_s=3.0
                    )
                    | beam.Map(lambda r: r.topic)
                    | beam.combiners.Count.PerElement()
                )
                assert_that(topics, equal_to([(busy, 30)]))
        except BaseException as exc:  # handed to the test thread below
            failures.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=240)
    assert not reader.is_alive(), "the bounded read never ended: the last partition starved"
    assert failures == []
