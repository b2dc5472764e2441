"""A regulator's decisions on review items: which one is in force, what is still
undecided, and what a CONFIRM or REJECT does to the enforce fold, whatever order
the decisions, listings and results are read in.

The fold worlds and the oracle of tests/unit/test_enforcement_order.py are
reused, with decisions on the look-alike pairs added; the oracle here says what
a decision means independently of the fold: the latest decision on a pair wins;
REJECT: never a task; CONFIRM: a task if the pair ever met (confidently or not);
no decision: a task only for a confident match.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omm.generate import CATALOG, FeedGenerator
from pipelines.rules.enforcement import (
    REVIEW,
    JoinEvent,
    JoinState,
    ListingFact,
    ResultFact,
    apply,
    decision_keys,
    fold,
    fold_in_event_order,
    listing_fact,
    owning_key,
    result_keys,
    review_id,
    step,
    task_id,
)
from pipelines.rules.review import (
    DecisionFact,
    DecisionKind,
    decision_fact,
    dispute_decision,
    in_force,
    match_decision,
    undecided_disputes,
    undecided_reviews,
)
from schemas.registry import SchemaRegistry
from tests.unit.test_enforcement_order import (
    BASE,
    CFG,
    KEY,
    SETTINGS,
    _status_at,
    at,
    observation,
    result,
    tasks,
    worlds,
)
from tests.unit.test_enforcement_order import in_force as tasks_in_force

CONFIRM, REJECT = DecisionKind.CONFIRM, DecisionKind.REJECT
LOOK_ALIKE = "KX-2000AS"  # same brand, a suffix more: a match for review (0.45)


def decision(
    kind: DecisionKind,
    listing: ListingFact,
    res: ResultFact,
    minutes: int,
    *,
    n: int = 1,
    position: int = 0,
    by: str = "samr-officer-17",
) -> DecisionFact:
    """A decision on the pair as `omm review confirm|reject` publishes it."""
    record = match_decision(
        kind,
        {
            "review_id": review_id(listing.platform, listing.listing_id, res.inspection_id),
            "platform": listing.platform,
            "listing_id": listing.listing_id,
            "inspection_id": res.inspection_id,
        },
        {"brand": res.brand, "model": res.model, "gtin": res.gtin},
        decided_by=by,
        reason=f"{kind.value.lower()} #{n}",
        decided_at=at(minutes),
        decision_id=f"d-{n:04d}",
    )
    return decision_fact(record, f"omm.review.decisions/0/{position or n}")


def delists(emitted: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [t for t in tasks(emitted) if t["kind"] == "DELIST"]


def reviews(emitted: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [record for kind, record in emitted if kind == REVIEW]


# ------------------------------------------------------------------ which decision is in force


def test_the_latest_decision_wins_whatever_the_read_order() -> None:
    pair = (observation(1, 0, model=LOOK_ALIKE), result(minutes=120))
    first = decision(CONFIRM, *pair, minutes=200, n=1)
    second = decision(REJECT, *pair, minutes=260, n=2)
    assert in_force([first, second]) == in_force([second, first]) == {first.subject: second}


def test_decisions_on_the_same_millisecond_still_have_one_winner() -> None:
    pair = (observation(1, 0, model=LOOK_ALIKE), result(minutes=120))
    a = decision(CONFIRM, *pair, minutes=200, n=1)
    b = decision(REJECT, *pair, minutes=200, n=2)
    assert in_force([a, b]) == in_force([b, a])


def test_a_decision_record_is_a_valid_review_decision_and_reads_back_as_the_fact() -> None:
    registry = SchemaRegistry.load()
    listing, res = observation(1, 0, model=LOOK_ALIKE), result(minutes=120)
    fact = decision(CONFIRM, listing, res, minutes=200)
    record = match_decision(
        CONFIRM,
        {
            "review_id": fact.review_id,
            "platform": fact.platform,
            "listing_id": fact.listing_id,
            "inspection_id": fact.inspection_id,
        },
        {"brand": res.brand, "model": res.model, "gtin": res.gtin},
        decided_by=fact.decided_by,
        reason=fact.reason,
        decided_at=at(200),
        decision_id=fact.decision_id,
    )
    entity, decoded = registry.decode(registry.encode("review_decision", record))
    assert entity == "review_decision"
    assert decision_fact(decoded, fact.evidence) == fact
    assert fact.decides_a_match and fact.subject == fact.review_id


def test_a_command_cannot_mix_up_the_kinds_of_item() -> None:
    with pytest.raises(ValueError, match="disputed task"):
        match_decision(
            DecisionKind.UPHOLD,
            {},
            {},
            decided_by="x",
            reason="y",
            decided_at=BASE,
            decision_id="d-1",
        )
    with pytest.raises(ValueError, match="match review"):
        dispute_decision(
            CONFIRM, {}, "l", None, decided_by="x", reason="y", decided_at=BASE, decision_id="d-1"
        )


# ------------------------------------------------------------------ what is still undecided


def _review(rid: str, minutes: int) -> dict[str, Any]:
    return {"review_id": rid, "created_at": at(minutes), "listing_title": rid}


def _decided(kind: str, minutes: int, review: str | None = None, task: str | None = None) -> dict:
    return {"decision": kind, "review_id": review, "task_id": task, "decided_at": at(minutes)}


def _status(tid: str, status: str, minutes: int, note: str | None = None) -> dict[str, Any]:
    return {"task_id": tid, "status": status, "changed_at": at(minutes), "note": note}


def test_undecided_reviews_are_the_latest_per_id_without_a_confirm_or_reject() -> None:
    reviews_read = [_review("r1", 10), _review("r2", 20), _review("r1", 10), _review("r3", 5)]
    decisions_read = [
        _decided("CONFIRM", 30, review="r2"),
        _decided("UPHOLD", 30, task="r3"),  # a dispute decision never decides a review
    ]
    pending = undecided_reviews(reviews_read, decisions_read)
    assert [r["review_id"] for r in pending] == ["r3", "r1"]  # oldest first


def test_undecided_disputes_are_latest_disputed_statuses_with_no_decision_since() -> None:
    statuses = [
        _status("t1", "ISSUED", 0),
        _status("t1", "DISPUTED", 10, "not our listing"),
        _status("t2", "DISPUTED", 10),
        _status("t2", "ISSUED", 40),  # decided, and comply moved on
        _status("t3", "DISPUTED", 10),
        _status("t4", "DISPUTED", 50, "disputed again"),
        _status("t5", "DISPUTED", 10),
    ]
    decisions_read = [
        _decided("UPHOLD", 20, task="t3"),
        _decided("WITHDRAW", 20, task="t4"),  # before t4's second dispute
        _decided("CONFIRM", 20, review="t5"),  # a review decision never decides a dispute
    ]
    pending = undecided_disputes(statuses, decisions_read)
    assert [(s["task_id"], s["note"]) for s in pending] == [
        ("t1", "not our listing"),
        ("t5", None),
        ("t4", "disputed again"),
    ]


# ------------------------------------------------------------------ routing


def test_a_decision_reaches_the_key_that_owns_its_pair() -> None:
    listing, res = observation(1, 0, model=LOOK_ALIKE), result(minutes=120)
    routed = decision_keys(decision(CONFIRM, listing, res, 200), CFG)
    assert routed == result_keys(res, CFG)
    assert owning_key(res, listing, CFG) in routed


def test_a_copied_barcode_is_decided_under_the_gtin_and_its_decision_gets_there() -> None:
    # another brand with the result's GTIN: a GTIN match, review-level (brand conflict)
    res = result(minutes=120)
    record = FeedGenerator(seed=5, now=BASE).listing("jd", 5, product=CATALOG[1])
    record.update({"brand": "Meidi", "model": "MD-1", "observed_at": at(0)})
    copied = listing_fact(record, "omm.valid.listings/0/5")
    gtin_key = owning_key(res, copied, CFG)
    assert gtin_key is not None and gtin_key.startswith("gtin:")
    (review,) = reviews(fold_in_event_order(gtin_key, [copied, res], CFG))
    assert review["match_method"] == "GTIN"
    confirm = decision(CONFIRM, copied, res, 200)
    assert gtin_key in decision_keys(confirm, CFG)
    (delist,) = delists(fold_in_event_order(gtin_key, [confirm, copied, res], CFG))
    assert delist["task_id"] == task_id("jd", copied.listing_id, res.inspection_id, "DELIST")


def test_under_a_key_that_does_not_own_the_pair_a_decision_does_nothing() -> None:
    listing, res = observation(1, 0, model=LOOK_ALIKE), result(minutes=120)
    other = next(k for k in result_keys(res, CFG) if k != owning_key(res, listing, CFG))
    events: list[JoinEvent] = [listing, res, decision(CONFIRM, listing, res, 200)]
    assert tasks(fold_in_event_order(other, events, CFG)) == []


# ------------------------------------------------------------------ CONFIRM and REJECT in the fold


def test_a_confirmed_look_alike_gets_the_tasks_a_confident_match_would_have() -> None:
    look_alike, res = observation(1, 0, model=LOOK_ALIKE), result(minutes=120)
    confirm = decision(CONFIRM, look_alike, res, 300, by="samr-officer-17")

    emitted = fold_in_event_order(KEY, [look_alike, res, confirm], CFG)

    (review,) = reviews(emitted)
    (delist,) = delists(emitted)
    (remediation,) = [t for t in tasks(emitted) if t["kind"] == "REMEDIATION"]
    assert delist["task_id"] == task_id("tmall", look_alike.listing_id, res.inspection_id, "DELIST")
    assert remediation["task_id"] == task_id(
        "tmall", look_alike.seller_id, res.inspection_id, "REMEDIATION"
    )
    assert (delist["match_method"], delist["match_confidence"]) == (
        review["match_method"],
        review["match_confidence"],
    )
    assert delist["state"] == remediation["state"] == "ISSUED"
    # the platform is told at the confirmation: its deadline counts from then
    assert delist["issued_at"] == remediation["issued_at"] == at(300)
    assert "confirmed on review by samr-officer-17" in delist["reason"]
    assert "confirm #1" in delist["reason"]
    assert delist["evidence_ref"].endswith(f"decision {confirm.evidence}")
    assert review["review_id"] == confirm.review_id


def test_a_decision_read_before_its_review_gives_the_same_records() -> None:
    look_alike, res = observation(1, 0, model=LOOK_ALIKE), result(minutes=120)
    confirm = decision(CONFIRM, look_alike, res, 300)
    in_order = fold_in_event_order(KEY, [look_alike, res, confirm], CFG)
    assert fold_in_event_order(KEY, [confirm, res, look_alike], CFG) == in_order
    # streaming: the same tasks in force, and with the same content
    _, live = fold(KEY, [confirm, res, look_alike], CFG)
    assert tasks(live) == tasks(in_order)


def test_a_rejected_pair_never_becomes_a_task_even_when_it_later_matches_confidently() -> None:
    look_alike, res = observation(1, 0, model=LOOK_ALIKE), result(minutes=120)
    relabelled = observation(1, 200)  # the same listing, now the result's exact model
    reject = decision(REJECT, look_alike, res, 150)
    for events in ([look_alike, res, reject, relabelled], [relabelled, reject, res, look_alike]):
        emitted = fold_in_event_order(KEY, events, CFG)
        assert len(reviews(emitted)) == 1
        assert tasks(emitted) == []
        _, live = fold(KEY, events, CFG)
        assert tasks_in_force(live) == set()


def test_a_reject_after_a_confirm_withdraws_its_tasks_and_says_who() -> None:
    look_alike, res = observation(1, 0, model=LOOK_ALIKE), result(minutes=120)
    confirm = decision(CONFIRM, look_alike, res, 200, n=1)
    reject = decision(REJECT, look_alike, res, 260, n=2, by="samr-chief-3")

    emitted = fold_in_event_order(KEY, [look_alike, res, confirm, reject], CFG)

    issued = [t for t in tasks(emitted) if t["state"] == "ISSUED"]
    withdrawn = [t for t in tasks(emitted) if t["state"] == "WITHDRAWN"]
    assert sorted(t["task_id"] for t in withdrawn) == sorted(t["task_id"] for t in issued)
    assert len(issued) == 2
    for task in withdrawn:
        assert "rejected on review by samr-chief-3" in task["reason"]
        assert task["evidence_ref"] == f"decision {reject.evidence}"
    # read the other way round, the REJECT stands and the older CONFIRM changes nothing
    _, live = fold(KEY, [look_alike, res, reject, confirm], CFG)
    assert tasks(live) == []


def test_a_confirm_after_a_reject_issues_the_tasks() -> None:
    look_alike, res = observation(1, 0, model=LOOK_ALIKE), result(minutes=120)
    reject = decision(REJECT, look_alike, res, 200, n=1)
    confirm = decision(CONFIRM, look_alike, res, 260, n=2)
    emitted = fold_in_event_order(KEY, [look_alike, res, reject, confirm], CFG)
    assert {t["issued_at"] for t in tasks(emitted)} == {at(260)}
    assert len(tasks_in_force(emitted)) == 2


def test_a_reject_keeps_the_sellers_remediation_while_another_listing_is_delisted() -> None:
    look_alike = observation(1, 0, model=LOOK_ALIKE, seller="tmall-s007")
    exact = observation(2, 10, seller="tmall-s007")
    res = result(minutes=120)
    confirm = decision(CONFIRM, look_alike, res, 200, n=1)
    reject = decision(REJECT, look_alike, res, 260, n=2)
    emitted = fold_in_event_order(KEY, [look_alike, exact, res, confirm, reject], CFG)
    remediation = task_id("tmall", "tmall-s007", res.inspection_id, "REMEDIATION")
    assert remediation in tasks_in_force(emitted)
    assert task_id("tmall", exact.listing_id, res.inspection_id, "DELIST") in tasks_in_force(
        emitted
    )


def test_an_overturn_withdraws_a_confirmed_task() -> None:
    look_alike, res = observation(1, 0, model=LOOK_ALIKE), result(minutes=120)
    overturn = result(minutes=400, status="OVERTURNED", position=9)
    confirm = decision(CONFIRM, look_alike, res, 300)
    emitted = fold_in_event_order(KEY, [look_alike, res, confirm, overturn], CFG)
    assert len(tasks(emitted)) == 4 and tasks_in_force(emitted) == set()
    # and a confirmation read after the overturn issues nothing
    _, live = fold(KEY, [look_alike, res, overturn, confirm], CFG)
    assert tasks_in_force(live) == set()


def test_a_confirm_on_a_listing_removed_before_the_result_issues_nothing() -> None:
    look_alike = observation(1, 0, model=LOOK_ALIKE)
    removed = observation(1, 60, active=False, model=LOOK_ALIKE)
    res = result(minutes=120)
    confirm = decision(CONFIRM, look_alike, res, 300)
    assert tasks(fold_in_event_order(KEY, [look_alike, removed, res, confirm], CFG)) == []
    # streaming, with the removal read last: issued, then withdrawn as late evidence
    _, live = fold(KEY, [look_alike, res, confirm, removed], CFG)
    assert tasks_in_force(live) == set()


def test_step_and_apply_are_the_fold_with_decisions() -> None:
    look_alike, res = observation(1, 0, model=LOOK_ALIKE), result(minutes=120)
    events: list[JoinEvent] = [
        decision(REJECT, look_alike, res, 260, n=2),
        look_alike,
        res,
        decision(CONFIRM, look_alike, res, 200, n=1),  # older: changes nothing
        observation(2, 150, model=LOOK_ALIKE),
        decision(CONFIRM, observation(2, 150, model=LOOK_ALIKE), res, 300, n=3),
    ]
    state, emitted = JoinState(), []
    for event in events:
        change = step(KEY, state, event, CFG)
        emitted.extend(change.emitted)
        state = apply(state, change)
    folded_state, folded = fold(KEY, events, CFG)
    assert emitted == folded and state == folded_state
    assert {d.decision_id for d in state.decisions.values()} == {"d-0002", "d-0003"}
    assert len(tasks(emitted)) == 2  # the second look-alike's, confirmed


def test_a_dispute_decision_is_not_enforces_business() -> None:
    look_alike, res = observation(1, 0, model=LOOK_ALIKE), result(minutes=120)
    upheld = decision(CONFIRM, look_alike, res, 300)._replace(
        kind=DecisionKind.UPHOLD, review_id=None, task_id="DEL-x"
    )
    assert not upheld.decides_a_match
    assert tasks(fold_in_event_order(KEY, [look_alike, res, upheld], CFG)) == []


# ------------------------------------------------------------------ generated worlds


@st.composite
def worlds_with_decisions(draw: st.DrawFn, distinct_times: bool = False) -> list[JoinEvent]:
    """A world of test_enforcement_order, and decisions (0-2 each) on some of its pairs."""
    events = draw(worlds(distinct_times=distinct_times))
    listings = {e.listing_id: e for e in events if isinstance(e, ListingFact)}
    results = {e.inspection_id: e for e in events if isinstance(e, ResultFact)}
    n = 0
    for listing in listings.values():
        for res in results.values():
            for _ in range(draw(st.integers(0, 2))):
                n += 1
                kind = draw(st.sampled_from([CONFIRM, REJECT]))
                events.append(decision(kind, listing, res, draw(st.integers(0, 40)) * 10, n=n))
    return events


def due_delists(events: list[JoinEvent]) -> set[tuple[str, str]]:
    """(inspection, listing) pairs that must end with a DELIST in force (see the docstring)."""
    listings: dict[str, list[ListingFact]] = {}
    versions: dict[str, list[ResultFact]] = {}
    for e in events:
        if isinstance(e, ListingFact):
            listings.setdefault(e.listing_id, []).append(e)
        elif isinstance(e, ResultFact):
            versions.setdefault(e.inspection_id, []).append(e)
    rulings = in_force(e for e in events if isinstance(e, DecisionFact))
    due = set()
    for inspection, vs in versions.items():
        r = vs[0]
        if any(v.status == "OVERTURNED" for v in vs) or r.verdict == "PASS":
            continue
        for lid, history in listings.items():
            met: set[str] = set()  # "auto" and/or "review"
            moments = {r.published_ms} | {
                o.observed_ms for o in history if o.observed_ms > r.published_ms
            }
            for t in moments:
                o = _status_at(history, t)
                if o is None or not o.active:
                    continue
                if r.verdict == "COUNTERFEIT" and (o.platform, o.seller_id) != (
                    "tmall",
                    "tmall-s001",
                ):
                    continue
                met.add("auto" if o.model == "KX-2000A" else "review")
            ruling = rulings.get(review_id(history[0].platform, lid, inspection))
            # undecided: a confident match only; decided: as the latest decision says
            owed = "auto" in met if ruling is None else ruling.kind is CONFIRM and bool(met)
            if owed:
                due.add((inspection, lid))
    return due


def in_force_delists(emitted: list[tuple[str, dict[str, Any]]]) -> set[tuple[str, str]]:
    ids = tasks_in_force(emitted)
    return {(t["inspection_id"], t["listing_id"]) for t in delists(emitted) if t["task_id"] in ids}


@SETTINGS
@given(data=st.data())
def test_bounded_fold_with_decisions_is_the_same_for_every_arrival_order(
    data: st.DataObject,
) -> None:
    events = data.draw(worlds_with_decisions())
    canonical = fold_in_event_order(KEY, events, CFG)
    for _ in range(3):
        assert fold_in_event_order(KEY, data.draw(st.permutations(events)), CFG) == canonical


@SETTINGS
@given(events=worlds_with_decisions())
def test_bounded_fold_with_decisions_ends_with_what_the_decisions_say(
    events: list[JoinEvent],
) -> None:
    emitted = fold_in_event_order(KEY, events, CFG)
    assert in_force_delists(emitted) == due_delists(events)
    # a seller's remediation stays in force only while one of its DELISTs does
    live = tasks_in_force(emitted)
    for t in tasks(emitted):
        if t["kind"] == "REMEDIATION" and t["task_id"] in live:
            assert any(
                d["task_id"] in live
                and (d["inspection_id"], d["platform"], d["seller_id"])
                == (t["inspection_id"], t["platform"], t["seller_id"])
                for d in delists(emitted)
            ), t


@SETTINGS
@given(data=st.data())
def test_streaming_fold_with_decisions_ends_with_the_same_tasks_in_force(
    data: st.DataObject,
) -> None:
    events = data.draw(worlds_with_decisions(distinct_times=True))
    _, emitted = fold(KEY, data.draw(st.permutations(events)), CFG)
    assert tasks_in_force(emitted) == tasks_in_force(fold_in_event_order(KEY, events, CFG))


def test_confirmed_tasks_count_from_the_decision_not_from_the_meeting() -> None:
    # a look-alike met at publication (T+2h), confirmed a day later
    look_alike, res = observation(1, 0, model=LOOK_ALIKE), result(minutes=120)
    later = 120 + 24 * 60
    confirm = decision(CONFIRM, look_alike, res, later)
    (delist,) = delists(fold_in_event_order(KEY, [look_alike, res, confirm], CFG))
    assert delist["issued_at"] == at(later)
    # two working days from the confirmation, not from the meeting a day before it
    assert delist["deadline_at"] > at(later) + timedelta(days=1)
    # undecided, the same pair is a review and nothing else
    assert [kind for kind, _ in fold_in_event_order(KEY, [look_alike, res], CFG)] == [REVIEW]
