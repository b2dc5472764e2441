"""Record rules: each broken record names its field, value and rule. No Kafka, no Beam."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from omm.config import load_platforms, load_rules
from omm.generate import LISTING_BREAKERS, FeedGenerator
from pipelines.rules.personal_data import Redactor
from pipelines.rules.record_rules import RuleViolation, check_record, rule_context
from schemas.models import Listing, RuleContext

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def ctx(topic_platform: str | None = "tmall") -> RuleContext:
    return rule_context(load_rules().record_rules, load_platforms(), NOW, topic_platform)


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


# --- personal data never echoed (issue 8, defect 5) ---------------------------------

REDACTOR = Redactor.from_config(load_rules().personal_data)
CONSUMER = "uqzkx482913"


def planted_complaint(**changes: object) -> dict:
    c = FeedGenerator(seed=12, now=NOW).complaint("jd", 1)
    return {
        **c,
        "consumer_id": CONSUMER,
        "text": f"用户 {CONSUMER} 电话 138 1234 5678 邮箱 zq@例子.中国",
        **changes,
    }


def echoed(v: RuleViolation) -> str:
    return str(v) + "".join(f"{x.field}{x.value}{x.message}" for x in v.violations)


def test_record_level_rules_never_echo_the_record() -> None:
    # Regression: max_text_length and resolved_after_received echoed the record's
    # repr (consumer id first) as their value, into feedback and DLQ headers.
    long_text = planted_complaint(text="投诉 138 1234 5678 " * 400)
    v = violation_of("complaint", long_text, topic_platform="jd")
    assert v.first.rule == "max_text_length" and v.first.field == "text"
    assert v.first.value is None
    c = planted_complaint()
    late = {**c, "resolved_at": c["received_at"] - timedelta(hours=1)}
    v2 = violation_of("complaint", late, topic_platform="jd")
    assert v2.first.rule == "resolved_after_received"
    assert v2.first.value == late["resolved_at"].isoformat()
    for violation in (v, v2):
        assert CONSUMER not in echoed(violation) and "1234" not in echoed(violation)


def test_with_the_redactor_personal_fields_are_never_echoed() -> None:
    record = planted_complaint(consumer_id=f"{CONSUMER}-13812345678-" + "x" * 200)
    with pytest.raises(RuleViolation) as caught:
        check_record("complaint", record, ctx("jd"), REDACTOR)
    first = caught.value.first
    assert (first.field, first.rule, first.value) == ("consumer_id", "max_length", None)
    assert CONSUMER not in echoed(caught.value) and "13812345678" not in echoed(caught.value)


def test_with_the_redactor_echo_fields_are_still_echoed() -> None:
    with pytest.raises(RuleViolation) as caught:
        check_record("complaint", planted_complaint(platform="tmall"), ctx("jd"), REDACTOR)
    first = caught.value.first
    assert (first.field, first.value, first.rule) == ("platform", "tmall", "platform_matches_topic")
    assert "spoofed" in first.message


def test_with_the_redactor_echoed_values_are_redacted_too() -> None:
    # seller_id may be echoed, but not the phone number a platform put in it
    record = planted_complaint(seller_id="   ")
    with pytest.raises(RuleViolation) as caught:
        check_record("complaint", record, ctx("jd"), REDACTOR)
    assert caught.value.first.rule == "not_blank"
    record = planted_complaint(gtin="13812345678")
    with pytest.raises(RuleViolation) as caught:
        check_record("complaint", record, ctx("jd"), REDACTOR)
    first = caught.value.first
    assert first.rule == "gtin_check_digit" and first.value == "[PHONE]"
    assert "13812345678" not in echoed(caught.value)


def test_listings_are_echoed_as_before_with_the_redactor() -> None:
    record = {**FeedGenerator(seed=3, now=NOW).listing("tmall", 1), "gtin": "13812345678"}
    with pytest.raises(RuleViolation) as caught:
        check_record("listing", record, ctx(), REDACTOR)
    assert caught.value.first.value == "13812345678"  # business data, no personal policy


@pytest.mark.parametrize(
    "consumer_id",
    ["ab12\u200bcd34", "zhang.wei\u200b1985", "w" * 66 + "\x00"],
)
def test_a_character_rule_never_puts_a_withheld_value_in_its_message(consumer_id: str) -> None:
    # Regression (review): id_characters wrote the escaped id into the message, which
    # the redactor could not recognise once escaped and cut, and the message is echoed
    # into feedback and the DLQ header where the value itself is withheld.
    record = planted_complaint(consumer_id=consumer_id)
    with pytest.raises(RuleViolation) as caught:
        check_record("complaint", record, ctx("jd"), REDACTOR)
    first = caught.value.first
    assert (first.field, first.rule, first.value) == ("consumer_id", "id_characters", None)
    visible = consumer_id.replace("\u200b", "").replace("\x00", "")
    for piece in (visible[:4], visible[-4:], "\\u200b" + visible[4:8]):
        assert piece not in echoed(caught.value)


@pytest.mark.parametrize("line_break", ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\r\n"])
def test_text_may_carry_any_line_break_real_text_has(line_break: str) -> None:
    # Regression (review): U+2028 (pasted web text), NEL, VT and FF (legacy encodings)
    # dead-lettered genuine complaints and listing titles as text_characters.
    complaint = planted_complaint(text=f"line one{line_break}line two")
    assert check_record("complaint", complaint, ctx("jd"), REDACTOR).text.endswith("line two")
    listing = {
        **FeedGenerator(seed=3, now=NOW).listing("tmall", 1),
        "title": f"kettle{line_break}1.7L",
    }
    assert check_record("listing", listing, ctx("tmall")).title.startswith("kettle")


def test_prose_fields_and_urls_take_the_free_text_limit_not_the_short_field_one() -> None:
    # Regression (review): a long legal basis, standard, reason or URL was refused at
    # max_field_chars (2,000) although it is prose.
    url = "https://shop.example/item?" + "&utm=" * 700  # 3,526 characters
    listing = {**FeedGenerator(seed=3, now=NOW).listing("tmall", 2), "url": url}
    assert check_record("listing", listing, ctx("tmall")).url == url
    too_long = {**listing, "url": "https://shop.example/" + "a" * 6000}
    with pytest.raises(RuleViolation) as caught:
        check_record("listing", too_long, ctx("tmall"))
    assert (caught.value.first.field, caught.value.first.rule) == ("url", "max_length")
