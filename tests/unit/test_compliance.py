"""Compliance rules (pipelines/rules/compliance.py): every transition, without Beam or Kafka."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.rules import compliance as c
from pipelines.rules.calendar import load_calendar
from tests.unit.test_enforcement_order import CONFIG_DIR

CALENDAR = load_calendar(CONFIG_DIR / "calendars" / "cn.yaml")
CFG = c.ComplianceConfig(calendar=CALENDAR, delist_working_days=2)
CST = ZoneInfo("Asia/Shanghai")


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    """Epoch millis of a local (China Standard Time) moment."""
    return int(datetime(year, month, day, hour, minute, tzinfo=CST).timestamp() * 1000)


def end_of_day(year: int, month: int, day: int) -> int:
    return ms(year, month, day, 23, 59) + 59_999


ISSUED_AT = ms(2026, 3, 2, 10)  # Monday
DEADLINE = CFG.deadline_after(ISSUED_AT)  # end of Wednesday 4 March


def task(task_id: str = "t-1", issued: int = ISSUED_AT, deadline: int = DEADLINE) -> c.TaskFact:
    return c.TaskFact(task_id, "jd", "L1", issued, deadline, f"omm.tasks.jd/0/{task_id}")


def seen(at: int, active: bool, ref: str = "") -> c.Observation:
    return c.Observation(at, active, ref or f"omm.valid.listings/0/{at}")


def notice(
    at: int,
    action: str = "REMOVED",
    task_id: str | None = "t-1",
    nid: str = "n-1",
    reason: str = "",
) -> c.Notice:
    return c.Notice(nid, at, action, task_id, reason or action.lower(), f"takedowns/0/{nid}")


def decision(at: int, outcome: str, task_id: str = "t-1") -> c.Decision:
    return c.Decision(task_id, at, outcome, "officer-7", "checked", f"decisions/0/{at}")


def evidence(*items: object, clock: int = 0) -> c.ListingEvidence:
    ev = c.ListingEvidence()
    for item in items:
        if isinstance(item, c.TaskFact):
            ev.add_task(item)
        elif isinstance(item, c.Observation):
            ev.add_observation(item)
        elif isinstance(item, c.Notice):
            ev.add_notice(item)
        elif isinstance(item, c.Decision):
            ev.add_decision(item)
    ev.advance_clock(clock)
    return ev


def status_of(*items: object, clock: int = 0) -> c.Status:
    ev = evidence(task(), *items, clock=clock)
    return c.task_status(ev.tasks["t-1"], ev, CFG)


# ------------------------------------------------------------------ deadlines


def test_the_deadline_is_the_end_of_the_second_working_day_after_issue() -> None:
    assert end_of_day(2026, 3, 4) == DEADLINE


def test_a_deadline_across_labour_day_skips_the_public_holidays() -> None:
    # Thu 30 April: 1 May (Fri), 4 and 5 May are holidays, 2-3 May a weekend
    assert CFG.deadline_after(ms(2026, 4, 30, 10)) == end_of_day(2026, 5, 7)


def test_a_make_up_working_day_counts() -> None:
    # Fri 8 May: Saturday 9 May is a make-up working day, then Monday 11 May
    assert CFG.deadline_after(ms(2026, 5, 8, 16)) == end_of_day(2026, 5, 11)


def test_working_hours_leave_out_weekends_and_holidays() -> None:
    # Thu 30 April 10:00 to Wed 6 May 10:00: 14 h of Thursday, then 10 h of Wednesday
    assert c.working_hours(CALENDAR, ms(2026, 4, 30, 10), ms(2026, 5, 6, 10)) == 24.0


# ------------------------------------------------------------------ transitions


def test_a_new_task_is_issued() -> None:
    s = status_of()
    assert (s.status, s.evidence_kind, s.evidence_ms) == (c.ISSUED, c.TASK, ISSUED_AT)


def test_a_notice_before_the_deadline_completes_on_time() -> None:
    s = status_of(notice(ms(2026, 3, 3, 9)))
    assert s.status == c.COMPLETED_ON_TIME
    assert (s.evidence_kind, s.evidence_ref) == (c.TAKEDOWN_NOTICE, "takedowns/0/n-1")
    assert s.completed_ms == ms(2026, 3, 3, 9)
    assert s.hours_to_takedown == 23.0 and s.working_hours_to_takedown == 23.0


def test_a_removal_in_the_feed_completes_without_any_notice() -> None:
    s = status_of(seen(ms(2026, 3, 2, 18), active=False))
    assert (s.status, s.evidence_kind) == (c.COMPLETED_ON_TIME, c.LISTING_FEED)


def test_a_removal_after_the_deadline_completes_late() -> None:
    s = status_of(notice(ms(2026, 3, 5, 8)), clock=ms(2026, 3, 6))
    assert s.status == c.COMPLETED_LATE


def test_evidence_from_before_the_task_does_not_count() -> None:
    s = status_of(seen(ms(2026, 3, 1), active=False))
    assert s.status == c.ISSUED


def test_overdue_only_once_the_clock_passes_the_deadline() -> None:
    assert status_of(clock=DEADLINE - 1).status == c.ISSUED
    s = status_of(clock=DEADLINE)
    assert (s.status, s.evidence_kind, s.evidence_ms) == (c.OVERDUE, c.DEADLINE, DEADLINE)
    assert s.first_outcome == c.OVERDUE


def test_still_active_in_the_feed_after_the_deadline_is_overdue_without_the_clock() -> None:
    s = status_of(seen(ms(2026, 3, 5, 9), active=True))
    assert (s.status, s.evidence_kind) == (c.OVERDUE, c.LISTING_FEED)


def test_a_notice_the_feed_contradicts_does_not_complete_and_says_so() -> None:
    s = status_of(notice(ms(2026, 3, 3, 9)), seen(ms(2026, 3, 5, 9), active=True))
    assert s.status == c.OVERDUE
    assert s.note is not None and "notice n-1 said REMOVED" in s.note
    assert "the listing feed showed it ACTIVE" in s.note


def test_a_feed_confirmed_removal_then_active_again_is_a_relisting_with_a_new_deadline() -> None:
    back = ms(2026, 3, 6, 10)  # Friday
    s = status_of(seen(ms(2026, 3, 3, 9), active=False), seen(back, active=True))
    assert s.status == c.RELISTED
    assert s.relisted_ms == back
    assert s.deadline_ms == end_of_day(2026, 3, 10)  # Monday, Tuesday
    assert s.first_outcome == c.COMPLETED_ON_TIME


def test_a_relisting_removed_again_is_caught() -> None:
    s = status_of(
        seen(ms(2026, 3, 3, 9), active=False),
        seen(ms(2026, 3, 6, 10), active=True),
        seen(ms(2026, 3, 9, 10), active=False),
    )
    assert s.status == c.COMPLETED_ON_TIME and s.relisted_removed


def test_a_relisting_not_removed_by_its_new_deadline_is_overdue() -> None:
    s = status_of(
        seen(ms(2026, 3, 3, 9), active=False),
        seen(ms(2026, 3, 6, 10), active=True),
        clock=end_of_day(2026, 3, 10) + 1,
    )
    assert s.status == c.OVERDUE and s.relisted_ms is not None


def test_a_restored_notice_after_a_takedown_is_a_relisting() -> None:
    s = status_of(notice(ms(2026, 3, 3, 9)), notice(ms(2026, 3, 4, 9), "RESTORED", nid="n-2"))
    assert s.status == c.RELISTED


def test_a_dispute_holds_the_task_past_its_deadline() -> None:
    s = status_of(notice(ms(2026, 3, 3), "DISPUTED", reason="not our listing"), clock=DEADLINE + 1)
    assert (s.status, s.note) == (c.DISPUTED, "not our listing")


def test_a_dispute_upheld_gets_a_new_deadline_from_the_decision() -> None:
    decided = ms(2026, 3, 9, 11)  # Monday
    disputed = notice(ms(2026, 3, 3), "DISPUTED")
    s = status_of(disputed, decision(decided, "UPHOLD"), clock=DEADLINE + 1)
    assert (s.status, s.deadline_ms) == (c.ISSUED, end_of_day(2026, 3, 11))
    late = status_of(disputed, decision(decided, "UPHOLD"), clock=end_of_day(2026, 3, 11) + 1)
    assert late.status == c.OVERDUE


def test_a_dispute_withdrawn_by_the_regulator_ends_the_task() -> None:
    s = status_of(notice(ms(2026, 3, 3), "DISPUTED"), decision(ms(2026, 3, 4), "WITHDRAW"))
    assert (s.status, s.evidence_kind) == (c.WITHDRAWN, c.DECISION)


def test_a_withdrawn_task_stays_withdrawn_when_its_issue_is_replayed() -> None:
    ev = evidence(task())
    ev.add_task(
        task()._replace(withdrawn_ms=ms(2026, 3, 3), withdrawn_ref="x", withdrawn_reason="r")
    )
    ev.add_task(task())  # enforce re-emits the original on replay
    s = c.task_status(ev.tasks["t-1"], ev, CFG)
    assert (s.status, s.note) == (c.WITHDRAWN, "r")


def test_a_task_re_issued_at_a_relisting_keeps_its_first_issue() -> None:
    relisted_at = ms(2026, 3, 6, 10)
    again = task()._replace(issued_ms=relisted_at, deadline_ms=CFG.deadline_after(relisted_at))
    for order in ([task(), again], [again, task()]):
        ev = evidence(*order, seen(ms(2026, 3, 3, 9), active=False), seen(relisted_at, True))
        s = c.task_status(ev.tasks["t-1"], ev, CFG)
        assert (s.status, s.issued_ms, s.first_outcome) == (
            c.RELISTED,
            ISSUED_AT,
            c.COMPLETED_ON_TIME,
        )


def test_a_task_sent_twice_is_one_task() -> None:
    ev = evidence(task(), task(), notice(ms(2026, 3, 3, 9)))
    assert len(ev.changes(CFG)) == 1
    ev.add_task(task())
    assert ev.changes(CFG) == []


def test_observations_keep_every_change_of_status_whatever_arrives_later() -> None:
    ev = evidence(*(seen(ms(2026, 3, 2, 11 + h), active=True) for h in range(8)))
    assert len(ev.observations) == 2  # the run's first and last
    ev.add_observation(seen(ms(2026, 3, 2, 14, 30), active=False))
    s = c.task_status(task(), ev, CFG)
    # removed 14:30, back on sale at 18:00 (the run's last observation): a re-listing
    assert s.status == c.RELISTED and s.relisted_ms == ms(2026, 3, 2, 18)


EVENTS = [
    seen(ms(2026, 3, 2, 12), active=True),
    notice(ms(2026, 3, 3, 9)),
    seen(ms(2026, 3, 3, 20), active=False),
    seen(ms(2026, 3, 6, 10), active=True),
    notice(ms(2026, 3, 7), "DISPUTED", nid="n-3"),
    seen(ms(2026, 3, 12, 10), active=False),
]


@settings(max_examples=200, deadline=None)
@given(st.permutations(EVENTS), st.integers(0, len(EVENTS)))
def test_the_status_does_not_depend_on_the_arrival_order(order: list[object], cut: int) -> None:
    expected = c.task_status(task(), evidence(task(), *EVENTS, clock=ms(2026, 3, 20)), CFG)
    ev = evidence(task(), *order[:cut])
    ev.changes(CFG)  # statuses published along the way change nothing at the end
    for item in order[cut:]:
        ev = evidence(task(), *ev.observations, *ev.notices.values(), item)
    ev.advance_clock(ms(2026, 3, 20))
    assert c.task_status(ev.tasks["t-1"], ev, CFG) == expected


def test_next_deadline_is_the_earliest_open_one() -> None:
    ev = evidence(task(), task("t-2", deadline=DEADLINE + 5))
    assert ev.next_deadline(CFG) == DEADLINE
    ev.advance_clock(DEADLINE)
    assert ev.next_deadline(CFG) == DEADLINE + 5


# ------------------------------------------------------------------ scorecards


def outcome(
    tid: str, status: str, first: str | None, hours: float | None = None, **kw: object
) -> c.TaskOutcome:
    return c.TaskOutcome(
        task_id=tid,
        platform="jd",
        issued_day=date(2026, 3, 2),
        status=status,
        first_outcome=first,
        hours_to_takedown=hours,
        working_hours_to_takedown=hours,
        relisted=bool(kw.get("relisted", False)),
        relisted_removed=bool(kw.get("caught", False)),
    )


def test_a_hand_computed_scorecard() -> None:
    rows = [
        outcome("a", c.COMPLETED_ON_TIME, c.COMPLETED_ON_TIME, 10.0),
        outcome("b", c.COMPLETED_ON_TIME, c.COMPLETED_ON_TIME, 20.0),
        outcome("c", c.COMPLETED_LATE, c.COMPLETED_LATE, 60.0),
        outcome("d", c.OVERDUE, c.OVERDUE),
        outcome("e", c.RELISTED, c.COMPLETED_ON_TIME, 5.0, relisted=True),
        outcome("f", c.COMPLETED_ON_TIME, c.COMPLETED_ON_TIME, 30.0, relisted=True, caught=True),
        outcome("g", c.ISSUED, None),
        outcome("h", c.DISPUTED, None),
        outcome("i", c.WITHDRAWN, None),
    ]
    card = c.scorecard("jd", "DAY", rows, date(2026, 3, 2), date(2026, 3, 2))
    assert (card.issued, card.on_time, card.late, card.overdue) == (9, 4, 1, 1)
    assert (card.relisted, card.relisted_removed, card.disputed, card.withdrawn) == (2, 1, 1, 1)
    # decided: a b c d e f -> 4 of 6 on time
    assert card.kpi1 == round(4 / 6, 4)
    assert card.kpi2 == 0.5
    # hours 5 10 20 30 60: median the 3rd, p90 the 5th (nearest rank)
    assert (card.median_hours, card.p90_hours) == (20.0, 60.0)


def test_scorecards_per_day_and_in_total() -> None:
    s1 = c.task_status(task("t-1"), evidence(task("t-1"), notice(ms(2026, 3, 3))), CFG)
    later = ms(2026, 3, 3, 10)
    t2 = task("t-2", issued=later, deadline=CFG.deadline_after(later))
    s2 = c.task_status(t2, evidence(t2, clock=ms(2026, 3, 10)), CFG)
    outcomes = {s.task_id: c.TaskOutcome.of(s, CALENDAR) for s in (s1, s2)}
    cards = c.scorecards(outcomes, "jd")
    assert [(k.period, k.first_day.isoformat(), k.issued) for k in cards] == [
        ("DAY", "2026-03-02", 1),
        ("DAY", "2026-03-03", 1),
        ("TOTAL", "2026-03-02", 2),
    ]
    assert cards[-1].kpi1 == 0.5 and cards[-1].key == "jd|TOTAL"
    assert c.scorecards(outcomes, "tmall") == []


def test_the_issue_day_is_the_calendars_day_not_utcs() -> None:
    just_after_midnight = int(datetime(2026, 3, 2, 16, 30, tzinfo=UTC).timestamp() * 1000)
    s = c.task_status(task(issued=just_after_midnight), evidence(task()), CFG)
    assert c.TaskOutcome.of(s, CALENDAR).issued_day == date(2026, 3, 3)
