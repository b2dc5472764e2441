"""Fuzzing the single-object decoder (schemas/registry.py) over every entity.

Whatever bytes arrive, decode either returns a record of a known entity or raises the
codec's declared error (a :class:`CodecError`) with a specific reason; the reason must be
writable into a Rejection, so no bad message is ever lost. Random bytes, truncated
payloads, wrong fingerprints, corrupted bodies, and records built from each schema with
hostile values (NUL and control characters, lone surrogates, zero-width characters,
1 MB strings, years 1 and 9999, wrong types) on the encode side.

The normal suite runs about 6,000 cases here (see test_fuzz_rules.py for the rest);
``pytest -m slow`` runs ten times as many.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.registry import (
    HEADER_LEN,
    MAGIC,
    CodecError,
    CorruptBody,
    InvalidRecord,
    NotSingleObjectEncoded,
    SchemaRegistry,
    UnknownEntity,
    UnknownFingerprint,
    WrongEntity,
)
from tests.unit.test_codec import SAMPLES

REG = SchemaRegistry.load()
ENTITIES = REG.entities()
KNOWN_FPS = {v.fingerprint for e in ENTITIES for v in REG.versions(e)}
GOOD = {e: REG.encode(e, SAMPLES[e]) for e in ENTITIES}

_FAST = {"deadline": None, "suppress_health_check": list(HealthCheck)}


def normal(n: int) -> Callable[[Any], Any]:
    return settings(max_examples=n, **_FAST)


def slow(n: int) -> Callable[[Any], Any]:
    def wrap(fn: Any) -> Any:
        return pytest.mark.slow(settings(max_examples=n * 10, **_FAST)(fn))

    return wrap


def rejection_for(reason: str, error_class: str) -> bytes:
    """What ingest writes for an undecodable message: it must always encode."""
    return REG.encode(
        "rejection",
        {
            "rejection_id": "t/0/0",
            "platform": "tmall",
            "source_topic": "omm.feed.tmall.listings",
            "source_partition": 0,
            "source_offset": 0,
            "record_key": None,
            "record_id": None,
            "entity": None,
            "stage": "DECODE",
            "error_class": error_class,
            "field": None,
            "value": None,
            "rule": None,
            "message": reason,
            "rejected_at": datetime(2026, 1, 1, tzinfo=UTC),
        },
    )


def decode_outcome(data: bytes, expected: str | None = None) -> str:
    """Decode; only a record or a CodecError with a readable reason may come out."""
    try:
        entity, record = REG.decode(data, expected_entity=expected)
    except CodecError as exc:
        reason = exc.reason
        assert reason and reason.strip() == reason, repr(reason)
        assert not reason.endswith(":"), reason  # never a bare "EOFError: "
        assert rejection_for(reason, exc.error_class)  # and the rejection can be written
        return type(exc).__name__
    assert entity in ENTITIES and isinstance(record, dict)
    assert [f["name"] for f in REG.current(entity).schema["fields"]] == list(record)
    return "decoded"


# ------------------------------------------------------------------ raw bytes


def check_random_bytes(data: bytes) -> None:
    outcome = decode_outcome(data)
    if data[:2] != MAGIC or len(data) < HEADER_LEN:
        assert outcome == "NotSingleObjectEncoded"


@normal(1500)
@given(st.binary(max_size=400))
def test_random_bytes(data: bytes) -> None:
    check_random_bytes(data)


@slow(1500)
@given(st.binary(max_size=4000))
def test_random_bytes_slow(data: bytes) -> None:
    check_random_bytes(data)


header_and_body = st.tuples(
    st.sampled_from(ENTITIES), st.binary(max_size=300), st.sampled_from(["current", "random"])
)


def check_known_header_random_body(entity: str, body: bytes, which: str) -> None:
    header = REG.current(entity).header if which == "current" else MAGIC + body[:8]
    outcome = decode_outcome(header + body, expected=entity)
    if which == "current":
        assert outcome in ("decoded", "CorruptBody")


@normal(1500)
@given(header_and_body)
def test_known_header_random_body(case: tuple[str, bytes, str]) -> None:
    check_known_header_random_body(*case)


@slow(1500)
@given(header_and_body)
def test_known_header_random_body_slow(case: tuple[str, bytes, str]) -> None:
    check_known_header_random_body(*case)


# ------------------------------------------------------------------ real messages damaged


damage = st.tuples(
    st.sampled_from(ENTITIES),
    st.sampled_from(["truncate", "flip", "insert", "wrong_fp", "other_fp", "append"]),
    st.integers(min_value=0, max_value=10_000),
    st.binary(min_size=1, max_size=16),
)


def check_damaged(entity: str, how: str, at: int, junk: bytes) -> None:
    data = GOOD[entity]
    pos = at % len(data)
    if how == "truncate":
        cut = data[:pos]
        outcome = decode_outcome(cut, expected=entity)
        assert outcome == ("NotSingleObjectEncoded" if pos < HEADER_LEN else "CorruptBody")
        return
    if how == "flip":
        body_pos = HEADER_LEN + at % (len(data) - HEADER_LEN)
        b = bytearray(data)
        b[body_pos] ^= junk[0] or 0xFF
        decode_outcome(bytes(b), expected=entity)
        return
    if how == "insert":
        body_pos = HEADER_LEN + at % (len(data) - HEADER_LEN)
        decode_outcome(data[:body_pos] + junk + data[body_pos:], expected=entity)
        return
    if how == "append":
        assert decode_outcome(data + junk, expected=entity) == "CorruptBody"
        return
    if how == "wrong_fp":
        fp = (junk * 8)[:8]
        outcome = decode_outcome(MAGIC + fp + data[HEADER_LEN:], expected=entity)
        if fp not in KNOWN_FPS:
            assert outcome == "UnknownFingerprint"
        return
    other = ENTITIES[at % len(ENTITIES)]
    outcome = decode_outcome(REG.current(other).header + data[HEADER_LEN:], expected=entity)
    if other != entity:
        assert outcome == "WrongEntity"
    # and without an expected entity the body is read as the other entity, or refused
    decode_outcome(REG.current(other).header + data[HEADER_LEN:])


@normal(2000)
@given(damage)
def test_damaged_messages_of_every_entity(case: tuple[str, str, int, bytes]) -> None:
    check_damaged(*case)


@slow(2000)
@given(damage)
def test_damaged_messages_of_every_entity_slow(case: tuple[str, str, int, bytes]) -> None:
    check_damaged(*case)


# ------------------------------------------------------------------ encode side: hostile values

MB = 1 << 20


@dataclass(frozen=True)
class Huge:
    """A 1 MB string, drawn as this small token and built inside the test: hypothesis
    keeps a representation of every drawn value, and 30,000 megabytes do not fit."""

    unit: str

    def __repr__(self) -> str:
        return f"Huge({self.unit!r} * {MB})"


def expand(value: Any) -> Any:
    """The drawn value with each :class:`Huge` token replaced by its megabyte string."""
    if isinstance(value, Huge):
        return value.unit * MB
    if isinstance(value, dict):
        return {expand(k): expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v) for v in value]
    return value


HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.lists(
        st.sampled_from(
            ["\x00", "\x01", "\x1b", "\x7f", "\x85", "\u200b", "\u200d", "\ufeff", "\u202e",
             "\u2028", "\ud800", "\udfff", "\t", "\n", "a", "美", " "]
        ),
        max_size=12,
    ).map("".join),
    st.sampled_from([Huge("a"), Huge("美"), Huge("\x00")]),
)  # fmt: skip
EXTREME_TIMES = st.one_of(
    st.sampled_from(
        [
            datetime(1, 1, 1, tzinfo=UTC),
            datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
            datetime(1970, 1, 1, tzinfo=UTC),
        ]
    ),
    st.datetimes(
        min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
    ),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
)
WRONG_TYPES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.binary(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.datetimes(),  # naive
)


def _field_value(ftype: Any) -> st.SearchStrategy[Any]:
    types = ftype if isinstance(ftype, list) else [ftype]
    options = [WRONG_TYPES]
    for t in types:
        if t == "string":
            options.append(HOSTILE_TEXT)
        elif isinstance(t, dict) and t.get("logicalType", "").startswith("timestamp"):
            options.append(EXTREME_TIMES)
        elif isinstance(t, dict) and t.get("type") == "enum":
            options.append(st.sampled_from([*t["symbols"], "NOT_A_SYMBOL", ""]))
    return st.one_of(options)


@st.composite
def hostile_records(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    entity = draw(st.sampled_from(ENTITIES))
    record = dict(SAMPLES[entity])
    fields = REG.current(entity).schema["fields"]
    for f in draw(st.lists(st.sampled_from(fields), min_size=1, max_size=3, unique_by=id)):
        record[f["name"]] = draw(_field_value(f["type"]))
    return entity, record


def check_encode_round_trip(entity: str, record: dict[str, Any]) -> None:
    record = expand(record)
    try:
        data = REG.encode(entity, record)
    except InvalidRecord as exc:  # the codec's declared error, with a reason
        assert exc.reason and exc.entity == entity
        return
    decoded_entity, decoded = REG.decode(data, expected_entity=entity)
    assert decoded_entity == entity
    assert REG.encode(entity, decoded) == data  # what was written is what is read


@normal(1200)
@given(hostile_records())
def test_encode_hostile_values_then_decode(case: tuple[str, dict[str, Any]]) -> None:
    check_encode_round_trip(*case)


@slow(1200)
@given(hostile_records())
def test_encode_hostile_values_then_decode_slow(case: tuple[str, dict[str, Any]]) -> None:
    check_encode_round_trip(*case)


def test_the_declared_errors_are_all_codec_errors() -> None:
    for cls in (
        NotSingleObjectEncoded,
        UnknownFingerprint,
        WrongEntity,
        CorruptBody,
        InvalidRecord,
    ):
        assert issubclass(cls, CodecError)
    assert not issubclass(UnknownEntity, CodecError)  # a programming error, not bad data
