"""Enforce's tasks depend on the inputs and their event times, not on the read order.

Regression for issue 8, defect 1: bounded runs over the same inputs gave
different task sets (DELIST tasks for listings already removed before the
result was published, when the result happened to be read before the
removal; REMEDIATION fields from whichever listing was read first).
Look-alikes of one failed product wait for review, and a regulator's
decisions on them (omm.review.decisions, read by the same reader) confirm,
reject, or confirm and then reject them (issue 10); in the second namespace
the decisions are written before everything else.

The same market (10 platforms; listings removed before, removed after and
re-listed after a FAIL; a counterfeit at one seller; a pass; an overturn) is
produced into multi-partition topics, then enforced by bounded runs that read
it in different interleavings (poll sizes of 3 to 20,000 records: a small poll
reads the inspections partition before most listings), and into a second
namespace with every listing on another partition and the results produced
first. Every run must write the same task records.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kafka import TopicPartition
from kafka.errors import KafkaError

from connectors import kafka_client
from connectors.topics import TopicNames
from omm.beam_runtime import pipeline_args_with_defaults
from omm.config import load_platforms
from omm.generate import CATALOG, FeedGenerator
from omm.jobs import enforce_job
from pipelines.enforce import EnforceAccount, run_enforce
from pipelines.rules.enforcement import review_id
from pipelines.rules.review import DecisionKind, match_decision
from tests.helpers import REGISTRY, fresh_namespace

pytestmark = pytest.mark.integration

PLATFORMS = list(load_platforms().ids)
NOW = datetime(2026, 3, 5, 4, 0, tzinfo=UTC)
PUBLISHED = NOW - timedelta(hours=2)
FAILED = CATALOG[:4]  # population FAILs (d > c)
OVERTURNED = CATALOG[4]  # a FAIL overturned on re-inspection
PASSED = CATALOG[5]
COUNTERFEIT = CATALOG[6]  # sampled seller only
LISTINGS_PER_PRODUCT = 5  # per platform
LOOK_ALIKE = FAILED[1]  # Midea KX-2000A, offered as KX-2000AS on every platform: reviews
PARTITIONS = 3
IDLE_S = 3.0


@dataclass
class Market:
    """Listing observations (each listing's in event order) and results, with their fates."""

    listings: list[list[dict[str, Any]]] = field(default_factory=list)  # per listing
    results: list[dict[str, Any]] = field(default_factory=list)
    removed_before: set[tuple[str, str]] = field(default_factory=set)
    live_at_result: set[tuple[str, str]] = field(default_factory=set)
    relisted_after: dict[tuple[str, str], datetime] = field(default_factory=dict)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    look_alikes: set[tuple[str, str]] = field(default_factory=set)
    confirmed: set[tuple[str, str]] = field(default_factory=set)  # the latest decision: CONFIRM


def build_market(seed: int = 8) -> Market:
    rng = random.Random(seed)
    gen = FeedGenerator(seed=seed, now=NOW)
    market = Market()
    n = 0
    for platform in PLATFORMS:
        for product in CATALOG[:7]:
            for _ in range(LISTINGS_PER_PRODUCT):
                n += 1
                base = {
                    **gen.listing(platform, n, product),
                    "seller_id": f"{platform}-s{rng.randint(1, 4):03d}",
                    "observed_at": PUBLISHED - timedelta(minutes=rng.randint(70, 2000)),
                }
                ref = (platform, base["listing_id"])
                fate = rng.random()
                history = [base]
                if fate < 0.35:  # taken down hours before the result
                    removed_at = PUBLISHED - timedelta(minutes=rng.randint(5, 60))
                    history.append({**base, "status": "REMOVED", "observed_at": removed_at})
                    market.removed_before.add(ref)
                    if rng.random() < 0.3:  # ... and back on sale after it
                        back = PUBLISHED + timedelta(minutes=rng.randint(1, 50))
                        history.append({**base, "observed_at": back})
                        market.relisted_after[ref] = back
                elif fate < 0.55:  # on sale at publication, taken down after
                    market.live_at_result.add(ref)
                    removed_at = PUBLISHED + timedelta(minutes=rng.randint(1, 50))
                    history.append({**base, "status": "REMOVED", "observed_at": removed_at})
                else:  # on sale throughout, seen again by a later crawl
                    market.live_at_result.add(ref)
                    again = base["observed_at"] + timedelta(minutes=rng.randint(1, 60))
                    history.append({**base, "observed_at": again})
                market.listings.append(history)
    for k, product in enumerate(FAILED, start=1):
        market.results.append({**gen.inspection(k, product), "published_at": PUBLISHED})
    overturned = {**gen.inspection(5, OVERTURNED), "published_at": PUBLISHED}
    market.results.append(overturned)
    market.results.append(
        {**overturned, "status": "OVERTURNED", "published_at": NOW - timedelta(minutes=30)}
    )
    market.results.append({**gen.inspection(6, PASSED, verdict="PASS"), "published_at": PUBLISHED})
    market.results.append(
        {
            **gen.inspection(7, COUNTERFEIT, verdict="COUNTERFEIT", platform="jd"),
            "published_at": PUBLISHED,
        }
    )
    add_look_alikes(market, gen, n)
    return market


def add_look_alikes(market: Market, gen: FeedGenerator, n: int) -> None:
    """One look-alike per platform, on sale throughout, and the regulator's decisions:
    CONFIRM, REJECT, CONFIRM then REJECT, or none (by platform, in turn)."""
    result = next(r for r in market.results if r["model"] == LOOK_ALIKE.model)
    for k, platform in enumerate(PLATFORMS):
        listing = {
            **gen.listing(platform, n + 1 + k, LOOK_ALIKE),
            "seller_id": f"{platform}-s009",
            "model": "KX-2000AS",
            "title": "Midea 电饭煲 KX-2000AS",
            "manufacturer": None,
            "gtin": None,
            "observed_at": PUBLISHED - timedelta(hours=30),
        }
        market.listings.append([listing])
        ref = (platform, listing["listing_id"])
        market.look_alikes.add(ref)
        review = {
            "review_id": review_id(platform, listing["listing_id"], result["inspection_id"]),
            "platform": platform,
            "listing_id": listing["listing_id"],
            "inspection_id": result["inspection_id"],
        }
        kinds = [
            [DecisionKind.CONFIRM],
            [DecisionKind.REJECT],
            [DecisionKind.CONFIRM, DecisionKind.REJECT],
            [],
        ][k % 4]
        for j, kind in enumerate(kinds):
            market.decisions.append(
                match_decision(
                    kind,
                    review,
                    result,
                    decided_by="samr-officer-17",
                    reason=f"{kind.value.lower()}ed after checking listing {k}",
                    decided_at=PUBLISHED + timedelta(hours=3 + j, minutes=k),
                    decision_id=f"d-{k:02d}{j}",
                )
            )
        if kinds and kinds[-1] is DecisionKind.CONFIRM:
            market.confirmed.add(ref)


def send_in_order(producer: Any, sends: list[tuple[str, int, bytes, bytes]]) -> None:
    """One record at a time, each acknowledged before the next, so order is kept.

    A topic created a moment ago may not have a leader yet (NotLeaderForPartition):
    the same record is sent again until acknowledged or the deadline passes.
    """
    for topic, partition, key, value in sends:
        deadline = time.monotonic() + 60
        while True:
            try:
                producer.send(topic, key=key, value=value, partition=partition).get(timeout=30)
                break
            except KafkaError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


def produce(
    bootstrap: str, topics: TopicNames, market: Market, seed: int, results_first: bool
) -> None:
    """Each listing's observations in order on one partition chosen by ``seed``."""
    rng = random.Random(seed)
    listing_topic, result_topic = topics.valid("listing"), topics.valid("inspection")
    placed = [(rng.randrange(PARTITIONS), history) for history in market.listings]
    # interleave the listings differently too, keeping each listing's own order
    queues = [list(h) for _, h in placed]
    listing_sends: list[tuple[str, int, bytes, bytes]] = []
    while any(queues):
        i = rng.choice([j for j, q in enumerate(queues) if q])
        record = queues[i].pop(0)
        listing_sends.append(
            (
                listing_topic,
                placed[i][0],
                record["listing_id"].encode(),
                REGISTRY.encode("listing", record),
            )
        )
    result_sends = [
        (result_topic, 0, r["inspection_id"].encode(), REGISTRY.encode("inspection", r))
        for r in market.results
    ]
    decision_sends = [
        (topics.decisions, 0, d["review_id"].encode(), REGISTRY.encode("review_decision", d))
        for d in market.decisions
    ]
    producer = kafka_client.producer(bootstrap)
    sends = (
        decision_sends + result_sends + listing_sends
        if results_first
        else listing_sends + result_sends + decision_sends
    )
    send_in_order(producer, sends)
    producer.close()


def output_topics(topics: TopicNames) -> list[str]:
    return [topics.tasks(p) for p in PLATFORMS] + [topics.review]


def end_offsets(bootstrap: str, topics: list[str]) -> dict[TopicPartition, int]:
    consumer = kafka_client.consumer(bootstrap)
    tps = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or []]
    ends = consumer.end_offsets(tps)
    consumer.close()
    return ends


def read_between(
    bootstrap: str,
    start: dict[TopicPartition, int],
    end: dict[TopicPartition, int],
    in_write_order: bool = False,
) -> list[tuple[bytes, bytes]]:
    """(key, value) of every record between two offset snapshots (what one run wrote).

    Sorted by bytes, or (``in_write_order``) in offset order per partition, which
    for one task id (one key, one partition) is the order it was written in.
    """
    consumer = kafka_client.consumer(bootstrap)
    wanted = [tp for tp in end if end[tp] > start.get(tp, 0)]
    out: list[tuple[bytes, bytes]] = []
    if wanted:
        consumer.assign(wanted)
        for tp in wanted:
            consumer.seek(tp, start.get(tp, 0))
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < end[tp] for tp in wanted):
            assert time.monotonic() < deadline, "task topics not read back within 60 s"
            for tp, records in consumer.poll(timeout_ms=200).items():
                out.extend((r.key, r.value) for r in records if r.offset < end[tp])
    consumer.close()
    return out if in_write_order else sorted(out)


def enforce_run(
    bootstrap: str, topics: TopicNames, poll: int
) -> tuple[EnforceAccount, list[tuple[bytes, bytes]]]:
    before = end_offsets(bootstrap, output_topics(topics))
    job = enforce_job(bootstrap, topics, idle_timeout_s=IDLE_S, max_records_per_poll=poll)
    account = run_enforce(job, pipeline_args_with_defaults(None, streaming=False))
    assert account.balanced, account
    return account, read_between(bootstrap, before, end_offsets(bootstrap, output_topics(topics)))


def digest(records: list[tuple[bytes, bytes]]) -> str:
    h = hashlib.sha256()
    for key, value in records:
        h.update(len(key).to_bytes(4, "big") + key + len(value).to_bytes(4, "big") + value)
    return h.hexdigest()[:16]


def decoded(records: list[tuple[bytes, bytes]]) -> Iterator[dict[str, Any]]:
    for _, value in records:
        yield REGISTRY.decode(value)[1]


@pytest.fixture(scope="module")
def market() -> Market:
    return build_market()


@pytest.fixture(scope="module")
def namespace(kafka_bootstrap: str, market: Market) -> TopicNames:
    topics = fresh_namespace(PLATFORMS, kafka_bootstrap)
    produce(kafka_bootstrap, topics, market, seed=1, results_first=False)
    return topics


@pytest.fixture(scope="module")
def four_runs(
    kafka_bootstrap: str, namespace: TopicNames
) -> list[tuple[int, EnforceAccount, list[tuple[bytes, bytes]]]]:
    # poll sizes from "one poll reads a whole partition" to "a few records a turn"
    return [(poll, *enforce_run(kafka_bootstrap, namespace, poll)) for poll in (20000, 3, 500, 7)]


def test_four_bounded_runs_write_byte_identical_task_sets(
    four_runs: list[tuple[int, EnforceAccount, list[tuple[bytes, bytes]]]],
) -> None:
    for poll, account, records in four_runs:
        kinds = sorted((t.get("kind", "REVIEW"), t.get("state", "")) for t in decoded(records))
        print(  # the reproduction's figures (pytest -s)
            f"poll={poll:>5}: read={account.read} tasks={account.tasks} "
            f"withdrawn={account.withdrawn} reviews={account.reviews} "
            f"records={len(records)} digest={digest(records)} "
            f"delist={kinds.count(('DELIST', 'ISSUED'))}"
        )
    first = four_runs[0][2]
    assert first, "the scenario must produce tasks"
    assert any("confirmed on review" in t.get("reason", "") for t in decoded(first))
    assert any("rejected on review" in t.get("reason", "") for t in decoded(first))
    for poll, _, records in four_runs[1:]:
        assert len(records) == len(first), f"poll={poll}: {len(records)} vs {len(first)} records"
        assert records == first, f"poll={poll}: task records differ from the first run"


def test_tasks_follow_event_time(
    market: Market, four_runs: list[tuple[int, EnforceAccount, list[tuple[bytes, bytes]]]]
) -> None:
    tasks = [t for t in decoded(four_runs[0][2]) if "task_id" in t]
    failed_ids = {f"SAMR-2026-{k:05d}" for k in range(1, len(FAILED) + 1)}
    products = {p.model for p in FAILED}
    delisted = {
        (t["platform"], t["listing_id"])
        for t in tasks
        if t["kind"] == "DELIST"
        and t["inspection_id"] in failed_ids
        and (t["platform"], t["listing_id"]) not in market.look_alikes
    }
    in_scope = {
        (h[0]["platform"], h[0]["listing_id"]) for h in market.listings if h[0]["model"] in products
    }
    # removed before the result and never back: no task, however late the removal was read
    assert not delisted & ((market.removed_before - set(market.relisted_after)) & in_scope)
    # live at publication (removed after it or not at all), or back on sale after it: a task
    assert delisted == (market.live_at_result | set(market.relisted_after)) & in_scope
    for t in tasks:
        ref = (t["platform"], t["listing_id"])
        if t["kind"] == "DELIST" and t["inspection_id"] in failed_ids:
            if ref in market.look_alikes:  # issued when confirmed, withdrawn when rejected
                said = "confirmed" if t["state"] == "ISSUED" else "rejected"
                assert t["issued_at"] > PUBLISHED and f"{said} on review" in t["reason"], t
                continue
            back = market.relisted_after.get(ref)
            assert t["issued_at"] == (back or PUBLISHED), t
    # the look-alikes: a task in force exactly where the latest decision is a CONFIRM
    latest = {t["task_id"]: t for t in tasks}
    assert {
        (t["platform"], t["listing_id"])
        for t in latest.values()
        if t["kind"] == "DELIST" and t["state"] == "ISSUED"
    } & market.look_alikes == market.confirmed
    # the overturned result's tasks are all withdrawn, each once
    overturned = [t for t in tasks if t["inspection_id"] == "SAMR-2026-00005"]
    issued = {t["task_id"] for t in overturned if t["state"] == "ISSUED"}
    withdrawn = [t["task_id"] for t in overturned if t["state"] == "WITHDRAWN"]
    assert issued and sorted(withdrawn) == sorted(issued)


_POSITION = re.compile(r"(\S+)/(\d+)/(\d+)")


def resolve_positions(bootstrap: str, topics: TopicNames) -> dict[str, str]:
    """topic/partition/offset of every valid record and decision -> digest of its bytes."""
    consumer = kafka_client.consumer(bootstrap)
    names = [topics.valid("listing"), topics.valid("inspection"), topics.decisions]
    tps = [TopicPartition(t, p) for t in names for p in consumer.partitions_for_topic(t) or []]
    ends = consumer.end_offsets(tps)
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    found: dict[str, str] = {}
    deadline = time.monotonic() + 60
    while any(consumer.position(tp) < ends[tp] for tp in tps):
        assert time.monotonic() < deadline
        for records in consumer.poll(timeout_ms=200).values():
            for r in records:
                found[f"{r.topic}/{r.partition}/{r.offset}"] = hashlib.sha256(r.value).hexdigest()
    consumer.close()
    return found


def normalised(records: list[tuple[bytes, bytes]], positions: dict[str, str]) -> list[str]:
    """Task records with each Kafka position replaced by the bytes it points at."""
    out = []
    for record in decoded(records):
        if "evidence_ref" in record:
            record["evidence_ref"] = _POSITION.sub(
                lambda m: positions[m.group(0)], record["evidence_ref"]
            )
        out.append(json.dumps(record, sort_keys=True, default=str, ensure_ascii=False))
    return sorted(out)


def test_other_partitions_and_results_first_give_the_same_tasks(
    kafka_bootstrap: str,
    market: Market,
    namespace: TopicNames,
    four_runs: list[tuple[int, EnforceAccount, list[tuple[bytes, bytes]]]],
) -> None:
    elsewhere = fresh_namespace(PLATFORMS, kafka_bootstrap)
    produce(kafka_bootstrap, elsewhere, market, seed=2, results_first=True)
    _, records = enforce_run(kafka_bootstrap, elsewhere, poll=5)

    expected = normalised(four_runs[0][2], resolve_positions(kafka_bootstrap, namespace))
    got = normalised(records, resolve_positions(kafka_bootstrap, elsewhere))
    assert len(got) == len(expected)
    assert got == expected


def in_force_ids(records: list[tuple[bytes, bytes]]) -> set[str]:
    """Task ids whose last record (in write order) is ISSUED."""
    latest: dict[str, str] = {}
    for record in decoded(records):
        if "task_id" in record:
            latest[record["task_id"]] = record["state"]
    return {tid for tid, state in latest.items() if state == "ISSUED"}


def test_streaming_run_ends_with_the_same_tasks_in_force(
    kafka_bootstrap: str,
    namespace: TopicNames,
    four_runs: list[tuple[int, EnforceAccount, list[tuple[bytes, bytes]]]],
) -> None:
    # Streaming decides as events arrive; with small polls the results are read
    # before most removals, so it issues and then withdraws (late evidence).
    before = end_offsets(kafka_bootstrap, output_topics(namespace))
    job = enforce_job(kafka_bootstrap, namespace, idle_timeout_s=IDLE_S, max_records_per_poll=3)
    account = run_enforce(job, pipeline_args_with_defaults(None, streaming=True))
    assert account.balanced, account
    records = read_between(
        kafka_bootstrap,
        before,
        end_offsets(kafka_bootstrap, output_topics(namespace)),
        in_write_order=True,
    )
    print(
        f"streaming poll=3: tasks={account.tasks} withdrawn={account.withdrawn} "
        f"records={len(records)}"
    )
    # a bounded run never issues again what it withdrew: in force = issued, not withdrawn
    states: dict[str, set[str]] = {}
    for record in decoded(four_runs[0][2]):
        if "task_id" in record:
            states.setdefault(record["task_id"], set()).add(record["state"])
    expected = {tid for tid, seen in states.items() if seen == {"ISSUED"}}
    assert expected and in_force_ids(records) == expected
