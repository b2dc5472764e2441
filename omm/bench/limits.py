"""The raw limit every omm figure is printed beside, and what the benchmarks share.

The raw limit is what plain kafka-python does with the same records and no
Beam: consume + fastavro decode + encode + produce. It is measured here, in one
place, in the same run as the figure it is compared with.
"""

from __future__ import annotations

import os
import platform as host
import time
from dataclasses import dataclass

from kafka import TopicPartition
from rich.console import Console
from rich.table import Table

from connectors import kafka_client
from omm.generate import FeedGenerator
from omm.settings import get_settings
from schemas.registry import SchemaRegistry

PLATFORM = "tmall"


@dataclass(frozen=True)
class Rate:
    label: str
    records: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else float("nan")


def produce_listings(bootstrap: str, topic: str, n: int, registry: SchemaRegistry) -> None:
    gen = FeedGenerator(seed=1)
    template = [gen.listing(PLATFORM, i) for i in range(1000)]
    producer = kafka_client.producer(bootstrap)
    for i in range(n):
        record = {**template[i % 1000], "listing_id": f"{PLATFORM}-B{i:09d}"}
        producer.send(
            topic, key=record["listing_id"].encode(), value=registry.encode("listing", record)
        )
    producer.flush()
    producer.close()


def last_timestamp_ms(bootstrap: str, topic: str, expect: int, timeout_s: float = 600) -> int:
    """Wait until ``expect`` records are on ``topic``; return the newest record's timestamp."""
    consumer = kafka_client.consumer(bootstrap)
    tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ends = consumer.end_offsets(tps)
        if sum(ends.values()) >= expect:
            break
        time.sleep(0.2)
    newest = 0
    consumer.assign(tps)
    for tp in tps:
        end = consumer.end_offsets([tp])[tp]
        if end == 0:
            continue
        consumer.seek(tp, end - 1)
        for records in consumer.poll(timeout_ms=2000).values():
            newest = max([newest, *(r.timestamp for r in records)])
    consumer.close()
    return newest


def raw_limit(bootstrap: str, source: str, sink: str, n: int, registry: SchemaRegistry) -> Rate:
    """Plain kafka-python: consume + decode + encode + produce, no Beam, no rules."""
    started = time.time()
    consumer = kafka_client.consumer(bootstrap)
    tps = [TopicPartition(source, p) for p in sorted(consumer.partitions_for_topic(source) or [])]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    producer = kafka_client.producer(bootstrap)
    seen = 0
    while seen < n:
        for records in consumer.poll(timeout_ms=500).values():
            for rec in records:
                entity, record = registry.decode(rec.value)
                producer.send(sink, key=rec.key, value=registry.encode(entity, record))
            seen += len(records)
    producer.flush()
    producer.close()
    consumer.close()
    return Rate("raw kafka-python consume+decode+encode+produce", n, time.time() - started)


MACHINE = (
    f"{host.machine()} {host.system()} {host.release()}, {os.cpu_count()} cores, "
    f"python {host.python_version()}"
)


def start_broker(console: Console) -> str:
    """The embedded broker of the settings, started (jars fetched) if it is not running."""
    from connectors.broker.manager import EmbeddedKafka

    settings = get_settings()
    broker = EmbeddedKafka(
        home=settings.home / "kafka",
        port=settings.broker_port,
        controller_port=settings.controller_port,
    )
    with console.status("starting the embedded broker…"):
        broker.ensure_jars()
        broker.start()
    return settings.kafka_bootstrap


def rate_table(title: str, raw: Rate, measured: list[Rate]) -> Table:
    table = Table(title=title)
    for column in ("what", "records", "seconds", "records/s", "% of raw"):
        table.add_column(column, justify="left" if column == "what" else "right")
    for rate in (raw, *measured):
        table.add_row(
            rate.label,
            f"{rate.records:,}",
            f"{rate.seconds:.1f}",
            f"{rate.per_second:,.0f}",
            f"{100 * rate.per_second / raw.per_second:.0f} %",
        )
    return table
