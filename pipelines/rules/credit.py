"""The serious-violation (credit) list (docs/design.md §3 rule 9, issue 12).

An enterprise goes on the list when enough of its administrative penalties on the
listed grounds fall within a period (by default 3 within 2 years on product safety,
false advertising or unfair competition; 2 within 5 years for trademark
infringement), and comes off it after ``removal_years`` without a repeat. Listed
sellers' live listings are flagged to their platforms: a FLAG record on the
platform's task topic, for information, never a takedown.

Pure: imports neither Beam nor Kafka. :class:`EnterpriseState` is what a stateful
DoFn keyed by enterprise keeps: ``add(penalty)`` and ``advance(watermark)``, each
returning the :class:`CreditEvent` s that became final.

**Time.** Periods run on the penalties' *legal dates* (``decided_at``, as a day in
the configured time zone) and are counted as the Civil Code counts periods in years
(Arts. 201-202): the start day does not count, the last day is the same day in the
final year (28 February when there is no 29th). So "within 2 years" of a penalty of
15 March 2024 includes 15 March 2026 and not the 16th, and a listing whose last
penalty (or repeat) was on 15 March 2024 is removed at the start of 16 March 2029.

**Late penalties.** A regulator publishes a decision some days after it is made
(``published_at``; the enterprise-information rules allow 20 working days), and the
watermark follows publication. A LISTED dated D is emitted once the watermark has
passed the end of D plus ``allowed_lateness_days`` (a REMOVED: its start): by then
every penalty it rests on has been read, so the events, their ids and their
evidence do not depend on the order penalties arrive in. A penalty read later than
that (dated on or before an event already emitted) never rewrites what was
published: it is counted in ``late`` and taken into account only for what comes
after the last emitted event. After a removal only penalties decided on or after
the removal day count towards a new listing: the old ones have served their
sentence.
"""

from __future__ import annotations

import calendar as _calendar
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator

LISTED = "LISTED"
REMOVED = "REMOVED"
FLAG = "FLAG"
_DAY_MS = 86_400_000
GROUNDS = (
    "PRODUCT_SAFETY",
    "FALSE_ADVERTISING",
    "UNFAIR_COMPETITION",
    "TRADEMARK_INFRINGEMENT",
    "OTHER",
)


class CreditRule(BaseModel):
    """``count`` penalties on any of ``grounds`` within ``years`` put an enterprise on the list."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    grounds: tuple[str, ...] = Field(min_length=1)
    count: int = Field(ge=1)
    years: int = Field(ge=1)

    @field_validator("grounds")
    @classmethod
    def _known(cls, grounds: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(grounds) - set(GROUNDS))
        if unknown:
            raise ValueError(f"unknown penalty ground(s) {unknown}; known: {list(GROUNDS)}")
        return grounds

    def describe(self) -> str:
        return f"{self.count} penalties within {self.years} years on {'/'.join(self.grounds)}"


class CreditConfig(BaseModel):
    """The ``credit`` section of ``config/intel.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = "Asia/Shanghai"
    rules: tuple[CreditRule, ...] = Field(min_length=1)
    removal_years: int = Field(ge=1)
    allowed_lateness_days: int = Field(ge=0)
    flag_legal_basis: str = Field(min_length=1)

    @property
    def grounds(self) -> frozenset[str]:
        """Every ground some rule counts: a penalty on one of them while listed is a repeat."""
        return frozenset(g for rule in self.rules for g in rule.grounds)


class PenaltyFact(NamedTuple):
    """What the credit rules keep of one Penalty record."""

    penalty_id: str
    enterprise_id: str
    enterprise_name: str
    ground: str
    decided_ms: int
    published_ms: int
    platform: str | None = None
    seller_id: str | None = None


def penalty_fact(record: Mapping[str, Any]) -> PenaltyFact:
    """From a decoded Penalty record (timestamps as datetimes or epoch millis)."""
    return PenaltyFact(
        penalty_id=str(record["penalty_id"]),
        enterprise_id=str(record["enterprise_id"]),
        enterprise_name=str(record["enterprise_name"]),
        ground=str(record["ground"]),
        decided_ms=_ms(record["decided_at"]),
        published_ms=_ms(record["published_at"]),
        platform=record.get("platform"),
        seller_id=record.get("seller_id"),
    )


@dataclass(frozen=True)
class CreditEvent:
    """An enterprise put on (LISTED) or taken off (REMOVED) the list, with its evidence."""

    event_id: str
    enterprise_id: str
    enterprise_name: str
    event: str
    ground: str
    penalty_ids: tuple[str, ...]
    effective_ms: int
    sellers: tuple[str, ...]
    listed_event_id: str | None = None

    def to_record(self, computed_ms: int) -> dict[str, Any]:
        """The ``credit_event`` record (current contract version)."""
        return {
            "event_id": self.event_id,
            "enterprise_id": self.enterprise_id,
            "enterprise_name": self.enterprise_name,
            "event": self.event,
            "ground": self.ground,
            "penalty_ids": list(self.penalty_ids),
            "effective_at": self.effective_ms,
            "computed_at": computed_ms,
            "sellers": list(self.sellers),
            "listed_event_id": self.listed_event_id,
        }


def credit_event_id(enterprise_id: str, event: str, effective: date) -> str:
    """Deterministic: the same enterprise, transition and day is the same event."""
    digest = hashlib.sha256(f"{enterprise_id}\x1f{event}\x1f{effective.isoformat()}".encode())
    return f"ce-{digest.hexdigest()[:24]}"


# ------------------------------------------------------------------ dates


def add_years(day: date, years: int) -> date:
    """The same day ``years`` later; the month's last day when it has no such day."""
    year = day.year + years
    last = _calendar.monthrange(year, day.month)[1]
    return day.replace(year=year, day=min(day.day, last))


def within(first: date, last: date, years: int) -> bool:
    """``last`` falls within ``years`` of ``first`` (its last day included, Civil Code 202)."""
    return first <= last <= add_years(first, years)


def removal_day(anchor: date, years: int) -> date:
    """The first day off the list: the day after the period of ``years`` from ``anchor``."""
    return add_years(anchor, years) + timedelta(days=1)


def _local_day(ms: int, zone: ZoneInfo) -> date:
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(zone).date()


def _start_ms(day: date, zone: ZoneInfo) -> int:
    return int(datetime.combine(day, time(0), tzinfo=zone).timestamp() * 1000)


def _ms(value: datetime | int) -> int:
    return value if isinstance(value, int) else int(value.timestamp() * 1000)


# ------------------------------------------------------------------ the list, per enterprise


class _Episode(NamedTuple):
    """Where the list stands after the last emitted event."""

    listed: bool
    since: date | None  # LISTED: the listing day; REMOVED: the removal day
    event_id: str | None
    evidence: tuple[str, ...] = ()


@dataclass
class EnterpriseState:
    """Everything the credit rules keep about one enterprise (Beam state, keyed by it)."""

    penalties: dict[str, PenaltyFact] = field(default_factory=dict)
    emitted: list[CreditEvent] = field(default_factory=list)
    watermark_ms: int = -(2**62)
    late: int = 0

    def add(self, penalty: PenaltyFact, cfg: CreditConfig) -> list[CreditEvent]:
        """Keep ``penalty``; nothing is emitted before the watermark says it is final."""
        zone = ZoneInfo(cfg.timezone)
        if penalty.penalty_id in self.penalties:
            return []
        last = self.emitted[-1] if self.emitted else None
        day = _local_day(penalty.decided_ms, zone)
        if last is not None and (
            day <= _local_day(last.effective_ms, zone)
            if last.event == LISTED
            else day < _local_day(last.effective_ms, zone)
        ):
            self.late += 1  # cannot rewrite what was published; counts for what follows
        self.penalties[penalty.penalty_id] = penalty
        return []

    def advance(self, watermark_ms: int, cfg: CreditConfig) -> list[CreditEvent]:
        """The events whose day + allowed lateness the watermark has passed, in order."""
        self.watermark_ms = max(self.watermark_ms, watermark_ms)
        out: list[CreditEvent] = []
        for event in self.pending(cfg):
            if _final_at(event, cfg) > self.watermark_ms:
                break
            self.emitted.append(event)
            out.append(event)
        return out

    def next_timer_ms(self, cfg: CreditConfig) -> int | None:
        """The watermark at which the next event becomes final (the DoFn's event-time timer)."""
        pending = self.pending(cfg)
        return _final_at(pending[0], cfg) if pending else None

    def pending(self, cfg: CreditConfig) -> list[CreditEvent]:
        """Every event that follows the last emitted one, given the penalties read so far.

        The last of them may be a REMOVED in the future: it is due unless a repeat
        comes first.
        """
        zone = ZoneInfo(cfg.timezone)
        last = self.emitted[-1] if self.emitted else None
        episode = _Episode(False, None, None)
        if last is not None:
            episode = _Episode(
                last.event == LISTED,
                _local_day(last.effective_ms, zone),
                last.event_id,
                last.penalty_ids,
            )
        after = episode.since
        by_day: dict[date, list[PenaltyFact]] = {}
        for p in self.penalties.values():
            day = _local_day(p.decided_ms, zone)
            if after is not None and (day <= after if episode.listed else day < after):
                continue
            by_day.setdefault(day, []).append(p)
        return _replay(episode, by_day, self._identity(), cfg, zone)

    def _identity(self) -> tuple[str, str, tuple[str, ...]]:
        ordered = sorted(self.penalties.values(), key=lambda p: (p.decided_ms, p.penalty_id))
        enterprise_id = ordered[0].enterprise_id if ordered else ""
        name = ordered[-1].enterprise_name if ordered else ""
        sellers = sorted(
            {f"{p.platform}:{p.seller_id}" for p in ordered if p.platform and p.seller_id}
        )
        return enterprise_id, name, tuple(sellers)


def _final_at(event: CreditEvent, cfg: CreditConfig) -> int:
    """A listing rests on every penalty of its day, a removal on those before it; either is
    final once penalties as late as the allowed lateness have been read."""
    rests_until = event.effective_ms + (_DAY_MS if event.event == LISTED else 0)
    return rests_until + cfg.allowed_lateness_days * _DAY_MS


def _replay(
    episode: _Episode,
    by_day: Mapping[date, list[PenaltyFact]],
    identity: tuple[str, str, tuple[str, ...]],
    cfg: CreditConfig,
    zone: ZoneInfo,
) -> list[CreditEvent]:
    enterprise_id, name, sellers = identity
    events: list[CreditEvent] = []
    listed, listed_id = episode.listed, episode.event_id
    anchor = episode.since if episode.listed else None  # the listing day or the last repeat
    floor = episode.since if not episode.listed else None  # penalties counted from here
    evidence: list[str] = list(episode.evidence) if episode.listed else []
    counted: list[PenaltyFact] = []  # penalties on a listing ground since the floor
    for day in sorted(by_day):
        todays = sorted(by_day[day], key=lambda p: p.penalty_id)
        if listed and anchor is not None:
            due = removal_day(anchor, cfg.removal_years)
            if day >= due:
                events.append(
                    _removed(
                        enterprise_id, name, sellers, due, anchor, listed_id, evidence, cfg, zone
                    )
                )
                listed, floor, counted, evidence = False, due, [], []
            else:
                repeats = [p for p in todays if p.ground in cfg.grounds]
                if repeats:
                    anchor = day
                    evidence.extend(p.penalty_id for p in repeats)
                continue
        if floor is not None and day < floor:
            continue
        counted.extend(p for p in todays if p.ground in cfg.grounds)
        for rule in cfg.rules:
            hits = [
                p
                for p in counted
                if p.ground in rule.grounds
                and within(_local_day(p.decided_ms, zone), day, rule.years)
            ]
            if len(hits) >= rule.count:
                ids = tuple(sorted(p.penalty_id for p in hits))
                event = CreditEvent(
                    event_id=credit_event_id(enterprise_id, LISTED, day),
                    enterprise_id=enterprise_id,
                    enterprise_name=name,
                    event=LISTED,
                    ground=rule.describe(),
                    penalty_ids=ids,
                    effective_ms=_start_ms(day, zone),
                    sellers=sellers,
                )
                events.append(event)
                listed, listed_id, anchor, evidence = True, event.event_id, day, list(ids)
                break
    if listed and anchor is not None:
        due = removal_day(anchor, cfg.removal_years)
        events.append(
            _removed(enterprise_id, name, sellers, due, anchor, listed_id, evidence, cfg, zone)
        )
    return events


def _removed(
    enterprise_id: str,
    name: str,
    sellers: tuple[str, ...],
    due: date,
    anchor: date,
    listed_id: str | None,
    evidence: list[str],
    cfg: CreditConfig,
    zone: ZoneInfo,
) -> CreditEvent:
    return CreditEvent(
        event_id=credit_event_id(enterprise_id, REMOVED, due),
        enterprise_id=enterprise_id,
        enterprise_name=name,
        event=REMOVED,
        ground=(
            f"{cfg.removal_years} years without a repeat on {'/'.join(sorted(cfg.grounds))} "
            f"since {anchor.isoformat()}"
        ),
        penalty_ids=tuple(sorted(set(evidence))),
        effective_ms=_start_ms(due, zone),
        sellers=sellers,
        listed_event_id=listed_id,
    )


def list_history(penalties: Iterable[PenaltyFact], cfg: CreditConfig) -> list[CreditEvent]:
    """Every event the penalties cause, the last maybe a removal still to come (bounded runs,
    reports and tests: the same fold as :class:`EnterpriseState`)."""
    state = EnterpriseState()
    for p in penalties:
        state.add(p, cfg)
    return state.pending(cfg)


# ------------------------------------------------------------------ flags to the platforms


class SellerListing(NamedTuple):
    """A live listing of a seller (from the listing feed), as the flag rule needs it."""

    platform: str
    listing_id: str
    seller_id: str
    evidence: str  # topic/partition/offset of the observation


def flag_task_id(platform: str, listing_id: str, listed_event_id: str) -> str:
    """Deterministic, like the enforcement task ids: (platform, listing, event, FLAG)."""
    digest = hashlib.sha256(f"{platform}\x1f{listing_id}\x1f{listed_event_id}\x1f{FLAG}".encode())
    return f"FLA-{digest.hexdigest()[:24]}"


def flag_task(
    event: CreditEvent, listing: SellerListing, cfg: CreditConfig
) -> dict[str, Any] | None:
    """The FLAG task record for one live listing of a listed (or delisted) enterprise.

    LISTED: the listing is flagged (state ISSUED); REMOVED: the flag that the listing
    got is withdrawn. None when the listing's seller is not one of the enterprise's.
    Nothing is due, so ``deadline_at`` equals ``issued_at`` and comply ignores FLAG.
    """
    if f"{listing.platform}:{listing.seller_id}" not in event.sellers:
        return None
    listed_id = event.event_id if event.event == LISTED else event.listed_event_id
    if listed_id is None:
        return None
    listed = event.event == LISTED
    return {
        "task_id": flag_task_id(listing.platform, listing.listing_id, listed_id),
        "kind": FLAG,
        "platform": listing.platform,
        "seller_id": listing.seller_id,
        "listing_id": listing.listing_id,
        "inspection_id": None,
        "product_key": "",
        "brand": None,
        "model": None,
        "manufacturer": None,
        "verdict": None,
        "match_method": None,
        "match_confidence": None,
        "legal_basis": cfg.flag_legal_basis,
        "reason": (
            f"seller {listing.seller_id} belongs to enterprise {event.enterprise_id}, "
            + (
                f"on the serious-violation list since {_iso_day(event.effective_ms, cfg)} "
                f"({event.ground}; penalties {', '.join(event.penalty_ids)}): for information, "
                "not a takedown"
                if listed
                else f"taken off the serious-violation list on "
                f"{_iso_day(event.effective_ms, cfg)}: the flag is withdrawn"
            )
        ),
        "state": "ISSUED" if listed else "WITHDRAWN",
        "deadline_at": event.effective_ms,
        "issued_at": event.effective_ms,
        "evidence_ref": f"credit event {event.event_id}; listing {listing.evidence}",
        "complaint_id": None,
        "credit_event_id": event.event_id,
    }


def _iso_day(ms: int, cfg: CreditConfig) -> str:
    return _local_day(ms, ZoneInfo(cfg.timezone)).isoformat()


__all__ = [
    "FLAG",
    "LISTED",
    "REMOVED",
    "CreditConfig",
    "CreditEvent",
    "CreditRule",
    "EnterpriseState",
    "PenaltyFact",
    "SellerListing",
    "add_years",
    "credit_event_id",
    "flag_task",
    "flag_task_id",
    "list_history",
    "penalty_fact",
    "removal_day",
    "within",
]
