"""Complaint intelligence (pipelines/rules/intel.py): targeted sampling, case leads and
compensation-first, at their edges, in event time, without Beam or Kafka."""

from __future__ import annotations

import json
import math
import pickle
import random
import shutil
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from omm.config import load_enforcement, load_intel, load_platforms
from pipelines.rules import intel as it
from pipelines.rules.compliance import Status, TaskFact
from schemas.registry import SchemaRegistry
from tests.unit.test_enforcement_order import CONFIG_DIR

CFG = load_intel(CONFIG_DIR)
MATCHING = load_enforcement(CONFIG_DIR).matching
RULES = it.CompensationFirst.of(CFG, load_platforms(CONFIG_DIR))
CST = ZoneInfo("Asia/Shanghai")
LATE_MS = CFG.lateness_ms
LEADS = CFG.case_leads
WEEK = next(w for w in CFG.sampling.windows if w.days == 7)
D0 = date(2026, 3, 2)  # a Monday


def ms(day: date, hour: int = 10, minute: int = 0) -> int:
    return int(datetime(day.year, day.month, day.day, hour, minute, tzinfo=CST).timestamp() * 1000)


def midnight(day: date) -> int:
    return ms(day, 0)


_seq = iter(range(10**9))


def comp(
    day: date,
    issue: str = "QUALITY",
    *,
    cid: str | None = None,
    platform: str = "tmall",
    seller: str = "shop-1",
    channel: str = "PLATFORM",
    status: str = "OPEN",
    resolved_ms: int | None = None,
    key: str | None = "midea|MKHJ1705",
    category: str | None = "kitchen",
    hour: int = 10,
    consumer: str | None = None,
) -> it.ComplaintFact:
    n = next(_seq)
    return it.ComplaintFact(
        complaint_id=cid or f"C-{n}",
        platform=platform,
        channel=channel,
        seller_id=seller,
        issue_type=issue,
        status=status,
        received_ms=ms(day, hour),
        resolved_ms=resolved_ms,
        evidence=f"omm.valid.complaints/0/{n}",
        product_key=key,
        brand="Midea" if key else None,
        model="MK-HJ1705" if key else None,
        listing_id="L-1",
        category=category,
        consumer=consumer,
    )


def days(n: int) -> timedelta:
    return timedelta(days=n)


def leads_of(complaints: Iterable[it.ComplaintFact], until: date) -> list[it.CaseLead]:
    state = it.SellerComplaints()
    for c in complaints:
        state.add(c, CFG)
    return state.advance(ms(until), CFG)


FAR = D0 + days(400)
DAY = 86_400_000


# ------------------------------------------------------------------ complaint-to-case


def test_a_seller_exactly_at_the_threshold_is_one_lead() -> None:
    complaints = [comp(D0 + days(i)) for i in range(LEADS.threshold)]
    leads = leads_of(complaints, FAR)
    assert len(leads) == 1  # the window rolls over the same complaints: still one lead
    lead = leads[0]
    last_day = D0 + days(LEADS.threshold - 1)
    assert lead.window.end_ms == midnight(last_day + days(1))  # the first window holding all
    assert lead.window.start_ms == midnight(last_day + days(1) - days(LEADS.window_days))
    assert lead.complaint_ids == tuple(sorted(c.key for c in complaints))
    record = lead.to_record(computed_ms=ms(FAR))
    assert record["violation_complaints"] == LEADS.threshold
    assert record["threshold"] == LEADS.threshold
    assert record["issue_types"] == ["QUALITY"]


def test_one_below_the_threshold_is_no_lead() -> None:
    assert leads_of([comp(D0 + days(i)) for i in range(LEADS.threshold - 1)], FAR) == []


def test_non_violation_complaints_do_not_count() -> None:
    complaints = [comp(D0, "QUALITY") for _ in range(LEADS.threshold - 1)]
    assert leads_of([*complaints, comp(D0, "AFTER_SALES"), comp(D0, "PRIVACY")], FAR) == []


def test_a_complaint_one_day_outside_the_window_does_not_count() -> None:
    first = comp(D0)
    middle = [comp(D0 + days(1)) for _ in range(LEADS.threshold - 2)]
    last_inside = comp(D0 + days(LEADS.window_days - 1))
    one_day_out = comp(D0 + days(LEADS.window_days))
    assert len(leads_of([first, *middle, last_inside], FAR)) == 1
    assert leads_of([first, *middle, one_day_out], FAR) == []


def test_return_refused_counts_only_for_goods_with_the_7_day_return_right() -> None:
    others = [comp(D0) for _ in range(LEADS.threshold - 1)]
    excluded = LEADS.return_refused_excluded_categories[0]
    # lawful refusal: the goods' category (or a sub-category of it) is excluded
    assert leads_of([*others, comp(D0, "RETURN_REFUSED", category=excluded)], FAR) == []
    sub = f"{excluded.upper()}/apples"
    assert leads_of([*others, comp(D0, "RETURN_REFUSED", category=sub)], FAR) == []
    # unknown category: not counted (config: count_return_refused_without_category false)
    assert not LEADS.count_return_refused_without_category
    assert leads_of([*others, comp(D0, "RETURN_REFUSED", category=None)], FAR) == []
    # a category with the right: counted
    lead = leads_of([*others, comp(D0, "RETURN_REFUSED", category="kitchen")], FAR)
    assert len(lead) == 1
    assert lead[0].counts_by_issue_type == {"QUALITY": LEADS.threshold - 1, "RETURN_REFUSED": 1}


def test_new_complaints_enough_for_a_case_of_their_own_make_a_second_lead() -> None:
    first = [comp(D0) for _ in range(LEADS.threshold)]
    later = [comp(D0 + days(10)) for _ in range(LEADS.threshold - 1)]
    assert len(leads_of([*first, *later], FAR)) == 1  # one short of fresh evidence
    more = [*later, comp(D0 + days(11))]
    leads = leads_of([*first, *more], FAR)
    assert len(leads) == 2
    assert leads[0].lead_id != leads[1].lead_id
    assert set(leads[1].complaint_ids) >= {c.key for c in more}


def test_a_window_is_emitted_once_after_the_allowed_lateness_and_never_again() -> None:
    complaints = [comp(D0) for _ in range(LEADS.threshold)]
    state = it.SellerComplaints()
    for c in complaints:
        state.add(c, CFG)
    end = midnight(D0 + days(1))
    assert state.next_timer_ms(CFG) == end + LATE_MS
    assert state.advance(end + LATE_MS - 1, CFG) == []
    leads = state.advance(end + LATE_MS, CFG)
    assert len(leads) == 1
    assert state.advance(end + LATE_MS, CFG) == []
    assert state.advance(ms(FAR), CFG) == []
    assert state.next_timer_ms(CFG) is None  # every window holding them is emitted
    # a replayed complaint changes nothing: the same lead is never raised twice
    state.add(complaints[0], CFG)
    assert state.advance(ms(FAR), CFG) == []


def test_a_complaint_read_after_its_windows_were_emitted_is_late_and_dropped() -> None:
    state = it.SellerComplaints()
    for c in [comp(D0) for _ in range(LEADS.threshold - 1)]:
        state.add(c, CFG)
    assert state.advance(ms(D0 + days(LEADS.window_days + 5)), CFG) == []
    state.add(comp(D0), CFG)  # would have made the lead, read too late
    assert state.late == 1
    assert state.advance(ms(FAR), CFG) == []


def test_a_complaint_read_within_the_lateness_counts_as_if_read_in_time() -> None:
    complaints = [comp(D0) for _ in range(LEADS.threshold)]
    state = it.SellerComplaints()
    for c in complaints[:-1]:
        state.add(c, CFG)
    # the watermark is just short of the first window's end plus the lateness
    assert state.advance(midnight(D0 + days(1)) + LATE_MS - 1, CFG) == []
    state.add(complaints[-1], CFG)
    assert state.late == 0
    assert [lead.complaint_ids for lead in state.advance(ms(FAR), CFG)] == [
        tuple(sorted(c.key for c in complaints))
    ]


# ------------------------------------------------------------------ targeted sampling


def candidates_of(
    complaints: Iterable[it.ComplaintFact],
    until: date,
    inspections: Iterable[int] = (),
) -> list[it.SamplingCandidate]:
    state = it.ProductComplaints()
    for i, at in enumerate(inspections):
        state.add_inspection(f"I-{i}", at)
    for c in complaints:
        state.add(c, CFG)
    return state.advance(ms(until), CFG)


def week_hotspot(day: date, key: str = "midea|MKHJ1705") -> list[it.ComplaintFact]:
    """Complaints on one day exactly at the 7-day window's thresholds (QUALITY weighs 3)."""
    n = max(WEEK.min_complaints, int(-(-WEEK.min_score // CFG.sampling.weights["QUALITY"])))
    return [comp(day, "QUALITY", key=key) for _ in range(n)]


def week_candidates(cands: list[it.SamplingCandidate]) -> list[it.SamplingCandidate]:
    return [c for c in cands if c.window.days == 7]


def test_a_product_exactly_at_the_window_thresholds_is_a_candidate_in_each_window() -> None:
    complaints = week_hotspot(D0)
    found = week_candidates(candidates_of(complaints, D0 + days(30)))
    assert len(found) == 7  # every rolling 7-day window holding that day: updated as it moves
    first = found[0]
    assert first.window == it.Window(7, midnight(D0 - days(6)), midnight(D0 + days(1)))
    assert first.score >= WEEK.min_score and first.complaint_count >= WEEK.min_complaints
    assert first.counts_by_issue_type == {"QUALITY": len(complaints)}
    assert first.brand == "Midea" and first.model == "MK-HJ1705"


def test_one_below_the_score_threshold_is_no_candidate() -> None:
    below = [comp(D0, "AFTER_SALES") for _ in range(WEEK.min_complaints)]
    value = it.score({"AFTER_SALES": len(below)}, CFG.sampling)
    assert value < WEEK.min_score
    assert week_candidates(candidates_of(below, D0 + days(30))) == []


def test_a_product_inspected_within_the_period_is_not_recommended() -> None:
    complaints = week_hotspot(D0)
    first_end = midnight(D0 + days(1))
    period = CFG.sampling.inspected_within_days * 86_400_000

    def first_window(inspected: int) -> list[it.SamplingCandidate]:
        found = candidates_of(complaints, FAR, inspections=[inspected])
        return [c for c in week_candidates(found) if c.window.end_ms == first_end]

    assert len(week_candidates(candidates_of(complaints, FAR))) == 7  # without inspections
    assert first_window(first_end - period) == []  # exactly the period before: excluded
    older = first_end - period - 1
    assert [c.last_sampled_ms for c in first_window(older)] == [older]
    # an inspection after the window's end does not reach back into it
    assert [c.last_sampled_ms for c in first_window(first_end)] == [None]


def test_ranking_is_by_score_then_complaints_then_product_key() -> None:
    hot = [comp(D0, "COUNTERFEIT", key="b|B2") for _ in range(8)]
    tie_a = week_hotspot(D0, key="a|A1")
    tie_c = week_hotspot(D0, key="c|C3")
    found: list[it.SamplingCandidate] = []
    for group in (tie_c, hot, tie_a):
        found += candidates_of(group, FAR)
    ranked = it.rank_candidates(reversed(found), CFG)
    first_end = midnight(D0 + days(1))
    first_week = it.Window(7, first_end - 7 * DAY, first_end)
    week = [r for r in ranked if r.candidate.window == first_week]
    assert [(r.rank, r.candidate.product_key) for r in week] == [
        (1, "b|B2"),
        (2, "a|A1"),
        (3, "c|C3"),
    ]
    assert it.rank_candidates(found, CFG) == ranked


def test_counts_cross_platforms_and_channels_and_examples_weigh_first() -> None:
    complaints = [
        comp(D0, "OTHER", platform="jd"),
        comp(D0, "QUALITY", platform="tmall"),
        comp(D0, "QUALITY", platform="jd", channel="HOTLINE_12315", cid="H-1"),
        *[comp(D0, "COUNTERFEIT", platform="suning") for _ in range(5)],
    ]
    found = week_candidates(candidates_of(complaints, FAR))
    assert len(found) == 7
    c = found[0]
    assert c.counts_by_platform == {"jd": 2, "suning": 5, "tmall": 1}
    assert c.counts_by_channel == {"HOTLINE_12315": 1, "PLATFORM": 7}
    assert len(c.example_complaint_ids) == CFG.sampling.max_examples
    assert "12315:H-1" in c.example_complaint_ids  # high weight, early
    assert complaints[0].key not in c.example_complaint_ids  # OTHER weighs least


def test_the_product_key_is_enforces() -> None:
    record = _complaint_record(brand="美的", model="ＭＫ－ＨＪ１７０５")
    assert it.complaint_fact(record, "x/0/1", MATCHING).product_key == MATCHING.product_key(
        "Midea", "MK-HJ1705"
    )
    # no model: the one model code of the product name
    from_name = _complaint_record(brand="Midea", model=None, product_name="美的电水壶 MK-HJ1705")
    assert it.complaint_fact(from_name, "x/0/2", MATCHING).product_key == MATCHING.product_key(
        "Midea", "MKHJ1705"
    )
    assert it.complaint_fact(_complaint_record(brand=None), "x/0/3", MATCHING).product_key is None
    # neither: the GTIN's key, as enforce keys a GTIN (GTIN-13 zero-padded to 14 digits)
    barcode = _complaint_record(brand=None, model=None, gtin="6901234567892")
    assert it.complaint_fact(barcode, "x/0/4", MATCHING).product_key == "gtin:06901234567892"
    # a brand and model win over a GTIN: one product, one key
    both = _complaint_record(gtin="6901234567892")
    assert it.complaint_fact(both, "x/0/5", MATCHING).product_key == MATCHING.product_key(
        "Midea", "MK-HJ1705"
    )
    bad = _complaint_record(brand=None, model=None, gtin="6901234567890")  # check digit wrong
    assert it.complaint_fact(bad, "x/0/6", MATCHING).product_key is None


# ------------------------------------------------------------------ compensation-first


def period_end(day: date) -> int:
    return midnight(day + days(RULES.cfg.unresolved_days + 1))


def claim(c: it.ComplaintFact, *more: it.ComplaintFact) -> it.ClaimState:
    state = it.ClaimState()
    for version in (c, *more):
        state.add(version, RULES)
    return state


def tracked(task: dict[str, Any], *versions: it.ComplaintFact, clock_ms: int = 0) -> Status:
    """Comply's status of a compensation-first task, given these versions of its claim."""
    ev = it.ClaimEvidence()
    ev.add_task(TaskFact.of(task, "omm.tasks.tmall/0/7", task["issued_at"]))
    for version in versions:
        ev.add_complaint(version)
    ev.advance_clock(clock_ms)
    [status] = ev.changes(RULES)
    return status


def status_of(state: it.ClaimState, clock_ms: int) -> str:
    assert state.task is not None and state.complaint is not None
    return tracked(state.task, state.complaint, clock_ms=clock_ms).status


def test_a_claim_unresolved_past_the_period_becomes_a_task_on_its_platform() -> None:
    c = comp(D0, "QUALITY", cid="C-77")
    state = claim(c)
    decided = period_end(D0) + LATE_MS
    assert state.next_timer_ms(RULES) == decided
    assert state.advance(decided - 1, RULES) == []
    [task] = state.advance(decided, RULES)
    assert task["kind"] == "COMPENSATION_FIRST" and task["state"] == "ISSUED"
    assert task["platform"] == "tmall" and task["complaint_id"] == "tmall:C-77"
    assert task["issued_at"] == decided
    issued = datetime.fromtimestamp(decided / 1000, UTC)
    deadline = CFG.calendar.add_working_days(issued, RULES.cfg.deadline_working_days).at
    assert task["deadline_at"] == int(deadline.timestamp() * 1000)
    # the same complaint is the same task, whenever and however often it is decided
    assert task["task_id"] == claim(c).advance(ms(FAR), RULES)[0]["task_id"]
    assert state.advance(ms(FAR), RULES) == []


def test_resolved_just_before_the_period_ends_is_no_task_and_at_its_end_is() -> None:
    end = period_end(D0)
    before = comp(D0, cid="C-1", status="RESOLVED", resolved_ms=end - 1)
    assert claim(before).advance(ms(FAR), RULES) == []
    at_end = comp(D0, cid="C-2", status="RESOLVED", resolved_ms=end)
    assert len(claim(at_end).advance(ms(FAR), RULES)) == 1


def test_a_period_ending_on_a_rest_day_or_holiday_ends_on_the_next_working_day() -> None:
    assert RULES.cfg.unresolved_days == 7  # the dates below assume it
    # received Monday 2 March: the 7th day is Monday 9 March, a working day
    assert RULES.period_end_ms(comp(D0)) == midnight(date(2026, 3, 10))
    # received Saturday 7 March: the 7th day is a Saturday, the period runs to Monday 16
    assert RULES.period_end_ms(comp(date(2026, 3, 7))) == midnight(date(2026, 3, 17))
    # received Saturday 28 March: the 7th day is Saturday 4 April, the Qingming holiday
    # runs to Monday 6 April, so the last day is Tuesday 7 April
    assert RULES.period_end_ms(comp(date(2026, 3, 28))) == midnight(date(2026, 4, 8))


def test_a_platform_not_bound_by_compensation_first_gets_no_task() -> None:
    assert "suning" not in RULES.bound_platforms and "tmall" in RULES.bound_platforms
    assert claim(comp(D0, platform="suning")).advance(ms(FAR), RULES) == []
    assert claim(comp(D0, "PRIVACY")).advance(ms(FAR), RULES) == []  # not a claim


def test_a_resolution_by_the_deadline_completes_the_task_on_time() -> None:
    c = comp(D0, cid="C-5")
    state = claim(c)
    [task] = state.advance(ms(FAR), RULES)
    deadline = task["deadline_at"]
    assert status_of(state, deadline - 1) == "ISSUED"
    assert status_of(state, deadline) == "OVERDUE"
    on_time = claim(c, c._replace(status="RESOLVED", resolved_ms=deadline, evidence="r/0/1"))
    on_time.advance(ms(FAR), RULES)
    assert status_of(on_time, ms(FAR)) == "COMPLETED_ON_TIME"
    late = claim(c, c._replace(status="RESOLVED", resolved_ms=deadline + 1, evidence="r/0/2"))
    late.advance(ms(FAR), RULES)
    assert status_of(late, ms(FAR)) == "COMPLETED_LATE"


def test_comply_follows_the_claim_whatever_order_its_versions_come_in() -> None:
    c = comp(D0, cid="C-6")
    [task] = claim(c).advance(ms(FAR), RULES)
    deadline = task["deadline_at"]
    assert tracked(task, c, clock_ms=deadline - 1).status == "ISSUED"
    overdue = tracked(task, c, clock_ms=deadline)
    assert (overdue.status, overdue.evidence_kind, overdue.evidence_ms) == (
        "OVERDUE",
        "DEADLINE",
        deadline,
    )
    assert overdue.task_kind == "COMPENSATION_FIRST" and overdue.complaint_id == "tmall:C-6"
    closed = c._replace(status="CLOSED", resolved_ms=deadline + 5, evidence="r/0/6")
    for versions in ((c, closed), (closed, c)):
        late = tracked(task, *versions, clock_ms=deadline)
        assert (late.status, late.first_outcome) == ("COMPLETED_LATE", "OVERDUE")
        assert (late.evidence_kind, late.evidence_ref, late.completed_ms) == (
            "COMPLAINT",
            "r/0/6",
            deadline + 5,
        )
    # a complaint still in progress does not end the claim
    busy = c._replace(status="IN_PROGRESS", resolved_ms=None, evidence="r/0/7")
    assert tracked(task, c, busy, clock_ms=deadline).status == "OVERDUE"
    # a withdrawal record withdraws it, read before or after the issue
    gone = {**task, "state": "WITHDRAWN", "reason": "withdrawn: resolved in time"}
    ev = it.ClaimEvidence()
    ev.add_task(TaskFact.of(gone, "t/0/9", task["issued_at"] + 1))
    ev.add_task(TaskFact.of(task, "t/0/8", task["issued_at"]))
    [withdrawn] = ev.changes(RULES)
    assert (withdrawn.status, withdrawn.note) == ("WITHDRAWN", "withdrawn: resolved in time")
    assert ev.changes(RULES) == []  # published once


def test_a_resolution_before_the_period_end_read_after_the_task_withdraws_it() -> None:
    c = comp(D0, cid="C-9")
    state = claim(c)
    [issued] = state.advance(ms(FAR), RULES)
    resolved = c._replace(status="RESOLVED", resolved_ms=period_end(D0) - 1, evidence="r/0/9")
    [withdrawn] = state.add(resolved, RULES)
    assert withdrawn["task_id"] == issued["task_id"] and withdrawn["state"] == "WITHDRAWN"
    assert status_of(state, ms(FAR)) == "WITHDRAWN"


def test_a_12315_complaint_about_a_bound_platform_is_a_task_to_that_platform() -> None:
    [task] = claim(comp(D0, platform="jd", channel="HOTLINE_12315", cid="H-9")).advance(
        ms(FAR), RULES
    )
    assert task["platform"] == "jd" and task["complaint_id"] == "12315:H-9"


def test_versions_of_a_claim_in_any_order_end_the_same() -> None:
    c = comp(D0, cid="C-3")
    resolved = c._replace(status="RESOLVED", resolved_ms=period_end(D0) - 5, evidence="r/0/3")
    assert claim(c, resolved).advance(ms(FAR), RULES) == []
    assert claim(resolved, c).advance(ms(FAR), RULES) == []


# ------------------------------------------------------------------ arrival order


def _in_time_order(
    state: it.SellerComplaints | it.ProductComplaints, complaints: list[it.ComplaintFact]
) -> list[Any]:
    out: list[Any] = []
    for c in sorted(complaints, key=lambda c: (c.received_ms, c.key)):
        out += state.add(c, CFG)
        out += state.advance(c.received_ms, CFG)
    return out + state.advance(ms(FAR), CFG)


def _shuffled_within_lateness(
    state: it.SellerComplaints | it.ProductComplaints,
    complaints: list[it.ComplaintFact],
    rnd: random.Random,
) -> list[Any]:
    """Each complaint read at most the allowed lateness after it was received, in any order:
    the watermark moves to (latest received - lateness) as records come in."""
    order = sorted(complaints, key=lambda c: c.received_ms + rnd.randrange(LATE_MS + 1))
    out: list[Any] = []
    seen = -(2**62)
    for c in order:
        out += state.add(c, CFG)
        seen = max(seen, c.received_ms)
        out += state.advance(seen - LATE_MS, CFG)
    return out + state.advance(ms(FAR), CFG)


complaint_sets = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=45),  # day
        st.integers(min_value=0, max_value=23),  # hour
        st.sampled_from(["QUALITY", "COUNTERFEIT", "RETURN_REFUSED", "OTHER", "AFTER_SALES"]),
        st.sampled_from(["tmall", "jd"]),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(complaint_sets, st.randoms(use_true_random=False))
def test_arrival_order_within_the_lateness_gives_the_same_outputs(
    raw: list[tuple[int, int, str, str]], rnd: random.Random
) -> None:
    complaints = [
        comp(D0 + days(d), issue, platform=platform, cid=f"C-{i}", hour=hour)
        for i, (d, hour, issue, platform) in enumerate(raw)
    ]
    for make in (it.SellerComplaints, it.ProductComplaints):
        expected = _in_time_order(make(), complaints)
        state = make()
        assert _shuffled_within_lateness(state, complaints, rnd) == expected
        assert state.late == 0


# ------------------------------------------------------------------ records and personal data

CONSUMER = "ps:3f9a0c5d"
TEXT = "张三 13800138000 zhang@example.com 水壶漏电"


def _complaint_record(**over: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "complaint_id": "C-2026-000183",
        "platform": "tmall",
        "channel": "PLATFORM",
        "consumer_id": CONSUMER,
        "seller_id": "shop-1",
        "listing_id": "L-1",
        "product_name": "张三买的水壶",
        "brand": "Midea",
        "model": "MK-HJ1705",
        "gtin": None,
        "issue_type": "QUALITY",
        "text": TEXT,
        "status": "OPEN",
        "received_at": datetime(2026, 3, 2, 2, tzinfo=UTC),
        "resolved_at": None,
    }
    record.update(over)
    return record


def test_every_output_encodes_with_its_contract_and_carries_no_personal_data() -> None:
    registry = SchemaRegistry.load()
    facts = [
        it.complaint_fact(
            _complaint_record(complaint_id=f"C-{i}", consumer_id=f"{CONSUMER}-{i}"),
            f"c/0/{i}",
            MATCHING,
        )
        for i in range(max(LEADS.threshold, 8))
    ]
    seller = it.SellerComplaints()
    product = it.ProductComplaints()
    for f in facts:
        seller.add(f, CFG)
        product.add(f, CFG)
    leads = seller.advance(ms(FAR), CFG)
    recs = it.rank_candidates(product.advance(ms(FAR), CFG), CFG)
    tasks = claim(facts[0]).advance(ms(FAR), RULES)
    assert leads and recs and tasks
    computed = ms(FAR)
    encoded = [
        *(("case_lead", lead.to_record(computed)) for lead in leads),
        *(("sampling_recommendation", r.to_record(computed)) for r in recs),
        *(("task", t) for t in tasks),
    ]
    for entity, record in encoded:
        _, decoded = registry.decode(registry.encode(entity, record), entity)
        text = json.dumps(decoded, default=str, ensure_ascii=False)
        for secret in (CONSUMER, "张三", "13800138000", "zhang@example.com", "漏电", "水壶"):
            assert secret not in text, f"{entity} carries {secret!r}"
        assert "tmall:C-0" in text  # the evidence is there, as complaint ids
    assert encoded[0][1]["complaint_ids"] == sorted(f.key for f in facts)


def test_one_consumer_counts_at_most_the_cap_toward_a_hotspot_or_a_case() -> None:
    cap = LEADS.max_complaints_per_consumer
    needed = LEADS.threshold
    # one consumer's complaints one over the cap, the rest from distinct consumers
    repeat = [comp(D0, hour=8 + i, consumer="tmall:ps-1") for i in range(cap + 1)]
    others = [comp(D0, consumer=f"tmall:ps-{i + 2}") for i in range(needed - cap - 1)]
    assert len(repeat + others) == needed
    assert len(it.capped(repeat + others, cap)) == needed - 1
    assert _leads(repeat + others) == []
    # one more consumer: a lead, without the complaint over the cap (ps-1's latest)
    [lead] = _leads([*repeat, *others, comp(D0, consumer="tmall:ps-99")])
    assert repeat[-1].key not in lead.complaint_ids and len(lead.complaint_ids) == needed
    # a complaint without a consumer is never capped
    assert len(it.capped([comp(D0) for _ in range(cap + 3)], cap)) == cap + 3


def test_one_consumer_alone_makes_no_hotspot() -> None:
    cap = CFG.sampling.max_complaints_per_consumer
    week = next(w for w in CFG.sampling.windows if w.days == 7)
    # enough QUALITY complaints for the 7-day window, all from one consumer
    n = max(week.min_complaints, math.ceil(week.min_score / CFG.sampling.weights["QUALITY"]))
    assert n > cap
    one = [comp(D0, hour=8 + i, consumer="tmall:ps-7") for i in range(n)]
    many = [c._replace(consumer=f"tmall:ps-{i}") for i, c in enumerate(one)]
    assert _recommended(many, 7) and not _recommended(one, 7)


def test_consumers_are_told_apart_within_a_platform_or_12315() -> None:
    record = _complaint_record(consumer_id="ps-1")
    assert it.complaint_fact(record, "x/0/1").consumer == "tmall:ps-1"
    hotline = it.complaint_fact({**record, "channel": "HOTLINE_12315"}, "x/0/2")
    assert hotline.consumer == "12315:ps-1"
    other = it.complaint_fact({**record, "platform": "jd"}, "x/0/3")
    assert len(it.capped([it.complaint_fact(record, "x/0/1"), hotline, other], 1)) == 3


def _recommended(complaints: list[it.ComplaintFact], days: int) -> bool:
    state = it.ProductComplaints()
    for c in complaints:
        state.add(c, CFG)
    return any(c.window.days == days for c in state.advance(ms(FAR), CFG))


def _leads(complaints: list[it.ComplaintFact]) -> list[it.CaseLead]:
    state = it.SellerComplaints()
    for c in complaints:
        state.add(c, CFG)
    return state.advance(ms(FAR), CFG)


def test_config_and_states_pickle_for_beam_workers() -> None:
    state = it.SellerComplaints()
    for c in [comp(D0) for _ in range(LEADS.threshold)]:
        state.add(c, CFG)
    for obj in (CFG, RULES, state, claim(comp(D0))):
        assert pickle.loads(pickle.dumps(obj)) == obj
    copy = pickle.loads(pickle.dumps(state))
    assert copy.advance(ms(FAR), CFG) == state.advance(ms(FAR), CFG) != []


def test_config_refuses_unknown_issue_types_and_missing_weights() -> None:
    with pytest.raises(ValidationError, match="unknown issue type"):
        it.CaseLeadConfig(
            window_days=30,
            threshold=5,
            violation_issue_types=("FRAUD",),
            return_refused_excluded_categories=(),
            count_return_refused_without_category=False,
        )
    with pytest.raises(ValidationError, match="missing"):
        it.SamplingConfig(
            windows=(WEEK,),
            weights={"QUALITY": 1.0},
            inspected_within_days=0,
            max_examples=1,
            max_recommendations=1,
        )


def test_the_loader_reads_intel_yaml_with_its_calendar_and_refuses_two_time_zones(
    tmp_path: Path,
) -> None:
    assert CFG.calendar.timezone == CFG.credit.timezone == "Asia/Shanghai"
    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config)
    path = config / "intel.yaml"
    path.write_text(
        path.read_text("utf-8").replace("timezone: Asia/Shanghai", "timezone: Europe/Berlin"),
        "utf-8",
    )
    with pytest.raises(ValidationError, match="differs from the calendar"):
        load_intel(config)
