"""Enforce benchmark: load rate, FAIL-to-task latency (first and steady), state size, rebuild.

1. N listings of N/10 products (each product on all ten platforms) go to
   omm.valid.listings; the raw limit is kafka-python consume + decode +
   encode + produce of them, measured in the same run.
2. A streaming enforce run loads the same N listings into state. One marker per
   listings partition, written last, is bytes that are not Avro: enforce sends
   it to omm.dlq, so its arrival there says the partition has been read, and
   no FAIL has been seen yet (the first timed FAIL is the first after start).
   Load rate: N over the time from the run's start to the last marker. Memory:
   the growth of the resident memory of the processes holding the state (this
   one, plus Prism's when it runs) over N. It under-counts when the allocator
   reuses memory freed by the raw run, so the encoded size of what the state
   keeps per listing (its fact, PickleCoder-encoded, under each of its keys)
   is printed beside it.
3. FAIL results are then published one at a time, each for a product on sale
   on ten platforms; the latency is from the send of the result to the
   arrival of the last of its ten DELIST tasks on the platforms' topics. The
   first FAIL after start is reported apart from the steady ones.
4. Rebuild (optional): enforce is started again over the same topics from the
   earliest offsets, as after a restart on a runner without durable state;
   the rebuild time runs until the markers are dead-lettered again (caught
   up), then one more FAIL is timed.
5. A bounded enforce run over the same topics gives the batch throughput
   (its run time less the idle wait that ends it).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from rich.console import Console
from rich.table import Table

from connectors import kafka_client
from connectors.topics import TopicNames
from omm.beam_runtime import pipeline_args_with_defaults
from omm.bench.limits import MACHINE, Rate, rate_table, raw_limit
from omm.bench.runners import Runner, rss_bytes
from omm.config import load_enforcement, load_platforms, resolved_topics
from omm.generate import FeedGenerator
from omm.jobs import enforce_job
from pipelines.enforce import EnforceJob, run_enforce
from schemas.registry import SchemaRegistry

T = TypeVar("T")

LISTINGS_PER_PRODUCT = 10
# not Avro (no magic byte): enforce dead-letters it, which is how the bench sees it read
MARKER_VALUE = b"bench: end of partition"
# how long a streaming run waits on every partition idle before it ends
IDLE_S = 15.0


# runners whose state memory this process has already grown once (see latency_run)
_STATE_HELD = {"fnapi": False, "prism": False}


def _bytes(value: float | None) -> str:
    return "n/a (not the process's first run)" if value is None else f"{value:,.0f} B"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass(frozen=True)
class EnforceFigures:
    runner: str
    listings: int
    raw: Rate
    load: Rate  # streaming: N listings into state, start to last marker
    bounded: Rate | None
    first_s: float  # the first FAIL after start: send -> tenth DELIST task
    steady_s: list[float]  # the FAILs after it
    rss_per_listing: float | None  # None: not the first run of the process (see latency_run)
    encoded_per_listing: float
    rebuild: Rate | None = None  # restart from earliest: start to caught up
    after_rebuild_s: float | None = None  # the first FAIL after the rebuild

    @property
    def steady_p50(self) -> float:
        return statistics.median(self.steady_s)

    @property
    def steady_p99(self) -> float:
        return percentile(self.steady_s, 0.99)


class EnforceBench:
    def __init__(
        self,
        bootstrap: str,
        n: int,
        console: Console,
        runner: Runner,
        records_per_poll: int | None = None,
    ) -> None:
        self.records_per_poll = records_per_poll  # None: the job's own default
        self.bootstrap = bootstrap
        self.n = n
        self.console = console
        self.runner = runner
        self.platforms = load_platforms().ids
        self.registry = SchemaRegistry.load()
        self.gen = FeedGenerator(seed=5)
        self._results_sent = 0

    def job(self, topics: TopicNames, idle_timeout_s: float) -> EnforceJob:
        job = enforce_job(self.bootstrap, topics, idle_timeout_s=idle_timeout_s)
        if self.records_per_poll is None:
            return job
        return replace(job, max_records_per_poll=self.records_per_poll)

    def args(self, streaming: bool) -> list[str]:
        return pipeline_args_with_defaults(self.runner.args(), streaming=streaming)

    def namespace(self, tag: str) -> TopicNames:
        topics = TopicNames(prefix=f"bench{int(time.time())}{tag}.")
        kafka_client.create_topics(self.bootstrap, resolved_topics(), prefix=topics.prefix)
        return topics

    def listing(self, i: int) -> dict[str, Any]:
        product = i // LISTINGS_PER_PRODUCT
        platform = self.platforms[i % len(self.platforms)]
        base = self.gen.listing(platform, i)
        return {
            **base,
            "listing_id": f"{platform}-B{i:09d}",
            "seller_id": f"{platform}-s{product % 500:03d}",
            "brand": f"Brand{product % 97}",
            "model": f"Q{product:07d}",
            "gtin": None,
            "manufacturer": None,
        }

    def result(self, n: int, product: int) -> dict[str, Any]:
        return {
            **self.gen.inspection(n),
            "inspection_id": f"BENCH-{n:06d}",
            "brand": f"Brand{product % 97}",
            "model": f"Q{product:07d}",
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
        """One marker after the listings of every partition of the listings topic."""
        topic = topics.valid("listing")
        producer = kafka_client.producer(self.bootstrap)
        partitions = sorted(producer.partitions_for(topic))
        for p in partitions:
            producer.send(topic, partition=p, key=f"marker-{p}".encode(), value=MARKER_VALUE)
        producer.flush()
        producer.close()
        return len(partitions)

    def run(self, results: int, rebuild: bool, bounded: bool) -> EnforceFigures:
        self.console.rule(f"[b]enforce with {self.n:,} live listings, {self.runner.label}")
        topics = self.namespace("e")
        with self.console.status(f"producing {self.n:,} listings…"):
            self.produce_listings(topics.valid("listing"))
        with self.console.status("raw limit…"):
            kafka_client.create_topics(
                self.bootstrap,
                [t for t in resolved_topics() if t.name == "omm.valid.listings"],
                prefix=topics.prefix + "raw.",
            )
            sink = topics.prefix + "raw.omm.valid.listings"
            raw = raw_limit(self.bootstrap, topics.valid("listing"), sink, self.n, self.registry)
        # after the raw run, which decodes everything it reads
        markers = self.produce_markers(topics)
        # the streaming run first, so its memory growth is the state's
        load, latencies, per_listing = self.latency_run(topics, markers, results)
        rebuilt: Rate | None = None
        after_rebuild: float | None = None
        if rebuild:
            rebuilt, after_rebuild = self.rebuild_run(topics, markers)
        throughput = self.bounded_run(topics) if bounded else None
        figures = EnforceFigures(
            runner=self.runner.label,
            listings=self.n,
            raw=raw,
            load=load,
            bounded=throughput,
            first_s=latencies[0],
            steady_s=latencies[1:],
            rss_per_listing=per_listing,
            encoded_per_listing=self.encoded_state_bytes(),
            rebuild=rebuilt,
            after_rebuild_s=after_rebuild,
        )
        self.print(figures)
        return figures

    def print(self, f: EnforceFigures) -> None:
        rates = [f.load] + ([f.bounded] if f.bounded else []) + ([f.rebuild] if f.rebuild else [])
        self.console.print(
            rate_table(f"enforce, {self.n:,} listings, {self.runner.label}", f.raw, rates)
        )
        table = Table(title=f"FAIL → tenth DELIST task, {self.n:,} live listings in state")
        for column in (
            "first FAIL after start s",
            "steady FAILs",
            "steady p50 s",
            "steady p99 s",
            "steady max s",
            "first after rebuild s",
            "RSS growth / live listing",
            "encoded state / live listing",
        ):
            table.add_column(column, justify="right")
        table.add_row(
            f"{f.first_s:.3f}",
            str(len(f.steady_s)),
            f"{f.steady_p50:.3f}",
            f"{f.steady_p99:.3f}",
            f"{max(f.steady_s):.3f}",
            "-" if f.after_rebuild_s is None else f"{f.after_rebuild_s:.3f}",
            _bytes(f.rss_per_listing),
            f"{f.encoded_per_listing:,.0f} B",
        )
        self.console.print(table)
        self.console.print(f"machine: {MACHINE}")

    def encoded_state_bytes(self) -> float:
        """Bytes the runner stores per live listing: its fact, PickleCoder-encoded (the bag's
        coder), under each of its keys, plus its share of the key itself."""
        from apache_beam.coders import PickleCoder

        from pipelines.rules.enforcement import listing_fact, listing_keys

        cfg = load_enforcement()
        coder = PickleCoder()
        total = 0.0
        sample = 1000
        for i in range(sample):
            fact = listing_fact(self.listing(i), f"t/0/{i}")
            keys = listing_keys(fact, cfg)
            total += len(coder.encode(fact)) * len(keys)
            total += sum(len(k.encode()) for k in keys) / LISTINGS_PER_PRODUCT
        return total / sample

    def _streaming(self, topics: TopicNames, work: Callable[[Run], T]) -> T:
        """A streaming enforce run in this thread, ``work`` beside it in another; the run
        ends after its idle window, once ``work`` stops feeding it. This thread, because
        Prism's job server installs a signal handler, which only the main thread may."""
        run = Run()
        out: list[T] = []

        def side() -> None:
            try:
                out.append(work(run))
            except BaseException as exc:
                run.failed = exc

        helper = threading.Thread(target=side, daemon=True)
        run.started = time.time()
        helper.start()
        try:
            run_enforce(
                self.job(topics, IDLE_S),
                self.args(True),
            )
        finally:
            run.ended.set()
        helper.join(timeout=300)
        if run.failed is not None:
            raise run.failed
        if not out:
            raise SystemExit("the enforce run ended before the bench was done with it")
        return out[0]

    def _fail(self, producer: Any, topics: TopicNames, watcher: TaskWatcher) -> float:
        """Publish one FAIL for a product on sale on every platform; seconds to its tenth task."""
        self._results_sent += 1
        k = self._results_sent
        product = (k * 7919) % (self.n // LISTINGS_PER_PRODUCT)
        result = self.result(k, product)
        sent = time.time()
        producer.send(
            topics.valid("inspection"),
            key=result["inspection_id"].encode(),
            value=self.registry.encode("inspection", result),
        )
        producer.flush()
        arrived = watcher.wait_for(result["inspection_id"], LISTINGS_PER_PRODUCT, timeout_s=120)
        return arrived - sent

    def latency_run(
        self, topics: TopicNames, markers: int, results: int
    ) -> tuple[Rate, list[float], float | None]:
        baseline = rss_bytes()
        # after a first run the allocator hands its freed memory to the next: only the
        # first state a process (and its Prism) holds shows in its resident memory
        first = not _STATE_HELD[self.runner.name]
        _STATE_HELD[self.runner.name] = True
        watcher = TaskWatcher(self.bootstrap, [topics.tasks(p) for p in self.platforms])
        dlq = DeadLetterCounter(self.bootstrap, topics.dlq)

        def work(run: Run) -> tuple[Rate, list[float], float | None]:
            with self.console.status(f"streaming enforce: loading {self.n:,} listings…"):
                loaded = dlq.wait_for(markers, run, timeout_s=7200)
            label = f"omm enforce, streaming load into state ({self.runner.label})"
            load = Rate(label, self.n, loaded - run.started)
            per_listing = (rss_bytes() - baseline) / self.n if first else None
            producer = kafka_client.producer(self.bootstrap, linger_ms=0)
            with self.console.status(f"publishing {results} FAIL results one at a time…"):
                latencies = [self._fail(producer, topics, watcher) for _ in range(results)]
            producer.close()
            return load, latencies, per_listing

        try:
            return self._streaming(topics, work)
        finally:
            watcher.close()
            dlq.close()

    def rebuild_run(self, topics: TopicNames, markers: int) -> tuple[Rate, float]:
        """Enforce again from the earliest offsets: the state rebuilt, as after a restart."""
        watcher = TaskWatcher(self.bootstrap, [topics.tasks(p) for p in self.platforms])
        dlq = DeadLetterCounter(self.bootstrap, topics.dlq)

        def work(run: Run) -> tuple[Rate, float]:
            with self.console.status(f"restart: rebuilding the state of {self.n:,} listings…"):
                caught_up = dlq.wait_for(markers, run, timeout_s=7200)
            label = f"omm enforce, restart: state rebuilt ({self.runner.label})"
            rebuilt = Rate(label, self.n, caught_up - run.started)
            producer = kafka_client.producer(self.bootstrap, linger_ms=0)
            after = self._fail(producer, topics, watcher)
            producer.close()
            return rebuilt, after

        try:
            return self._streaming(topics, work)
        finally:
            watcher.close()
            dlq.close()

    def bounded_run(self, topics: TopicNames) -> Rate:
        with self.console.status("bounded enforce run (throughput)…"):
            idle = 3.0
            started = time.time()
            account = run_enforce(
                self.job(topics, idle),
                self.args(streaming=False),
            )
            took = time.time() - started - idle
        # the listings, plus the markers and results the streaming runs added
        if account.read < self.n or not account.balanced:
            raise SystemExit(f"enforce read {account.read} of {self.n}: {account}")
        return Rate(f"omm enforce, bounded ({self.runner.label})", account.read, took)


class Run:
    """What the bench's side thread knows of the streaming run beside it."""

    def __init__(self) -> None:
        self.started = 0.0
        self.ended = threading.Event()
        self.failed: BaseException | None = None

    def check(self) -> None:
        """Raise when the run ended before the bench was done waiting on it."""
        if self.ended.is_set():
            raise SystemExit("the enforce run ended early (its error is above)")


class DeadLetterCounter:
    """Counts the records arriving on omm.dlq from now on; when the N-th arrived."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._consumer = kafka_client.consumer(bootstrap)
        kafka_client.assign_topics(self._consumer, [topic], "end")
        self._seen = 0

    def wait_for(self, count: int, run: Run, timeout_s: float) -> float:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._seen >= count:
                return time.time()
            run.check()
            for records in self._consumer.poll(timeout_ms=50).values():
                self._seen += len(records)
        raise TimeoutError(f"fewer than {count} dead letters after {timeout_s}s")

    def close(self) -> None:
        self._consumer.close()


class TaskWatcher:
    """Reads the task topics and remembers when each inspection's DELIST tasks arrived."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self._consumer = kafka_client.consumer(bootstrap)
        kafka_client.assign_topics(self._consumer, topics, "end")
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


def bench_enforce(
    bootstrap: str,
    n: int,
    results: int,
    console: Console,
    runner: Runner,
    rebuild: bool = False,
    bounded: bool = True,
    records_per_poll: int | None = None,
) -> EnforceFigures:
    bench = EnforceBench(bootstrap, n, console, runner, records_per_poll)
    return bench.run(results, rebuild, bounded)


def growth_table(figures: list[EnforceFigures]) -> Table:
    """Every enforce run of this bench side by side: how the cost grows with the listings."""
    table = Table(title="enforce cost growth (each rate beside the raw limit of the same run)")
    for column in (
        "runner",
        "live listings",
        "raw /s",
        "load /s (% raw)",
        "bounded /s",
        "first FAIL s",
        "steady p50 / p99 s",
        "RSS / listing",
        "encoded / listing",
        "rebuild s",
        "FAIL after rebuild s",
    ):
        table.add_column(column, justify="left" if column == "runner" else "right")
    for f in figures:
        table.add_row(
            f.runner,
            f"{f.listings:,}",
            f"{f.raw.per_second:,.0f}",
            f"{f.load.per_second:,.0f} ({100 * f.load.per_second / f.raw.per_second:.0f} %)",
            "-" if f.bounded is None else f"{f.bounded.per_second:,.0f}",
            f"{f.first_s:.3f}",
            f"{f.steady_p50:.3f} / {f.steady_p99:.3f}",
            _bytes(f.rss_per_listing),
            f"{f.encoded_per_listing:,.0f} B",
            "-" if f.rebuild is None else f"{f.rebuild.seconds:.1f}",
            "-" if f.after_rebuild_s is None else f"{f.after_rebuild_s:.3f}",
        )
    return table
