"""Ingest benchmark: the pipeline's throughput, expectations off and on, beside the raw limit.

Both are timed from their start to their last output record's broker timestamp,
so Beam's start-up cost is counted and the idle wait that ends a bounded run is not.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from rich.console import Console

from connectors import kafka_client
from connectors.topics import TopicNames
from omm.bench.limits import (
    MACHINE,
    PLATFORM,
    Rate,
    last_timestamp_ms,
    produce_listings,
    rate_table,
    raw_limit,
)
from omm.config import resolved_topics
from schemas.registry import SchemaRegistry


def ingest_rate(bootstrap: str, topics: TopicNames, n: int, feed_health: bool) -> Rate:
    from omm.beam_runtime import pipeline_args_with_defaults
    from omm.jobs import ingest_job
    from pipelines.ingest import run_ingest

    job = ingest_job(
        bootstrap,
        topics,
        platforms=[PLATFORM],
        idle_timeout_s=3.0,
        feed_health=feed_health,
        group_id=f"{topics.prefix}ingest",
        key=b"bench-only-key",
    )
    started = time.time()
    accounts = run_ingest(job, pipeline_args_with_defaults(None, streaming=False))
    read = sum(a.read for a in accounts)
    if read != n or not all(a.balanced for a in accounts):
        raise SystemExit(f"ingest read {read} of {n} records or did not balance: {accounts}")
    last = last_timestamp_ms(bootstrap, topics.valid("listing"), n) / 1000.0
    label = "with" if feed_health else "without"
    return Rate(f"omm ingest (Beam FnApiRunner), {label} expectations", n, last - started)


def bench_ingest(bootstrap: str, n: int, console: Console) -> None:
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
