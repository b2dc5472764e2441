"""The raw limit every omm figure is printed beside, and what the benchmarks share.

The raw limit is what plain kafka-python does with the same records and no
Beam: consume + fastavro decode + encode + produce. It is measured here, in one
place, in the same run as the figure it is compared with.
"""

from __future__ import annotations

import contextlib
import os
import platform as host
import time
from dataclasses import dataclass

from kafka import TopicPartition
from rich.console import Console
from rich.table import Table

from connectors import delivery, kafka_client
from connectors.partitioning import partition_for
from omm.generate import GARBAGE, FeedGenerator, broken_listings
from omm.settings import get_settings
from schemas.registry import CodecError, SchemaRegistry

PLATFORM = "tmall"


# Output topics made with this stamp each record with the broker's append time, so
# "last output appended" is read off the records themselves, whoever wrote them.
APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}
# one listing in this many is refused (the workload: 5 % invalid) ...
INVALID_EVERY = 20
# ... and one refused listing in this many is not Avro at all
GARBAGE_EVERY = 10


@dataclass(frozen=True)
class Rate:
    """``seconds``: the timed span (for ingest, first record read -> last output appended);
    ``from_start_s``: the same records timed from the measured process's start."""

    label: str
    records: int
    seconds: float
    from_start_s: float | None = None
    # CPU seconds of the measured process (all threads, start-up included)
    cpu_s: float | None = None

    @property
    def per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else float("nan")

    @property
    def per_second_from_start(self) -> float:
        s = self.from_start_s
        return self.records / s if s is not None and s > 0 else float("nan")


def produce_listings(
    bootstrap: str, topic: str, n: int, registry: SchemaRegistry, invalid_every: int = 0
) -> int:
    """``n`` listings to ``topic``; one in ``invalid_every`` (0: none) refused by ingest
    (a record rule, or not Avro at all). Returns how many are invalid."""
    gen = FeedGenerator(seed=1)
    template = [gen.listing(PLATFORM, i) for i in range(1000)]
    broken = [
        registry.encode("listing", r) for r, _ in broken_listings(gen, PLATFORM, 10 * GARBAGE_EVERY)
    ]
    producer = kafka_client.producer(bootstrap)
    invalid = 0
    for i in range(n):
        listing_id = f"{PLATFORM}-B{i:09d}"
        if invalid_every and i % invalid_every == invalid_every - 1:
            which = invalid % len(broken)
            value = GARBAGE if which % GARBAGE_EVERY == 0 else broken[which]
            invalid += 1
        else:
            value = registry.encode("listing", {**template[i % 1000], "listing_id": listing_id})
        producer.send(topic, key=listing_id.encode(), value=value)
    producer.flush()
    producer.close()
    return invalid


def last_append_ms(bootstrap: str, expect: dict[str, int], timeout_s: float = 600) -> int:
    """Wait until each topic holds its expected number of records; the newest record's
    timestamp across them (the broker's append time on topics made with APPEND_TIME)."""
    consumer = kafka_client.consumer(bootstrap)
    tps = [
        TopicPartition(topic, p)
        for topic in expect
        for p in sorted(consumer.partitions_for_topic(topic) or [])
    ]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ends = consumer.end_offsets(tps)
        if all(
            sum(o for tp, o in ends.items() if tp.topic == topic) >= count
            for topic, count in expect.items()
        ):
            break
        time.sleep(0.2)
    else:
        raise SystemExit(f"outputs not all written after {timeout_s:.0f}s: {expect}")
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


def last_timestamp_ms(bootstrap: str, topic: str, expect: int, timeout_s: float = 600) -> int:
    """Wait until ``expect`` records are on ``topic``; return the newest record's timestamp."""
    return last_append_ms(bootstrap, {topic: expect}, timeout_s)


def raw_limit(bootstrap: str, source: str, sink: str, n: int, registry: SchemaRegistry) -> Rate:
    """Plain kafka-python: consume + decode + encode + produce, no Beam, no rules."""
    started = time.time()
    consumer = kafka_client.consumer(bootstrap)
    kafka_client.assign_topics(consumer, [source], "beginning")
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


def raw_pass_through(bootstrap: str, source: str, sink: str, n: int) -> float:
    """Plain kafka-python, tuned as omm's sink is: consume + decode + produce the original
    bytes (as ingest passes a valid record's bytes on). Returns when the first record was
    read (epoch seconds); its last output's append time ends the span."""
    registry = SchemaRegistry.load()
    consumer = kafka_client.consumer(bootstrap)
    kafka_client.assign_topics(consumer, [source], "beginning")
    producer = kafka_client.producer(bootstrap, **delivery.policy().producer_config(streaming=True))
    partitions = len(producer.partitions_for(sink))
    first_read: float | None = None
    seen = 0
    while seen < n:
        for records in consumer.poll(timeout_ms=500).values():
            if first_read is None:
                first_read = time.time()
            for rec in records:
                with contextlib.suppress(CodecError):
                    registry.decode(rec.value)
                producer.send(
                    sink, key=rec.key, value=rec.value, partition=partition_for(rec.key, partitions)
                )
            seen += len(records)
    producer.flush()
    producer.close()
    consumer.close()
    assert first_read is not None
    return first_read


def raw_pass_through_confluent(bootstrap: str, source: str, sink: str, n: int) -> float:
    """The same loop on confluent-kafka, configured as omm's reader and sink are: the ceiling
    of the optional client. Returns when the first record was read (epoch seconds)."""
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka import Producer as RdProducer

    from connectors.confluent_fetcher import consumer_config
    from connectors.producers import confluent_config

    registry = SchemaRegistry.load()
    policy = delivery.policy()
    consumer = Consumer(consumer_config(bootstrap, "omm-bench-raw", None, policy))
    producer = RdProducer(confluent_config(bootstrap, None, policy))
    parts = consumer.list_topics(source, timeout=10).topics[source].partitions
    consumer.assign([TopicPartition(source, p, 0) for p in parts])
    first_read: float | None = None
    seen = 0
    while seen < n:
        messages = consumer.consume(5000, 0.5)
        if messages and first_read is None:
            first_read = time.time()
        for msg in messages:
            if msg.error() is not None:
                continue
            value = msg.value()
            with contextlib.suppress(CodecError):
                registry.decode(value or b"")
            while True:
                try:
                    producer.produce(sink, key=msg.key(), value=value)
                    break
                except BufferError:
                    producer.poll(0.1)
            seen += 1
    producer.flush()
    consumer.close()
    assert first_read is not None
    return first_read


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


def rate_table(
    title: str, raw: Rate, measured: list[Rate], span: str = "seconds", start: str = "from start"
) -> Table:
    """Each rate beside the raw limit; with a second group of columns (``start``) when the
    rates were also timed from their process's start."""
    rows = (raw, *measured)
    both = all(r.from_start_s is not None for r in rows)
    cpu = all(r.cpu_s is not None for r in rows)
    table = Table(
        title=title,
        caption="read→append: first record read to last output "
        "appended (broker time); from start: the measured process's start"
        if both
        else None,
    )
    columns = ["what", "records", span, "records/s", "% of raw"]
    if both:
        columns += [start, "records/s ", "% of raw "]
    if cpu:
        columns += ["CPU s", "records/CPU s"]
    for column in columns:
        table.add_column(column, justify="left" if column == "what" else "right")
    for rate in rows:
        cells = [
            rate.label,
            f"{rate.records:,}",
            f"{rate.seconds:.1f}",
            f"{rate.per_second:,.0f}",
            f"{100 * rate.per_second / raw.per_second:.0f} %",
        ]
        if both:
            cells += [
                f"{rate.from_start_s:.1f}",
                f"{rate.per_second_from_start:,.0f}",
                f"{100 * rate.per_second_from_start / raw.per_second_from_start:.0f} %",
            ]
        if cpu and rate.cpu_s:
            cells += [f"{rate.cpu_s:.1f}", f"{rate.records / rate.cpu_s:,.0f}"]
        table.add_row(*cells)
    return table
