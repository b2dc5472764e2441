"""Domain objects for the feed entities, kept apart from the Avro wire format.

``from_record`` / ``to_record`` are the only bridge to the Avro dicts that
:mod:`schemas.registry` reads and writes. The field constraints here are the
*record rules* of docs/design.md §3; rules that need context (the clock, the topic's
platform, the platform registry) read it from the pydantic validation context
built by :func:`rule_context`. Pure: imports neither Beam nor Kafka.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from schemas.gtin import gtin_is_valid

# Field-size limits when no rule context is given; ingest and push pass the values of
# config/rules.yaml (record_rules) in the context instead.
DEFAULT_MAX_ID_CHARS = 200
DEFAULT_MAX_FIELD_CHARS = 2000
DEFAULT_MAX_TEXT_CHARS = 5000
DEFAULT_EARLIEST_EVENT_TIME = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class RuleContext:
    """What a record is checked against besides itself."""

    now: datetime
    max_future_skew: timedelta
    max_price_minor: int
    currencies: frozenset[str]
    platforms: frozenset[str]
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS
    # the platform the record's topic belongs to; None for regulator topics
    topic_platform: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # identifiers (ids, codes) and the other short text fields (names, titles, urls)
    max_id_chars: int = DEFAULT_MAX_ID_CHARS
    max_field_chars: int = DEFAULT_MAX_FIELD_CHARS
    # event times before this are not plausible (year 1, epoch 0 mix-ups)
    earliest_event_time: datetime = DEFAULT_EARLIEST_EVENT_TIME


def _ctx(info: ValidationInfo) -> RuleContext | None:
    ctx = info.context
    return ctx.get("rules") if isinstance(ctx, Mapping) else None


# --------------------------------------------------------------------------- characters
#
# Avro strings are any Unicode, so decoding accepts NUL bytes in ids, titles made only of
# zero-width spaces, and (from JSON lines pushed by a platform) lone surrogates that no
# UTF-8 writer can encode. Identifiers must be printable; text may hold line breaks and
# invisible format characters (emoji joiners) but must show something.

# categories refused in text: controls (other than line breaks) and unpaired surrogates
_BAD_IN_TEXT = frozenset({"Cc", "Cs"})
# ... and in identifiers also line/paragraph separators, format (zero-width, bidi) and
# private-use characters
_BAD_IN_ID = _BAD_IN_TEXT | {"Zl", "Zp", "Cf", "Co"}
# Every line break real text carries: CR/LF, and VT, FF and NEL from legacy encodings
# (U+2028/2029, from pasted web text, are Zl/Zp and not refused in text at all).
_TEXT_CONTROLS_ALLOWED = frozenset("\t\n\r\x0b\x0c\x85")
_SHOWN_CHARS = 60


def shown(value: str, limit: int = _SHOWN_CHARS) -> str:
    """``value`` safe to echo in a reason: invisible characters as \\uXXXX escapes, cut."""
    cut = value[:limit]
    if not cut.isprintable():
        cut = "".join(c if c.isprintable() or c == " " else f"\\u{ord(c):04x}" for c in cut)
    return cut + ("…" if len(value) > limit else "")


def _first_bad(value: str, bad: frozenset[str], allowed: frozenset[str]) -> tuple[int, str] | None:
    if value.isprintable():  # C fast path: no control, format, surrogate or separator
        return None
    for i, c in enumerate(value):
        if c not in allowed and unicodedata.category(c) in bad:
            return i, c
    return None


def _visible(value: str) -> bool:
    return any(c.isprintable() and not c.isspace() for c in value)


def _char_label(c: str) -> str:
    name = unicodedata.name(c, "")
    kind = {"Cc": "control", "Cs": "unpaired surrogate", "Cf": "invisible format"}.get(
        unicodedata.category(c), unicodedata.category(c)
    )
    return f"U+{ord(c):04X}" + (f" {name}" if name else "") + f" ({kind} character)"


def _check_chars(value: str, info: ValidationInfo, *, identifier: bool, long: bool = False) -> str:
    ctx = _ctx(info)
    if identifier:
        limit = ctx.max_id_chars if ctx else DEFAULT_MAX_ID_CHARS
    elif long:  # prose (reasons, legal bases, standards) and URLs: the free-text limit
        limit = ctx.max_text_chars if ctx else DEFAULT_MAX_TEXT_CHARS
    else:
        limit = ctx.max_field_chars if ctx else DEFAULT_MAX_FIELD_CHARS
    if len(value) > limit:
        raise PydanticCustomError(
            "max_length",
            "has {n} characters, more than the {limit} allowed for {kind} "
            "(config/rules.yaml record_rules)",
            {
                "n": len(value),
                "limit": limit,
                "kind": "an identifier" if identifier else "this field",
                "value": shown(value),
            },
        )
    _refuse_bad_characters(value, identifier=identifier)
    return value


def _refuse_bad_characters(value: str, *, identifier: bool, from_the_bad_one: bool = False) -> None:
    """Raise ``id_characters`` or ``text_characters`` at the first character not allowed.

    ``from_the_bad_one``: the value shown starts just before that character (long texts).
    """
    bad = (
        _first_bad(value, _BAD_IN_ID, frozenset())
        if identifier
        else _first_bad(value, _BAD_IN_TEXT, _TEXT_CONTROLS_ALLOWED)
    )
    if bad is None:
        return
    pos, char = bad
    raise PydanticCustomError(
        "id_characters" if identifier else "text_characters",
        # never the value in the message: a rejection's message is echoed where its
        # value is withheld (a consumer id, a complaint's text), see record_rules
        "contains {char} at position {pos}; "
        + (
            "identifiers must be printable, without control, invisible or line-separator characters"
            if identifier
            else "text must not contain control characters (other than tab and line "
            "breaks) or unpaired surrogates"
        ),
        {
            "value": shown(value[max(0, pos - 10) :] if from_the_bad_one else value),
            "char": _char_label(char),
            "pos": pos,
        },
    )


def _identifier(value: str, info: ValidationInfo) -> str:
    _check_chars(value, info, identifier=True)
    return _not_blank(value)


def _optional_identifier(value: str | None, info: ValidationInfo) -> str | None:
    return None if value is None else _check_chars(value, info, identifier=True)


def _text(value: str, info: ValidationInfo) -> str:
    _check_chars(value, info, identifier=False)
    return _not_blank(value)


def _long_text(value: str, info: ValidationInfo) -> str:
    _check_chars(value, info, identifier=False, long=True)
    return _not_blank(value)


def _optional_text(value: str | None, info: ValidationInfo) -> str | None:
    return None if value is None else _check_chars(value, info, identifier=False)


def _free_text(value: str, info: ValidationInfo) -> str:
    # length is the max_text_length rule (Complaint); only the characters are checked here
    _refuse_bad_characters(value, identifier=False, from_the_bad_one=True)
    return value


def _not_blank(value: str) -> str:
    if not _visible(value):
        raise PydanticCustomError(
            "not_blank",
            "must not be empty or blank (only spaces or zero-width characters)",
            {"value": shown(value)},
        )
    return value


def _gtin(value: str | None) -> str | None:
    if value is None:
        return None
    if not gtin_is_valid(value):
        raise PydanticCustomError(
            "gtin_check_digit",
            "'{value}' is not a valid GTIN-8/12/13/14 (digits and mod-10 check digit)",
            {"value": shown(value)},
        )
    return value


Identifier = Annotated[str, AfterValidator(_identifier)]
OptionalIdentifier = Annotated[str | None, AfterValidator(_optional_identifier)]
Text = Annotated[str, AfterValidator(_text)]
OptionalText = Annotated[str | None, AfterValidator(_optional_text)]
FreeText = Annotated[str, AfterValidator(_free_text)]
LongText = Annotated[str, AfterValidator(_long_text)]
Gtin = Annotated[str | None, AfterValidator(_gtin)]
# Avro int / long upper bounds: a model must not accept a number the codec cannot write
AVRO_INT_MAX = 2**31 - 1
AVRO_LONG_MAX = 2**63 - 1


class ListingStatus(StrEnum):
    ACTIVE = "ACTIVE"
    REMOVED = "REMOVED"


class Verdict(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    THREE_NO = "THREE_NO"
    COUNTERFEIT = "COUNTERFEIT"


class FailedItemKind(StrEnum):
    INTRINSIC = "INTRINSIC"
    MARKING = "MARKING"


class ResultStatus(StrEnum):
    PRELIMINARY = "PRELIMINARY"
    FINAL = "FINAL"
    OVERTURNED = "OVERTURNED"


class ComplaintChannel(StrEnum):
    PLATFORM = "PLATFORM"
    HOTLINE_12315 = "HOTLINE_12315"


class IssueType(StrEnum):
    QUALITY = "QUALITY"
    COUNTERFEIT = "COUNTERFEIT"
    FALSE_ADVERTISING = "FALSE_ADVERTISING"
    RETURN_REFUSED = "RETURN_REFUSED"
    AFTER_SALES = "AFTER_SALES"
    PRIVACY = "PRIVACY"
    FAKE_REVIEWS = "FAKE_REVIEWS"
    OTHER = "OTHER"


class ComplaintStatus(StrEnum):
    OPEN = "OPEN"
    IN_PROGRESS = "IN_PROGRESS"
    RESOLVED = "RESOLVED"
    CLOSED = "CLOSED"


class TakedownAction(StrEnum):
    REMOVED = "REMOVED"
    RESTORED = "RESTORED"
    DISPUTED = "DISPUTED"


class PenaltyGround(StrEnum):
    PRODUCT_SAFETY = "PRODUCT_SAFETY"
    FALSE_ADVERTISING = "FALSE_ADVERTISING"
    UNFAIR_COMPETITION = "UNFAIR_COMPETITION"
    TRADEMARK_INFRINGEMENT = "TRADEMARK_INFRINGEMENT"
    OTHER = "OTHER"


class FeedRecord(BaseModel):
    """Base for every entity that arrives on a feed topic."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    entity: ClassVar[str]
    id_field: ClassVar[str]
    # event-time fields checked against the clock
    time_fields: ClassVar[tuple[str, ...]]

    @model_validator(mode="after")
    def _times_not_in_future(self, info: ValidationInfo) -> Self:
        # A model validator over the few time fields: a "*" field validator
        # would run for every field of every record on the hot path.
        ctx = _ctx(info)
        if ctx is None:
            return self
        limit = ctx.now + ctx.max_future_skew
        for name in self.time_fields:
            value = getattr(self, name)
            if value is not None and value < ctx.earliest_event_time:
                raise PydanticCustomError(
                    "past_timestamp",
                    "{value} is before {earliest}, the earliest plausible event time "
                    "(config/rules.yaml record_rules.earliest_event_time)",
                    {
                        "field": name,
                        "value": value.isoformat(),
                        "earliest": ctx.earliest_event_time.isoformat(),
                    },
                )
            if value is not None and value > limit:
                raise PydanticCustomError(
                    "future_timestamp",
                    "{value} is later than now ({now}) plus the allowed clock skew of {skew}s",
                    {
                        "field": name,
                        "value": value.isoformat(),
                        "now": ctx.now.isoformat(timespec="seconds"),
                        "skew": int(ctx.max_future_skew.total_seconds()),
                    },
                )
        return self

    @property
    def record_id(self) -> str:
        return str(getattr(self, self.id_field))

    @property
    def platform_of_record(self) -> str | None:
        return getattr(self, "platform", None)

    @property
    def kafka_key(self) -> str:
        """Platform-scoped ids are unique only with their platform; regulator ids are global."""
        platform = self.platform_of_record
        if isinstance(self, PlatformRecord) and platform is not None:
            return f"{platform}:{self.record_id}"
        return self.record_id

    @classmethod
    def from_record(cls, record: Mapping[str, Any], ctx: RuleContext | None = None) -> Self:
        """Validate an Avro/JSON dict into the domain object, applying the record rules."""
        return cls.model_validate(record, context={"rules": ctx} if ctx else None)

    def to_record(self) -> dict[str, Any]:
        """The dict the Avro writer expects (enums as symbols, datetimes kept)."""
        return self.model_dump(mode="python")


class PlatformRecord(FeedRecord):
    """A record pushed by a platform: its ``platform`` must be registered and match the topic."""

    platform: Identifier

    @field_validator("platform", mode="after")
    @classmethod
    def _platform_known_and_owned(cls, value: str, info: ValidationInfo) -> str:
        ctx = _ctx(info)
        if ctx is None:
            return value
        if ctx.topic_platform is not None and value != ctx.topic_platform:
            raise PydanticCustomError(
                "platform_matches_topic",
                "record claims platform '{value}' but arrived on the feed of platform '{topic}' "
                "(spoofed: a platform may only write its own feed)",
                {"value": value, "topic": ctx.topic_platform},
            )
        if value not in ctx.platforms:
            raise PydanticCustomError(
                "platform_registered",
                "platform '{value}' is not in the platform registry",
                {"value": value},
            )
        return value


class Listing(PlatformRecord):
    entity: ClassVar[str] = "listing"
    id_field: ClassVar[str] = "listing_id"
    time_fields: ClassVar[tuple[str, ...]] = ("observed_at",)

    listing_id: Identifier
    seller_id: Identifier
    seller_name: Text
    title: Text
    brand: OptionalText = None
    model: OptionalText = None
    gtin: Gtin = None
    category: Text
    manufacturer: OptionalText = None
    price_minor: int = Field(ge=0, le=AVRO_LONG_MAX)
    currency: Identifier
    url: LongText
    status: ListingStatus
    observed_at: AwareDatetime

    @model_validator(mode="after")
    def _price_and_currency(self, info: ValidationInfo) -> Self:
        ctx = _ctx(info)
        if ctx is None:
            return self
        if self.price_minor > ctx.max_price_minor:
            raise PydanticCustomError(
                "max_price",
                "price_minor {value} exceeds the plausible maximum {limit} (minor units mixed up?)",
                {"value": self.price_minor, "limit": ctx.max_price_minor, "field": "price_minor"},
            )
        if self.currency not in ctx.currencies:
            raise PydanticCustomError(
                "currency_known",
                "currency '{value}' is not one of {known}",
                {"value": self.currency, "known": sorted(ctx.currencies), "field": "currency"},
            )
        return self


class FailedItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    item: Text
    standard: LongText
    kind: FailedItemKind


class InspectionResult(FeedRecord):
    entity: ClassVar[str] = "inspection"
    id_field: ClassVar[str] = "inspection_id"
    time_fields: ClassVar[tuple[str, ...]] = ("published_at",)

    inspection_id: Identifier
    campaign: Text
    product_name: Text
    brand: Identifier
    model: Identifier
    gtin: Gtin = None
    manufacturer: OptionalText = None
    batch: OptionalText = None
    platform: OptionalIdentifier = None
    seller_id: OptionalIdentifier = None
    listing_id: OptionalIdentifier = None
    verdict: Verdict
    failed_items: list[FailedItem] = Field(default_factory=list)
    sample_size: int = Field(ge=1, le=AVRO_INT_MAX)
    acceptance_number: int = Field(ge=0, le=AVRO_INT_MAX)
    nonconforming: int = Field(ge=0, le=AVRO_INT_MAX)
    declared_quality_level: float | None = Field(default=None, ge=0.0, le=1.0)
    population_size: int | None = Field(default=None, ge=1, le=AVRO_LONG_MAX)
    agency: Text
    report_no: Text
    status: ResultStatus
    published_at: AwareDatetime

    @model_validator(mode="after")
    def _plan_consistent(self) -> Self:
        if self.acceptance_number >= self.sample_size:
            raise PydanticCustomError(
                "sampling_plan",
                "acceptance_number c={c} must be below sample_size n={n}",
                {"c": self.acceptance_number, "n": self.sample_size, "field": "acceptance_number"},
            )
        if self.nonconforming > self.sample_size:
            raise PydanticCustomError(
                "sampling_plan",
                "nonconforming d={d} cannot exceed sample_size n={n}",
                {"d": self.nonconforming, "n": self.sample_size, "field": "nonconforming"},
            )
        if self.verdict in (Verdict.THREE_NO, Verdict.COUNTERFEIT) and not (
            self.platform and self.seller_id
        ):
            raise PydanticCustomError(
                "sampled_seller_required",
                "a {verdict} result applies to the sampled seller, so platform and seller_id "
                "are required",
                {"verdict": self.verdict.value, "field": "seller_id"},
            )
        return self


class Complaint(PlatformRecord):
    entity: ClassVar[str] = "complaint"
    id_field: ClassVar[str] = "complaint_id"
    time_fields: ClassVar[tuple[str, ...]] = ("received_at", "resolved_at")

    complaint_id: Identifier
    channel: ComplaintChannel
    consumer_id: Identifier
    seller_id: Identifier
    listing_id: OptionalIdentifier = None
    product_name: OptionalText = None
    brand: OptionalText = None
    model: OptionalText = None
    gtin: Gtin = None
    issue_type: IssueType
    text: FreeText
    status: ComplaintStatus
    received_at: AwareDatetime
    resolved_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _resolution_after_receipt(self, info: ValidationInfo) -> Self:
        if self.resolved_at is not None and self.resolved_at < self.received_at:
            raise PydanticCustomError(
                "resolved_after_received",
                "resolved_at {resolved} is before received_at {received}",
                {
                    "resolved": self.resolved_at.isoformat(),
                    "received": self.received_at.isoformat(),
                    "field": "resolved_at",
                    "value": self.resolved_at.isoformat(),
                },
            )
        ctx = _ctx(info)
        if ctx is not None and len(self.text) > ctx.max_text_chars:
            raise PydanticCustomError(
                "max_text_length",
                "text has {n} characters, more than the {limit} allowed",
                {"n": len(self.text), "limit": ctx.max_text_chars, "field": "text"},
            )
        return self


class TakedownNotice(PlatformRecord):
    entity: ClassVar[str] = "takedown"
    id_field: ClassVar[str] = "notice_id"
    time_fields: ClassVar[tuple[str, ...]] = ("acted_at",)

    notice_id: Identifier
    listing_id: Identifier
    task_id: OptionalIdentifier = None
    action: TakedownAction
    reason: LongText
    acted_at: AwareDatetime


class Penalty(FeedRecord):
    entity: ClassVar[str] = "penalty"
    id_field: ClassVar[str] = "penalty_id"
    time_fields: ClassVar[tuple[str, ...]] = ("decided_at", "published_at")

    penalty_id: Identifier
    enterprise_id: Identifier
    enterprise_name: Text
    platform: OptionalIdentifier = None
    seller_id: OptionalIdentifier = None
    ground: PenaltyGround
    legal_basis: LongText
    decision_no: Text
    authority: Text
    decided_at: AwareDatetime
    published_at: AwareDatetime


ENTITY_MODELS: dict[str, type[FeedRecord]] = {
    model.entity: model for model in (Listing, InspectionResult, Complaint, TakedownNotice, Penalty)
}


def utc_now() -> datetime:
    return datetime.now(UTC)
