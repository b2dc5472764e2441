"""`omm demo`: the whole story on the embedded broker with generated data.

1. start the embedded Kafka (fetching its jars once), create the topics;
2. ten platforms push listings, complaints and takedowns through the push
   client (which refuses lines it can see are wrong); the regulator publishes
   inspection results: a FAIL on a rice cooker sold everywhere (with model-code
   variants and a brand alias), a COUNTERFEIT at one seller, a FAIL that will
   be overturned, and passes;
3. some senders bypass the client: broken listings, a spoofed platform, raw
   garbage bytes (about 5 % of all records);
4. ingest runs until idle and prints its conservation account, and the feed
   health of every platform feed (one platform's listings drift: brands go missing);
5. enforce joins results with live listings: tasks per platform, a look-alike
   sent to review, a listing removed before the result left alone;
6. afterwards a platform re-lists the product under a new id and the
   regulator overturns a result: enforce catches the re-listing and withdraws;
7. what the platforms are told about their rejected records;
8. a spring campaign modelled on 2016's (503 batches, 172 FAIL): each platform
   acts on its tasks in its own way (prompt, slow, contradicted by its own feed,
   re-listing, disputing), the deadline crosses Labour Day, comply tracks every
   task to its outcome and the scorecards say who complied;
9. complaint intelligence and credit (omm/intel_story.py): a cluster of complaints
   about one product on six platforms and the 12315 hotline becomes a sampling
   recommendation, a seller's violation complaints a case lead (a lawful refusal to
   take back fresh food left out), a tmall claim open past its 7 days a
   compensation-first task (which tmall then resolves before its deadline: comply's
   status of it is shown), and an enterprise's third product-safety penalty in two
   years puts it on the serious-violation list, its live listings flagged to taobao
   and jd. Intel runs bounded, so it emits what is final at the latest event read.

Then both reports (compliance, with intel's sections, and feed health) are written
to ./reports.

Each run works in a private topic namespace (``demo<time>-<random>.``) and deletes
it at the end, whether the story finished, failed or was interrupted; ``--keep``
leaves it for ``omm tail`` / ``omm report feeds``. A private namespace rather
than one fixed ``demo.`` reset at start: two demos on one shared broker must not
delete each other's topics mid-run, and a finished run leaves nothing behind. A
run killed with -9 cannot clean up: ``omm topics delete --prefix <namespace>``.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kafka.errors import KafkaError
from rich.console import Console

from connectors import kafka_client
from connectors.kafka_client import delete_namespace
from connectors.probe import Cluster, probe
from connectors.push import push_records
from connectors.tail import read_to_end, tail_records
from connectors.topics import TopicNames
from omm.campaign import CST
from omm.client_logs import quiet_slow_task_warnings
from omm.config import load_platforms, load_rules, resolved_topics
from omm.generate import CATALOG, GARBAGE, FeedGenerator, Record, broken_listings
from omm.settings import get_settings
from omm.tables import table
from schemas.registry import SchemaRegistry

LISTINGS_PER_PLATFORM = 60
COMPLAINTS_PER_PLATFORM = 12
TAKEDOWNS_PER_PLATFORM = 4
IDLE_S = 4.0
COOKER = next(p for p in CATALOG if p.model == "KX-2000A")
POWER_BANK = next(p for p in CATALOG if p.model == "PG-20000")
HEATER = next(p for p in CATALOG if p.model == "WH-H2")
DRIFTING = "dangdang"
PASSED = [p for p in CATALOG if p not in (COOKER, POWER_BANK, HEATER)][:5]


@dataclass(frozen=True)
class IntelRecords:
    """What intel published (latest per key), for chapter 9's tables and the report."""

    sampling: list[dict[str, Any]]
    leads: list[dict[str, Any]]
    credit: list[dict[str, Any]]
    tasks: list[dict[str, Any]]  # FLAG and COMPENSATION_FIRST
    sources: tuple[str, str, str]  # the sampling, leads and credit topics


def _ms(value: Any) -> int:
    """Epoch millis of a decoded timestamp (a datetime, or millis)."""
    return value if isinstance(value, int) else int(value.timestamp() * 1000)


def _when(value: Any) -> datetime:
    return datetime.fromtimestamp(_ms(value) / 1000, UTC).astimezone(CST)


def _day(value: Any) -> str:
    """A window's or an event's local (Beijing) day."""
    return f"{_when(value):%Y-%m-%d}"


def _span(start: Any, end: Any) -> str:
    """A window of whole local days: its first and last day (its end is exclusive)."""
    return f"{_day(start)} to {_day(_ms(end) - 1)}"


def _local(value: Any) -> str:
    return f"{_when(value):%Y-%m-%d %H:%M}"


def _pairs(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


class Demo:
    def __init__(
        self, console: Console, seed: int, bootstrap: str | None = None, keep: bool = False
    ) -> None:
        self.console = console
        self.settings = get_settings()
        self.bootstrap = bootstrap or self.settings.kafka_bootstrap
        self.gen = FeedGenerator(seed=seed)
        self.rules, self.platforms = load_rules(), load_platforms()
        self.registry = SchemaRegistry.load()
        # A private namespace per run: demos sharing a broker never touch each other's.
        self.topics = TopicNames(prefix=f"demo{int(time.time())}-{uuid.uuid4().hex[:6]}.")
        self.keep = keep
        self.cluster: Cluster | None = None
        self.sent = 0

    # ------------------------------------------------------------ steps

    def start_broker(self) -> None:
        from connectors.broker.manager import EmbeddedKafka

        self.console.rule("[b]1. Embedded Kafka")
        s = self.settings
        broker = EmbeddedKafka(
            home=s.home / "kafka", port=s.broker_port, controller_port=s.controller_port
        )
        with self.console.status("fetching Kafka jars (first run only) and starting the broker…"):
            broker.ensure_jars()
            self.console.print(broker.start().describe())

    def create_topics(self) -> None:
        with self.console.status("creating topics…"):
            created = kafka_client.create_topics(
                self.bootstrap, resolved_topics(), prefix=self.topics.prefix
            )
            self.cluster = probe(self.bootstrap)
        self.console.print(
            f"{len(created)} topics created under namespace [b]{self.topics.prefix}[/b]"
            + ("" if self.keep else " (deleted at the end; `omm demo --keep` keeps them)")
        )

    def clean_up(self) -> None:
        if self.keep:
            self.console.print(
                f"topics kept under [b]{self.topics.prefix}[/b]; remove them with "
                f"`omm topics delete --prefix {self.topics.prefix}`"
            )
            return
        try:
            deleted = delete_namespace(
                self.bootstrap, self.topics.prefix, self.settings.consumer_group_prefix
            )
        except (KafkaError, TimeoutError) as exc:
            # said, not raised: an error here must not hide the one that ended the story
            self.console.print(
                f"[yellow]could not delete the demo topics ({exc}):[/yellow] "
                f"`omm topics delete --prefix {self.topics.prefix}` once the broker answers"
            )
            return
        self.console.print(f"{len(deleted)} demo topics deleted ({self.topics.prefix}*)")

    def push_feeds(self) -> None:
        self.console.rule("[b]2. Platforms push their feeds, the regulator publishes")
        pushed = table(
            "platform", "feed", "lines", "sent", "refused by the push client",

            counts=("lines", "sent", "refused by the push client"),
        )  # fmt: skip
        refused: list[str] = []
        feeds = {
            "listings": (LISTINGS_PER_PLATFORM, self.gen.listing),
            "complaints": (COMPLAINTS_PER_PLATFORM, self.gen.complaint),
            "takedowns": (TAKEDOWNS_PER_PLATFORM, self.gen.takedown),
        }
        story = self.story_listings()
        with self.console.status("pushing…") as status:
            for platform in self.platforms.ids:
                for feed, (count, make) in feeds.items():
                    status.update(f"{platform}: pushing {count} {feed}")
                    records = [make(platform, i) for i in range(count)]
                    if feed == "listings":
                        records += story.get(platform, [])
                        if platform == DRIFTING:
                            # halfway through, every third listing loses its brand
                            for i, record in enumerate(records[count // 2 : count]):
                                if i % 3 == 0:
                                    record["brand"] = None
                    if feed == "complaints" and platform == "jd":
                        # a line the client itself refuses before anything is sent
                        records.append({**make(platform, count), "issue_type": "LOUD_NOISE"})
                    report = self.push(feed, platform, records)
                    refused += [f"{platform} {feed} {r.describe()}" for r in report.rejected]
                    pushed.add_row(
                        platform,
                        feed,
                        str(report.total),
                        str(report.sent),
                        str(len(report.rejected)),
                    )
            report = self.push("inspections", None, self.story_results())
            pushed.add_row("regulator", "inspections", str(report.total), str(report.sent), "0")
        self.console.print(pushed)
        for refusal in refused:
            self.console.print(f"  [yellow]push client refused[/yellow] {refusal}")
        self.console.print(
            "regulator results: FAIL SAMR-2026-00001 (Midea KX-2000A rice cooker, population), "
            "COUNTERFEIT SAMR-2026-00002 (PowerGo power bank at seller taobao-s001), "
            "FAIL SAMR-2026-00003 (WarmHome heater, to be overturned), 5 passes"
        )

    def send_bad_records(self) -> None:
        self.console.rule("[b]3. Some senders bypass the client: bad records straight to Kafka")
        producer = kafka_client.producer(self.bootstrap)
        bad = Counter[str]()
        for platform in ("taobao", "suning", "gome"):
            for record, rule in broken_listings(self.gen, platform, 10, start=10_000):
                producer.send(
                    self.topics.feed(platform, "listings"),
                    key=record["listing_id"].encode(),
                    value=self.registry.encode("listing", record),
                )
                bad[rule] += 1
        spoof = {**self.gen.listing("tmall", 20_000), "platform": "jd"}
        producer.send(
            self.topics.feed("tmall", "listings"),
            key=b"spoof",
            value=self.registry.encode("listing", spoof),
        )
        bad["platform_matches_topic (a tmall record claiming to be jd)"] += 1
        for i in range(3):
            producer.send(
                self.topics.feed("vip", "takedowns"), key=f"garbage-{i}".encode(), value=GARBAGE
            )
        bad["raw garbage bytes"] += 3
        producer.flush()
        producer.close()
        total = sum(bad.values())
        self.console.print(
            f"{total} bad records sent ({100 * total / (self.sent + total):.1f} % of all records):"
        )
        for rule, n in sorted(bad.items()):
            self.console.print(f"  {n}× {rule}")

    def ingest(self, title: str, feed_health: bool = True) -> None:
        from omm.beam_runtime import pipeline_args_with_defaults
        from omm.jobs import ingest_job
        from omm.tables import print_accounts
        from pipelines.ingest import run_ingest

        self.console.rule(f"[b]{title}")
        job = ingest_job(
            self.bootstrap,
            self.topics,
            idle_timeout_s=IDLE_S,
            feed_health=feed_health,
            settings=self.settings,
        )
        with self.console.status(
            f"ingest running (stops after {IDLE_S:.0f}s without new records)…"
        ):
            started = time.monotonic()
            accounts = run_ingest(job, pipeline_args_with_defaults(None, streaming=False))
        print_accounts([a for a in accounts if a.read], self.console)
        read = sum(a.read for a in accounts)
        self.console.print(f"ingest read {read} records in {time.monotonic() - started:.1f}s")
        if not all(a.balanced for a in accounts):
            raise SystemExit("conservation account does not balance")
        if feed_health:
            self.show_feed_health()

    def show_feed_health(self) -> None:
        from pipelines.feed_health.results import FeedHealth

        latest: dict[str, FeedHealth] = {}
        for line in read_to_end(self.bootstrap, self.topics.feed_health):
            health = FeedHealth.from_record(line["value"])
            latest[health.key] = health
        healthy = [h for h in latest.values() if h.success]
        self.console.print(
            f"feed health (Great Expectations): {len(healthy)} of {len(latest)} "
            "platform feeds pass their suites"
        )
        for h in sorted(latest.values(), key=lambda h: h.key):
            for o in h.failing():
                self.console.print(
                    f"  [red]unhealthy[/red] {h.platform} {h.feed} ({h.rows} rows): "
                    f"{o.expectation} observed {o.observed}, expected {o.threshold}"
                    + (" — critical" if o.critical else "")
                )
        if self.keep:
            self.console.print(
                f"  report: omm report feeds --out reports/feeds --prefix {self.topics.prefix}"
            )

    def enforce(self, title: str) -> dict[str, dict[str, Any]]:
        from omm.beam_runtime import pipeline_args_with_defaults
        from omm.jobs import enforce_job
        from omm.tables import print_enforce_account
        from pipelines.enforce import run_enforce

        self.console.rule(f"[b]{title}")
        job = enforce_job(
            self.bootstrap, self.topics, idle_timeout_s=IDLE_S, settings=self.settings
        )
        with self.console.status("enforce running: rebuilding state from the valid topics…"):
            account = run_enforce(job, pipeline_args_with_defaults(None, streaming=False))
        print_enforce_account(account, self.console)
        if not account.balanced:
            raise SystemExit("enforce account does not balance")
        return self.latest_tasks()

    def show_tasks(self, tasks: dict[str, dict[str, Any]]) -> None:
        tasks_table = table(
            "platform", "result", "DELIST", "REMEDIATION", "withdrawn",
            counts=("DELIST", "REMEDIATION", "withdrawn"),
            title="tasks (latest state)",
        )  # fmt: skip
        per: Counter[tuple[str, str, str]] = Counter()
        for t in tasks.values():
            what = "withdrawn" if t["state"] == "WITHDRAWN" else t["kind"]
            per[(t["platform"], t["inspection_id"], what)] += 1
        for platform, inspection in sorted({(p, i) for p, i, _ in per}):
            tasks_table.add_row(
                platform,
                inspection,
                *(
                    str(per[(platform, inspection, w)])
                    for w in ("DELIST", "REMEDIATION", "withdrawn")
                ),
            )
        self.console.print(tasks_table)
        reviews = [line["value"] for line in read_to_end(self.bootstrap, self.topics.review)]
        for r in reviews:
            self.console.print(
                f"[cyan]for review[/cyan] {r['platform']} {r['listing_id']} "
                f"'{r['listing_title']}' vs {r['inspection_id']}: {r['match_method']} "
                f"{r['match_confidence']:.2f} — {r['reason']}"
            )

    def aftermath(self, before: dict[str, dict[str, Any]]) -> None:
        self.console.rule("[b]6. Re-listing and re-inspection")
        delisted = next(
            t
            for t in before.values()
            if t["platform"] == "tmall"
            and t["kind"] == "DELIST"
            and t["inspection_id"] == "SAMR-2026-00001"
        )
        self.console.print(
            f"tmall takes {delisted['listing_id']} down; its seller re-lists the cooker as "
            "tmall-RELIST-1; the regulator overturns SAMR-2026-00003 on re-inspection"
        )
        now = self.gen.now + timedelta(minutes=1)
        old = {
            **self.gen.listing("tmall", 0, COOKER),
            "listing_id": delisted["listing_id"],
            "seller_id": delisted["seller_id"],
            "status": "REMOVED",
            "observed_at": now,
        }
        relist = {
            **self.gen.listing("tmall", 0, COOKER),
            "listing_id": "tmall-RELIST-1",
            "seller_id": delisted["seller_id"],
            "observed_at": now,
        }
        self.push("listings", "tmall", [old, relist])
        overturned = {**self.story_results()[2], "status": "OVERTURNED", "published_at": now}
        self.push("inspections", None, [overturned])
        self.ingest("6a. Ingest the new records")
        after = self.enforce("6b. Enforce again (state rebuilt, same task ids)")
        new = {k: t for k, t in after.items() if k not in before}
        changed = {
            k: t for k, t in after.items() if k in before and before[k]["state"] != t["state"]
        }
        for t in new.values():
            self.console.print(
                f"[green]new task[/green] {t['task_id']} {t['kind']} {t['platform']} "
                f"{t['listing_id'] or t['seller_id']} — {t['reason']}"
            )
        self.console.print(
            f"[magenta]{len(changed)} tasks withdrawn[/magenta] (result overturned), e.g.:"
        )
        for t in list(changed.values())[:3]:
            self.console.print(
                f"  {t['task_id']} {t['platform']} {t['listing_id'] or t['seller_id']}: "
                f"{t['reason']}"
            )
        unchanged = len(after) - len(new) - len(changed)
        self.console.print(f"{unchanged} earlier tasks re-derived with identical ids and content")

    def spring_campaign(self) -> None:
        """Chapter 8: a campaign's tasks, the platforms' responses, and their scorecards."""
        from omm.campaign import BEHAVIOURS, PUBLISHED, behaviour_evidence, campaign

        self.console.rule("[b]8. The spring campaign: did the platforms comply?")
        spring = campaign(self.platforms.ids)
        counts = spring.counts
        listed = sum(len(v) for v in spring.listings.values())
        self.console.print(
            f"{len(spring.results)} sampled batches published on "
            f"{PUBLISHED.astimezone(CST):%a %d %B %Y %H:%M} (Beijing): {counts['FAIL']} FAIL of "
            f"{counts['FAIL'] + counts['PASS']} judged on quality, {counts['THREE_NO']} THREE_NO, "
            f"{counts['COUNTERFEIT']} COUNTERFEIT; {listed} listings on "
            f"{len(spring.listings)} platforms. Delisting takes 2 working days: Labour Day "
            "(1-5 May) moves the deadline to the end of Wednesday 6 May."
        )
        with self.console.status("the platforms push their listings, the regulator publishes…"):
            for platform, records in spring.listings.items():
                self.push("listings", platform, records)
            self.push("inspections", None, spring.results)
        # a replay of spring's records: feed health judges live feeds (their freshness)
        self.ingest("8a. Ingest the campaign (a replay, so no feed-health batches)", False)
        tasks = self.enforce("8b. Enforce: a task for every live listing of a failed product")
        delist = [
            t
            for t in tasks.values()
            if t["kind"] == "DELIST"
            and t["state"] == "ISSUED"
            and str(t["inspection_id"]).startswith("SAMR-2026-S")
        ]
        self.console.print(f"{len(delist)} delisting tasks of the campaign, one per listing")
        listings = {r["listing_id"]: r for rs in spring.listings.values() for r in rs}
        evidence = behaviour_evidence(delist, listings)
        cast = table("platform", "how it acts on its tasks", title="the platforms")
        for platform in self.platforms.ids:
            cast.add_row(platform, BEHAVIOURS.get(platform, "prompt"))
        self.console.print(cast)
        with self.console.status("the platforms send notices; their listing feeds move on…"):
            for platform, notices in evidence.notices.items():
                self.push("takedowns", platform, notices)
            for platform, observations in evidence.observations.items():
                self.push("listings", platform, observations)
        self.ingest("8c. Ingest the platforms' responses", False)
        self.comply("8d. Comply: every task tracked to its outcome")
        self.console.print(
            f"the regulator decides {len(evidence.decisions)} disputes (vip): upholds "
            f"{sum(1 for _, d in evidence.decisions if d == 'UPHOLD')}, withdraws the rest; "
            "vip then removes the upheld listings"
        )
        self.publish_decisions(evidence.decisions)
        for platform, observations in evidence.after_decisions.items():
            self.push("listings", platform, observations)
        self.ingest("8e. Ingest after the decisions", False)
        self.comply("8f. Comply again (state rebuilt from the topics, same statuses)")
        self.show_scorecards(PUBLISHED.astimezone(CST).date().isoformat())

    def intelligence(self) -> IntelRecords:
        """Chapter 9: complaints, penalties and listings through intel, and what it found."""
        from omm.intel_story import (
            CLAIM_PLATFORM,
            ENTERPRISE_NAME,
            HOTSPOT,
            LEAD_SELLER,
            RESOLVED_AT,
            claim_key,
            intel_story,
            resolution,
        )

        self.console.rule("[b]9. Complaint intelligence and credit")
        story = intel_story()
        self.console.print(
            f"{len(story.hotspot)} complaints about the {HOTSPOT.brand} {HOTSPOT.model} car seat "
            f"on {len({c['platform'] for c in story.hotspot})} platforms and the 12315 hotline "
            f"(9-12 March 2026); {len(story.lead)} complaints against {LEAD_SELLER}, one of them "
            "a refused return of fresh fruit (lawful: fresh food has no 7-day return right); "
            f"a {CLAIM_PLATFORM} after-sales claim open since 2 March; three product-safety "
            f"penalties in two years against {ENTERPRISE_NAME}"
        )
        with self.console.status("the platforms push complaints and listings, the regulator "
                                 "publishes penalties…"):  # fmt: skip
            for platform, records in story.complaints.items():
                self.push("complaints", platform, records)
            for platform, records in story.listings.items():
                self.push("listings", platform, records)
            self.push("penalties", None, story.penalties)
        # dated February-March: a replay for feed health, like the campaign's records
        self.ingest("9a. Ingest the complaints, listings and penalties", False)
        intel = self.run_intel("9b. Intel (bounded: what is final at the latest event read)")
        excluded = f"{story.excluded['platform']}:{story.excluded['complaint_id']}"
        self.show_intel(intel, HOTSPOT.model, claim_key(), excluded)
        claims = [
            t
            for t in intel.tasks
            if t["kind"] == "COMPENSATION_FIRST" and t["complaint_id"] == claim_key()
        ]
        missing = [
            what
            for what, found in (
                ("the hotspot's recommendations", [r for r in intel.sampling
                                                   if r["model"] == HOTSPOT.model]),
                (f"{LEAD_SELLER}'s case lead", [x for x in intel.leads
                                                if x["seller_id"] == LEAD_SELLER]),
                ("the stalled claim's task", claims),
                (f"{ENTERPRISE_NAME} on the list", intel.credit),
            )
            if not found
        ]  # fmt: skip
        if missing:
            raise SystemExit("intel did not find " + ", ".join(missing))
        self.console.print(
            f"{CLAIM_PLATFORM} compensates the consumer and resolves the claim on "
            f"{RESOLVED_AT.astimezone(CST):%d %B %H:%M}, before the task's deadline"
        )
        self.push("complaints", CLAIM_PLATFORM, [resolution(story)])
        self.ingest("9c. Ingest the resolution", False)
        self.comply("9d. Comply: the compensation-first task")
        self.show_compensation_status(claims)
        return intel

    def run_intel(self, title: str) -> IntelRecords:
        from omm.beam_runtime import pipeline_args_with_defaults
        from omm.jobs import intel_job
        from omm.tables import print_intel_account
        from pipelines.intel import run_intel

        self.console.rule(f"[b]{title}")
        job = intel_job(self.bootstrap, self.topics, idle_timeout_s=IDLE_S, settings=self.settings)
        with self.console.status(
            "intel running: complaints, penalties, inspections and listings, in event time…"
        ):
            account = run_intel(job, pipeline_args_with_defaults(None, streaming=False))
        print_intel_account(account, self.console)
        if not account.balanced:
            raise SystemExit("intel account does not balance")
        sources = (self.topics.sampling, self.topics.leads,
                   self.topics.credit_events)  # fmt: skip
        sampling, leads, credit, *per_platform = self.latest_values(
            *sources, *(self.topics.tasks(p) for p in self.platforms.ids)
        )
        return IntelRecords(
            sampling=sampling,
            leads=leads,
            credit=credit,
            tasks=[
                t
                for tasks in per_platform
                for t in tasks
                if t["kind"] in ("FLAG", "COMPENSATION_FIRST")
            ],
            sources=sources,
        )

    def show_intel(self, intel: IntelRecords, hot_model: str, claim: str, excluded: str) -> None:
        day = 86_400_000
        hot = [r for r in intel.sampling if r["model"] == hot_model]
        latest: dict[int, dict[str, Any]] = {}
        for r in hot:
            days = (_ms(r["window_end"]) - _ms(r["window_start"])) // day
            if days not in latest or _ms(r["window_end"]) > _ms(latest[days]["window_end"]):
                latest[days] = r
        recs = table(
            "window", "product", "score", "complaints", "by platform", "by type", "rank",
            counts=("score", "complaints", "rank"),
            title=f"sampling recommendations: {len(hot)} windows hold the hotspot; the latest "
                  "of each length",
        )  # fmt: skip
        for days, r in sorted(latest.items()):
            recs.add_row(
                f"{days} days, {_span(r['window_start'], r['window_end'])}",
                f"{r['brand']} {r['model']} ({r['product_key']})",
                f"{r['score']:g}",
                str(r["complaint_count"]),
                _pairs(r["counts_by_platform"]),
                _pairs(r["counts_by_issue_type"]) + "; " + _pairs(r["counts_by_channel"]),
                str(r["rank"]),
            )
        self.console.print(recs)
        leads = table("seller", "violation complaints", "window", "complaint ids",
                      counts=("violation complaints",), title="case leads")  # fmt: skip
        for lead in intel.leads:
            leads.add_row(
                f"{lead['platform']}:{lead['seller_id']}",
                f"{lead['violation_complaints']} (threshold {lead['threshold']})",
                _span(lead["window_start"], lead["window_end"]),
                ", ".join(lead["complaint_ids"]),
            )
        self.console.print(leads)
        counted = any(excluded in lead["complaint_ids"] for lead in intel.leads)
        self.console.print(
            f"{excluded}, the refused return of fresh fruit, is "
            + ("[red]counted[/red]" if counted else "not counted: refusing it was lawful")
        )
        first = table("platform", "complaint", "seller", "issued", "deadline",
                      title="compensation-first tasks")  # fmt: skip
        for t in intel.tasks:
            if t["kind"] == "COMPENSATION_FIRST":
                first.add_row(
                    t["platform"],
                    t["complaint_id"]
                    + (" (the stalled claim)" if t["complaint_id"] == claim else ""),
                    t["seller_id"],
                    _local(t["issued_at"]),
                    _local(t["deadline_at"]),
                )
        self.console.print(first)
        listed = table("enterprise", "event", "since", "penalties", "sellers",
                       title="serious-violation list")  # fmt: skip
        for e in intel.credit:
            listed.add_row(
                f"{e['enterprise_name']} ({e['enterprise_id']})",
                e["event"],
                _day(e["effective_at"]),
                ", ".join(e["penalty_ids"]),
                ", ".join(e["sellers"]),
            )
        self.console.print(listed)
        flags = table("platform", "listing", "seller", "state",
                      title="FLAG tasks: the listed enterprise's live listings")  # fmt: skip
        for t in sorted(intel.tasks, key=lambda t: (t["platform"], t["listing_id"] or "")):
            if t["kind"] == "FLAG":
                flags.add_row(t["platform"], t["listing_id"] or "-", t["seller_id"], t["state"])
        self.console.print(flags)

    def show_compensation_status(self, claims: list[dict[str, Any]]) -> None:
        if not claims:
            self.console.print("[red]no compensation-first task for the stalled claim[/red]")
            return
        wanted = {t["task_id"] for t in claims}
        statuses = {
            k: s
            for k, s in self.latest_values_by_key(self.topics.compliance_status).items()
            if s.get("task_id") in wanted
        }
        for task in claims:
            found = next((s for s in statuses.values() if s["task_id"] == task["task_id"]), None)
            if found is None:
                raise SystemExit(f"comply published no status for {task['task_id']}")
            self.console.print(
                f"{task['task_id']} ({task['platform']} {task['complaint_id']}): "
                f"[b]{found['status']}[/b]" + (f" — {found['note']}" if found.get("note") else "")
            )
            if found["status"] != "COMPLETED_ON_TIME":  # the story: resolved before the deadline
                raise SystemExit(f"{task['task_id']} should be COMPLETED_ON_TIME")

    def latest_values_by_key(self, topic: str) -> dict[str, dict[str, Any]]:
        """The latest record per key of a topic, read to the end offsets it has now (the
        stages that wrote it have finished: nothing is waited for)."""
        latest: dict[str, dict[str, Any]] = {}
        for line in read_to_end(self.bootstrap, topic):
            if line.get("value") is not None:
                latest[line["key"]] = line["value"]
        return latest

    def latest_values(self, *topics: str) -> list[list[dict[str, Any]]]:
        """The latest records per key of each topic."""
        return [list(self.latest_values_by_key(topic).values()) for topic in topics]

    def write_reports(self, intel: IntelRecords | None = None) -> None:
        """Both reports for the regulator, in ./reports (git ignores it), before clean-up:
        the latest compliance statuses and scorecards, and what intel found."""
        from pathlib import Path

        from omm.config import load_enforcement
        from omm.reports.compliance import render_compliance
        from omm.reports.feeds import write_feeds_report
        from omm.reports.intel import IntelSources
        from omm.reports.page import write_page
        from pipelines.feed_health.results import FeedHealth

        out = Path("reports")
        now = datetime.now(UTC)
        intel_sections: dict[str, Any] = {}
        if intel is not None:
            sampling, leads, credit = intel.sources
            intel_sections = {
                "sampling_records": intel.sampling,
                "lead_records": intel.leads,
                "credit_records": intel.credit,
                "task_records": intel.tasks,
                "intel_sources": IntelSources(
                    sampling=sampling,
                    leads=leads,
                    credit=credit,
                    tasks=self.topics.tasks("<platform>"),
                ),
            }
        healths: dict[str, FeedHealth] = {}
        for line in read_to_end(self.bootstrap, self.topics.feed_health):
            health = FeedHealth.from_record(line["value"])
            healths[health.key] = health
        statuses, scorecards = self.latest_values(
            self.topics.compliance_status, self.topics.scorecards
        )
        with self.console.status("writing the reports…"):
            feeds = write_feeds_report(
                list(healths.values()),
                out / "feeds",
                generated_at=now,
                source=self.topics.feed_health,
            )
            compliance = write_page(
                out / "compliance",
                render_compliance(
                    statuses,
                    scorecards,
                    generated_at=now,
                    feeds_report="../feeds/index.html",
                    timezone=load_enforcement().calendar.timezone,
                    sources=(self.topics.compliance_status, self.topics.scorecards),
                    **intel_sections,
                ),
            )
        self.console.print(f"compliance report: {compliance.resolve()}")
        self.console.print(f"feed-health report: {feeds.resolve()}")

    def comply(self, title: str) -> None:
        from omm.beam_runtime import pipeline_args_with_defaults
        from omm.jobs import comply_job
        from omm.tables import print_comply_account
        from pipelines.comply import run_comply

        self.console.rule(f"[b]{title}")
        job = comply_job(
            self.bootstrap,
            self.topics,
            idle_timeout_s=IDLE_S,
            tick_seconds=1.0,
            settings=self.settings,
        )
        with self.console.status("comply running: tasks, notices, the listing feed, the clock…"):
            account = run_comply(job, pipeline_args_with_defaults(None, streaming=False))
        print_comply_account(account, self.console)
        if not account.balanced:
            raise SystemExit("comply account does not balance")

    def publish_decisions(self, decisions: list[tuple[dict[str, Any], str]]) -> None:
        from omm.campaign import decision_record

        producer = kafka_client.producer(self.bootstrap)
        try:
            for n, (task, decision) in enumerate(decisions):
                record = decision_record(task, decision, n)
                producer.send(
                    self.topics.decisions,
                    key=str(task["task_id"]).encode(),
                    value=self.registry.encode("review_decision", record),
                )
            producer.flush()
        finally:
            producer.close()

    def show_scorecards(
        self, day: str
    ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """The DAY scorecards of ``day``; returns the latest statuses and scorecards."""
        latest: dict[str, dict[str, Any]] = {}
        for line in read_to_end(self.bootstrap, self.topics.scorecards):
            latest[line["key"]] = line["value"]
        statuses: dict[str, dict[str, Any]] = {}
        for line in read_to_end(self.bootstrap, self.topics.compliance_status):
            statuses[line["key"]] = line["value"]
        cards = table(
            "platform", "tasks", "on time", "late", "overdue", "relisted", "KPI1", "KPI2",
            counts=("tasks", "on time", "late", "overdue", "relisted", "KPI1", "KPI2"),
            title=f"scorecards: tasks issued on {day}",
        )  # fmt: skip

        def pct(x: float | None) -> str:
            return "-" if x is None else f"{100 * x:.0f}%"

        medians, withdrawn = [], []
        for platform in self.platforms.ids:
            c = latest.get(f"{platform}|DAY|{day}")
            if c is None:
                continue
            cards.add_row(
                platform,
                *(str(c[f]) for f in ("tasks_issued", "completed_on_time", "completed_late",
                                      "overdue")),
                f"{c['relisted']} ({c['relisted_removed']})" if c["relisted"] else "0",
                pct(c["kpi1_removed_within_deadline"]),
                pct(c["kpi2_relistings_removed"]),
            )  # fmt: skip
            if c["median_hours_to_takedown"] is not None:
                medians.append(f"{platform} {c['median_hours_to_takedown']:.0f}")
            if c["withdrawn"]:
                withdrawn.append(f"{platform} {c['withdrawn']}")
        self.console.print(cards)
        self.console.print(
            "relisted (caught again); KPI1: removed by the deadline, of the tasks decided; "
            "KPI2: re-listings removed again"
        )
        self.console.print("median hours to takedown: " + ", ".join(medians))
        if withdrawn:
            self.console.print("withdrawn after a dispute: " + ", ".join(withdrawn))
        for what, pick in (
            ("contradicted", lambda s: (s.get("note") or "").startswith("notice ")),
            ("relisted", lambda s: s.get("relisted_at") is not None),
        ):
            example = next((s for s in statuses.values() if pick(s)), None)
            if example is not None:
                self.console.print(
                    f"[b]{what}[/b], e.g. {example['task_id']} {example['platform']} "
                    f"{example['listing_id']}: {example['status']} — {example['note']}"
                )
        return statuses, latest

    def show_feedback(self) -> None:
        self.console.rule("[b]7. What the platforms are told (omm.feedback.<platform>)")
        for platform in ("taobao", "tmall", "vip"):
            for line in tail_records(
                self.bootstrap, self.topics.feedback(platform), max_records=2, timeout_s=2
            ):
                fb: dict[str, Any] = line.get("value") or {}
                self.console.print(
                    f"[b]{platform}[/b] {fb.get('source_topic')} offset {fb.get('source_offset')}: "
                    f"{fb.get('error_class')} field={fb.get('field')} rule={fb.get('rule')}\n"
                    f"    {fb.get('message')}"
                )
        if self.keep:
            self.console.print(
                f"\nInspect more with: omm tail {self.topics.dlq} --from-beginning --max 5"
            )

    # ------------------------------------------------------------ data

    def story_listings(self) -> dict[str, list[Record]]:
        g = self.gen
        cooker = {"brand": "Midea", "manufacturer": COOKER.manufacturer}
        removed_early = {**g.listing("vip", 900, COOKER), "gtin": None}
        return {
            # the same cooker, its model code written three ways, one under the Chinese brand name
            "jd": [{**g.listing("jd", 900, COOKER), **cooker, "model": "kx 2000a", "gtin": None}],
            "suning": [
                {
                    **g.listing("suning", 900, COOKER),
                    "brand": "美的",
                    "model": "KX2000A",
                    "gtin": None,
                }
            ],
            # a look-alike (KX-2000AS, no labelled producer): for a person to decide
            "gome": [
                {
                    **g.listing("gome", 900, COOKER),
                    "model": "KX-2000AS",
                    "title": "Midea 电饭煲 KX-2000AS 新款",
                    "gtin": None,
                    "manufacturer": None,
                }
            ],
            # the seller whose power bank was found counterfeit, and another seller of it
            "taobao": [
                {**g.listing("taobao", 900, POWER_BANK), "seller_id": "taobao-s001"},
                {**g.listing("taobao", 901, POWER_BANK), "seller_id": "taobao-s002"},
            ],
            # on sale, then taken off before the result: no task
            "vip": [
                removed_early,
                {
                    **removed_early,
                    "status": "REMOVED",
                    "observed_at": removed_early["observed_at"] + timedelta(minutes=5),
                },
            ],
        }

    def story_results(self) -> list[Record]:
        g = self.gen
        return [
            g.inspection(1, COOKER, verdict="FAIL"),
            g.inspection(2, POWER_BANK, verdict="COUNTERFEIT", platform="taobao"),
            g.inspection(3, HEATER, verdict="FAIL"),
            *(g.inspection(10 + i, p, verdict="PASS") for i, p in enumerate(PASSED)),
        ]

    def push(self, feed: str, platform: str | None, records: list[Record]) -> Any:
        report = push_records(
            list(enumerate(records, start=1)),
            feed=feed,
            platform=platform,
            bootstrap=self.bootstrap,
            rules=self.rules.record_rules,
            platforms=self.platforms,
            topics=self.topics,
            registry=self.registry,
            cluster=self.cluster,
        )
        if report.failed:
            raise SystemExit(
                f"the broker did not acknowledge {len(report.failed)} {feed} line(s): "
                + "; ".join(f.describe() for f in report.failed[:3])
            )
        self.sent += report.sent
        return report

    def latest_tasks(self) -> dict[str, dict[str, Any]]:
        latest: dict[str, dict[str, Any]] = {}
        for platform in self.platforms.ids:
            for line in read_to_end(self.bootstrap, self.topics.tasks(platform)):
                latest[line["value"]["task_id"]] = line["value"]
        return latest


def run_demo(
    console: Console,
    seed: int = 2016,
    bootstrap: str | None = None,
    keep: bool = False,
    start_broker: bool = True,
) -> None:
    """The story; its topic namespace is deleted afterwards however it ends (unless ``keep``).

    ``bootstrap``/``start_broker=False``: tell it on a cluster that already runs.
    """
    quiet_slow_task_warnings()
    demo = Demo(console, seed, bootstrap=bootstrap, keep=keep)
    if start_broker:
        demo.start_broker()
    try:
        demo.create_topics()
        demo.push_feeds()
        demo.send_bad_records()
        demo.ingest("4. Ingest (Beam, FnApiRunner) until idle")
        tasks = demo.enforce("5. Enforce: failed results x live listings, from both sides")
        demo.show_tasks(tasks)
        demo.aftermath(tasks)
        demo.show_feedback()
        demo.spring_campaign()
        intel = demo.intelligence()
        demo.write_reports(intel)
    finally:
        demo.clean_up()
