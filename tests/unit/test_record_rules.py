"""Record rules: each broken record names its field, value and rule. No Kafka, no Beam."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from omm.config import load_platforms, load_rules
from omm.generate import LISTING_BREAKERS, FeedGenerator
from pipelines.rules.record_rules import RuleViolation, check_record, rule_context
from schemas.models import Listing, RuleContext

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def ctx(topic_platform: str | None = "tmall") -> RuleContext:
    return rule_context(load_rules(), load_platforms(), NOW, topic_platform)


def violation_of(entity: str, record: dict, topic_platform: str | None = "tmall"):
    with pytest.raises(RuleViolation) as caught:
        check_record(entity, record, ctx(topic_platform))
    return caught.value


def test_a_generated_listing_passes_and_round_trips() -> None:
    record = FeedGenerator(seed=1, now=NOW).listing("tmall", 1)
    listing = check_record("listing", record, ctx())
    assert isinstance(listing, Listing)
    assert listing.kafka_key == "tmall:tmall-L0000001"
    assert listing.to_record()["observed_at"] == record["observed_at"]


@pytest.mark.parametrize("breaker", sorted(LISTING_BREAKERS))
def test_each_broken_listing_names_field_value_and_rule(breaker: str) -> None:
    record, expected_rule = LISTING_BREAKERS[breaker](
        FeedGenerator(seed=2, now=NOW).listing("tmall", 1), NOW
    )
    first = violation_of("listing", record).first
    assert first.rule == expected_rule
    assert first.field and first.field in record
    assert first.message
    if first.field not in ("listing_id", "seller_id", "title"):  # blank values echo as blank
        assert first.value not in (None, "")


def test_spoofed_platform_message_says_so() -> None:
    record = {**FeedGenerator(seed=3, now=NOW).listing("tmall", 1), "platform": "jd"}
    first = violation_of("listing", record, topic_platform="tmall").first
    assert (first.field, first.value, first.rule) == ("platform", "jd", "platform_matches_topic")
    assert "spoofed" in first.message


def test_unregistered_platform_is_refused_on_push_without_topic_context() -> None:
    record = FeedGenerator(seed=3, now=NOW).listing("nowhere", 1)
    first = violation_of("listing", record, topic_platform=None).first
    assert first.rule == "platform_registered"


def test_timestamp_within_skew_passes_beyond_fails() -> None:
    gen = FeedGenerator(seed=4, now=NOW)
    skew = load_rules().record_rules.max_future_skew_seconds
    ok = {**gen.listing("tmall", 1), "observed_at": NOW + timedelta(seconds=skew - 1)}
    check_record("listing", ok, ctx())
    late = {**ok, "observed_at": NOW + timedelta(seconds=skew + 1)}
    assert violation_of("listing", late).first.rule == "future_timestamp"


def test_missing_required_field_and_unknown_enum_from_json() -> None:
    record = FeedGenerator(seed=5, now=NOW).listing("tmall", 1)
    del record["url"]
    assert violation_of("listing", record).first.rule == "required"
    bad_enum = {**FeedGenerator(seed=5, now=NOW).listing("tmall", 1), "status": "GONE"}
    first = violation_of("listing", bad_enum).first
    assert (first.field, first.value, first.rule) == ("status", "GONE", "enum")


def test_every_violation_of_a_record_is_reported() -> None:
    record = {
        **FeedGenerator(seed=6, now=NOW).listing("tmall", 1),
        "gtin": "123",
        "price_minor": -1,
    }
    rules = {v.rule for v in violation_of("listing", record).violations}
    assert {"gtin_check_digit", "min_value"} <= rules


def test_inspection_sampling_plan_must_be_consistent() -> None:
    gen = FeedGenerator(seed=7, now=NOW)
    bad = {**gen.inspection(1), "acceptance_number": 1, "sample_size": 1}
    first = violation_of("inspection", bad, topic_platform=None).first
    assert (first.field, first.rule) == ("acceptance_number", "sampling_plan")


def test_three_no_result_needs_the_sampled_seller() -> None:
    gen = FeedGenerator(seed=8, now=NOW)
    bad = gen.inspection(1, verdict="THREE_NO", platform=None)
    assert (
        violation_of("inspection", bad, topic_platform=None).first.rule == "sampled_seller_required"
    )
    check_record("inspection", gen.inspection(2, verdict="THREE_NO", platform="jd"), ctx(None))


def test_complaint_resolved_before_received_is_refused() -> None:
    c = FeedGenerator(seed=9, now=NOW).complaint("jd", 1)
    bad = {**c, "resolved_at": c["received_at"] - timedelta(hours=1)}
    assert (
        violation_of("complaint", bad, topic_platform="jd").first.rule == "resolved_after_received"
    )
