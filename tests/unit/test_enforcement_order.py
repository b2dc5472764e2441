"""The per-key enforce fold decides by event time, whatever the arrival order (issue 8, defect 1).

Bounded runs fold a key's events in event-time order (``fold_in_event_order``):
the records must be the same, field for field, for every arrival order. The
streaming fold (``fold``, events as they arrive) cannot wait for the future:
it must end with the same tasks in force, withdrawing with a reason what late
evidence shows should not have been issued. Both are checked against an oracle
written independently of the fold: a task is due iff the listing was on sale
at some moment at or after the result's publication (its latest observation
at or before that moment is ACTIVE; a removal at the same millisecond wins).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omm.generate import CATALOG, FeedGenerator
from pipelines.rules.enforcement import (
    TASK,
    EnforcementConfig,
    JoinEvent,
    JoinState,
    ListingFact,
    ResultFact,
    apply,
    compact_observations,
    fold,
    fold_in_event_order,
    listing_fact,
    load_enforcement_config,
    result_fact,
    step,
)

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
CFG: EnforcementConfig = load_enforcement_config(CONFIG_DIR)
COOKER = CATALOG[1]  # Midea KX-2000A
KEY = "bm:midea|KX2000"  # its brand+model key (see test_enforcement.py)
BASE = datetime(2026, 3, 5, 0, 0, tzinfo=UTC)
PUBLISHED = BASE + timedelta(hours=2)


def at(minutes: int) -> datetime:
    return BASE + timedelta(minutes=minutes)


def observation(
    n: int,
    minutes: int,
    active: bool = True,
    *,
    platform: str = "tmall",
    seller: str = "tmall-s007",
    model: str = "KX-2000A",
    position: int | None = None,
) -> ListingFact:
    record = FeedGenerator(seed=n, now=BASE).listing(platform, n, product=COOKER)
    record.update(
        {
            "seller_id": seller,
            "model": model,
            "manufacturer": COOKER.manufacturer,
            "status": "ACTIVE" if active else "REMOVED",
            "observed_at": at(minutes),
        }
    )
    if model != COOKER.model:  # a look-alike: no GTIN, no labelled producer (-> review)
        record.update({"gtin": None, "manufacturer": None, "title": f"Midea 电饭煲 {model}"})
    return listing_fact(record, f"omm.valid.listings/{n % 3}/{position or minutes}")


def result(
    n: int = 1,
    minutes: int = 120,
    verdict: str = "FAIL",
    status: str = "PRELIMINARY",
    platform: str | None = None,
    position: int = 0,
) -> ResultFact:
    record = FeedGenerator(seed=n, now=BASE).inspection(
        n, product=COOKER, verdict=verdict, platform=platform
    )
    record.update({"published_at": at(minutes), "status": status})
    return result_fact(record, f"omm.valid.inspections/0/{position}")


def tasks(emitted: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [record for kind, record in emitted if kind == TASK]


def in_force(emitted: list[tuple[str, dict[str, Any]]]) -> set[str]:
    """Task ids whose latest record is ISSUED."""
    latest: dict[str, str] = {}
    for task in tasks(emitted):
        latest[task["task_id"]] = task["state"]
    return {tid for tid, state in latest.items() if state == "ISSUED"}


# ------------------------------------------------------------------ the defect, pinned


def test_listing_removed_before_the_result_gets_no_task_even_if_the_removal_is_read_late() -> None:
    on_sale = observation(1, minutes=0)  # T-2h
    removed = observation(1, minutes=60, active=False)  # T-1h, before the result
    fail = result(minutes=120)

    read_in_time = fold_in_event_order(KEY, [on_sale, removed, fail], CFG)
    read_late = fold_in_event_order(KEY, [on_sale, fail, removed], CFG)  # the defect's order

    assert read_in_time == read_late == []


def test_streaming_fold_withdraws_what_late_evidence_shows_was_never_due() -> None:
    on_sale = observation(1, minutes=0)
    removed = observation(1, minutes=60, active=False)
    _, emitted = fold(KEY, [on_sale, result(minutes=120), removed], CFG)

    issued, withdrawn = (
        [t for t in tasks(emitted) if t["state"] == "ISSUED"],
        [t for t in tasks(emitted) if t["state"] == "WITHDRAWN"],
    )
    assert {t["kind"] for t in issued} == {"DELIST", "REMEDIATION"}
    # the same tasks, withdrawn, each saying why
    assert sorted(t["task_id"] for t in withdrawn) == sorted(t["task_id"] for t in issued)
    for task in withdrawn:
        assert "already removed at 2026-03-05T01:00:00+00:00" in task["reason"]
        assert "before result SAMR-2026-00001" in task["reason"]
        assert task["evidence_ref"] == f"listing {removed.evidence}"
    assert in_force(emitted) == set()


def test_listing_on_sale_at_publication_keeps_its_task_when_removed_after() -> None:
    emitted = fold_in_event_order(
        KEY, [observation(1, 0), observation(1, 180, active=False), result(minutes=120)], CFG
    )
    (delist,) = [t for t in tasks(emitted) if t["kind"] == "DELIST"]
    assert delist["issued_at"] == PUBLISHED and delist["state"] == "ISSUED"


def test_relisting_after_the_result_is_issued_at_the_relisting() -> None:
    events = [
        observation(1, 0),
        observation(1, 60, active=False),
        result(minutes=120),
        observation(1, 150),
    ]
    (delist,) = [t for t in tasks(fold_in_event_order(KEY, events, CFG)) if t["kind"] == "DELIST"]
    assert delist["issued_at"] == at(150)
    assert delist["evidence_ref"].endswith(f"listing {events[3].evidence}")


def test_remediation_comes_from_the_sellers_earliest_listing_whatever_was_read_first() -> None:
    # two listings of one seller: the remediation task is the seller's, its
    # evidence the earliest matching listing's
    early = observation(1, 10, position=900)
    late = observation(2, 50, position=5)
    fail = result(minutes=120)
    first = fold_in_event_order(KEY, [late, fail, early], CFG)
    second = fold_in_event_order(KEY, [early, late, fail], CFG)
    assert first == second
    (remediation,) = [t for t in tasks(first) if t["kind"] == "REMEDIATION"]
    assert remediation["evidence_ref"].endswith(f"first listing {early.evidence}")
    assert remediation["issued_at"] == PUBLISHED


def test_step_and_apply_are_the_fold() -> None:
    events: list[JoinEvent] = [observation(1, 0), result(minutes=120), observation(2, 150)]
    state, emitted = JoinState(), []
    for event in events:
        change = step(KEY, state, event, CFG)
        emitted.extend(change.emitted)
        state = apply(state, change)
    folded_state, folded = fold(KEY, events, CFG)
    assert emitted == folded
    assert state == folded_state


# ------------------------------------------------------------------ an independent oracle


def _status_at(history: list[ListingFact], t: int) -> ListingFact | None:
    before = [o for o in history if o.observed_ms <= t]
    if not before:
        return None
    last = max(o.observed_ms for o in before)
    same = [o for o in before if o.observed_ms == last]
    # one instant, several observations: a removal wins; else (the fold's order by
    # content, for these worlds) the full "rice cooker" title over the look-alike's
    removed = [o for o in same if not o.active]
    proper = [o for o in same if o.model == COOKER.model]
    return removed[0] if removed else proper[0] if proper else same[0]


def due_delists(events: list[JoinEvent]) -> set[tuple[str, str]]:
    """(inspection, listing) pairs owed a DELIST: on sale at or after publication and matching.

    For this module's worlds: population FAILs reach every listing, COUNTERFEIT
    only seller tmall-s001 on tmall, PASS nothing; an overturned result's tasks
    are withdrawn (not in force); look-alike observations never get a DELIST.
    """
    listings: dict[str, list[ListingFact]] = {}
    for e in events:
        if isinstance(e, ListingFact):
            listings.setdefault(e.listing_id, []).append(e)
    versions: dict[str, list[ResultFact]] = {}
    for e in events:
        if isinstance(e, ResultFact):
            versions.setdefault(e.inspection_id, []).append(e)
    due = set()
    for inspection, vs in versions.items():
        if any(v.status == "OVERTURNED" for v in vs):
            continue
        r = vs[0]
        if r.verdict == "PASS":
            continue
        for lid, history in listings.items():
            times = {r.published_ms} | {
                o.observed_ms for o in history if o.observed_ms > r.published_ms
            }
            for t in sorted(times):
                o = _status_at(history, t)
                if o is None or not o.active or o.model != COOKER.model:
                    continue
                if r.verdict == "COUNTERFEIT" and (o.platform, o.seller_id) != (
                    "tmall",
                    "tmall-s001",
                ):
                    continue
                due.add((inspection, lid))
                break
    return due


def in_force_delists(emitted: list[tuple[str, dict[str, Any]]]) -> set[tuple[str, str]]:
    ids = in_force(emitted)
    return {
        (t["inspection_id"], t["listing_id"])
        for t in tasks(emitted)
        if t["kind"] == "DELIST" and t["task_id"] in ids
    }


# ------------------------------------------------------------------ generated worlds


@st.composite
def worlds(draw: st.DrawFn, distinct_times: bool = False) -> list[JoinEvent]:
    """One key's events: a few listings with histories (removals, re-listings,
    a look-alike spell, repeats) and results (FAIL, COUNTERFEIT, PASS, overturns)."""
    events: list[JoinEvent] = []
    position = 0
    for n in range(1, draw(st.integers(1, 4)) + 1):
        platform = draw(st.sampled_from(["tmall", "jd"]))
        seller = f"{platform}-s00{draw(st.integers(1, 2))}"
        count = draw(st.integers(1, 4))
        if distinct_times:
            times = draw(st.lists(st.integers(0, 24), min_size=count, max_size=count, unique=True))
        else:
            times = draw(st.lists(st.integers(0, 24), min_size=count, max_size=count))
        for minutes in times:
            position += 1
            events.append(
                observation(
                    n,
                    minutes * 10,
                    active=draw(st.booleans()),
                    platform=platform,
                    seller=seller,
                    model=draw(st.sampled_from(["KX-2000A", "KX-2000A", "KX-2000AS"])),
                    position=position,
                )
            )
    for n in range(1, draw(st.integers(1, 3)) + 1):
        verdict = draw(st.sampled_from(["FAIL", "FAIL", "COUNTERFEIT", "PASS"]))
        published = draw(st.integers(0, 24)) * 10
        platform = "tmall" if verdict == "COUNTERFEIT" else None
        events.append(result(n, published, verdict, platform=platform, position=n))
        if draw(st.booleans()) and verdict != "PASS":
            later = published + draw(st.integers(0, 12)) * 10
            events.append(
                result(n, later, verdict, status="OVERTURNED", platform=platform, position=10 + n)
            )
    return events


SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(data=st.data())
def test_bounded_fold_is_the_same_for_every_arrival_order(data: st.DataObject) -> None:
    events = data.draw(worlds())
    canonical = fold_in_event_order(KEY, events, CFG)
    for _ in range(3):
        arrival = data.draw(st.permutations(events))
        # ids and every field, in the same order
        assert fold_in_event_order(KEY, arrival, CFG) == canonical


@SETTINGS
@given(events=worlds())
def test_bounded_fold_issues_exactly_the_tasks_the_oracle_says_are_due(
    events: list[JoinEvent],
) -> None:
    emitted = fold_in_event_order(KEY, events, CFG)
    assert in_force_delists(emitted) == due_delists(events)
    # never a record for a listing that was not on sale at or after the result
    ever = {(t["inspection_id"], t["listing_id"]) for t in tasks(emitted) if t["kind"] == "DELIST"}
    overturned = {
        e.inspection_id for e in events if isinstance(e, ResultFact) and e.status == "OVERTURNED"
    }
    assert {p for p in ever if p[0] not in overturned} == due_delists(events)
    # every REMEDIATION stands for a seller with a DELIST of the same result
    for t in tasks(emitted):
        if t["kind"] == "REMEDIATION" and t["state"] == "ISSUED":
            assert any(
                d["kind"] == "DELIST"
                and (d["inspection_id"], d["platform"], d["seller_id"])
                == (t["inspection_id"], t["platform"], t["seller_id"])
                for d in tasks(emitted)
            )


@SETTINGS
@given(data=st.data())
def test_streaming_fold_ends_with_the_same_tasks_in_force_for_every_arrival_order(
    data: st.DataObject,
) -> None:
    # Each listing's observations at distinct times: of two observations of
    # the same listing in the same millisecond, a removal wins when both are
    # known; the streaming fold does not look back for one on every new
    # observation (that would read the key's whole state each time).
    events = data.draw(worlds(distinct_times=True))
    arrival = data.draw(st.permutations(events))
    _, emitted = fold(KEY, arrival, CFG)
    canonical = fold_in_event_order(KEY, events, CFG)
    assert in_force(emitted) == in_force(canonical)


@SETTINGS
@given(events=worlds())
def test_compacting_the_observations_changes_no_decision(events: list[JoinEvent]) -> None:
    listings = [e for e in events if isinstance(e, ListingFact)]
    results = [e for e in events if isinstance(e, ResultFact)]
    kept = compact_observations(listings)
    assert len(kept) <= len(listings)
    for probe in sorted({o.observed_ms for o in listings} | {r.published_ms for r in results}):
        for lid in {o.listing_id for o in listings}:
            full = _status_at([o for o in listings if o.listing_id == lid], probe)
            compact = _status_at([o for o in kept if o.listing_id == lid], probe)
            assert (full is None) == (compact is None)
            if full is not None and compact is not None:
                assert full.active == compact.active
                if full.active:  # what a decision reads of a live listing
                    assert (full.model, full.seller_id) == (compact.model, compact.seller_id)
    # and the streaming stage's state after compaction decides every later result alike
    state = JoinState(observations=tuple(kept))
    full_state = JoinState(observations=tuple(listings))
    for r in results:
        assert step(KEY, state, r, CFG).emitted == step(KEY, full_state, r, CFG).emitted


@pytest.mark.parametrize("late_first", [True, False])
def test_stale_version_read_after_its_overturn_issues_nothing(late_first: bool) -> None:
    fail, overturn = result(minutes=120), result(minutes=200, status="OVERTURNED", position=9)
    events: list[JoinEvent] = (
        [observation(1, 0), overturn, fail]
        if late_first
        else [
            observation(1, 0),
            fail,
            overturn,
        ]
    )
    _, emitted = fold(KEY, events, CFG)
    assert in_force(emitted) == set()
