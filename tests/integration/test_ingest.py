"""Ingest on the real broker with a real Beam pipeline: nothing lost, every reason specific."""

from __future__ import annotations

from collections import Counter

import pytest

from connectors.topics import TopicNames
from omm.generate import GARBAGE, FeedGenerator, broken_listings
from pipelines.ingest import TopicAccount
from pipelines.rules.personal_data import PSEUDONYM_PREFIX
from tests.helpers import REGISTRY, fresh_namespace, produce_avro, produce_raw, read_all
from tests.helpers import ingest_until_idle as run_ingest_until_idle

pytestmark = pytest.mark.integration

PLATFORMS = ["tmall", "jd"]


def ingest_until_idle(bootstrap: str, topics: TopicNames) -> dict[str, TopicAccount]:
    return run_ingest_until_idle(bootstrap, topics, PLATFORMS)


def test_thousand_listings_with_hundred_bad_for_ten_reasons(kafka_bootstrap: str) -> None:
    topics = fresh_namespace(PLATFORMS, kafka_bootstrap)
    gen = FeedGenerator(seed=7)
    good = [gen.listing("tmall", i) for i in range(900)]
    bad = list(broken_listings(gen, "tmall", 100, start=900))
    produce_avro(
        kafka_bootstrap,
        topics.feed("tmall", "listings"),
        "listing",
        good + [r for r, _ in bad],
        key_field="listing_id",
    )

    accounts = ingest_until_idle(kafka_bootstrap, topics)

    acc = accounts["omm.feed.tmall.listings"]
    assert (acc.read, acc.valid, acc.dead) == (1000, 900, 100)
    assert acc.balanced
    valid = read_all(kafka_bootstrap, topics.valid("listing"))
    assert len(valid) == 900
    assert {m.record["listing_id"] for m in valid if m.record} == {r["listing_id"] for r in good}
    dlq = read_all(kafka_bootstrap, topics.dlq)
    feedback = read_all(kafka_bootstrap, topics.feedback("tmall"))
    assert len(dlq) == 100 and len(feedback) == 100
    # every bad record is rejected for the rule it breaks, ten distinct reasons
    expected_rules = Counter(rule for _, rule in bad)
    assert Counter(m.headers["omm.errors.rule"] for m in dlq) == expected_rules
    assert Counter(m.record["rule"] for m in feedback if m.record) == expected_rules
    assert len({m.record["message"] for m in feedback if m.record}) >= 10
    for m in feedback:
        assert m.record and m.record["field"] and m.record["message"]
        assert m.record["source_topic"] == topics.feed("tmall", "listings")
        assert m.record["entity"] == "listing"  # decoded, then refused by a record rule
    for m in dlq:
        assert m.headers["__connect.errors.class.name"] == "schemas.models.Listing"
        assert (
            m.headers["__connect.errors.exception.class.name"]
            == "pipelines.rules.record_rules.RuleViolation"
        )


def test_garbage_and_unknown_fingerprint_go_to_dlq_with_provenance(kafka_bootstrap: str) -> None:
    topics = fresh_namespace(PLATFORMS, kafka_bootstrap)
    topic = topics.feed("jd", "listings")
    gen = FeedGenerator(seed=8)
    valid_bytes = REGISTRY.encode("listing", gen.listing("jd", 1))
    unknown_fp = b"\xc3\x01" + b"\xde\xad\xbe\xef\x00\x11\x22\x33" + valid_bytes[10:]
    produce_raw(kafka_bootstrap, topic, [(b"g", GARBAGE), (b"u", unknown_fp), (b"ok", valid_bytes)])
    # and a valid record after the bad ones, on another platform, still flows
    produce_avro(
        kafka_bootstrap,
        topics.feed("tmall", "listings"),
        "listing",
        [gen.listing("tmall", 2)],
        key_field="listing_id",
    )

    accounts = ingest_until_idle(kafka_bootstrap, topics)

    assert accounts["omm.feed.jd.listings"] == TopicAccount(topic, 3, 1, 2)
    assert accounts["omm.feed.tmall.listings"].valid == 1
    dlq = {m.key: m for m in read_all(kafka_bootstrap, topics.dlq)}
    assert set(dlq) == {b"g", b"u"}
    garbage, unknown = dlq[b"g"], dlq[b"u"]
    assert garbage.value == GARBAGE  # original bytes kept
    # Kafka Connect's contract (issue 8, 8b): class.name is the stage's class, the
    # exception's class goes in exception.class.name, both fully qualified
    for m in (garbage, unknown):
        assert m.headers["__connect.errors.class.name"] == "schemas.registry.SchemaRegistry"
    assert (
        garbage.headers["__connect.errors.exception.class.name"]
        == "schemas.registry.NotSingleObjectEncoded"
    )
    assert (
        unknown.headers["__connect.errors.exception.class.name"]
        == "schemas.registry.UnknownFingerprint"
    )
    assert "omm.errors.entity" not in garbage.headers
    assert "deadbeef00112233" in unknown.headers["__connect.errors.exception.message"].replace(
        " ", ""
    )
    for m in (garbage, unknown):
        assert m.headers["__connect.errors.topic"] == topic
        assert m.headers["__connect.errors.partition"].isdigit()
        assert m.headers["__connect.errors.offset"].isdigit()
        assert m.headers["__connect.errors.stage"] == "DECODE"
        assert m.headers["__connect.errors.connector.name"] == "omm-ingest"
    feedback = [m.record for m in read_all(kafka_bootstrap, topics.feedback("jd")) if m.record]
    assert sorted(r["error_class"] for r in feedback) == [
        "NotSingleObjectEncoded",
        "UnknownFingerprint",
    ]
    # undecodable bytes have no entity (issue 8, 8c), though the topic carries listings
    assert [r["entity"] for r in feedback] == [None, None]
    assert len(read_all(kafka_bootstrap, topics.valid("listing"))) == 2


def test_record_claiming_another_platform_is_rejected_as_spoofed(kafka_bootstrap: str) -> None:
    topics = fresh_namespace(PLATFORMS, kafka_bootstrap)
    spoof = {**FeedGenerator(seed=9).listing("tmall", 1), "platform": "jd"}
    produce_avro(
        kafka_bootstrap,
        topics.feed("tmall", "listings"),
        "listing",
        [spoof],
        key_field="listing_id",
    )

    accounts = ingest_until_idle(kafka_bootstrap, topics)

    assert accounts["omm.feed.tmall.listings"].dead == 1
    (rejection,) = [m.record for m in read_all(kafka_bootstrap, topics.feedback("tmall"))]
    assert rejection is not None
    assert rejection["rule"] == "platform_matches_topic"
    assert rejection["field"] == "platform" and rejection["value"] == "jd"
    assert "spoofed" in rejection["message"]
    assert read_all(kafka_bootstrap, topics.valid("listing")) == []
    assert (
        read_all(kafka_bootstrap, topics.feedback("jd")) == []
    )  # jd learns nothing of tmall's feed


def test_complaints_leave_ingest_pseudonymised_and_redacted(kafka_bootstrap: str) -> None:
    topics = fresh_namespace(PLATFORMS, kafka_bootstrap)
    complaint = {
        **FeedGenerator(seed=10).complaint("jd", 1),
        "consumer_id": "13800001234",
        "text": "call me at 13800001234 or mail a.b@example.com, ID 11010519491231002X",
    }
    produce_avro(
        kafka_bootstrap,
        topics.feed("jd", "complaints"),
        "complaint",
        [complaint],
        key_field="complaint_id",
    )

    ingest_until_idle(kafka_bootstrap, topics)

    (out,) = [m for m in read_all(kafka_bootstrap, topics.valid("complaint"))]
    assert out.record is not None
    assert out.record["consumer_id"].startswith(PSEUDONYM_PREFIX)
    raw = out.value or b""
    for secret in (b"13800001234", b"a.b@example.com", b"11010519491231002X"):
        assert secret not in raw
    # the phone is the consumer's own id here: redacted as that, before any pattern
    assert out.record["text"] == "call me at [CONSUMER] or mail [EMAIL], ID [ID]"


def test_offsets_committed_after_flush_so_a_rerun_reads_nothing_new(kafka_bootstrap: str) -> None:
    topics = fresh_namespace(PLATFORMS, kafka_bootstrap)
    gen = FeedGenerator(seed=11)
    produce_avro(
        kafka_bootstrap,
        topics.feed("jd", "listings"),
        "listing",
        [gen.listing("jd", i) for i in range(50)],
        key_field="listing_id",
    )
    first = ingest_until_idle(kafka_bootstrap, topics)
    assert first["omm.feed.jd.listings"].valid == 50

    produce_avro(
        kafka_bootstrap,
        topics.feed("jd", "listings"),
        "listing",
        [gen.listing("jd", i) for i in range(50, 60)],
        key_field="listing_id",
    )
    second = ingest_until_idle(kafka_bootstrap, topics)

    assert second["omm.feed.jd.listings"].read == 10  # resumed at the committed offsets
    assert len(read_all(kafka_bootstrap, topics.valid("listing"))) == 60
