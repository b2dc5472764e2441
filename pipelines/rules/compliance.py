"""Compliance: did the platform take the listing down in time? (docs/design.md §3 rules 5-7)

Pure: imports neither Beam nor Kafka. Everything known about one listing (its
delisting tasks, the platform's takedown notices, the listing feed's
observations, regulator decisions, and how far the clock has got) is a
:class:`ListingEvidence`; :func:`task_status` reads a task's status from it.
The status is a function of the evidence alone, never of the order it arrived
in: a replay, or evidence read late, ends in the same statuses.

The state machine of one task::

    ISSUED ─▶ COMPLETED_ON_TIME | COMPLETED_LATE | OVERDUE ─▶ RELISTED (new deadline)
       └──▶ DISPUTED (until a regulator upholds the task or withdraws it) ──▶ WITHDRAWN

Evidence rules:

- The listing feed is authoritative. A REMOVED observation completes the task
  even without a notice. A notice claiming REMOVED completes it too, unless the
  feed later shows the listing ACTIVE with no REMOVED observation between: the
  claim is contradicted, the task is not complete (and OVERDUE once its deadline
  has passed, whatever the notice said), and the status says so.
- After a completion the feed confirms (or a notice RESTORED), an ACTIVE
  observation is a re-listing: RELISTED, with a new deadline counted from it;
  removed again by then counts as a re-listing caught (KPI2).
- A notice DISPUTED naming the task holds it (no OVERDUE) until a regulator
  decision: UPHOLD gives a new deadline counted from the decision, WITHDRAW
  ends it. A removal during the dispute still completes the task.
- OVERDUE needs proof that the deadline passed: the clock (wall time ticks)
  or an ACTIVE observation after it. Never before.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Generic, NamedTuple, TypeVar
from zoneinfo import ZoneInfo

from pipelines.rules.calendar import WorkingCalendar

ISSUED = "ISSUED"
COMPLETED_ON_TIME = "COMPLETED_ON_TIME"
COMPLETED_LATE = "COMPLETED_LATE"
OVERDUE = "OVERDUE"
RELISTED = "RELISTED"
DISPUTED = "DISPUTED"
WITHDRAWN = "WITHDRAWN"

# evidence kinds, as in the compliance_status contract
TASK = "TASK"
TAKEDOWN_NOTICE = "TAKEDOWN_NOTICE"
LISTING_FEED = "LISTING_FEED"
DEADLINE = "DEADLINE"
DECISION = "DECISION"
COMPLAINT = "COMPLAINT"  # the complaint a COMPENSATION_FIRST task follows ended

# task kinds comply tracks, as in the task contract
DELIST = "DELIST"
COMPENSATION_FIRST = "COMPENSATION_FIRST"

_MS_PER_HOUR = 3_600_000
Rules = TypeVar("Rules")  # what a kind of task's status rule needs (a config)


@dataclass(frozen=True)
class ComplianceConfig:
    """What comply needs of config/enforcement.yaml: the calendar and the delisting period."""

    calendar: WorkingCalendar
    delist_working_days: int

    def deadline_after(self, at_ms: int) -> int:
        """The delisting deadline for something that starts at ``at_ms`` (a re-listing, a
        dispute upheld): the end of the Nth working day after that day."""
        return _ms(self.calendar.add_working_days(_dt(at_ms), self.delist_working_days).at)


class TaskFact(NamedTuple):
    """What comply keeps of a task (omm.tasks.<platform>) it tracks."""

    task_id: str
    platform: str
    listing_id: str  # "" for a compensation-first task about a complaint that names none
    issued_ms: int
    deadline_ms: int
    ref: str  # topic/partition/offset of the task record
    withdrawn_ms: int | None = None
    withdrawn_ref: str | None = None
    withdrawn_reason: str | None = None
    kind: str = DELIST
    complaint_id: str | None = None  # the claim a COMPENSATION_FIRST task follows

    def issued_status(self) -> Status:
        """Its status from the task records alone: ISSUED, or WITHDRAWN by a record."""
        base = Status(
            task_id=self.task_id,
            platform=self.platform,
            listing_id=self.listing_id,
            status=ISSUED,
            issued_ms=self.issued_ms,
            deadline_ms=self.deadline_ms,
            evidence_kind=TASK,
            evidence_ref=self.ref,
            evidence_ms=self.issued_ms,
            task_kind=self.kind,
            complaint_id=self.complaint_id,
        )
        if self.withdrawn_ms is None:
            return base
        return base._replace(
            status=WITHDRAWN,
            evidence_ref=self.withdrawn_ref or self.ref,
            evidence_ms=self.withdrawn_ms,
            note=self.withdrawn_reason,
        )

    @classmethod
    def of(cls, record: Mapping[str, Any], ref: str, record_ms: int) -> TaskFact:
        """From a decoded task record; ``ref`` and ``record_ms``: where the record is and
        its own time, which dates a withdrawal (the same on every replay)."""
        withdrawn = record["state"] == "WITHDRAWN"
        return cls(
            task_id=record["task_id"],
            platform=record["platform"],
            listing_id=record.get("listing_id") or "",
            issued_ms=_ms(record["issued_at"]),
            deadline_ms=_ms(record["deadline_at"]),
            ref=ref,
            withdrawn_ms=record_ms if withdrawn else None,
            withdrawn_ref=ref if withdrawn else None,
            withdrawn_reason=record["reason"] if withdrawn else None,
            kind=record["kind"],
            complaint_id=record.get("complaint_id"),
        )

    def merged(self, known: TaskFact | None) -> TaskFact:
        """This record of the task, merged with what was known of it: a task keeps its
        first issue, and a withdrawal stands whatever order the records are read in."""
        task = self
        if known is not None and known.issued_ms < task.issued_ms:
            # Enforce re-issues a task when its listing comes back on sale (same id, later
            # issue): the task dates from its first issue, and the re-listing is read
            # from the listing feed, with its own deadline (RELISTED).
            task = task._replace(issued_ms=known.issued_ms, deadline_ms=known.deadline_ms)
        if known is None:
            return task
        if task.withdrawn_ms is None:
            # a replayed ISSUED record must not undo a withdrawal
            return task._replace(
                withdrawn_ms=known.withdrawn_ms,
                withdrawn_ref=known.withdrawn_ref,
                withdrawn_reason=known.withdrawn_reason,
            )
        return known._replace(
            withdrawn_ms=task.withdrawn_ms,
            withdrawn_ref=task.withdrawn_ref,
            withdrawn_reason=task.withdrawn_reason,
        )


class Observation(NamedTuple):
    """One observation of the listing in the platform's listing feed."""

    at_ms: int
    active: bool
    ref: str


class Notice(NamedTuple):
    """One takedown notice from the platform about the listing."""

    notice_id: str
    at_ms: int
    action: str  # REMOVED | RESTORED | DISPUTED
    task_id: str | None
    reason: str
    ref: str


class Decision(NamedTuple):
    """A regulator's decision on a disputed task."""

    task_id: str
    at_ms: int
    outcome: str  # UPHOLD | WITHDRAW
    decided_by: str
    reason: str
    ref: str


class Status(NamedTuple):
    """A task's compliance status and the evidence that decided it."""

    task_id: str
    platform: str
    listing_id: str
    status: str
    issued_ms: int
    deadline_ms: int  # the deadline in force (a re-listing or an upheld dispute sets a new one)
    evidence_kind: str
    evidence_ref: str
    evidence_ms: int
    completed_ms: int | None = None
    hours_to_takedown: float | None = None
    working_hours_to_takedown: float | None = None
    relisted_ms: int | None = None
    relisted_removed: bool = False
    first_outcome: str | None = None  # COMPLETED_ON_TIME | COMPLETED_LATE | OVERDUE, first decided
    note: str | None = None
    task_kind: str = DELIST
    complaint_id: str | None = None


@dataclass
class TaskEvidence(Generic[Rules]):
    """What comply keeps of one subject's tasks (Beam state, one per subject): the tasks,
    its clock, and what it published; subclasses add the evidence and the status rule."""

    tasks: dict[str, TaskFact] = field(default_factory=dict)
    clock_ms: int = 0
    # what was last published per task, so only changes are published
    published: dict[str, Status] = field(default_factory=dict)

    def status_of(self, task: TaskFact, rules: Rules) -> Status:
        raise NotImplementedError

    def add_task(self, task: TaskFact) -> None:
        self.tasks[task.task_id] = task.merged(self.tasks.get(task.task_id))

    def advance_clock(self, now_ms: int) -> None:
        self.clock_ms = max(self.clock_ms, now_ms)

    def next_deadline(self, rules: Rules) -> int | None:
        """The earliest deadline of a task still waiting for one (for the deadline index)."""
        due = [
            s.deadline_ms
            for s in (self.status_of(t, rules) for t in self.tasks.values())
            if s.status in (ISSUED, RELISTED) and s.deadline_ms > self.clock_ms
        ]
        return min(due) if due else None

    def changes(self, rules: Rules) -> list[Status]:
        """The statuses that differ from those last published; marks them published."""
        out = []
        for task in self.tasks.values():
            status = self.status_of(task, rules)
            if self.published.get(task.task_id) != status:
                self.published[task.task_id] = status
                out.append(status)
        return out


@dataclass
class ListingEvidence(TaskEvidence["ComplianceConfig"]):
    """Everything comply knows about one listing and its DELIST tasks."""

    observations: list[Observation] = field(default_factory=list)
    notices: dict[str, Notice] = field(default_factory=dict)
    decisions: dict[str, Decision] = field(default_factory=dict)

    def status_of(self, task: TaskFact, rules: ComplianceConfig) -> Status:
        return task_status(task, self, rules)

    def add_observation(self, obs: Observation) -> None:
        """Keep the observations sorted, and of each run of equal status only its first and
        last: enough to find every change of status whatever arrives later."""
        if obs in self.observations:
            return
        seq = sorted([*self.observations, obs], key=lambda o: (o.at_ms, o.active, o.ref))
        kept: list[Observation] = []
        for i, o in enumerate(seq):
            before = seq[i - 1] if i else None
            after = seq[i + 1] if i + 1 < len(seq) else None
            inner = (
                before is not None
                and after is not None
                and before.active == o.active == after.active
            )
            if not inner:
                kept.append(o)
        self.observations = kept

    def add_notice(self, notice: Notice) -> None:
        self.notices.setdefault(notice.notice_id, notice)

    def add_decision(self, decision: Decision) -> None:
        self.decisions.setdefault(decision.ref, decision)


class _Event(NamedTuple):
    at_ms: int
    order: int  # at one instant: back on sale first, then removed (removal wins the tie)
    removed: bool
    confirmed: bool  # the listing feed itself, not a platform's claim
    kind: str
    ref: str
    what: str


def _timeline(task: TaskFact, ev: ListingEvidence) -> list[_Event]:
    events = [
        _Event(o.at_ms, int(not o.active), not o.active, True, LISTING_FEED, o.ref, "observed")
        for o in ev.observations
        if o.at_ms >= task.issued_ms
    ]
    for n in ev.notices.values():
        if n.at_ms < task.issued_ms or n.action not in ("REMOVED", "RESTORED"):
            continue
        removed = n.action == "REMOVED"
        events.append(
            _Event(n.at_ms, int(removed), removed, False, TAKEDOWN_NOTICE, n.ref, n.notice_id)
        )
    return sorted(events)


def task_status(task: TaskFact, ev: ListingEvidence, cfg: ComplianceConfig) -> Status:
    """The status of ``task`` given everything known about its listing."""
    base = task.issued_status()
    if base.status == WITHDRAWN:
        return base
    deadline = task.deadline_ms
    dispute = _open_dispute(task, ev)
    if isinstance(dispute, Decision):
        if dispute.outcome == "WITHDRAW":
            return base._replace(
                status=WITHDRAWN,
                evidence_kind=DECISION,
                evidence_ref=dispute.ref,
                evidence_ms=dispute.at_ms,
                note=f"dispute decided by {dispute.decided_by}: withdrawn ({dispute.reason})",
            )
        # upheld: the platform gets a fresh delisting period from the decision
        deadline = max(deadline, cfg.deadline_after(dispute.at_ms))
        base = base._replace(deadline_ms=deadline)

    completed: _Event | None = None
    contradiction: str | None = None
    relisted: _Event | None = None
    relist_deadline: int | None = None
    relist_removed: _Event | None = None
    for e in _timeline(task, ev):
        if e.removed:
            if completed is None:
                completed = e
            elif e.confirmed and not completed.confirmed:
                completed = completed._replace(confirmed=True)
            if relisted is not None and relist_removed is None:
                relist_removed = e
        elif completed is not None and relisted is None:
            if not completed.confirmed and e.confirmed:
                contradiction = (
                    f"notice {completed.what} said REMOVED at {_iso(completed.at_ms)}, "
                    f"but the listing feed showed it ACTIVE at {_iso(e.at_ms)} ({e.ref})"
                )
                completed = None
            else:
                relisted = e
                relist_deadline = cfg.deadline_after(e.at_ms)

    if completed is not None:
        on_time = completed.at_ms <= deadline
        outcome = COMPLETED_ON_TIME if on_time else COMPLETED_LATE
        done = base._replace(
            status=outcome,
            evidence_kind=completed.kind,
            evidence_ref=completed.ref,
            evidence_ms=completed.at_ms,
            completed_ms=completed.at_ms,
            hours_to_takedown=round((completed.at_ms - task.issued_ms) / _MS_PER_HOUR, 3),
            working_hours_to_takedown=round(
                working_hours(cfg.calendar, task.issued_ms, completed.at_ms), 3
            ),
            first_outcome=outcome,
            note=contradiction,
        )
        if relisted is None:
            return done
        assert relist_deadline is not None
        done = done._replace(relisted_ms=relisted.at_ms, deadline_ms=relist_deadline)
        if relist_removed is not None:
            # caught and removed again: the task ends as it first completed
            return done._replace(
                relisted_removed=True,
                evidence_kind=relist_removed.kind,
                evidence_ref=relist_removed.ref,
                evidence_ms=relist_removed.at_ms,
                note=f"re-listed at {_iso(relisted.at_ms)}, removed again at "
                f"{_iso(relist_removed.at_ms)}",
            )
        overdue = _overdue_proof(ev, relist_deadline, relisted.at_ms)
        if overdue is not None:
            kind, ref, at = overdue
            return done._replace(
                status=OVERDUE,
                evidence_kind=kind,
                evidence_ref=ref,
                evidence_ms=at,
                note=f"re-listed at {_iso(relisted.at_ms)} and not removed by the new deadline",
            )
        return done._replace(
            status=RELISTED,
            evidence_kind=relisted.kind,
            evidence_ref=relisted.ref,
            evidence_ms=relisted.at_ms,
        )

    if isinstance(dispute, Notice):
        return base._replace(
            status=DISPUTED,
            evidence_kind=TAKEDOWN_NOTICE,
            evidence_ref=dispute.ref,
            evidence_ms=dispute.at_ms,
            note=dispute.reason,
        )
    overdue = _overdue_proof(ev, deadline, task.issued_ms)
    if overdue is not None:
        kind, ref, at = overdue
        return base._replace(
            status=OVERDUE,
            evidence_kind=kind,
            evidence_ref=ref,
            evidence_ms=at,
            first_outcome=OVERDUE,
            note=contradiction,
        )
    return base._replace(note=contradiction)


def _open_dispute(task: TaskFact, ev: ListingEvidence) -> Notice | Decision | None:
    """The latest word on a dispute of ``task``: its notice while undecided, else the
    decision (None when never disputed)."""
    disputes = [
        n for n in ev.notices.values() if n.action == "DISPUTED" and n.task_id == task.task_id
    ]
    if not disputes:
        return None
    first = min(disputes, key=lambda n: (n.at_ms, n.ref))
    decisions = sorted(
        (d for d in ev.decisions.values() if d.task_id == task.task_id and d.at_ms >= first.at_ms),
        key=lambda d: (d.at_ms, d.ref),
    )
    return decisions[-1] if decisions else first


def _overdue_proof(
    ev: ListingEvidence, deadline_ms: int, since_ms: int
) -> tuple[str, str, int] | None:
    """Why the deadline is known to have passed with the listing on sale, if it is."""
    if ev.clock_ms >= deadline_ms:
        return DEADLINE, f"deadline {_iso(deadline_ms)} passed", deadline_ms
    late = [o for o in ev.observations if o.active and o.at_ms > deadline_ms >= since_ms]
    if late:
        first = min(late)
        return LISTING_FEED, first.ref, first.at_ms
    return None


def working_hours(calendar: WorkingCalendar, start_ms: int, end_ms: int) -> float:
    """Hours between two instants that fall on working days of ``calendar`` (local time)."""
    if end_ms <= start_ms:
        return 0.0
    zone = ZoneInfo(calendar.timezone)
    start, end = _dt(start_ms).astimezone(zone), _dt(end_ms).astimezone(zone)
    total = 0.0
    day = start.date()
    while day <= end.date():
        if calendar.is_working_day(day):
            day_start = datetime(day.year, day.month, day.day, tzinfo=zone)
            day_end = day_start + timedelta(days=1)
            lo, hi = max(start, day_start), min(end, day_end)
            if hi > lo:
                total += (hi - lo).total_seconds() / 3600
        day += timedelta(days=1)
    return total


# ------------------------------------------------------------------ scorecards


class TaskOutcome(NamedTuple):
    """What a scorecard counts of one task: its latest status, reduced."""

    task_id: str
    platform: str
    issued_day: date  # in the calendar's time zone
    status: str
    first_outcome: str | None
    hours_to_takedown: float | None
    working_hours_to_takedown: float | None
    relisted: bool
    relisted_removed: bool

    @classmethod
    def of(cls, status: Status, calendar: WorkingCalendar) -> TaskOutcome:
        return cls(
            task_id=status.task_id,
            platform=status.platform,
            issued_day=_dt(status.issued_ms).astimezone(ZoneInfo(calendar.timezone)).date(),
            status=status.status,
            first_outcome=status.first_outcome,
            hours_to_takedown=status.hours_to_takedown,
            working_hours_to_takedown=status.working_hours_to_takedown,
            relisted=status.relisted_ms is not None,
            relisted_removed=status.relisted_removed,
        )


@dataclass(frozen=True)
class Scorecard:
    """One platform's figures over one period (a day of issue, or every day: TOTAL)."""

    platform: str
    period: str  # DAY | TOTAL
    first_day: date
    last_day: date
    issued: int
    on_time: int
    late: int
    overdue: int
    relisted: int
    relisted_removed: int
    disputed: int
    withdrawn: int
    median_hours: float | None
    p90_hours: float | None
    median_working_hours: float | None
    p90_working_hours: float | None
    kpi1: float | None
    kpi2: float | None

    @property
    def key(self) -> str:
        return f"{self.platform}|{self.period}" + (
            f"|{self.first_day.isoformat()}" if self.period == "DAY" else ""
        )


def scorecard(
    platform: str, period: str, outcomes: Iterable[TaskOutcome], first: date, last: date
) -> Scorecard:
    """The figures of ``outcomes`` (one platform's tasks issued between ``first`` and ``last``).

    KPI1 counts a task by its first outcome: removed by the deadline, over the tasks
    whose outcome is decided (on time, late or overdue; not those still within their
    deadline, disputed or withdrawn). KPI2: re-listings removed again over
    re-listings. Percentiles by nearest rank, over first takedowns.
    """
    rows = list(outcomes)
    count = {s: sum(1 for r in rows if r.status == s) for s in (OVERDUE, DISPUTED, WITHDRAWN)}
    on_time = sum(1 for r in rows if r.first_outcome == COMPLETED_ON_TIME)
    late = sum(1 for r in rows if r.first_outcome == COMPLETED_LATE)
    decided = sum(
        1 for r in rows if r.first_outcome is not None and r.status not in (WITHDRAWN, DISPUTED)
    )
    relisted = sum(1 for r in rows if r.relisted)
    caught = sum(1 for r in rows if r.relisted_removed)
    hours = sorted(r.hours_to_takedown for r in rows if r.hours_to_takedown is not None)
    working = sorted(
        r.working_hours_to_takedown for r in rows if r.working_hours_to_takedown is not None
    )
    return Scorecard(
        platform=platform,
        period=period,
        first_day=first,
        last_day=last,
        issued=len(rows),
        on_time=on_time,
        late=late,
        overdue=count[OVERDUE],
        relisted=relisted,
        relisted_removed=caught,
        disputed=count[DISPUTED],
        withdrawn=count[WITHDRAWN],
        median_hours=_percentile(hours, 50),
        p90_hours=_percentile(hours, 90),
        median_working_hours=_percentile(working, 50),
        p90_working_hours=_percentile(working, 90),
        kpi1=round(on_time / decided, 4) if decided else None,
        kpi2=round(caught / relisted, 4) if relisted else None,
    )


def scorecards(outcomes: Mapping[str, TaskOutcome], platform: str) -> list[Scorecard]:
    """One platform's scorecard per day of issue, and its running total."""
    rows = [o for o in outcomes.values() if o.platform == platform]
    if not rows:
        return []
    days = sorted({r.issued_day for r in rows})
    out = [
        scorecard(platform, "DAY", (r for r in rows if r.issued_day == day), day, day)
        for day in days
    ]
    out.append(scorecard(platform, "TOTAL", rows, days[0], days[-1]))
    return out


def _percentile(sorted_values: list[float], pct: int) -> float | None:
    if not sorted_values:
        return None
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _ms(at: datetime | int) -> int:
    return at if isinstance(at, int) else int(at.timestamp() * 1000)


def _iso(ms: int) -> str:
    return _dt(ms).isoformat(timespec="seconds").replace("+00:00", "Z")


__all__ = [
    "ComplianceConfig",
    "Decision",
    "ListingEvidence",
    "Notice",
    "Observation",
    "Scorecard",
    "Status",
    "TaskFact",
    "TaskOutcome",
    "scorecard",
    "scorecards",
    "task_status",
    "working_hours",
]
