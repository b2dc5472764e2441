"""`make bench`: omm's throughput beside the raw limit, measured in the same run.

The raw limit is what plain kafka-python does with the same records and no
Beam: consume + fastavro decode + encode + produce. The ingest figure is the
real pipeline (FnApiRunner) on the same topic. Both are timed from their start
to their last output record's broker timestamp, so Beam's start-up cost is
counted and the idle wait that ends a bounded run is not.
"""

from __future__ import annotations

import argparse
import os
import platform as host
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from kafka import TopicPartition
from rich.console import Console
from rich.table import Table

from connectors import kafka_client
from omm.config import resolved_topics
from omm.generate import FeedGenerator
from omm.settings import get_settings
from omm.topics import TopicNames
from schemas.registry import SchemaRegistry

PLATFORM = "tmall"
console = Console()


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


def ingest_rate(bootstrap: str, topics: TopicNames, n: int, feed_health: bool) -> Rate:
    from omm.beam_runtime import pipeline_args_with_defaults
    from pipelines.ingest import IngestJob, run_ingest

    job = IngestJob(
        bootstrap=bootstrap,
        platforms=[PLATFORM],
        topics=topics,
        group_id=f"{topics.prefix}ingest",
        pseudonym_key=b"bench-only-key",
        idle_timeout_s=3.0,
        feed_health=feed_health,
    )
    started = time.time()
    accounts = run_ingest(job, pipeline_args_with_defaults(None, streaming=False))
    read = sum(a.read for a in accounts)
    if read != n or not all(a.balanced for a in accounts):
        raise SystemExit(f"ingest read {read} of {n} records or did not balance: {accounts}")
    last = last_timestamp_ms(bootstrap, topics.valid("listing"), n) / 1000.0
    label = "with" if feed_health else "without"
    return Rate(f"omm ingest (Beam FnApiRunner), {label} expectations", n, last - started)


MACHINE = (
    f"{host.machine()} {host.system()} {host.release()}, {os.cpu_count()} cores, "
    f"python {host.python_version()}"
)


def start_broker() -> str:
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


def bench_ingest(bootstrap: str, n: int) -> None:
    topics = TopicNames(prefix=f"bench{int(time.time())}.")
    kafka_client.create_topics(
        bootstrap, resolved_topics(only_platforms=[PLATFORM]), prefix=topics.prefix
    )
    registry = SchemaRegistry.load()
    source = topics.feed(PLATFORM, "listings")
    # the raw run writes to its own copy of omm.valid.listings
    kafka_client.create_topics(
        bootstrap,
        [t for t in resolved_topics() if t.name == "omm.valid.listings"],
        prefix=topics.prefix + "raw.",
    )
    sink = topics.prefix + "raw.omm.valid.listings"
    with console.status(f"producing {n:,} listings to {source}…"):
        produce_listings(bootstrap, source, n, registry)
    with console.status("raw limit: kafka-python consume + decode + encode + produce…"):
        raw = raw_limit(bootstrap, source, sink, n, registry)
    with console.status("omm ingest pipeline, expectations off…"):
        without = ingest_rate(bootstrap, topics, n, feed_health=False)
    # the same records again, through a second namespace, with feed health on
    again = TopicNames(prefix=topics.prefix.rstrip(".") + "h.")
    kafka_client.create_topics(
        bootstrap, resolved_topics(only_platforms=[PLATFORM]), prefix=again.prefix
    )
    with console.status(f"copying the {n:,} listings for the second run…"):
        raw_limit(bootstrap, source, again.feed(PLATFORM, "listings"), n, registry)
    with console.status("omm ingest pipeline, expectations on…"):
        with_health = ingest_rate(bootstrap, again, n, feed_health=True)
    stamp = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    console.print(
        rate_table(f"ingest — {n:,} listing events, {stamp}", raw, [without, with_health])
    )
    kept = 100 * with_health.per_second / without.per_second
    console.print(
        f"expectations on keep {kept:.0f} % of the throughput without them (target ≥ 70 %)"
    )
    console.print(f"machine: {MACHINE}; target: ingest ≥ 50 % of raw")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=200_000, help="listing events for ingest")
    parser.add_argument(
        "--live-listings",
        type=int,
        nargs="*",
        default=[100_000, 1_000_000],
        help="live listings in enforce state for the latency runs",
    )
    parser.add_argument("--results", type=int, default=50, help="FAIL results timed per run")
    parser.add_argument("--only", choices=["ingest", "enforce"], default=None)
    args = parser.parse_args()
    bootstrap = start_broker()
    if args.only in (None, "ingest"):
        bench_ingest(bootstrap, args.records)
    if args.only in (None, "enforce"):
        from omm.bench_enforce import bench_enforce

        for n in args.live_listings:
            bench_enforce(bootstrap, n, args.results, console)


if __name__ == "__main__":
    main()
