"""Intel's benchmark: a bounded run's throughput beside the raw limit of the same records.

N complaints spread over products, sellers, platforms, issue types and days as a
market's are (a few products and sellers draw most of them), with the listings
they name, a few hundred penalties and inspections, are written to fresh
omm.valid.* topics under a bench prefix. The raw limit is plain kafka-python
(consume + decode + encode + produce) over the same four topics, measured in the
same run. Intel runs bounded, in event order (as `omm run intel --until-idle`),
timed from the first record read (the reader's first non-empty poll, a Beam
metric) to the last output appended (the broker's append time on the output
topics), and from the run's start; what it wrote is printed beside it.

The spread is made so that every rule has work: 7- and 30-day sampling windows
over products with clusters of complaints, sellers with enough violation
complaints for case leads, claims on compensation-first platforms left open past
their period, enterprises penalised often enough to be listed (and so flags to
their sellers' live listings), and products inspected recently enough to be left
out of the recommendations.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.table import Table

from connectors import kafka_client
from connectors.topics import TopicNames
from omm.beam_runtime import pipeline_args_with_defaults
from omm.bench.limits import APPEND_TIME, MACHINE, Rate, last_append_ms, rate_table, raw_limit
from omm.bench.runners import Runner, load_average
from omm.config import load_platforms, resolved_topics
from omm.generate import ISSUE_TYPES, FeedGenerator
from omm.jobs import intel_job
from pipelines.intel import Intel, account_from_metrics
from pipelines.running import run
from schemas.registry import SchemaRegistry

# the market's shape: products and sellers complained about, listings per seller
PRODUCTS = 2_000
# sellers on each platform: one per 30 complaints, within these bounds
SELLERS_PER_PLATFORM = (3, 300)
LISTINGS_PER_SELLER = 3
DAYS = 60
ENTERPRISES = 120
PENALTIES = 300
INSPECTIONS = 300
# a few products and sellers draw most complaints (Zipf-like: weight 1 / rank^s)
SKEW = 1.0
# categories of listings; fresh food is one whose return may be lawfully refused
CATEGORIES = ("kitchen", "heating", "toys", "electronics", "fresh_food/fruit", "apparel")
ENTITIES = ("complaint", "penalty", "inspection", "listing")


@dataclass
class IntelRecords:
    """The bench's input, by entity, in the order written."""

    complaints: list[dict[str, Any]] = field(default_factory=list)
    listings: list[dict[str, Any]] = field(default_factory=list)
    penalties: list[dict[str, Any]] = field(default_factory=list)
    inspections: list[dict[str, Any]] = field(default_factory=list)

    def of(self, entity: str) -> list[dict[str, Any]]:
        return {
            "complaint": self.complaints,
            "listing": self.listings,
            "penalty": self.penalties,
            "inspection": self.inspections,
        }[entity]

    @property
    def total(self) -> int:
        return sum(len(self.of(e)) for e in ENTITIES)


def _ms(at: datetime) -> datetime:
    return at.replace(microsecond=(at.microsecond // 1000) * 1000)


def _zipf(n: int) -> list[float]:
    return [1.0 / (rank + 1) ** SKEW for rank in range(n)]


def product_identity(p: int) -> tuple[str, str]:
    """Brand and model of the bench's product ``p``."""
    return f"Brand{p % 97}", f"Q{p:07d}"


def seller_id(platform: str, s: int) -> str:
    return f"{platform}-s{s:03d}"


def listing_id(platform: str, s: int, k: int) -> str:
    return f"{platform}-S{s:03d}L{k}"


def sellers_per_platform(n: int) -> int:
    low, high = SELLERS_PER_PLATFORM
    return max(low, min(high, n // 30))


def intel_records(n: int, end: datetime, platforms: list[str], seed: int = 12) -> IntelRecords:
    """``n`` complaints over the ``DAYS`` days before ``end`` and what they name; the same
    seed and ``end`` give the same records."""
    rng = random.Random(seed)
    sellers_n = sellers_per_platform(n)
    gen = FeedGenerator(seed=seed, now=end)
    start = end - timedelta(days=DAYS)
    out = IntelRecords()
    for platform in platforms:
        for s in range(sellers_n):
            for k in range(LISTINGS_PER_SELLER):
                p = rng.randrange(PRODUCTS)
                brand, model = product_identity(p)
                out.listings.append(
                    {
                        **gen.listing(platform, s * LISTINGS_PER_SELLER + k),
                        "listing_id": listing_id(platform, s, k),
                        "seller_id": seller_id(platform, s),
                        "brand": brand,
                        "model": model,
                        "gtin": None,
                        "manufacturer": None,
                        "category": CATEGORIES[(s + k) % len(CATEGORIES)],
                        # one listing in ten taken down by now
                        "status": "REMOVED" if rng.random() < 0.1 else "ACTIVE",
                        "observed_at": _ms(start + timedelta(seconds=rng.uniform(0, DAYS * 86400))),
                    }
                )
    product_weights = _zipf(PRODUCTS)
    seller_weights = _zipf(sellers_n)
    products = rng.choices(range(PRODUCTS), weights=product_weights, k=n)
    sellers = rng.choices(range(sellers_n), weights=seller_weights, k=n)
    for i in range(n):
        platform = platforms[i % len(platforms)]
        s = sellers[i]
        brand, model = product_identity(products[i])
        received = _ms(start + timedelta(seconds=rng.uniform(0, DAYS * 86400)))
        fate = rng.random()
        # most claims end within days; some are still open, or end after a week or more
        # (compensation-first on the platforms bound by it)
        if fate < 0.65:
            status, resolved = "RESOLVED", received + timedelta(hours=rng.uniform(1, 120))
        elif fate < 0.75:
            status, resolved = "CLOSED", received + timedelta(days=rng.uniform(1, 20))
        else:
            status, resolved = "OPEN", None
        if resolved is not None and resolved > end:
            status, resolved = "OPEN", None
        out.complaints.append(
            {
                "complaint_id": f"{platform}-C{i:08d}",
                "platform": platform,
                "channel": "HOTLINE_12315" if i % 5 == 0 else "PLATFORM",
                "consumer_id": f"consumer-{rng.randrange(10**6)}",
                "seller_id": seller_id(platform, s),
                "listing_id": (
                    listing_id(platform, s, rng.randrange(LISTINGS_PER_SELLER))
                    if rng.random() < 0.7
                    else None
                ),
                "product_name": f"bench product {model}",
                "brand": brand,
                "model": model,
                "gtin": None,
                "issue_type": rng.choice(ISSUE_TYPES),
                "text": f"产品有问题, 请联系我 1380000{rng.randint(1000, 9999)}",
                "status": status,
                "received_at": received,
                "resolved_at": _ms(resolved) if resolved else None,
            }
        )
    # penalties: a few enterprises (the first ones) penalised often, within two years
    enterprise_weights = _zipf(ENTERPRISES)
    penalised = rng.choices(range(ENTERPRISES), weights=enterprise_weights, k=PENALTIES)
    for j, e in enumerate(penalised):
        platform = platforms[e % len(platforms)]
        decided = _ms(end - timedelta(days=rng.uniform(40, 700)))
        out.penalties.append(
            {
                "penalty_id": f"P{j:05d}",
                "enterprise_id": f"91310000BENCH{e:05d}",
                "enterprise_name": f"Bench Enterprise {e} Co.",
                "platform": platform,
                "seller_id": seller_id(platform, e % sellers_n),
                "ground": "PRODUCT_SAFETY" if j % 4 else "FALSE_ADVERTISING",
                "legal_basis": "Product Quality Law Art. 49",
                "decision_no": f"D-{j:05d}",
                "authority": "Shanghai AMR",
                "decided_at": decided,
                "published_at": decided + timedelta(days=3),
            }
        )
    # inspections: the most complained-about products are the likeliest to be sampled
    inspected = rng.choices(range(PRODUCTS), weights=product_weights, k=INSPECTIONS)
    for j, p in enumerate(inspected):
        brand, model = product_identity(p)
        out.inspections.append(
            {
                **gen.inspection(j, verdict="PASS" if j % 3 else "FAIL"),
                "brand": brand,
                "model": model,
                "gtin": None,
                "manufacturer": None,
                "published_at": _ms(end - timedelta(days=rng.uniform(1, 400))),
            }
        )
    return out


KEYS = {
    "complaint": "complaint_id",
    "listing": "listing_id",
    "penalty": "penalty_id",
    "inspection": "inspection_id",
}


class IntelBench:
    def __init__(self, bootstrap: str, n: int, console: Console, runner: Runner) -> None:
        self.bootstrap = bootstrap
        self.n = n
        self.console = console
        self.runner = runner
        self.registry = SchemaRegistry.load()
        self.platforms = load_platforms().ids
        # yesterday's end, whole seconds: every event time is in the past
        self.end = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)

    def namespace(self, tag: str) -> TopicNames:
        topics = TopicNames(prefix=f"bench{int(time.time())}{tag}.")
        # the inputs as ingest leaves them (producer time); the outputs stamped by the broker
        inputs = {topics.valid(e).removeprefix(topics.prefix) for e in ENTITIES}
        kafka_client.create_topics(
            self.bootstrap,
            [t for t in resolved_topics() if t.name in inputs],
            prefix=topics.prefix,
        )
        kafka_client.create_topics(
            self.bootstrap, resolved_topics(), prefix=topics.prefix, extra_config=APPEND_TIME
        )
        return topics

    def produce(self, topics: TopicNames, records: IntelRecords) -> None:
        producer = kafka_client.producer(self.bootstrap)
        for entity in ENTITIES:
            topic = topics.valid(entity)
            for r in records.of(entity):
                value = self.registry.encode(entity, r)
                producer.send(topic, key=str(r[KEYS[entity]]).encode(), value=value)
        producer.flush()
        producer.close()

    def raw(self, topics: TopicNames, records: IntelRecords) -> Rate:
        """The raw limit over the four topics, one after the other: their records and
        seconds added up."""
        names = {t.name for t in resolved_topics()}
        seconds = 0.0
        for entity in ENTITIES:
            source = topics.valid(entity)
            name = source.removeprefix(topics.prefix)
            assert name in names, name
            kafka_client.create_topics(
                self.bootstrap,
                [t for t in resolved_topics() if t.name == name],
                prefix=topics.prefix + "raw.",
            )
            count = len(records.of(entity))
            rate = raw_limit(
                self.bootstrap, source, topics.prefix + "raw." + name, count, self.registry
            )
            seconds += rate.seconds
        return Rate("raw kafka-python consume+decode+encode+produce", records.total, seconds)

    def run(self) -> None:
        from apache_beam.metrics.metric import MetricsFilter

        self.console.rule(f"[b]intel with {self.n:,} complaints, {self.runner.label}")
        with self.console.status("generating the market…"):
            records = intel_records(self.n, self.end, self.platforms)
        topics = self.namespace("i")
        with self.console.status(f"producing {records.total:,} records…"):
            self.produce(topics, records)
        with self.console.status("raw limit…"):
            raw = self.raw(topics, records)
        with self.console.status("bounded intel run (throughput)…"):
            job = intel_job(self.bootstrap, topics, idle_timeout_s=3.0, tick_seconds=1.0)
            started = time.time()
            result = run(
                "Intel",
                Intel(job),
                pipeline_args_with_defaults(self.runner.args(), streaming=False),
            )
            account = account_from_metrics(result)
            polls = result.metrics().query(
                MetricsFilter().with_namespace("kafka_read").with_name("polled_at_ms")
            )["distributions"]
            first_read = min((d.committed or d.attempted).min for d in polls) / 1000.0
            # the run has ended and flushed: its outputs are on the topics; the task topics
            # are read for their newest record only (flags and claims share them)
            expect = {
                topics.sampling: account.recommendations,
                topics.leads: account.leads,
                topics.credit_events: account.credit_events,
                **{topics.tasks(p): 0 for p in self.platforms},
            }
            last = last_append_ms(self.bootstrap, expect) / 1000.0
        if account.read != records.total or not account.balanced:
            raise SystemExit(f"intel read {account.read} of {records.total}: {account}")
        rate = Rate(
            f"omm intel, bounded in event order, {self.runner.label}",
            account.read,
            last - first_read,
            from_start_s=last - started,
        )
        raw_full = Rate(raw.label, raw.records, raw.seconds, from_start_s=raw.seconds)
        title = (
            f"intel throughput, {self.n:,} complaints + {len(records.listings):,} listings + "
            f"{len(records.penalties)} penalties + {len(records.inspections)} inspections"
        )
        self.console.print(rate_table(title, raw_full, [rate], span="read→append"))
        table = Table(title="what intel wrote")
        for column in (
            "sampling recommendations",
            "case leads",
            "compensation-first tasks",
            "credit events",
            "flags",
            "late",
            "dead letters",
        ):
            table.add_column(column, justify="right")
        table.add_row(
            f"{account.recommendations:,}",
            f"{account.leads:,}",
            f"{account.compensation_first:,}",
            f"{account.credit_events:,}",
            f"{account.flags:,}",
            f"{account.late:,}",
            f"{account.dead:,}",
        )
        self.console.print(table)
        self.console.print(f"machine: {MACHINE}; load average: {load_average()}")


def bench_intel(bootstrap: str, complaints: int, console: Console, runner: Runner) -> None:
    IntelBench(bootstrap, complaints, console, runner).run()
