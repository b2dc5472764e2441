"""Complaint intelligence (docs/design.md §3 rule 8, issue 12): targeted sampling,
complaint-to-case and compensation-first.

Pure: imports neither Beam nor Kafka. Each rule is a per-key state object that a
stateful DoFn keeps and drives with ``add(...)`` (a record read) and
``advance(watermark_ms)`` (an event-time timer fired), each returning what became
final:

* :class:`ProductComplaints`, keyed by normalised product identity (the key of
  :func:`pipelines.rules.matching.product_key`, as on enforce's tasks): complaint
  counts per issue type over rolling windows -> :class:`SamplingCandidate`;
  :func:`rank_candidates` ranks one computation's candidates (a global step) into
  :class:`SamplingRecommendation` s.
* :class:`SellerComplaints`, keyed by (platform, seller): violation complaints over a
  rolling window -> :class:`CaseLead`.
* :class:`ClaimState`, keyed by complaint: a claim unresolved past the period on a
  platform bound by compensation-first -> a COMPENSATION_FIRST task, and its status.

**Windows** are event time (``received_at``), whole days in the calendar's time zone:
a window of L days ending at midnight E covers the L local days before E, and one
closes every day (rolling windows, one step a day).

**Late data.** A window is emitted once, when the watermark passes its end plus the
allowed lateness (``allowed_lateness_hours``). Every complaint read no later than
that is in it, so its output, its id and its evidence are the same whatever order
the complaints arrived in; the price is that a window is published that long after
it ends. A complaint whose windows have all been emitted already is dropped from
them and counted in ``late`` (also a status update of a complaint long counted:
windows count a complaint once, from its receipt); it still counts in the windows
still open. Windows are never re-emitted, so a consumer never has to reconcile two
versions of one window. A compensation-first claim is decided the same way: once the
watermark passes the end of its period plus the allowed lateness; a resolution dated
before the period's end but read after that withdraws the task (it was never due).
For a claim, a version's event time is when it ended (``resolved_at``), so the
watermark a claim's DoFn is given must follow resolutions too, not only receipts.

**Personal data.** Outputs carry complaint ids (``<platform>:<id>`` or
``12315:<id>``), sellers, product identities and counts: never a consumer's
identity, the complaint's text or its product name.
"""

from __future__ import annotations

import functools
import hashlib
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipelines.rules.calendar import WorkingCalendar
from pipelines.rules.compliance import (
    COMPENSATION_FIRST,
    COMPLAINT,
    COMPLETED_LATE,
    COMPLETED_ON_TIME,
    DEADLINE,
    OVERDUE,
    WITHDRAWN,
    Status,
    TaskEvidence,
    TaskFact,
)
from pipelines.rules.credit import CreditConfig
from pipelines.rules.enforcement import gtin_key, task_id
from pipelines.rules.matching import MatchingConfig, normalise_text
from pipelines.rules.platforms import PlatformRegistry

ISSUE_TYPES = (
    "QUALITY",
    "COUNTERFEIT",
    "FALSE_ADVERTISING",
    "RETURN_REFUSED",
    "AFTER_SALES",
    "PRIVACY",
    "FAKE_REVIEWS",
    "OTHER",
)
RETURN_REFUSED = "RETURN_REFUSED"
HOTLINE = "HOTLINE_12315"
# a later version of a complaint is one further along (status), then resolved later
_STATUS_RANK = {"OPEN": 0, "IN_PROGRESS": 1, "RESOLVED": 2, "CLOSED": 2}
_DAY_MS = 86_400_000
_NEVER = -(2**62)


def _issue_types(values: Iterable[str]) -> tuple[str, ...]:
    unknown = sorted(set(values) - set(ISSUE_TYPES))
    if unknown:
        raise ValueError(f"unknown issue type(s) {unknown}; known: {list(ISSUE_TYPES)}")
    return tuple(values)


# ------------------------------------------------------------------ config


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SamplingWindow(_Strict):
    """One rolling window of targeted sampling and what makes a product a candidate in it."""

    days: int = Field(ge=1)
    min_score: float = Field(ge=0)
    min_complaints: int = Field(ge=1)


class SamplingConfig(_Strict):
    windows: tuple[SamplingWindow, ...] = Field(min_length=1)
    weights: dict[str, float]
    inspected_within_days: int = Field(ge=0)
    max_examples: int = Field(ge=0)
    max_recommendations: int = Field(ge=1)
    max_complaints_per_consumer: int = Field(ge=1)

    @field_validator("weights")
    @classmethod
    def _every_type(cls, weights: dict[str, float]) -> dict[str, float]:
        _issue_types(weights)
        missing = sorted(set(ISSUE_TYPES) - set(weights))
        if missing:
            raise ValueError(f"weights: give every issue type a weight; missing {missing}")
        if any(w < 0 for w in weights.values()):
            raise ValueError("weights must be >= 0")
        return weights

    @field_validator("windows")
    @classmethod
    def _distinct(cls, windows: tuple[SamplingWindow, ...]) -> tuple[SamplingWindow, ...]:
        if len({w.days for w in windows}) != len(windows):
            raise ValueError("windows: each length (days) at most once")
        return windows


class CaseLeadConfig(_Strict):
    window_days: int = Field(ge=1)
    threshold: int = Field(ge=1)
    violation_issue_types: tuple[str, ...] = Field(min_length=1)
    return_refused_excluded_categories: tuple[str, ...]
    count_return_refused_without_category: bool
    max_complaints_per_consumer: int = Field(ge=1)

    @field_validator("violation_issue_types")
    @classmethod
    def _known(cls, types: tuple[str, ...]) -> tuple[str, ...]:
        return _issue_types(types)


class CompensationFirstConfig(_Strict):
    unresolved_days: int = Field(ge=1)
    deadline_working_days: int = Field(ge=0)
    claim_issue_types: tuple[str, ...] = Field(min_length=1)
    ending_statuses: tuple[str, ...] = Field(min_length=1)
    legal_basis: str = Field(min_length=1)

    @field_validator("claim_issue_types")
    @classmethod
    def _known(cls, types: tuple[str, ...]) -> tuple[str, ...]:
        return _issue_types(types)

    @field_validator("ending_statuses")
    @classmethod
    def _endings(cls, statuses: tuple[str, ...]) -> tuple[str, ...]:
        if not set(statuses) <= {"RESOLVED", "CLOSED"}:
            raise ValueError(
                f"ending_statuses: only RESOLVED and CLOSED end a claim, got {statuses}"
            )
        return statuses


class IntelConfig(_Strict):
    """``config/intel.yaml``, with the working calendar it names."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    calendar: WorkingCalendar
    allowed_lateness_hours: int = Field(ge=0)
    sampling: SamplingConfig
    case_leads: CaseLeadConfig
    compensation_first: CompensationFirstConfig
    credit: CreditConfig

    @model_validator(mode="after")
    def _one_time_zone(self) -> IntelConfig:
        if self.credit.timezone != self.calendar.timezone:
            raise ValueError(
                f"credit.timezone {self.credit.timezone} differs from the calendar's "
                f"{self.calendar.timezone}"
            )
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.calendar.timezone)

    @property
    def lateness_ms(self) -> int:
        return self.allowed_lateness_hours * 3_600_000


# ------------------------------------------------------------------ complaints


class ComplaintFact(NamedTuple):
    """What the intel rules keep of one Complaint record (no identity, no text)."""

    complaint_id: str
    platform: str
    channel: str
    seller_id: str
    issue_type: str
    status: str
    received_ms: int
    resolved_ms: int | None
    evidence: str  # topic/partition/offset of the record
    product_key: str | None = None
    brand: str | None = None
    model: str | None = None
    listing_id: str | None = None
    category: str | None = None  # of the goods, from the listing feed; None when unknown
    # the consumer's pseudonym, scoped like complaint ids: kept to cap how much one
    # consumer counts (see capped), never written to any output
    consumer: str | None = None

    @property
    def key(self) -> str:
        """The complaint's id across channels: 12315's ids are unique within 12315."""
        prefix = "12315" if self.channel == HOTLINE else self.platform
        return f"{prefix}:{self.complaint_id}"


def complaint_fact(
    record: Mapping[str, Any],
    evidence: str,
    matching: MatchingConfig | None = None,
    category: str | None = None,
) -> ComplaintFact:
    """From a decoded (pseudonymised) Complaint record.

    The product key is enforce's: canonical brand | normalised model; without a model,
    the one model code the product name holds, if exactly one (two would be a guess);
    without either, the GTIN's key (enforce's too), so a complaint naming only a barcode
    still counts toward its product.
    ``category``: the goods' category, which the complaint does not carry; the intel
    pipeline takes it from the listing the complaint names. Without ``matching`` (comply,
    which follows claims, not products) there is no product key.
    """
    brand, model = record.get("brand"), record.get("model")
    key = None if matching is None else matching.product_key(brand, model)
    if matching and key is None and brand and not model and record.get("product_name"):
        tokens = matching.model_tokens_from_title(str(record["product_name"]))
        if len(tokens) == 1:
            key = matching.product_key(brand, tokens[0])
    if matching and key is None:
        key = gtin_key(record.get("gtin"))
    resolved = record.get("resolved_at")
    return ComplaintFact(
        complaint_id=str(record["complaint_id"]),
        platform=str(record["platform"]),
        channel=str(record["channel"]),
        seller_id=str(record["seller_id"]),
        issue_type=str(record["issue_type"]),
        status=str(record["status"]),
        received_ms=_ms(record["received_at"]),
        resolved_ms=None if resolved is None else _ms(resolved),
        evidence=evidence,
        product_key=key,
        brand=brand,
        model=model,
        listing_id=record.get("listing_id"),
        category=category,
        consumer=f"{_scope(record)}:{record['consumer_id']}" if record.get("consumer_id") else None,
    )


def _scope(record: Mapping[str, Any]) -> str:
    """Where complaint and consumer ids are unique: 12315's ids within 12315."""
    return "12315" if record.get("channel") == HOTLINE else str(record["platform"])


def capped(complaints: Iterable[ComplaintFact], per_consumer: int) -> list[ComplaintFact]:
    """The complaints that count: at most ``per_consumer`` of one consumer (the earliest),
    so one person's repeated complaints cannot make a hotspot or a case on their own.
    In order of receipt, then complaint id."""
    seen: Counter[str] = Counter()
    out = []
    for c in sorted(complaints, key=lambda c: (c.received_ms, c.key)):
        if c.consumer is not None:
            seen[c.consumer] += 1
            if seen[c.consumer] > per_consumer:
                continue
        out.append(c)
    return out


def _version(c: ComplaintFact) -> tuple[Any, ...]:
    """Order of a complaint's versions: the greater is the later, whatever the read order."""
    return (
        _STATUS_RANK.get(c.status, 0),
        -1 if c.resolved_ms is None else c.resolved_ms,
        c.status,
        c.received_ms,
        c.issue_type,
        c.evidence,
    )


def _later(known: ComplaintFact | None, new: ComplaintFact) -> ComplaintFact:
    return new if known is None or _version(new) > _version(known) else known


# ------------------------------------------------------------------ windows


@dataclass(frozen=True)
class Window:
    days: int
    start_ms: int  # inclusive
    end_ms: int  # exclusive


def _day(ms: int, zone: ZoneInfo) -> date:
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(zone).date()


def _ordinal(ms: int, zone: ZoneInfo) -> int:
    """The local day of an instant, as a proleptic ordinal (cheap to compare and step)."""
    return datetime.fromtimestamp(ms / 1000, zone).toordinal()


def _midnight(day: date, zone: ZoneInfo) -> int:
    return int(datetime.combine(day, time(0), tzinfo=zone).timestamp() * 1000)


@functools.lru_cache(maxsize=4096)
def _midnight_of(ordinal: int, zone: ZoneInfo) -> int:
    return _midnight(date.fromordinal(ordinal), zone)


def _window(days: int, end: int, zone: ZoneInfo) -> Window:
    """The window of ``days`` local days ending (exclusive) at the start of day ``end``."""
    return Window(days, _midnight_of(end - days, zone), _midnight_of(end, zone))


def windows_of(received_ms: int, days: int, zone: ZoneInfo) -> list[Window]:
    """The rolling windows of ``days`` days that hold a complaint received then."""
    first = _ordinal(received_ms, zone)
    return [_window(days, first + k, zone) for k in range(1, days + 1)]


@dataclass
class _Windowed:
    """Complaints of one key and which windows of each length were emitted.

    Days are local day ordinals: a complaint of day d is in the windows of length L
    ending (exclusive) at days d+1 .. d+L.
    """

    complaints: dict[str, ComplaintFact] = field(default_factory=dict)
    day_of: dict[str, int] = field(default_factory=dict)  # complaint key -> its local day
    emitted_through: dict[int, int] = field(default_factory=dict)  # length -> last end emitted
    watermark_ms: int = _NEVER
    late: int = 0

    def _done(self, days: int) -> int:
        return self.emitted_through.get(days, 0)

    def _keep(self, c: ComplaintFact, lengths: Iterable[int], zone: ZoneInfo) -> bool:
        d = _ordinal(c.received_ms, zone)
        if not any(d + n > self._done(n) for n in lengths):
            self.late += 1
            return False
        self.complaints[c.key] = _later(self.complaints.get(c.key), c)
        self.day_of[c.key] = _ordinal(self.complaints[c.key].received_ms, zone)
        return True

    def _closing(
        self, watermark_ms: int, lengths: Collection[int], cfg: IntelConfig
    ) -> list[tuple[Window, list[ComplaintFact]]]:
        """The windows with complaints that the watermark closes now (by end, then length),
        each with its complaints in (received, key) order."""
        self.watermark_ms = max(self.watermark_ms, watermark_ms)
        until = self.watermark_ms - cfg.lateness_ms
        if until <= _NEVER // 2 or not self.complaints:
            return []
        zone = cfg.zone
        last_end = _ordinal(until, zone)  # the start of that day is at or before ``until``
        by_day: dict[int, list[ComplaintFact]] = {}
        for key, c in self.complaints.items():
            by_day.setdefault(self.day_of[key], []).append(c)
        for same_day in by_day.values():
            same_day.sort(key=lambda c: (c.received_ms, c.key))
        closing: list[tuple[Window, list[ComplaintFact]]] = []
        for n in lengths:
            done = self._done(n)
            ends = sorted(
                {e for d in by_day for e in range(max(d + 1, done + 1), min(d + n, last_end) + 1)}
            )
            for e in ends:
                inside = [c for d in range(e - n, e) for c in by_day.get(d, ())]
                closing.append((_window(n, e, zone), inside))
            self.emitted_through[n] = max(done, last_end)
        self._prune(lengths)
        return sorted(closing, key=lambda wc: (wc[0].end_ms, wc[0].days))

    def _prune(self, lengths: Collection[int]) -> None:
        """Forget complaints whose every window has been emitted."""
        gone = [
            k for k, d in self.day_of.items() if not any(d + n > self._done(n) for n in lengths)
        ]
        for k in gone:
            del self.complaints[k], self.day_of[k]

    def _next_close(self, lengths: Collection[int], cfg: IntelConfig) -> int | None:
        """The watermark at which the next window with complaints closes, if any."""
        days = set(self.day_of.values())
        ends = [
            max(d + 1, self._done(n) + 1) for n in lengths for d in days if d + n > self._done(n)
        ]
        return _midnight_of(min(ends), cfg.zone) + cfg.lateness_ms if ends else None


def _counts(values: Iterable[str]) -> dict[str, int]:
    return dict(sorted(Counter(values).items()))


def _digest_id(prefix: str, *parts: object) -> str:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode())
    return f"{prefix}-{digest.hexdigest()[:16]}"


# ------------------------------------------------------------------ targeted sampling


@dataclass(frozen=True)
class SamplingCandidate:
    """A product whose complaints in one window reach the window's thresholds."""

    product_key: str
    window: Window
    score: float
    complaint_count: int
    counts_by_issue_type: Mapping[str, int]
    counts_by_platform: Mapping[str, int]
    counts_by_channel: Mapping[str, int]
    example_complaint_ids: tuple[str, ...]
    brand: str | None
    model: str | None
    last_sampled_ms: int | None


@dataclass(frozen=True)
class SamplingRecommendation:
    candidate: SamplingCandidate
    rank: int

    @property
    def recommendation_id(self) -> str:
        w = self.candidate.window
        return _digest_id("sr", self.candidate.product_key, w.start_ms, w.end_ms)

    def to_record(self, computed_ms: int) -> dict[str, Any]:
        """The ``sampling_recommendation`` record (current contract version)."""
        c = self.candidate
        return {
            "recommendation_id": self.recommendation_id,
            "product_key": c.product_key,
            "brand": c.brand,
            "model": c.model,
            "manufacturer": None,  # complaints do not name the labelled producer
            "complaint_count": c.complaint_count,
            "window_start": c.window.start_ms,
            "window_end": c.window.end_ms,
            "score": c.score,
            "rank": self.rank,
            "last_sampled_at": c.last_sampled_ms,
            "computed_at": computed_ms,
            "counts_by_issue_type": dict(c.counts_by_issue_type),
            "counts_by_platform": dict(c.counts_by_platform),
            "counts_by_channel": dict(c.counts_by_channel),
            "example_complaint_ids": list(c.example_complaint_ids),
        }


def score(counts_by_issue_type: Mapping[str, int], cfg: SamplingConfig) -> float:
    """Weighted complaint count: the sum over issue types of weight x count (fixed order, so
    the same counts always give the same float)."""
    return round(sum(cfg.weights[t] * n for t, n in sorted(counts_by_issue_type.items())), 6)


@dataclass
class ProductComplaints(_Windowed):
    """Targeted-sampling state of one product key: its complaints and inspections."""

    inspections: dict[str, int] = field(default_factory=dict)  # inspection id -> published

    def add(self, c: ComplaintFact, cfg: IntelConfig) -> list[SamplingCandidate]:
        self._keep(c, (w.days for w in cfg.sampling.windows), cfg.zone)
        return []

    def add_inspection(self, inspection_id: str, published_ms: int) -> list[SamplingCandidate]:
        """An inspection of this product (any verdict; keyed by
        ``MatchingConfig.product_key(brand, model)`` of the result): it was sampled then."""
        self.inspections[inspection_id] = published_ms
        return []

    def advance(self, watermark_ms: int, cfg: IntelConfig) -> list[SamplingCandidate]:
        s = cfg.sampling
        by_days = {w.days: w for w in s.windows}
        out: list[SamplingCandidate] = []
        for w, inside in self._closing(watermark_ms, by_days, cfg):
            candidate = self._candidate(w, inside, by_days[w.days], cfg)
            if candidate is not None:
                out.append(candidate)
        return out

    def next_timer_ms(self, cfg: IntelConfig) -> int | None:
        """When :meth:`advance` next has a window to close (the DoFn's event-time timer)."""
        return self._next_close([w.days for w in cfg.sampling.windows], cfg)

    def _candidate(
        self, w: Window, inside: list[ComplaintFact], rule: SamplingWindow, cfg: IntelConfig
    ) -> SamplingCandidate | None:
        s = cfg.sampling
        inside = capped(inside, s.max_complaints_per_consumer)
        by_type = _counts(c.issue_type for c in inside)
        value = score(by_type, s)
        if len(inside) < rule.min_complaints or value < rule.min_score:
            return None
        sampled = [at for at in self.inspections.values() if at < w.end_ms]
        last = max(sampled) if sampled else None
        if last is not None and last >= w.end_ms - s.inspected_within_days * _DAY_MS:
            return None  # inspected recently: its result says more than complaints can
        examples = sorted(inside, key=lambda c: (-s.weights[c.issue_type], c.received_ms, c.key))
        key = inside[0].product_key or ""
        return SamplingCandidate(
            product_key=key,
            window=w,
            score=value,
            complaint_count=len(inside),
            counts_by_issue_type=by_type,
            counts_by_platform=_counts(c.platform for c in inside),
            counts_by_channel=_counts(c.channel for c in inside),
            example_complaint_ids=tuple(c.key for c in examples[: s.max_examples]),
            brand=_most_common(c.brand for c in inside),
            model=_most_common(c.model for c in inside),
            last_sampled_ms=last,
        )


def _most_common(values: Iterable[str | None]) -> str | None:
    counted = Counter(v for v in values if v)
    if not counted:
        return None
    return min(counted, key=lambda v: (-counted[v], v))


def rank_candidates(
    candidates: Iterable[SamplingCandidate], cfg: IntelConfig
) -> list[SamplingRecommendation]:
    """Rank each computation (window length and end) by score, then complaints, then product
    key (ties broken the same way every time); the top ``max_recommendations`` of each."""
    groups: dict[tuple[int, int], list[SamplingCandidate]] = {}
    for c in candidates:
        groups.setdefault((c.window.end_ms, c.window.days), []).append(c)
    out: list[SamplingRecommendation] = []
    for key in sorted(groups):
        ordered = sorted(groups[key], key=lambda c: (-c.score, -c.complaint_count, c.product_key))
        top = ordered[: cfg.sampling.max_recommendations]
        out.extend(SamplingRecommendation(c, rank) for rank, c in enumerate(top, start=1))
    return out


# ------------------------------------------------------------------ complaint-to-case


def category_excluded(category: str | None, excluded: Iterable[str]) -> bool:
    """Is the category (or a parent of it, ``a/b`` under ``a``) excluded from 7-day returns?"""
    if category is None:
        return False
    text = normalise_text(category)
    for e in excluded:
        ex = normalise_text(e)
        if text == ex or text.startswith(ex + "/"):
            return True
    return False


def is_violation(c: ComplaintFact, cfg: CaseLeadConfig) -> bool:
    """Does the complaint count towards a case lead?

    RETURN_REFUSED counts only for goods that have the 7-day no-reason return right:
    refusing a return of goods excluded by category is lawful. When the category is
    unknown, ``count_return_refused_without_category`` decides.
    """
    if c.issue_type not in cfg.violation_issue_types:
        return False
    if c.issue_type != RETURN_REFUSED:
        return True
    if c.category is None:
        return cfg.count_return_refused_without_category
    return not category_excluded(c.category, cfg.return_refused_excluded_categories)


@dataclass(frozen=True)
class CaseLead:
    platform: str
    seller_id: str
    window: Window
    threshold: int
    complaint_ids: tuple[str, ...]
    counts_by_issue_type: Mapping[str, int]

    @property
    def lead_id(self) -> str:
        """Deterministic from (platform, seller, window): a window raises a lead at most once."""
        return _digest_id(
            "cl", self.platform, self.seller_id, self.window.start_ms, self.window.end_ms
        )

    def to_record(self, computed_ms: int) -> dict[str, Any]:
        """The ``case_lead`` record (current contract version)."""
        return {
            "lead_id": self.lead_id,
            "platform": self.platform,
            "seller_id": self.seller_id,
            "violation_complaints": len(self.complaint_ids),
            "window_start": self.window.start_ms,
            "window_end": self.window.end_ms,
            "threshold": self.threshold,
            "issue_types": sorted(self.counts_by_issue_type),
            "computed_at": computed_ms,
            "complaint_ids": list(self.complaint_ids),
            "counts_by_issue_type": dict(self.counts_by_issue_type),
        }


@dataclass
class SellerComplaints(_Windowed):
    """Complaint-to-case state of one seller (key: platform and seller id).

    A window raises a lead when it holds at least ``threshold`` violation complaints
    that no earlier lead of the seller counted: a seller over the threshold is one
    lead, not one a day while the window rolls over the same complaints; new
    complaints enough for a case of their own make a new lead.
    """

    led: set[str] = field(default_factory=set)  # complaints counted by an earlier lead

    def add(self, c: ComplaintFact, cfg: IntelConfig) -> list[CaseLead]:
        self._keep(c, (cfg.case_leads.window_days,), cfg.zone)
        return []

    def next_timer_ms(self, cfg: IntelConfig) -> int | None:
        """When :meth:`advance` next has a window to close (the DoFn's event-time timer)."""
        return self._next_close([cfg.case_leads.window_days], cfg)

    def advance(self, watermark_ms: int, cfg: IntelConfig) -> list[CaseLead]:
        rule = cfg.case_leads
        out: list[CaseLead] = []
        for w, inside in self._closing(watermark_ms, (rule.window_days,), cfg):
            counted = capped(
                (c for c in inside if is_violation(c, rule)), rule.max_complaints_per_consumer
            )
            fresh = [c for c in counted if c.key not in self.led]
            if len(fresh) < rule.threshold:
                continue
            first = counted[0]
            out.append(
                CaseLead(
                    platform=first.platform,
                    seller_id=first.seller_id,
                    window=w,
                    threshold=rule.threshold,
                    complaint_ids=tuple(sorted(c.key for c in counted)),
                    counts_by_issue_type=_counts(c.issue_type for c in counted),
                )
            )
            self.led.update(c.key for c in counted)
        self.led &= set(self.complaints)
        return out


def seller_key(c: ComplaintFact) -> str:
    """The key of :class:`SellerComplaints`: seller ids are platform-scoped."""
    return f"{c.platform}:{c.seller_id}"


# ------------------------------------------------------------------ compensation-first


@dataclass(frozen=True)
class CompensationFirst:
    """What the compensation-first rule needs: its config, the calendar and the platforms
    that the registry marks as bound by compensation-first."""

    cfg: CompensationFirstConfig
    calendar: WorkingCalendar
    lateness_ms: int
    bound_platforms: frozenset[str]

    @classmethod
    def of(cls, intel: IntelConfig, registry: PlatformRegistry) -> CompensationFirst:
        return cls(
            cfg=intel.compensation_first,
            calendar=intel.calendar,
            lateness_ms=intel.lateness_ms,
            bound_platforms=frozenset(p.id for p in registry.platforms if p.compensation_first),
        )

    def period_end_ms(self, c: ComplaintFact) -> int:
        """End of the period, counted as the Civil Code counts periods: the day of receipt
        does not count (Art. 201); a last day that is a rest day or public holiday moves to
        the next working day, and the period ends at 24:00 of its last day (Art. 203)."""
        zone = ZoneInfo(self.calendar.timezone)
        last = _day(c.received_ms, zone) + timedelta(days=self.cfg.unresolved_days)
        while not self.calendar.is_working_day(last):
            last += timedelta(days=1)
        return _midnight(last + timedelta(days=1), zone)

    def ended_by(self, c: ComplaintFact) -> int | None:
        """When the claim ended (resolved or closed as configured), if it has."""
        if c.status in self.cfg.ending_statuses and c.resolved_ms is not None:
            return c.resolved_ms
        return None

    def applies(self, c: ComplaintFact) -> bool:
        return c.platform in self.bound_platforms and c.issue_type in self.cfg.claim_issue_types

    def due(self, c: ComplaintFact) -> bool:
        """Unresolved at the end of the period, on a bound platform, about a claim."""
        ended = self.ended_by(c)
        return self.applies(c) and (ended is None or ended >= self.period_end_ms(c))


@dataclass
class ClaimState:
    """Compensation-first state of one complaint (key: :attr:`ComplaintFact.key`)."""

    complaint: ComplaintFact | None = None
    task: dict[str, Any] | None = None  # the latest task record emitted
    watermark_ms: int = _NEVER

    def add(self, c: ComplaintFact, rules: CompensationFirst) -> list[dict[str, Any]]:
        """Keep the latest version; a resolution read after the task shows it was never due:
        the task is withdrawn."""
        self.complaint = _later(self.complaint, c)
        if self.task is None or self.task["state"] != "ISSUED" or rules.due(self.complaint):
            return []
        ended = rules.ended_by(self.complaint)
        self.task = {
            **self.task,
            "state": "WITHDRAWN",
            "reason": (
                f"withdrawn: complaint {self.complaint.key} was {self.complaint.status.lower()} "
                f"at {_iso(ended)}, before its compensation-first period ended; that was read "
                "after the task was issued"
                if ended is not None
                else f"withdrawn: complaint {self.complaint.key} is not a compensation-first claim"
            ),
            "evidence_ref": self.complaint.evidence,
        }
        return [self.task]

    def advance(self, watermark_ms: int, rules: CompensationFirst) -> list[dict[str, Any]]:
        """Issue the task once the period's end plus the allowed lateness has passed."""
        self.watermark_ms = max(self.watermark_ms, watermark_ms)
        c = self.complaint
        if c is None or self.task is not None:
            return []
        decided = rules.period_end_ms(c) + rules.lateness_ms
        if self.watermark_ms < decided or not rules.due(c):
            return []
        self.task = compensation_task(c, decided, rules)
        return [self.task]

    def next_timer_ms(self, rules: CompensationFirst) -> int | None:
        """When :meth:`advance` may next have something to do (the DoFn's event-time timer)."""
        if self.complaint is None or self.task is not None or not rules.applies(self.complaint):
            return None
        return rules.period_end_ms(self.complaint) + rules.lateness_ms


@dataclass
class ClaimEvidence(TaskEvidence["CompensationFirst"]):
    """Everything comply knows about one compensation-first claim (Beam state, one per
    complaint key): the task intel issued on it and the complaint's latest version.

    The task is completed by the claim ending (RESOLVED or CLOSED, as configured): by
    ``deadline_at`` on time, after it late; a claim still open at the deadline is OVERDUE
    until it ends. A WITHDRAWN task record (intel read a resolution that shows the task was
    never due) withdraws it. Statuses depend on the evidence, not on its arrival order.
    """

    complaint: ComplaintFact | None = None

    def add_complaint(self, c: ComplaintFact) -> None:
        self.complaint = _later(self.complaint, c)

    def status_of(self, task: TaskFact, rules: CompensationFirst) -> Status:
        return claim_status(task, self, rules)


def claim_status(task: TaskFact, ev: ClaimEvidence, rules: CompensationFirst) -> Status:
    """The status of a COMPENSATION_FIRST ``task`` given what comply knows of its claim."""
    base = task.issued_status()
    if base.status == WITHDRAWN:
        return base
    deadline = task.deadline_ms
    c = ev.complaint
    ended = None if c is None else rules.ended_by(c)
    if c is not None and ended is not None:
        on_time = ended <= deadline
        return base._replace(
            status=COMPLETED_ON_TIME if on_time else COMPLETED_LATE,
            evidence_kind=COMPLAINT,
            evidence_ref=c.evidence,
            evidence_ms=ended,
            completed_ms=ended,
            # an end after the deadline: the claim was overdue from the deadline on
            first_outcome=COMPLETED_ON_TIME if on_time else OVERDUE,
            note=f"claim {task.complaint_id} {c.status.lower()} at {_iso(ended)}",
        )
    if ev.clock_ms >= deadline:
        return base._replace(
            status=OVERDUE,
            evidence_kind=DEADLINE,
            evidence_ref=f"deadline {_iso(deadline)} passed",
            evidence_ms=deadline,
            first_outcome=OVERDUE,
            note=f"claim {task.complaint_id} not resolved or closed by the deadline",
        )
    return base


def compensation_task(c: ComplaintFact, issued_ms: int, rules: CompensationFirst) -> dict[str, Any]:
    """The COMPENSATION_FIRST task record (task contract, current version)."""
    issued = datetime.fromtimestamp(issued_ms / 1000, UTC)
    deadline = rules.calendar.add_working_days(issued, rules.cfg.deadline_working_days).at
    return {
        "task_id": task_id(c.platform, c.key, "", COMPENSATION_FIRST),
        "kind": COMPENSATION_FIRST,
        "platform": c.platform,
        "seller_id": c.seller_id,
        "listing_id": c.listing_id,
        "inspection_id": None,
        "product_key": c.product_key or "",
        "brand": c.brand,
        "model": c.model,
        "manufacturer": None,
        "verdict": None,
        "match_method": None,
        "match_confidence": None,
        "legal_basis": rules.cfg.legal_basis,
        "reason": (
            f"complaint {c.key} ({c.issue_type}, {c.channel}) about seller {c.seller_id}, "
            f"received {_iso(c.received_ms)}, still unresolved after "
            f"{rules.cfg.unresolved_days} days: compensate the consumer first, then recover "
            "from the seller"
        ),
        "state": "ISSUED",
        "deadline_at": int(deadline.timestamp() * 1000),
        "issued_at": issued_ms,
        "evidence_ref": c.evidence,
        "complaint_id": c.key,
        "credit_event_id": None,
    }


def _iso(ms: int) -> str:
    return (
        datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def _ms(value: datetime | int) -> int:
    return value if isinstance(value, int) else int(value.timestamp() * 1000)


__all__ = [
    "COMPENSATION_FIRST",
    "ISSUE_TYPES",
    "CaseLead",
    "CaseLeadConfig",
    "ClaimEvidence",
    "ClaimState",
    "CompensationFirst",
    "CompensationFirstConfig",
    "ComplaintFact",
    "IntelConfig",
    "ProductComplaints",
    "SamplingCandidate",
    "SamplingConfig",
    "SamplingRecommendation",
    "SamplingWindow",
    "SellerComplaints",
    "Window",
    "capped",
    "category_excluded",
    "claim_status",
    "compensation_task",
    "complaint_fact",
    "is_violation",
    "rank_candidates",
    "score",
    "seller_key",
    "windows_of",
]
