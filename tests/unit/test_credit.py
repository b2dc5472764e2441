"""Serious-violation list (pipelines/rules/credit.py): counts, periods, removal, late penalties."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from omm.config import load_intel
from pipelines.rules import credit as cr
from schemas.registry import SchemaRegistry
from tests.unit.test_enforcement_order import CONFIG_DIR

CFG = load_intel(CONFIG_DIR).credit
CST = ZoneInfo("Asia/Shanghai")
LATE_MS = CFG.allowed_lateness_days * 86_400_000
SAFETY, ADS, UNFAIR, TM, OTHER = (
    "PRODUCT_SAFETY",
    "FALSE_ADVERTISING",
    "UNFAIR_COMPETITION",
    "TRADEMARK_INFRINGEMENT",
    "OTHER",
)
ENTERPRISE = "91440606MA4UJ3XX0K"


def ms(day: date, hour: int = 10) -> int:
    return int(datetime(day.year, day.month, day.day, hour, tzinfo=CST).timestamp() * 1000)


def start_of(day: date) -> int:
    return ms(day, 0)


def pen(pid: str, ground: str, day: date, published_after_days: int = 5) -> cr.PenaltyFact:
    return cr.PenaltyFact(
        penalty_id=pid,
        enterprise_id=ENTERPRISE,
        enterprise_name="佛山某电器有限公司",
        ground=ground,
        decided_ms=ms(day),
        published_ms=ms(day + timedelta(days=published_after_days)),
        platform="tmall",
        seller_id="shop-7",
    )


def run(penalties: list[cr.PenaltyFact], until: date) -> list[cr.CreditEvent]:
    """Read the penalties in the order given, the watermark following publication, then
    let the watermark reach ``until``."""
    state = cr.EnterpriseState()
    out: list[cr.CreditEvent] = []
    for p in penalties:
        out += state.add(p, CFG)
        out += state.advance(p.published_ms, CFG)
    out += state.advance(ms(until), CFG)
    return out


def kinds(events: list[cr.CreditEvent]) -> list[tuple[str, date]]:
    return [
        (e.event, datetime.fromtimestamp(e.effective_ms / 1000, UTC).astimezone(CST).date())
        for e in events
    ]


FAR = date(2040, 1, 1)


# ------------------------------------------------------------------ the 2-year rule


def test_three_penalties_on_the_listed_grounds_within_two_years_list_the_enterprise() -> None:
    events = run(
        [
            pen("P1", SAFETY, date(2024, 3, 15)),
            pen("P2", ADS, date(2025, 1, 10)),
            pen("P3", UNFAIR, date(2025, 6, 1)),
        ],
        until=date(2026, 1, 1),
    )
    assert kinds(events) == [(cr.LISTED, date(2025, 6, 1))]
    listed = events[0]
    assert listed.penalty_ids == ("P1", "P2", "P3")
    assert listed.ground == (
        "3 penalties within 2 years on PRODUCT_SAFETY/FALSE_ADVERTISING/UNFAIR_COMPETITION"
    )
    assert listed.sellers == ("tmall:shop-7",)
    assert listed.event_id == cr.credit_event_id(ENTERPRISE, cr.LISTED, date(2025, 6, 1))


def test_the_third_penalty_on_the_last_day_of_two_years_counts() -> None:
    first = date(2024, 3, 15)
    events = run(
        [
            pen("P1", SAFETY, first),
            pen("P2", SAFETY, date(2025, 3, 1)),
            pen("P3", SAFETY, date(2026, 3, 15)),
        ],
        until=date(2027, 1, 1),
    )
    assert kinds(events) == [(cr.LISTED, date(2026, 3, 15))]


def test_the_third_penalty_one_day_outside_two_years_does_not_list() -> None:
    events = run(
        [
            pen("P1", SAFETY, date(2024, 3, 15)),
            pen("P2", SAFETY, date(2025, 3, 1)),
            pen("P3", SAFETY, date(2026, 3, 16)),
        ],
        until=date(2027, 1, 1),
    )
    assert events == []


def test_two_penalties_or_other_grounds_do_not_list() -> None:
    assert run([pen("P1", SAFETY, date(2025, 1, 1)), pen("P2", ADS, date(2025, 2, 1))], FAR) == []
    # OTHER counts towards neither rule, trademark not towards the 3-in-2
    mixed = [
        pen("P1", SAFETY, date(2025, 1, 1)),
        pen("P2", OTHER, date(2025, 2, 1)),
        pen("P3", OTHER, date(2025, 3, 1)),
        pen("P4", TM, date(2025, 4, 1)),
    ]
    assert run(mixed, FAR) == []


# ------------------------------------------------------------------ the 5-year trademark rule


def test_two_trademark_penalties_on_the_last_day_of_five_years_list() -> None:
    events = run(
        [pen("T1", TM, date(2021, 5, 20)), pen("T2", TM, date(2026, 5, 20))],
        until=date(2027, 1, 1),
    )
    assert kinds(events) == [(cr.LISTED, date(2026, 5, 20))]
    assert events[0].ground == "2 penalties within 5 years on TRADEMARK_INFRINGEMENT"
    assert events[0].penalty_ids == ("T1", "T2")


def test_two_trademark_penalties_one_day_outside_five_years_do_not_list() -> None:
    events = run(
        [pen("T1", TM, date(2021, 5, 20)), pen("T2", TM, date(2026, 5, 21))],
        until=date(2027, 1, 1),
    )
    assert events == []


def test_a_leap_day_period_ends_on_the_28th() -> None:
    assert cr.add_years(date(2024, 2, 29), 2) == date(2026, 2, 28)
    assert cr.within(date(2024, 2, 29), date(2026, 2, 28), 2)
    assert not cr.within(date(2024, 2, 29), date(2026, 3, 1), 2)


# ------------------------------------------------------------------ removal


LISTING_PENALTIES = [
    pen("P1", SAFETY, date(2024, 3, 1)),
    pen("P2", SAFETY, date(2024, 9, 1)),
    pen("P3", ADS, date(2025, 3, 15)),
]


def test_removal_after_five_years_without_a_repeat_and_not_before() -> None:
    removal = date(2030, 3, 16)  # the period from 15 March 2025 ends with 15 March 2030
    just_before = run(LISTING_PENALTIES, until=removal - timedelta(days=1))
    assert kinds(just_before) == [(cr.LISTED, date(2025, 3, 15))]
    # the removal is due on its day, and final once the allowed lateness has passed
    state = cr.EnterpriseState()
    for p in LISTING_PENALTIES:
        state.add(p, CFG)
    assert [e.event for e in state.advance(start_of(removal) + LATE_MS - 1, CFG)] == [cr.LISTED]
    assert state.next_timer_ms(CFG) == start_of(removal) + LATE_MS
    removed = state.advance(start_of(removal) + LATE_MS, CFG)
    assert kinds(removed) == [(cr.REMOVED, removal)]
    assert removed[0].listed_event_id == just_before[0].event_id
    assert removed[0].penalty_ids == ("P1", "P2", "P3")
    assert removed[0].effective_ms == start_of(removal)


def test_a_repeat_restarts_the_removal_clock() -> None:
    repeat = pen("P4", UNFAIR, date(2027, 6, 30))
    events = run([*LISTING_PENALTIES, repeat], until=FAR)
    assert kinds(events) == [(cr.LISTED, date(2025, 3, 15)), (cr.REMOVED, date(2032, 7, 1))]
    assert events[1].penalty_ids == ("P1", "P2", "P3", "P4")
    # not removed at the old date
    assert kinds(run([*LISTING_PENALTIES, repeat], until=date(2031, 1, 1))) == [
        (cr.LISTED, date(2025, 3, 15))
    ]


def test_a_penalty_on_another_ground_is_no_repeat() -> None:
    events = run([*LISTING_PENALTIES, pen("P4", OTHER, date(2027, 6, 30))], until=FAR)
    assert kinds(events) == [(cr.LISTED, date(2025, 3, 15)), (cr.REMOVED, date(2030, 3, 16))]


def test_after_removal_only_new_penalties_list_again() -> None:
    old_and_new = [
        *LISTING_PENALTIES,
        pen("P4", SAFETY, date(2030, 6, 1)),
        pen("P5", SAFETY, date(2030, 9, 1)),
    ]
    assert kinds(run(old_and_new, FAR)) == [
        (cr.LISTED, date(2025, 3, 15)),
        (cr.REMOVED, date(2030, 3, 16)),
    ]
    third = pen("P6", ADS, date(2031, 1, 5))
    events = run([*old_and_new, third], FAR)
    assert kinds(events)[2] == (cr.LISTED, date(2031, 1, 5))
    assert events[2].penalty_ids == ("P4", "P5", "P6")


# ------------------------------------------------------------------ late penalties


def test_nothing_is_emitted_before_the_allowed_lateness_has_passed() -> None:
    state = cr.EnterpriseState()
    for p in LISTING_PENALTIES:
        assert state.add(p, CFG) == []
    listed_day = date(2025, 3, 15)
    day_after = start_of(listed_day + timedelta(days=1))  # a listing rests on its whole day
    assert state.advance(day_after + LATE_MS - 1, CFG) == []
    assert kinds(state.advance(day_after + LATE_MS, CFG)) == [(cr.LISTED, listed_day)]


def test_a_penalty_read_within_the_lateness_moves_the_listing_to_its_true_day() -> None:
    # P0 was decided before P3 but published long after it, within the allowed lateness
    late = pen("P0", SAFETY, date(2025, 1, 20), published_after_days=CFG.allowed_lateness_days)
    in_order = run(sorted([*LISTING_PENALTIES, late], key=lambda p: p.decided_ms), FAR)
    read_late = run([*LISTING_PENALTIES, late], FAR)
    assert read_late == in_order
    assert kinds(read_late)[0] == (cr.LISTED, date(2025, 1, 20))


def test_a_penalty_read_after_its_day_was_published_is_late_and_rewrites_nothing() -> None:
    state = cr.EnterpriseState()
    for p in LISTING_PENALTIES:
        state.add(p, CFG)
    listed = state.advance(ms(date(2026, 1, 1)), CFG)
    assert kinds(listed) == [(cr.LISTED, date(2025, 3, 15))]
    assert state.add(pen("P0", SAFETY, date(2025, 1, 20), 400), CFG) == []
    assert state.late == 1
    assert state.advance(ms(date(2026, 6, 1)), CFG) == []
    assert state.emitted == listed


penalty_sets = st.lists(
    st.tuples(
        st.sampled_from([SAFETY, ADS, UNFAIR, TM, OTHER]),
        st.integers(min_value=0, max_value=4000),  # days after 1 Jan 2020
        st.integers(min_value=0, max_value=CFG.allowed_lateness_days),  # publication delay
    ),
    max_size=9,
)


@settings(max_examples=150, deadline=None)
@given(penalty_sets, st.randoms(use_true_random=False))
def test_arrival_order_within_the_lateness_changes_nothing(
    raw: list[tuple[str, int, int]], rnd: random.Random
) -> None:
    penalties = [
        pen(f"P{i}", ground, date(2020, 1, 1) + timedelta(days=d), delay)
        for i, (ground, d, delay) in enumerate(raw)
    ]
    by_publication = sorted(penalties, key=lambda p: (p.published_ms, p.penalty_id))
    shuffled = list(penalties)
    rnd.shuffle(shuffled)
    # any order in which a penalty is read no later than allowed lateness after its day
    expected = run(by_publication, FAR)
    assert run(sorted(penalties, key=lambda p: p.decided_ms), FAR) == expected
    state = cr.EnterpriseState()
    for p in shuffled:
        state.add(p, CFG)
    assert state.advance(ms(FAR), CFG) == expected
    assert state.late == 0


# ------------------------------------------------------------------ flags and records


def test_a_listing_flags_the_sellers_live_listings_and_a_removal_withdraws_the_flag() -> None:
    listed, removed = run(LISTING_PENALTIES, FAR)
    mine = cr.SellerListing("tmall", "L-1", "shop-7", "omm.valid.listings/0/7")
    other = cr.SellerListing("tmall", "L-2", "shop-8", "omm.valid.listings/0/8")
    flag = cr.flag_task(listed, mine, CFG)
    assert flag is not None
    assert flag["kind"] == "FLAG" and flag["state"] == "ISSUED"
    assert flag["deadline_at"] == flag["issued_at"] == listed.effective_ms
    assert flag["credit_event_id"] == listed.event_id
    assert "not a takedown" in flag["reason"]
    assert cr.flag_task(listed, other, CFG) is None
    unflag = cr.flag_task(removed, mine, CFG)
    assert unflag is not None
    assert unflag["task_id"] == flag["task_id"] and unflag["state"] == "WITHDRAWN"
    # the same listing and event are the same task, whenever computed
    assert flag["task_id"] == cr.flag_task_id("tmall", "L-1", listed.event_id)


def test_records_encode_with_the_contracts() -> None:
    registry = SchemaRegistry.load()
    listed, removed = run(LISTING_PENALTIES, FAR)
    for event in (listed, removed):
        record = event.to_record(computed_ms=ms(date(2031, 1, 1)))
        _, decoded = registry.decode(registry.encode("credit_event", record), "credit_event")
        assert decoded["event_id"] == event.event_id
        assert decoded["penalty_ids"] == list(event.penalty_ids)
    flag = cr.flag_task(listed, cr.SellerListing("tmall", "L-1", "shop-7", "x/0/1"), CFG)
    assert flag is not None
    _, decoded = registry.decode(registry.encode("task", flag), "task")
    assert decoded["kind"] == "FLAG"


def test_unknown_grounds_are_refused_in_config() -> None:
    with pytest.raises(ValidationError, match="unknown penalty ground"):
        cr.CreditRule(grounds=("SAFETY",), count=3, years=2)
