"""Enforce benchmark: FAIL-to-task latency with N live listings in state, state memory, throughput.

1. N listings of N/10 products (each product on all ten platforms) go to
   omm.valid.listings; the raw limit is kafka-python consume + decode +
   encode + produce of them.
2. A bounded enforce run over them gives the listing throughput (its run time
   less the idle wait that ends it).
3. A streaming enforce run loads the same N listings into state; one marker
   listing per partition, written last, and a marker FAIL tell when every
   partition has been read. The process's resident memory grows by the state
   (and Beam's own bookkeeping of it): divided by N it is the memory per
   live listing. It under-counts when the allocator reuses memory freed by
   the raw run, so the encoded size of a listing's state entry (what the
   runner stores, PickleCoder) is printed beside it.
4. FAIL results are then published one at a time, each for a product on sale
   on ten platforms; the latency is from the send of the result to the
   arrival of the last of its ten DELIST tasks on the platforms' topics.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

from kafka import TopicPartition
from rich.console import Console
from rich.table import Table

from connectors import kafka_client
from connectors.topics import TopicNames
from omm.beam_runtime import pipeline_args_with_defaults
from omm.bench.limits import MACHINE, Rate, rate_table, raw_limit
from omm.config import load_platforms, resolved_topics
from omm.generate import FeedGenerator
from omm.jobs import enforce_job
from pipelines.enforce import run_enforce
from schemas.registry import SchemaRegistry

LISTINGS_PER_PRODUCT = 10
MARKER_BRAND = "BenchMarker"


def _rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class EnforceBench:
    def __init__(self, bootstrap: str, n: int, console: Console) -> None:
        self.bootstrap = bootstrap
        self.n = n
        self.console = console
        self.platforms = load_platforms().ids
        self.registry = SchemaRegistry.load()
        self.gen = FeedGenerator(seed=5)

    def namespace(self, tag: str) -> TopicNames:
        topics = TopicNames(prefix=f"bench{int(time.time())}{tag}.")
        kafka_client.create_topics(self.bootstrap, resolved_topics(), prefix=topics.prefix)
        return topics

    def listing(self, i: int, brand: str | None = None, model: str | None = None) -> dict[str, Any]:
        product = i // LISTINGS_PER_PRODUCT
        platform = self.platforms[i % len(self.platforms)]
        base = self.gen.listing(platform, i)
        return {
            **base,
            "listing_id": f"{platform}-B{i:09d}",
            "seller_id": f"{platform}-s{product % 500:03d}",
            "brand": brand or f"Brand{product % 97}",
            "model": model or f"Q{product:07d}",
            "gtin": None,
            "manufacturer": None,
        }

    def result(
        self, n: int, product: int, brand: str | None = None, model: str | None = None
    ) -> dict[str, Any]:
        return {
            **self.gen.inspection(n),
            "inspection_id": f"BENCH-{n:06d}",
            "brand": brand or f"Brand{product % 97}",
            "model": model or f"Q{product:07d}",
            "gtin": None,
            "manufacturer": None,
        }

    def produce_listings(self, topic: str) -> None:
        producer = kafka_client.producer(self.bootstrap)
        for i in range(self.n):
            record = self.listing(i)
            producer.send(
                topic,
                key=record["listing_id"].encode(),
                value=self.registry.encode("listing", record),
            )
        producer.flush()
        producer.close()

    def produce_markers(self, topics: TopicNames) -> int:
        """One marker listing into every partition of the listings topic, then the marker FAIL."""
        topic = topics.valid("listing")
        producer = kafka_client.producer(self.bootstrap)
        partitions = sorted(producer.partitions_for(topic))
        for p in partitions:
            record = {**self.listing(p, MARKER_BRAND, "MARK0001"), "listing_id": f"marker-{p}"}
            producer.send(
                topic,
                partition=p,
                key=record["listing_id"].encode(),
                value=self.registry.encode("listing", record),
            )
        marker = self.result(0, 0, MARKER_BRAND, "MARK0001")
        producer.send(
            topics.valid("inspection"),
            key=b"BENCH-000000",
            value=self.registry.encode("inspection", marker),
        )
        producer.flush()
        producer.close()
        return len(partitions)

    def run(self, results: int) -> None:
        self.console.rule(f"[b]enforce with {self.n:,} live listings")
        topics = self.namespace("e")
        with self.console.status(f"producing {self.n:,} listings…"):
            self.produce_listings(topics.valid("listing"))
        with self.console.status("raw limit…"):
            sink = topics.prefix + "raw.sink"
            kafka_client.create_topics(
                self.bootstrap,
                [t for t in resolved_topics() if t.name == "omm.valid.listings"],
                prefix=topics.prefix + "raw.",
            )
            sink = topics.prefix + "raw.omm.valid.listings"
            raw = raw_limit(self.bootstrap, topics.valid("listing"), sink, self.n, self.registry)
        # the streaming run first, in a fresh process, so its memory growth is the state's
        latencies, per_listing = self.latency_run(topics, results)
        with self.console.status("bounded enforce run (throughput)…"):
            idle = 3.0
            started = time.time()
            account = run_enforce(
                enforce_job(self.bootstrap, topics, idle_timeout_s=idle),
                pipeline_args_with_defaults(None, streaming=False),
            )
            took = time.time() - started - idle
        # the listings, plus the markers and results the latency run added
        if account.read < self.n or not account.balanced:
            raise SystemExit(f"enforce read {account.read} of {self.n}: {account}")
        throughput = Rate("omm enforce, bounded (decode + key + stateful join)", account.read, took)
        self.console.print(
            rate_table(f"enforce listing throughput, {self.n:,} listings", raw, [throughput])
        )
        table = Table(title=f"FAIL → tasks latency with {self.n:,} live listings in state")
        for column in (
            "results",
            "tasks each",
            "p50 s",
            "p99 s",
            "max s",
            "RSS growth / live listing",
            "encoded state / live listing",
        ):
            table.add_column(column, justify="right")
        ordered = sorted(latencies)
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        table.add_row(
            str(len(latencies)),
            str(LISTINGS_PER_PRODUCT),
            f"{statistics.median(ordered):.3f}",
            f"{p99:.3f}",
            f"{ordered[-1]:.3f}",
            f"{per_listing:,.0f} B",
            f"{self.encoded_state_bytes():,.0f} B",
        )
        self.console.print(table)
        self.console.print(f"machine: {MACHINE}")

    def encoded_state_bytes(self) -> float:
        """Bytes the runner stores per live listing: its fact, PickleCoder-encoded, per key."""
        from apache_beam.coders import PickleCoder

        from pipelines.rules.enforcement import listing_fact

        coder = PickleCoder()
        sample = [listing_fact(self.listing(i), f"t/0/{i}") for i in range(1000)]
        return sum(len(coder.encode(f)) for f in sample) / len(sample)

    def latency_run(self, topics: TopicNames, results: int) -> tuple[list[float], float]:
        baseline = _rss_bytes()
        job = enforce_job(self.bootstrap, topics, idle_timeout_s=15.0)
        runner = threading.Thread(
            target=run_enforce,
            args=(job, pipeline_args_with_defaults(None, streaming=True)),
            daemon=True,
        )
        watcher = TaskWatcher(self.bootstrap, [topics.tasks(p) for p in self.platforms])
        with self.console.status(f"streaming enforce: loading {self.n:,} listings into state…"):
            runner.start()
            markers = self.produce_markers(topics)
            watcher.wait_for("BENCH-000000", markers, timeout_s=3600)
        per_listing = (_rss_bytes() - baseline) / self.n
        latencies = []
        producer = kafka_client.producer(self.bootstrap, linger_ms=0)
        with self.console.status(f"publishing {results} FAIL results one at a time…"):
            for k in range(1, results + 1):
                product = (k * 7919) % (self.n // LISTINGS_PER_PRODUCT)
                result = self.result(k, product)
                sent = time.time()
                producer.send(
                    topics.valid("inspection"),
                    key=result["inspection_id"].encode(),
                    value=self.registry.encode("inspection", result),
                )
                producer.flush()
                arrived = watcher.wait_for(
                    result["inspection_id"], LISTINGS_PER_PRODUCT, timeout_s=120
                )
                latencies.append(arrived - sent)
        producer.close()
        watcher.close()
        runner.join(timeout=120)
        return latencies, per_listing


class TaskWatcher:
    """Reads the task topics and remembers when each inspection's DELIST tasks arrived."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self._consumer = kafka_client.consumer(bootstrap)
        tps = [
            TopicPartition(t, p)
            for t in topics
            for p in sorted(self._consumer.partitions_for_topic(t) or [])
        ]
        self._consumer.assign(tps)
        self._consumer.seek_to_end(*tps)
        self._registry = SchemaRegistry.load()
        self._seen: dict[str, set[str]] = {}

    def wait_for(self, inspection_id: str, delists: int, timeout_s: float) -> float:
        """Wall time at which the ``delists``-th DELIST task of the inspection was read."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(self._seen.get(inspection_id, ())) >= delists:
                return time.time()
            for records in self._consumer.poll(timeout_ms=20).values():
                for rec in records:
                    _, task = self._registry.decode(rec.value)
                    if task["kind"] == "DELIST" and task["state"] == "ISSUED":
                        self._seen.setdefault(task["inspection_id"], set()).add(task["task_id"])
        raise TimeoutError(f"{inspection_id}: fewer than {delists} DELIST tasks after {timeout_s}s")

    def close(self) -> None:
        self._consumer.close()


def bench_enforce(bootstrap: str, n: int, results: int, console: Console) -> None:
    EnforceBench(bootstrap, n, console).run(results)
