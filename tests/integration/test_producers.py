"""Both clients behind the sink write the same records the same way, then commit."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from connectors.partitioning import partition_for
from connectors.producers import CLIENTS, ClientName
from connectors.records import OutboundMessage
from connectors.sink import KafkaSink

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("client", CLIENTS)
def test_sink_writes_keyed_records_where_java_would_and_commits_after(
    kafka_bootstrap: str, unique_topic: Callable[..., str], client: ClientName
) -> None:
    source, sink_topic = unique_topic("src", partitions=2), unique_topic("out", partitions=3)
    group = f"g-{uuid.uuid4().hex[:8]}"
    sink = KafkaSink(kafka_bootstrap, group, {}, client=client)
    sent = {}
    try:
        for i in range(300):
            key = f"tmall-B{i:09d}".encode()
            sent[key] = f"value {i}".encode()
            sink.send(
                OutboundMessage(
                    sink_topic,
                    key,
                    sent[key],
                    headers=(("omm.source", f"{source}/{i % 2}/{i}".encode()),),
                    source=(source, i % 2, i),
                )
            )
        sink.send(OutboundMessage(sink_topic, None, b"unkeyed"))
        assert sink.flush_and_commit() == 301
    finally:
        sink.close()

    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
    tps = [TopicPartition(sink_topic, p) for p in range(3)]
    consumer.assign(tps)
    got = []
    while len(got) < 301:
        batch = consumer.poll(timeout_ms=10_000)
        assert batch, f"only {len(got)} of 301 records arrived"
        got += [r for records in batch.values() for r in records]
    consumer.close()
    keyed = [r for r in got if r.key is not None]
    assert {r.key: r.value for r in keyed} == sent
    # the partition Kafka's Java client gives the key, whichever client wrote it
    assert all(r.partition == partition_for(r.key, 3) for r in keyed)
    assert all(
        r.headers
        == [("omm.source", f"{source}/{int(r.value[6:]) % 2}/{int(r.value[6:])}".encode())]
        for r in keyed
    )
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        committed = admin.list_group_offsets({group: None})[group]
    finally:
        admin.close()
    # the last source offset written per source partition, plus one
    assert {tp.partition: m.offset for tp, m in committed.items()} == {0: 299, 1: 300}
