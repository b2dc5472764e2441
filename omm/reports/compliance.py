"""The compliance report: how each platform answered the regulator's tasks.

From the latest ``omm.compliance.status`` record per task and the latest TOTAL
``omm.compliance.scorecards`` record per platform (contracts
``schemas/avro/compliance_status/v3.avsc`` and ``schemas/avro/scorecard/v2.avsc``),
:func:`render_compliance` draws one self-contained page: the scorecards side by
side, KPI1 per platform, the time to takedown, overdue tasks day by day, and the
tasks a regulator acts on (overdue, re-listed, notices the listing feed
contradicted), each with the evidence behind its status. Given what ``omm run intel``
wrote, it adds the intelligence sections of :mod:`omm.reports.intel`: targeted
sampling, case leads and the serious-violation list with each enterprise's live listings.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from omm.reports.intel import IntelSources, intel_sections
from omm.reports.page import (
    Bar,
    Column,
    Markup,
    as_utc,
    badge,
    columns,
    count,
    figure,
    figures,
    horizontal_bars,
    hours,
    mono,
    page,
    percent,
    section,
    table,
    timestamp,
)

#: A notice is contradicted when the platform said it took the listing down and the
#: listing feed still showed it on sale; comply words its note so (compliance_status v2).
CONTRADICTED_PREFIX = "notice "
CONTRADICTED_MARK = "but the listing feed showed it ACTIVE"

#: Bin widths for the time-to-takedown histogram, in hours: round numbers a reader
#: knows (a working day, a day, a week), the smallest one giving at most 12 bins.
_BIN_HOURS = (1, 2, 3, 4, 6, 8, 12, 24, 48, 72, 96, 120, 168, 336, 720, 1440, 4320, 8760)
_MAX_BINS = 12
#: The overdue chart covers at most this many days, ending on the report's day.
MAX_DAYS = 366

_TONES = {
    "OVERDUE": "bad",
    "RELISTED": "warn",
    "DISPUTED": "warn",
    "COMPLETED_LATE": "warn",
    "COMPLETED_ON_TIME": "good",
}


def _time(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class TaskStatus:
    """The current compliance state of one task (a compliance_status v3 record; earlier
    versions are about DELIST tasks)."""

    task_id: str
    platform: str
    listing_id: str | None
    status: str
    deadline_at: datetime
    changed_at: datetime
    evidence_kind: str
    evidence_ref: str
    evidence_at: datetime
    issued_at: datetime | None = None
    completed_at: datetime | None = None
    hours_to_takedown: float | None = None
    working_hours_to_takedown: float | None = None
    relisted_at: datetime | None = None
    relisted_removed: bool = False
    first_outcome: str | None = None
    note: str | None = None
    task_kind: str = "DELIST"
    complaint_id: str | None = None

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> TaskStatus:
        return cls(
            task_id=str(record["task_id"]),
            platform=str(record["platform"]),
            listing_id=record.get("listing_id"),
            status=str(record["status"]),
            deadline_at=as_utc(record["deadline_at"]),
            changed_at=as_utc(record["changed_at"]),
            evidence_kind=str(record["evidence_kind"]),
            evidence_ref=str(record["evidence_ref"]),
            evidence_at=as_utc(record["evidence_at"]),
            issued_at=_time(record.get("issued_at")),
            completed_at=_time(record.get("completed_at")),
            hours_to_takedown=_float(record.get("hours_to_takedown")),
            working_hours_to_takedown=_float(record.get("working_hours_to_takedown")),
            relisted_at=_time(record.get("relisted_at")),
            relisted_removed=bool(record.get("relisted_removed", False)),
            first_outcome=record.get("first_outcome"),
            note=record.get("note"),
            task_kind=str(record.get("task_kind") or "DELIST"),
            complaint_id=record.get("complaint_id"),
        )

    @property
    def contradicted(self) -> bool:
        """The platform's takedown notice said one thing, its own listing feed another."""
        note = self.note or ""
        return note.startswith(CONTRADICTED_PREFIX) and CONTRADICTED_MARK in note

    def overdue_at(self, moment: datetime) -> bool:
        """Overdue at ``moment``: deadline passed, not taken down by then, not withdrawn."""
        if self.status == "WITHDRAWN":
            return False
        done = self.completed_at is not None and self.completed_at <= moment
        return self.deadline_at < moment and not done


@dataclass(frozen=True)
class PlatformScore:
    """One platform's scorecard (a scorecard v2 record), here always the TOTAL one."""

    platform: str
    period: str
    tasks_issued: int
    completed_on_time: int
    completed_late: int
    overdue: int
    relisted: int
    relisted_removed: int
    disputed: int
    withdrawn: int
    median_hours_to_takedown: float | None
    p90_hours_to_takedown: float | None
    median_working_hours_to_takedown: float | None
    p90_working_hours_to_takedown: float | None
    kpi1_removed_within_deadline: float | None
    kpi2_relistings_removed: float | None
    computed_at: datetime

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> PlatformScore:
        return cls(
            platform=str(record["platform"]),
            period=str(record.get("period") or "DAY"),
            tasks_issued=int(record["tasks_issued"]),
            completed_on_time=int(record["completed_on_time"]),
            completed_late=int(record["completed_late"]),
            overdue=int(record["overdue"]),
            relisted=int(record["relisted"]),
            relisted_removed=int(record["relisted_removed"]),
            disputed=int(record.get("disputed") or 0),
            withdrawn=int(record.get("withdrawn") or 0),
            median_hours_to_takedown=_float(record.get("median_hours_to_takedown")),
            p90_hours_to_takedown=_float(record.get("p90_hours_to_takedown")),
            median_working_hours_to_takedown=_float(record.get("median_working_hours_to_takedown")),
            p90_working_hours_to_takedown=_float(record.get("p90_working_hours_to_takedown")),
            kpi1_removed_within_deadline=_float(record.get("kpi1_removed_within_deadline")),
            kpi2_relistings_removed=_float(record.get("kpi2_relistings_removed")),
            computed_at=as_utc(record["computed_at"]),
        )


def total_scorecards(records: Iterable[Mapping[str, Any]]) -> list[PlatformScore]:
    """The TOTAL scorecard of each platform, by platform; DAY ones are left out. Should a
    platform have two (the topic not yet compacted), the one computed last counts."""
    latest: dict[str, PlatformScore] = {}
    for record in records:
        score = PlatformScore.from_record(record)
        if score.period != "TOTAL":
            continue
        kept = latest.get(score.platform)
        if kept is None or score.computed_at >= kept.computed_at:
            latest[score.platform] = score
    return [latest[p] for p in sorted(latest)]


# --------------------------------------------------------------------------- series


def overdue_by_day(
    statuses: Sequence[TaskStatus],
    until: datetime,
    zone: ZoneInfo,
    max_days: int = MAX_DAYS,
) -> list[tuple[date, int]]:
    """How many tasks were overdue at the end of each day (days in ``zone``, the
    enforcement calendar's), from the day of the first deadline to ``until``'s day.
    The last day ends at ``until``: the report cannot know what the rest of it brings."""
    counted = [s for s in statuses if s.status != "WITHDRAWN"]
    if not counted:
        return []
    until = as_utc(until)
    last = until.astimezone(zone).date()
    first = min(min(s.deadline_at for s in counted).astimezone(zone).date(), last)
    first = max(first, last - timedelta(days=max_days - 1))
    out = []
    day = first
    while day <= last:
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
        moment = min(end, until)
        out.append((day, sum(1 for s in counted if s.overdue_at(moment))))
        day += timedelta(days=1)
    return out


def takedown_bins(values: Sequence[float]) -> list[tuple[float, float, int]]:
    """Equal-width bins ``(from, to, tasks)`` over hours to takedown, from 0 to past the
    largest; the width is the first of :data:`_BIN_HOURS` giving at most 12 bins."""
    if not values:
        return []
    clamped = [max(v, 0.0) for v in values]  # a notice before the issue time counts as 0
    largest = max(clamped)
    width = next(
        (w for w in _BIN_HOURS if math.floor(largest / w) + 1 <= _MAX_BINS), _BIN_HOURS[-1]
    )
    n = math.floor(largest / width) + 1
    tallies = [0] * n
    for v in clamped:
        tallies[min(math.floor(v / width), n - 1)] += 1
    return [(i * width, (i + 1) * width, tallies[i]) for i in range(n)]


# --------------------------------------------------------------------------- the page


_SCORE_COLUMNS = (
    Column("platform"),
    Column("issued", numeric=True),
    Column("on time", numeric=True),
    Column("late", numeric=True),
    Column("overdue", numeric=True),
    Column("relisted", numeric=True),
    Column("relisted removed", numeric=True),
    Column("disputed", numeric=True),
    Column("withdrawn", numeric=True),
    Column("median h", numeric=True),
    Column("p90 h", numeric=True),
    Column("median working h", numeric=True),
    Column("p90 working h", numeric=True),
    Column("KPI1 on time", numeric=True),
    Column("KPI2 relistings removed", numeric=True),
)


def _score_row(s: PlatformScore) -> list[object]:
    return [
        s.platform,
        count(s.tasks_issued),
        count(s.completed_on_time),
        count(s.completed_late),
        count(s.overdue),
        count(s.relisted),
        count(s.relisted_removed),
        count(s.disputed),
        count(s.withdrawn),
        hours(s.median_hours_to_takedown),
        hours(s.p90_hours_to_takedown),
        hours(s.median_working_hours_to_takedown),
        hours(s.p90_working_hours_to_takedown),
        percent(s.kpi1_removed_within_deadline),
        percent(s.kpi2_relistings_removed),
    ]


def _task_columns(extra: Sequence[Column] = ()) -> list[Column]:
    return [
        Column("task"),
        Column("platform"),
        Column("listing"),
        Column("deadline"),
        Column("status"),
        *extra,
        Column("evidence"),
        Column("evidence ref"),
        Column("evidence at"),
        Column("note", css="note"),
    ]


def _task_row(s: TaskStatus, extra: Sequence[object] = ()) -> list[object]:
    return [
        mono(s.task_id),
        s.platform,
        mono(s.listing_id) if s.listing_id else "—",
        timestamp(s.deadline_at),
        badge(s.status, _TONES.get(s.status, "neutral")),
        *extra,
        s.evidence_kind,
        mono(s.evidence_ref),
        timestamp(s.evidence_at),
        s.note or "",
    ]


def _claims_first(statuses: Iterable[TaskStatus]) -> list[TaskStatus]:
    """Overdue first, then open ones, then the rest; each by deadline."""
    rank = {"OVERDUE": 0, "ISSUED": 1}
    return sorted(statuses, key=lambda s: (rank.get(s.status, 2), s.deadline_at, s.task_id))


def _by_deadline(statuses: Iterable[TaskStatus]) -> list[TaskStatus]:
    """Longest overdue first: the deadline, then platform and task for a stable order."""
    return sorted(statuses, key=lambda s: (s.deadline_at, s.platform, s.task_id))


def render_compliance(
    status_records: Iterable[Mapping[str, Any]],
    scorecard_records: Iterable[Mapping[str, Any]],
    *,
    generated_at: datetime,
    feeds_report: str = "../feeds/index.html",
    timezone: str = "UTC",
    sources: Sequence[str] = ("omm.compliance.status", "omm.compliance.scorecards"),
    sampling_records: Iterable[Mapping[str, Any]] = (),
    lead_records: Iterable[Mapping[str, Any]] = (),
    credit_records: Iterable[Mapping[str, Any]] = (),
    task_records: Iterable[Mapping[str, Any]] = (),
    intel_sources: IntelSources = IntelSources(),  # noqa: B008 - frozen, never mutated
) -> str:
    """The compliance page from decoded records: the latest status per task and the
    scorecards (only TOTAL ones are shown). ``timezone`` is the enforcement calendar's:
    the overdue chart's days are its days, as the DAY scorecards' are. The intel records
    (and the platforms' task records, of which only FLAG tasks count) fill the
    intelligence sections; without them those sections say to run intel."""
    every = [TaskStatus.from_record(r) for r in status_records]
    # the takedown sections are about DELIST tasks; compensation-first tasks have their own
    statuses = [s for s in every if s.task_kind == "DELIST"]
    claims = _claims_first(s for s in every if s.task_kind == "COMPENSATION_FIRST")
    scores = total_scorecards(scorecard_records)
    zone = ZoneInfo(timezone)

    overdue = _by_deadline(s for s in statuses if s.status == "OVERDUE")
    relisted = _by_deadline(s for s in statuses if s.relisted_at is not None)
    contradicted = _by_deadline(s for s in statuses if s.contradicted)

    headline = figures(
        [
            ("platforms", count(len(scores))),
            ("tasks issued", count(sum(s.tasks_issued for s in scores))),
            ("overdue now", count(len(overdue))),
            ("re-listed", count(len(relisted))),
            ("notices contradicted", count(len(contradicted))),
        ]
    )
    score_table = table(
        _SCORE_COLUMNS,
        (_score_row(s) for s in scores),
        empty=f"No TOTAL scorecard on {sources[1]} yet.",
    )
    body = [
        section(
            "Platforms",
            headline + score_table,
            anchor="platforms",
            intro=(
                "Every task of each platform so far (the TOTAL scorecards). KPI1: tasks "
                "removed within their deadline, of those whose outcome is decided, by each "
                "task's first outcome. KPI2: re-listings caught and removed again. Hours run "
                "from issue to first takedown (median and 90th percentile); working hours "
                "count only working days of the enforcement calendar."
            ),
        ),
        section("Charts", _charts(statuses, scores, generated_at, zone), anchor="charts"),
        section(
            "Overdue tasks",
            table(
                _task_columns(),
                (_task_row(s) for s in overdue),
                empty="No task is overdue.",
            ),
            anchor="overdue",
            intro="Deadline passed and the listing not taken down; longest overdue first.",
        ),
        section(
            "Re-listed tasks",
            table(
                _task_columns([Column("relisted at"), Column("removed again")]),
                (
                    _task_row(s, [timestamp(s.relisted_at), "yes" if s.relisted_removed else "no"])
                    for s in relisted
                ),
                empty="No listing came back after its takedown.",
            ),
            anchor="relisted",
            intro="The listing was seen on sale again after it had been taken down.",
        ),
        section(
            "Contradicted notices",
            table(
                _task_columns(),
                (_task_row(s) for s in contradicted),
                empty="No takedown notice was contradicted by the listing feed.",
            ),
            anchor="contradicted",
            intro=(
                "The platform sent a takedown notice, but its own listing feed still "
                "showed the listing ACTIVE."
            ),
        ),
        section(
            "Compensation-first tasks",
            table(
                _task_columns([Column("complaint")]),
                (_task_row(s, [mono(s.complaint_id or "—")]) for s in claims),
                empty=(
                    "No compensation-first task yet: `omm run intel` issues them, "
                    "`omm run comply` tracks them."
                ),
            ),
            anchor="compensation",
            intro=(
                "A consumer's claim left unresolved on a platform bound by "
                "compensation-first: the platform compensates first. The claim ending "
                "(the complaint RESOLVED or CLOSED) completes the task. Overdue ones first."
            ),
        ),
        *intel_sections(
            sampling_records, lead_records, credit_records, task_records, intel_sources
        ),
    ]
    return page(
        title="Platform compliance with takedown tasks",
        lead=(
            f"{len(scores)} platform(s), {len(statuses)} takedown task(s), "
            f"{len(claims)} compensation-first task(s). "
            f"From {sources[0]} (latest status per task) and {sources[1]} "
            "(latest TOTAL scorecard per platform)."
        ),
        generated_at=generated_at,
        links=[
            ("Platforms", "#platforms"),
            ("Charts", "#charts"),
            ("Overdue", "#overdue"),
            ("Re-listed", "#relisted"),
            ("Contradicted notices", "#contradicted"),
            ("Compensation-first", "#compensation"),
            ("Targeted sampling", "#sampling"),
            ("Case leads", "#leads"),
            ("Serious-violation list", "#credit"),
            ("Feed health report", feeds_report),
        ],
        body="\n".join(body),
    )


def _charts(
    statuses: Sequence[TaskStatus],
    scores: Sequence[PlatformScore],
    generated_at: datetime,
    zone: ZoneInfo,
) -> Markup:
    kpi1 = horizontal_bars(
        [
            Bar(s.platform, s.kpi1_removed_within_deadline, percent(s.kpi1_removed_within_deadline))
            for s in scores
        ],
        chart_id="kpi1",
        title="KPI1: tasks removed within their deadline, per platform",
        missing="no decided task yet",
    )
    taken_down = [s.hours_to_takedown for s in statuses if s.hours_to_takedown is not None]
    bins = takedown_bins(taken_down)
    histogram = columns(
        [Bar(f"{lo:g}–{hi:g}", float(n), str(n)) for lo, hi, n in bins],
        chart_id="takedown",
        title="Time to takedown: tasks per band of hours from issue to takedown",
        x_title="hours from issue to first takedown",
        y_title="tasks",
    )
    days = overdue_by_day(statuses, generated_at, zone)
    over_time = columns(
        [Bar(d.isoformat(), float(n), str(n)) for d, n in days],
        chart_id="overdue-days",
        title="Overdue tasks at the end of each day",
        x_title=f"day ({zone.key})",
        y_title="tasks overdue",
    )
    return Markup(
        '<div class="charts">'
        + figure(
            "On time (KPI1) per platform",
            kpi1,
            "Share of decided tasks removed within their deadline (TOTAL scorecards).",
        )
        + figure(
            "Time to takedown",
            histogram,
            f"{len(taken_down)} task(s) taken down; each band includes its lower bound.",
        )
        + figure(
            "Overdue tasks over time",
            over_time,
            "Tasks whose deadline had passed and whose listing was not taken down by the "
            f"end of the day ({zone.key}); withdrawn tasks left out; the last day is counted "
            "up to the time of this report.",
        )
        + "</div>"
    )
