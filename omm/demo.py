"""`omm demo`: the whole story on the embedded broker with generated data.

1. start the embedded Kafka (fetching its jars once), create the topics;
2. the ten platforms push listings, complaints and takedowns through the push
   client (which refuses lines it can see are wrong), the regulator publishes
   inspection results;
3. some platforms bypass the client and send bad records straight to Kafka:
   broken listings, a spoofed platform, raw garbage bytes (about 5 %);
4. ingest runs until idle; the conservation account and a sample of the
   feedback platforms receive are printed.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from rich.console import Console
from rich.table import Table

from connectors import kafka_client
from connectors.push import push_records
from connectors.tail import tail_records
from omm.config import load_platforms, load_rules, resolved_topics
from omm.generate import GARBAGE, FeedGenerator, broken_listings
from omm.settings import get_settings, pseudonym_key
from omm.topics import TopicNames
from schemas.registry import SchemaRegistry

LISTINGS_PER_PLATFORM = 60
COMPLAINTS_PER_PLATFORM = 12
TAKEDOWNS_PER_PLATFORM = 4
INSPECTIONS = 12
IDLE_S = 4.0


def run_demo(console: Console, seed: int = 2016) -> None:
    from connectors.broker.manager import EmbeddedKafka
    from omm.beam_runtime import pipeline_args_with_defaults
    from pipelines.ingest import IngestJob, run_ingest

    settings = get_settings()
    broker = EmbeddedKafka(
        home=settings.home / "kafka",
        port=settings.broker_port,
        controller_port=settings.controller_port,
    )
    bootstrap = settings.kafka_bootstrap
    console.rule("[b]1. Embedded Kafka")
    with console.status("fetching Kafka jars (first run only) and starting the broker…"):
        broker.ensure_jars()
        console.print(broker.start().describe())
    # A demo run gets its own topic namespace so it can be repeated on the same broker.
    topics = TopicNames(prefix=f"demo{int(time.time())}.")
    with console.status("creating topics…"):
        created = kafka_client.create_topics(bootstrap, resolved_topics(), prefix=topics.prefix)
    console.print(f"{len(created)} topics created under namespace [b]{topics.prefix}[/b]")

    console.rule("[b]2. Platforms push their feeds, the regulator publishes")
    gen = FeedGenerator(seed=seed)
    rules, platforms = load_rules(), load_platforms()
    registry = SchemaRegistry.load()
    pushed = Table("platform", "feed", "lines", "sent", "refused by the push client")
    client_refused: list[str] = []
    sent_total = 0
    feeds = {
        "listings": (LISTINGS_PER_PLATFORM, gen.listing),
        "complaints": (COMPLAINTS_PER_PLATFORM, gen.complaint),
        "takedowns": (TAKEDOWNS_PER_PLATFORM, gen.takedown),
    }
    with console.status("pushing…") as status:
        for platform in platforms.ids:
            for feed, (count, make) in feeds.items():
                status.update(f"{platform}: pushing {count} {feed}")
                lines: list[tuple[int, dict]] = [(i + 1, make(platform, i)) for i in range(count)]
                if feed == "complaints" and platform == "jd":
                    # a line the client itself refuses before anything is sent
                    lines.append((count + 1, {**make(platform, count), "issue_type": "LOUD_NOISE"}))
                report = push_records(
                    lines,
                    feed=feed,
                    platform=platform,
                    bootstrap=bootstrap,
                    rules=rules,
                    platforms=platforms,
                    topics=topics,
                    registry=registry,
                )
                client_refused += [f"{platform} {feed} {r.describe()}" for r in report.rejected]
                sent_total += report.sent
                pushed.add_row(
                    platform, feed, str(report.total), str(report.sent), str(len(report.rejected))
                )
        inspections = [(i + 1, gen.inspection(i)) for i in range(INSPECTIONS)]
        report = push_records(
            inspections,
            feed="inspections",
            platform=None,
            bootstrap=bootstrap,
            rules=rules,
            platforms=platforms,
            topics=topics,
            registry=registry,
        )
        sent_total += report.sent
        pushed.add_row(
            "regulator",
            "inspections",
            str(report.total),
            str(report.sent),
            str(len(report.rejected)),
        )
    console.print(pushed)
    for refusal in client_refused:
        console.print(f"  [yellow]push client refused[/yellow] {refusal}")

    console.rule("[b]3. Some senders bypass the client: bad records straight to Kafka")
    producer = kafka_client.producer(bootstrap)
    bad_count = Counter[str]()
    for platform in ("taobao", "suning", "gome"):
        for record, rule in broken_listings(gen, platform, 10, start=10_000):
            producer.send(
                topics.feed(platform, "listings"),
                key=record["listing_id"].encode(),
                value=registry.encode("listing", record),
            )
            bad_count[rule] += 1
    spoof = {**gen.listing("tmall", 20_000), "platform": "jd"}
    producer.send(
        topics.feed("tmall", "listings"), key=b"spoof", value=registry.encode("listing", spoof)
    )
    bad_count["platform_matches_topic (tmall record claiming jd)"] += 1
    for i in range(3):
        producer.send(topics.feed("vip", "takedowns"), key=f"garbage-{i}".encode(), value=GARBAGE)
    bad_count["raw garbage bytes"] += 3
    producer.flush()
    producer.close()
    bad_total = sum(bad_count.values())
    share = 100 * bad_total / (sent_total + bad_total)
    console.print(f"{bad_total} bad records sent ({share:.1f} % of all records):")
    for rule, n in sorted(bad_count.items()):
        console.print(f"  {n}× {rule}")

    console.rule("[b]4. Ingest (Beam, FnApiRunner) until idle")
    job = IngestJob(
        bootstrap=bootstrap,
        platforms=platforms.ids,
        topics=topics,
        group_id=f"{settings.consumer_group_prefix}.{topics.prefix}ingest",
        pseudonym_key=pseudonym_key(settings),
        idle_timeout_s=IDLE_S,
    )
    with console.status(f"ingest running (stops after {IDLE_S:.0f}s without new records)…"):
        started = time.monotonic()
        accounts = run_ingest(job, pipeline_args_with_defaults(None, streaming=False))
        took = time.monotonic() - started
    from omm.cli import print_accounts

    print_accounts(accounts)
    read = sum(a.read for a in accounts)
    console.print(f"ingest read {read} records in {took:.1f}s (including {IDLE_S:.0f}s idle wait)")
    if not all(a.balanced for a in accounts):
        raise SystemExit("conservation account does not balance")

    console.rule("[b]5. What the platforms are told (omm.feedback.<platform>)")
    for platform in ("taobao", "tmall", "vip"):
        feedback = tail_records(bootstrap, topics.feedback(platform), max_records=2, timeout_s=2)
        for line in feedback:
            fb: dict[str, Any] = line.get("value") or {}
            console.print(
                f"[b]{platform}[/b] {fb.get('source_topic')} offset {fb.get('source_offset')}: "
                f"{fb.get('error_class')} field={fb.get('field')} rule={fb.get('rule')}\n"
                f"    {fb.get('message')}"
            )
    console.print(f"\nInspect more with: omm tail {topics.dlq} --from-beginning --max 5")
