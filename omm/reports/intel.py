"""The compliance report's intelligence sections, from what ``omm run intel`` wrote.

- Targeted sampling: the latest ``omm.intel.sampling`` record per recommendation
  (contract ``schemas/avro/sampling_recommendation/v2.avsc``), highest score first;
- Case leads: the latest ``omm.intel.leads`` record per lead (``case_lead/v2``);
- Serious-violation list: the enterprises whose latest ``omm.credit.events`` record
  (``credit_event/v2``) is LISTED, with the penalties the listing rests on and the live
  listings it flagged: FLAG tasks (``task/v2``) of that event still ISSUED, not WITHDRAWN.

Only ids, counts, keys and computed grounds are shown. The task's ``reason`` and the
recommendation's verbatim brand/model/manufacturer are left out: the report is sent
to people outside the regulator, and a verbatim field is whatever a complainant or a
seller typed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from omm.reports.page import (
    Column,
    Markup,
    as_utc,
    count,
    items,
    mono,
    section,
    table,
    timestamp,
)

RUN_INTEL = "omm run intel"


def _counts(value: Mapping[str, Any] | None) -> tuple[tuple[str, int], ...]:
    """A map of counts, largest first, then by name, so the cell reads in a stable order."""
    pairs = ((str(k), int(v)) for k, v in (value or {}).items())
    return tuple(sorted(pairs, key=lambda kv: (-kv[1], kv[0])))


def _count_list(pairs: Sequence[tuple[str, int]]) -> Markup:
    return items(f"{name}: {count(n)}" for name, n in pairs)


def _ids(values: Iterable[str]) -> Markup:
    return items(mono(v) for v in values)


def _window(start: datetime, end: datetime) -> str:
    return f"{timestamp(start)} – {timestamp(end)}"


@dataclass(frozen=True)
class Recommendation:
    """A sampling recommendation (sampling_recommendation v2), without verbatim fields."""

    recommendation_id: str
    product_key: str
    score: float
    complaint_count: int
    window_start: datetime
    window_end: datetime
    computed_at: datetime
    by_issue_type: tuple[tuple[str, int], ...]
    by_platform: tuple[tuple[str, int], ...]
    example_complaint_ids: tuple[str, ...]

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Recommendation:
        return cls(
            recommendation_id=str(record["recommendation_id"]),
            product_key=str(record["product_key"]),
            score=float(record["score"]),
            complaint_count=int(record["complaint_count"]),
            window_start=as_utc(record["window_start"]),
            window_end=as_utc(record["window_end"]),
            computed_at=as_utc(record["computed_at"]),
            by_issue_type=_counts(record.get("counts_by_issue_type")),
            by_platform=_counts(record.get("counts_by_platform")),
            example_complaint_ids=tuple(str(c) for c in record.get("example_complaint_ids") or ()),
        )


@dataclass(frozen=True)
class Lead:
    """A case lead (case_lead v2): a seller over the violation-complaint threshold."""

    lead_id: str
    platform: str
    seller_id: str
    violation_complaints: int
    threshold: int
    window_start: datetime
    window_end: datetime
    computed_at: datetime
    complaint_ids: tuple[str, ...]

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Lead:
        return cls(
            lead_id=str(record["lead_id"]),
            platform=str(record["platform"]),
            seller_id=str(record["seller_id"]),
            violation_complaints=int(record["violation_complaints"]),
            threshold=int(record["threshold"]),
            window_start=as_utc(record["window_start"]),
            window_end=as_utc(record["window_end"]),
            computed_at=as_utc(record["computed_at"]),
            complaint_ids=tuple(str(c) for c in record.get("complaint_ids") or ()),
        )


@dataclass(frozen=True)
class CreditEvent:
    """A serious-violation list transition (credit_event v2)."""

    event_id: str
    enterprise_id: str
    enterprise_name: str
    event: str
    ground: str
    penalty_ids: tuple[str, ...]
    effective_at: datetime
    computed_at: datetime

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> CreditEvent:
        return cls(
            event_id=str(record["event_id"]),
            enterprise_id=str(record["enterprise_id"]),
            enterprise_name=str(record["enterprise_name"]),
            event=str(record["event"]),
            ground=str(record["ground"]),
            penalty_ids=tuple(str(p) for p in record.get("penalty_ids") or ()),
            effective_at=as_utc(record["effective_at"]),
            computed_at=as_utc(record["computed_at"]),
        )

    def order(self) -> tuple[datetime, bool, datetime]:
        # intel orders one enterprise's events so too: by legal date, a removal after a
        # listing of the same date; the computation time settles a recomputed event
        return (self.effective_at, self.event != "LISTED", self.computed_at)


@dataclass(frozen=True)
class Flag:
    """A FLAG task (task v2): one live listing of a listed enterprise's seller."""

    task_id: str
    platform: str
    listing_id: str
    seller_id: str
    credit_event_id: str
    state: str
    issued_at: datetime

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Flag:
        return cls(
            task_id=str(record["task_id"]),
            platform=str(record["platform"]),
            listing_id=str(record.get("listing_id") or ""),
            seller_id=str(record["seller_id"]),
            credit_event_id=str(record.get("credit_event_id") or ""),
            state=str(record["state"]),
            issued_at=as_utc(record["issued_at"]),
        )


@dataclass(frozen=True)
class ListedEnterprise:
    event: CreditEvent
    listings: tuple[Flag, ...]


def latest_recommendations(records: Iterable[Mapping[str, Any]]) -> list[Recommendation]:
    """The latest record per recommendation (by computation time; on a tie the later
    record), highest score first, then the id for a stable order."""
    latest: dict[str, Recommendation] = {}
    for record in records:
        r = Recommendation.from_record(record)
        kept = latest.get(r.recommendation_id)
        if kept is None or r.computed_at >= kept.computed_at:
            latest[r.recommendation_id] = r
    return sorted(latest.values(), key=lambda r: (-r.score, r.recommendation_id))


def latest_leads(records: Iterable[Mapping[str, Any]]) -> list[Lead]:
    """The latest record per lead, most violation complaints first."""
    latest: dict[str, Lead] = {}
    for record in records:
        lead = Lead.from_record(record)
        kept = latest.get(lead.lead_id)
        if kept is None or lead.computed_at >= kept.computed_at:
            latest[lead.lead_id] = lead
    return sorted(
        latest.values(),
        key=lambda x: (-x.violation_complaints, x.platform, x.seller_id, x.window_end),
    )


def live_flags(task_records: Iterable[Mapping[str, Any]]) -> list[Flag]:
    """FLAG tasks whose latest record (per task id; by issue time, on a tie the later
    record) is ISSUED: a WITHDRAWN record ends a flag. Other task kinds are ignored."""
    latest: dict[str, Flag] = {}
    for record in task_records:
        if record.get("kind") != "FLAG":
            continue
        f = Flag.from_record(record)
        kept = latest.get(f.task_id)
        if kept is None or f.issued_at >= kept.issued_at:
            latest[f.task_id] = f
    return [f for f in latest.values() if f.state == "ISSUED"]


def listed_enterprises(
    credit_records: Iterable[Mapping[str, Any]], task_records: Iterable[Mapping[str, Any]]
) -> list[ListedEnterprise]:
    """Enterprises whose latest credit event is LISTED, each with the live listings
    flagged for that event, by listing date (earliest first), then enterprise id."""
    latest: dict[str, CreditEvent] = {}
    for record in credit_records:
        e = CreditEvent.from_record(record)
        kept = latest.get(e.enterprise_id)
        if kept is None or e.order() >= kept.order():
            latest[e.enterprise_id] = e
    flags: dict[str, list[Flag]] = {}
    for f in live_flags(task_records):
        flags.setdefault(f.credit_event_id, []).append(f)
    listed = sorted(
        (e for e in latest.values() if e.event == "LISTED"),
        key=lambda e: (e.effective_at, e.enterprise_id),
    )
    return [
        ListedEnterprise(
            e,
            tuple(
                sorted(
                    flags.get(e.event_id, ()), key=lambda f: (f.platform, f.seller_id, f.listing_id)
                )
            ),
        )
        for e in listed
    ]


# --------------------------------------------------------------------------- sections

_SAMPLING_COLUMNS = (
    Column("rank", numeric=True),
    Column("product key"),
    Column("score", numeric=True),
    Column("complaints", numeric=True),
    Column("by issue type"),
    Column("by platform"),
    Column("window"),
    Column("example complaints"),
    Column("computed at"),
)

_LEAD_COLUMNS = (
    Column("platform"),
    Column("seller"),
    Column("window"),
    Column("violation complaints", numeric=True),
    Column("threshold", numeric=True),
    Column("complaints"),
    Column("computed at"),
)

_LIST_COLUMNS = (
    Column("enterprise"),
    Column("name"),
    Column("listed"),
    Column("ground", css="note"),
    Column("penalties"),
    Column("live listings", numeric=True),
    Column("listings (platform, listing, seller)"),
)


def _listing(f: Flag) -> Markup:
    return Markup(f"{mono(f.platform)} {mono(f.listing_id)} {mono(f.seller_id)}")


@dataclass(frozen=True)
class IntelSources:
    """The topics the sections were read from, named in their empty texts."""

    sampling: str = "omm.intel.sampling"
    leads: str = "omm.intel.leads"
    credit: str = "omm.credit.events"
    tasks: str = "omm.tasks.<platform>"


def intel_sections(
    sampling_records: Iterable[Mapping[str, Any]],
    lead_records: Iterable[Mapping[str, Any]],
    credit_records: Iterable[Mapping[str, Any]],
    task_records: Iterable[Mapping[str, Any]],
    sources: IntelSources = IntelSources(),
) -> list[Markup]:
    """The three sections, in the order a regulator acts on them."""
    recommendations = latest_recommendations(sampling_records)
    leads = latest_leads(lead_records)
    listed = listed_enterprises(credit_records, task_records)
    nothing = f"yet: run `{RUN_INTEL}`."
    return [
        section(
            "Targeted sampling",
            table(
                _SAMPLING_COLUMNS,
                (
                    [
                        count(i),
                        mono(r.product_key),
                        f"{r.score:.2f}",
                        count(r.complaint_count),
                        _count_list(r.by_issue_type),
                        _count_list(r.by_platform),
                        _window(r.window_start, r.window_end),
                        _ids(r.example_complaint_ids),
                        timestamp(r.computed_at),
                    ]
                    for i, r in enumerate(recommendations, start=1)
                ),
                empty=f"No sampling recommendation on {sources.sampling} {nothing}",
            ),
            anchor="sampling",
            intro=(
                "Product identities the complaints point at, highest hotspot score first: "
                "sample these sooner. The latest recommendation per product and window; "
                "scores compare within one computation only."
            ),
        ),
        section(
            "Case leads",
            table(
                _LEAD_COLUMNS,
                (
                    [
                        lead.platform,
                        mono(lead.seller_id),
                        _window(lead.window_start, lead.window_end),
                        count(lead.violation_complaints),
                        count(lead.threshold),
                        _ids(lead.complaint_ids),
                        timestamp(lead.computed_at),
                    ]
                    for lead in leads
                ),
                empty=f"No case lead on {sources.leads} {nothing}",
            ),
            anchor="leads",
            intro=(
                "Sellers with at least the threshold of violation complaints in a rolling "
                "window; the complaint ids are the evidence. Most complaints first."
            ),
        ),
        section(
            "Serious-violation list",
            table(
                _LIST_COLUMNS,
                (
                    [
                        mono(x.event.enterprise_id),
                        x.event.enterprise_name,
                        timestamp(x.event.effective_at),
                        x.event.ground,
                        _ids(x.event.penalty_ids),
                        count(len(x.listings)),
                        items(_listing(f) for f in x.listings),
                    ]
                    for x in listed
                ),
                empty=f"No enterprise is listed on {sources.credit} {nothing}",
            ),
            anchor="credit",
            intro=(
                "Enterprises on the serious-violation list now (their latest event is "
                "LISTED), the penalties the listing rests on, and their live listings: "
                f"the FLAG tasks on {sources.tasks} not withdrawn."
            ),
        ),
    ]
