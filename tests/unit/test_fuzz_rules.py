"""Fuzzing the record rules (pydantic models with their validation context) of every feed
entity, and the rules decided for what the codec accepts but a record must not carry.

Every hostile record ends in exactly one of two places: a valid domain object that the
codec can write (so it can be published), or a :class:`RuleViolation` whose every
violation names a rule, carries a readable message, and fits into a Rejection (so the
platform is told and nothing is lost). Anything else raised is a crash and fails.

About 4,500 cases in the normal suite; ``pytest -m slow`` runs ten times as many.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omm.config import load_rules
from pipelines.rules.record_rules import RuleViolation, check_record
from schemas.models import ENTITY_MODELS, RuleContext
from schemas.registry import SchemaRegistry
from tests.unit.test_codec import SAMPLES
from tests.unit.test_fuzz_codec import (
    EXTREME_TIMES,
    HOSTILE_TEXT,
    MB,
    WRONG_TYPES,
    expand,
    normal,
    slow,
)

REG = SchemaRegistry.load()
FEED_ENTITIES = sorted(ENTITY_MODELS)
RULES = load_rules().record_rules
CTX = RuleContext(
    now=datetime(2026, 6, 1, tzinfo=UTC),
    max_future_skew=timedelta(seconds=RULES.max_future_skew_seconds),
    max_price_minor=RULES.max_price_minor,
    currencies=frozenset(RULES.currencies),
    platforms=frozenset({"tmall", "jd"}),
    max_text_chars=RULES.max_text_chars,
    max_id_chars=RULES.max_id_chars,
    max_field_chars=RULES.max_field_chars,
    earliest_event_time=RULES.earliest_event_time,
)


def outcome(entity: str, record: Any) -> str:
    """check_record, then prove the result can leave ingest: published or rejected."""
    record = expand(record)
    try:
        model = check_record(entity, record, CTX)
    except RuleViolation as exc:
        assert exc.violations
        for v in exc.violations:
            assert v.rule and v.message.strip(), v
            REG.encode(
                "rejection",
                {
                    "rejection_id": "t/0/0",
                    "platform": "tmall",
                    "source_topic": "omm.feed.tmall.x",
                    "source_partition": 0,
                    "source_offset": 0,
                    "record_key": None,
                    "record_id": None,
                    "entity": entity,
                    "stage": "RECORD_RULES",
                    "error_class": "RuleViolation",
                    "field": v.field,
                    "value": v.value,
                    "rule": v.rule,
                    "message": str(exc),
                    "rejected_at": CTX.now,
                },
            )
        return "rejected"
    data = REG.encode(entity, model.to_record())  # a valid record can always be written
    again = check_record(entity, REG.decode(data, expected_entity=entity)[1], CTX)
    assert _millis(again.to_record()) == _millis(model.to_record())  # and reads back the same
    return "valid"


def _millis(value: Any) -> Any:
    """Avro timestamp-millis keeps milliseconds: compare at that precision."""
    if isinstance(value, datetime):
        return value.replace(microsecond=value.microsecond // 1000 * 1000)
    if isinstance(value, dict):
        return {k: _millis(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_millis(v) for v in value]
    return value


# the edges of Avro int and long, where a model and the codec could disagree
EDGE_NUMBERS = st.sampled_from(
    [0, -1, 2**31 - 1, 2**31, -(2**31) - 1, 2**63 - 1, 2**63, -(2**63) - 1, float("nan"), 1e308]
)


@st.composite
def hostile_feed_records(draw: st.DrawFn) -> tuple[str, Any]:
    entity = draw(st.sampled_from(FEED_ENTITIES))
    record = dict(SAMPLES[entity])
    fields = REG.current(entity).schema["fields"]
    for f in draw(st.lists(st.sampled_from(fields), min_size=1, max_size=3, unique_by=id)):
        types = f["type"] if isinstance(f["type"], list) else [f["type"]]
        options = [WRONG_TYPES, st.integers(min_value=-(2**64), max_value=2**64), EDGE_NUMBERS]
        if "string" in types:
            options.append(HOSTILE_TEXT)
        if any(isinstance(t, dict) and "logicalType" in t for t in types):
            options.append(EXTREME_TIMES)
            options.append(st.sampled_from(["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"]))
        record[f["name"]] = draw(st.one_of(options))
    if draw(st.booleans()) and draw(st.booleans()):
        record[draw(HOSTILE_TEXT.filter(lambda k: isinstance(k, str) and len(k) < 100))] = "extra"
    if draw(st.integers(0, 30)) == 0:
        return entity, draw(WRONG_TYPES)  # not even a dict
    return entity, record


@normal(3000)
@given(hostile_feed_records())
def test_hostile_records_are_valid_or_rejected_with_a_rule(case: tuple[str, Any]) -> None:
    outcome(*case)


@slow(3000)
@given(hostile_feed_records())
def test_hostile_records_are_valid_or_rejected_with_a_rule_slow(case: tuple[str, Any]) -> None:
    outcome(*case)


@normal(1500)
@given(st.sampled_from(FEED_ENTITIES), st.data())
def test_decoded_damaged_messages_pass_or_fail_the_rules_cleanly(entity: str, data: Any) -> None:
    """Bytes a platform could send that still decode (body bytes flipped) reach the rules."""
    raw = bytearray(REG.encode(entity, SAMPLES[entity]))
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(10, len(raw) - 1))] = data.draw(st.integers(0, 255))
    try:
        _, decoded = REG.decode(bytes(raw), expected_entity=entity)
    except ValueError:  # CodecError: covered in test_fuzz_codec
        return
    outcome(entity, decoded)


# ------------------------------------------------------------------ the rules decided


def violation(entity: str, **changes: Any) -> tuple[str | None, str, str, str | None]:
    with pytest.raises(RuleViolation) as ei:
        check_record(entity, {**SAMPLES[entity], **changes}, CTX)
    v = ei.value.first
    return v.field, v.rule, v.message, v.value


def test_nul_and_control_characters_in_ids_are_refused() -> None:
    field, rule, message, value = violation("listing", listing_id="6001\x0023")
    assert (field, rule) == ("listing_id", "id_characters")
    assert "U+0000 (control character) at position 4" in message
    assert value == "6001\\u000023"
    assert violation("takedown", task_id="t-1\x1b[2J")[1] == "id_characters"
    assert violation("complaint", consumer_id="c\u200b1")[:2] == ("consumer_id", "id_characters")


def test_zero_width_only_titles_are_blank() -> None:
    field, rule, message, _ = violation("listing", title="\u200b\u200d\ufeff ")
    assert (field, rule) == ("title", "not_blank")
    assert "zero-width" in message


def test_control_characters_and_lone_surrogates_in_text_are_refused() -> None:
    field, rule, message, value = violation("listing", seller_name="Shop\ud800")
    assert (field, rule) == ("seller_name", "text_characters")
    assert "unpaired surrogate" in message and value is not None
    assert value.encode("utf-8")  # echoed escaped, so the rejection can be written
    assert violation("complaint", text="broken\x00kettle")[:2] == ("text", "text_characters")
    # line breaks and emoji joiners are ordinary text
    ok = {**SAMPLES["complaint"], "text": "第一行\r\n第二行\t👩\u200d🔧"}
    assert check_record("complaint", ok, CTX).text == ok["text"]


def test_event_times_in_year_1_and_year_9999_are_refused() -> None:
    field, rule, message, _ = violation("listing", observed_at=datetime(1, 1, 1, tzinfo=UTC))
    assert (field, rule) == ("observed_at", "past_timestamp")
    assert "2000-01-01" in message
    late = datetime(9999, 12, 31, tzinfo=UTC)
    assert violation("penalty", published_at=late)[:2] == ("published_at", "future_timestamp")


def test_field_sizes_come_from_config() -> None:
    field, rule, message, value = violation("listing", title="t" * MB)
    assert (field, rule) == ("title", "max_length")
    assert f"{MB} characters, more than the {RULES.max_field_chars} allowed" in message
    assert value is not None and len(value) < 200  # the megabyte is not echoed back
    long_id = "x" * (RULES.max_id_chars + 1)
    assert violation("takedown", notice_id=long_id)[:2] == ("notice_id", "max_length")
    tight = RuleContext(**{**CTX.__dict__, "max_id_chars": 8})
    with pytest.raises(RuleViolation) as ei:
        check_record("takedown", {**SAMPLES["takedown"], "notice_id": "123456789"}, tight)
    assert ei.value.first.rule == "max_length" and "8 allowed" in ei.value.first.message


def test_the_shipped_config_sets_the_limits() -> None:
    assert RULES.max_id_chars == 200 and RULES.max_field_chars == 2000
    assert RULES.earliest_event_time == datetime(2000, 1, 1, tzinfo=UTC)
