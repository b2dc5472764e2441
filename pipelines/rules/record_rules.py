"""Record rules: one decoded record in, the domain object or the reasons it is refused out.

Used by the push client (before a line is sent) and by ingest (before a record
reaches ``omm.valid.*``), so a platform sees the same reason in both places.

A reason names the field, the offending value and the rule, but never echoes
personal data: a record-level rule never echoes the record, and with a
:class:`~pipelines.rules.personal_data.Redactor` (ingest always passes one) the
values of a personal-data entity's fields are echoed only for the fields its
policy allows, and redacted even then. Pure: imports neither Beam nor Kafka.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from pipelines.rules.personal_data import Redactor
from pipelines.rules.platforms import PlatformRegistry
from schemas.models import ENTITY_MODELS, FeedRecord, RuleContext

_PYDANTIC_RULE_NAMES = {
    "missing": "required",
    "extra_forbidden": "unknown_field",
    "enum": "enum",
    "greater_than_equal": "min_value",
    "less_than_equal": "max_value",
    "string_too_long": "max_length",
    "timezone_aware": "timezone_required",
}


@dataclass(frozen=True)
class Violation:
    """One broken rule, specific enough for a platform engineer to fix the record."""

    field: str | None
    value: str | None
    rule: str
    message: str

    def describe(self) -> str:
        where = f"{self.field}={self.value!r}: " if self.field else ""
        return f"{where}{self.message} [rule {self.rule}]"


class RuleViolation(ValueError):
    """Raised-as-value: carries every violation of one record."""

    def __init__(self, violations: list[Violation]) -> None:
        super().__init__("; ".join(v.describe() for v in violations))
        self.violations = violations

    @property
    def first(self) -> Violation:
        return self.violations[0]


class RecordRulesConfig(BaseModel):
    """``record_rules`` in ``config/rules.yaml``: the limits one record is held to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_future_skew_seconds: int = Field(ge=0)
    max_price_minor: int = Field(gt=0)
    currencies: list[str]
    max_text_chars: int = Field(gt=0)
    max_id_chars: int = Field(default=200, gt=0)
    max_field_chars: int = Field(default=2000, gt=0)
    earliest_event_time: AwareDatetime = datetime(2000, 1, 1, tzinfo=UTC)


def rule_context(
    cfg: RecordRulesConfig,
    platforms: PlatformRegistry,
    now: datetime,
    topic_platform: str | None = None,
) -> RuleContext:
    return RuleContext(
        now=now,
        max_future_skew=timedelta(seconds=cfg.max_future_skew_seconds),
        max_price_minor=cfg.max_price_minor,
        currencies=frozenset(cfg.currencies),
        platforms=frozenset(platforms.ids),
        max_text_chars=cfg.max_text_chars,
        topic_platform=topic_platform,
        max_id_chars=cfg.max_id_chars,
        max_field_chars=cfg.max_field_chars,
        earliest_event_time=cfg.earliest_event_time,
    )


def _short(value: Any, limit: int = 120) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else repr(value)
    text = _encodable(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _encodable(text: str) -> str:
    # a pushed JSON line may carry lone surrogates: escape them, or the rejection
    # naming them could not be written (UTF-8) and the record would be lost
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _violations(error: ValidationError) -> list[Violation]:
    out = []
    for item in error.errors(include_url=False):
        ctx = item.get("ctx") or {}
        loc = [str(part) for part in item["loc"]]
        field = ctx.get("field") or (".".join(loc) if loc else None)
        # A record-level (model) validator's input is the whole record: never echo
        # it (it holds personal data); such a rule names its value in ctx if it has one.
        value = ctx.get("value") if not loc else ctx.get("value", item.get("input"))
        if item["type"] == "missing":
            value = None
        rule = _PYDANTIC_RULE_NAMES.get(item["type"], item["type"])
        out.append(
            Violation(
                field=_encodable(field) if field is not None else None,
                value=_short(value),
                rule=rule,
                message=_encodable(item["msg"]),
            )
        )
    return out


def protect_violations(
    entity: str, record: Mapping[str, Any], violations: list[Violation], redactor: Redactor
) -> list[Violation]:
    """The violations as they may be told to anyone but the record's owner.

    For an entity with personal data (complaints), a value is echoed only for
    the fields its policy lists in ``echo_fields`` (never the consumer's
    identity or free text), and every value, field name and message goes
    through the redactor with the record's own identities.
    """
    policy = redactor.policy(entity)
    if policy is None:
        return violations
    own = redactor.own_ids(entity, record)
    out = []
    for v in violations:
        top = v.field.split(".", 1)[0] if v.field else None
        echo = v.value is not None and top in policy.echo_fields
        out.append(
            Violation(
                field=redactor.redact(v.field, own) if v.field else v.field,
                value=redactor.redact(v.value, own) if echo and v.value is not None else None,
                rule=v.rule,
                message=redactor.redact(v.message, own),
            )
        )
    return out


def check_record(
    entity: str,
    record: Mapping[str, Any],
    ctx: RuleContext,
    redactor: Redactor | None = None,
) -> FeedRecord:
    """Return the validated domain object, or raise :class:`RuleViolation` naming every problem.

    With ``redactor``, the violations are fit to leave the process (see
    :func:`protect_violations`); without, they are for the record's owner only
    (the push client checking a platform's own file).
    """
    model = ENTITY_MODELS[entity]
    try:
        return model.from_record(record, ctx)
    except ValidationError as exc:
        violations = _violations(exc)
        if redactor is not None:
            violations = protect_violations(entity, record, violations, redactor)
        raise RuleViolation(violations) from None
