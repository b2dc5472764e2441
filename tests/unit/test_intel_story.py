"""The demo's intelligence chapter (omm/intel_story.py): valid records that reach
config/intel.yaml's thresholds, final by the time the demo's campaign has been read."""

from __future__ import annotations

import re
from datetime import datetime

from omm.campaign import PUBLISHED
from omm.config import load_enforcement, load_intel, load_platforms
from omm.generate import CATALOG, Record
from omm.intel_story import (
    CLAIM_PLATFORM,
    FRUIT,
    HOTSPOT,
    LEAD_PLATFORM,
    LEAD_SELLER,
    RESOLVED_AT,
    IntelStory,
    claim_key,
    intel_story,
    resolution,
)
from pipelines.rules.compliance import TaskFact
from pipelines.rules.credit import LISTED, EnterpriseState, penalty_fact
from pipelines.rules.intel import (
    ClaimEvidence,
    ClaimState,
    CompensationFirst,
    ComplaintFact,
    ProductComplaints,
    SellerComplaints,
    category_excluded,
    complaint_fact,
)
from schemas.registry import SchemaRegistry

CFG = load_intel()
MATCHING = load_enforcement().matching
# the demo reads its spring campaign (published then, observed later) before this
# chapter: intel's watermark is never earlier, whatever the wall clock
WATERMARK = int(PUBLISHED.timestamp() * 1000)


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def facts(story: IntelStory, records: list[Record]) -> list[ComplaintFact]:
    """Complaint facts as intel makes them: the category from the listing named."""
    categories = {r["listing_id"]: r["category"] for rs in story.listings.values() for r in rs}
    return [
        complaint_fact(r, f"demo/{i}", MATCHING, categories.get(r["listing_id"]))
        for i, r in enumerate(records)
    ]


def test_every_record_fits_its_contract_and_its_feed() -> None:
    story = intel_story()
    registry = SchemaRegistry.load()
    platforms = set(load_platforms().ids)
    for feed, entity in (("complaints", "complaint"), ("listings", "listing")):
        for platform, records in getattr(story, feed).items():
            assert platform in platforms
            for r in records:
                assert r["platform"] == platform
                assert registry.encode(entity, r)
    assert registry.encode("complaint", resolution(story))
    for p in story.penalties:
        assert registry.encode("penalty", p)
    assert intel_story() == story  # deterministic


def test_complaints_carry_no_more_personal_data_than_the_generator_does() -> None:
    story = intel_story()
    for records in story.complaints.values():
        for r in records:
            assert re.fullmatch(r"consumer-\d+", r["consumer_id"])
            assert re.fullmatch(r"产品有问题, 请联系我 1380000\d{4}", r["text"])
            others = [v for k, v in r.items() if k not in ("consumer_id", "text")]
            assert not any("consumer-" in str(v) or "1380000" in str(v) for v in others)


def test_the_hotspot_is_recommended_in_every_window_length() -> None:
    story = intel_story()
    hot = story.hotspot
    assert HOTSPOT in CATALOG
    assert len({c["platform"] for c in hot}) > 2
    assert {c["channel"] for c in hot} == {"PLATFORM", "HOTLINE_12315"}
    state = ProductComplaints()
    for c in facts(story, hot):
        state.add(c, CFG)
    # the demo inspects the car seat too, but after March: no window is hidden by it
    state.add_inspection("SAMR-2026-00013", WATERMARK)
    candidates = state.advance(WATERMARK, CFG)
    assert {c.window.days for c in candidates} == {w.days for w in CFG.sampling.windows}
    for w in CFG.sampling.windows:
        best = max((c for c in candidates if c.window.days == w.days), key=lambda c: c.score)
        assert best.complaint_count >= w.min_complaints and best.score >= w.min_score
        assert best.last_sampled_ms is None


def test_the_lead_counts_the_kettle_refusal_and_not_the_fruit() -> None:
    story = intel_story()
    rule = CFG.case_leads
    assert category_excluded(FRUIT.category, rule.return_refused_excluded_categories)
    state = SellerComplaints()
    for c in facts(story, story.lead):
        state.add(c, CFG)
    [lead] = state.advance(WATERMARK, CFG)
    assert (lead.platform, lead.seller_id) == (LEAD_PLATFORM, LEAD_SELLER)
    excluded = f"{LEAD_PLATFORM}:{story.excluded['complaint_id']}"
    assert excluded not in lead.complaint_ids
    assert len(lead.complaint_ids) == len(story.lead) - 1 >= rule.threshold
    assert "RETURN_REFUSED" in lead.counts_by_issue_type
    # nobody else is a lead: the hotspot's sellers have one complaint each
    assert len({(c["platform"], c["seller_id"]) for c in story.hotspot}) == len(story.hotspot)


def test_the_stalled_claim_is_a_task_then_resolved_on_time() -> None:
    story = intel_story()
    rules = CompensationFirst.of(CFG, load_platforms())
    assert CLAIM_PLATFORM in rules.bound_platforms
    # the hotspot's claims on bound platforms ended within their periods: no task
    for c in facts(story, story.hotspot):
        assert not rules.due(c)
    claim = ClaimState()
    [fact] = facts(story, [story.claim])
    claim.add(fact, rules)
    [task] = claim.advance(WATERMARK, rules)
    assert task["complaint_id"] == claim_key() and task["kind"] == "COMPENSATION_FIRST"
    assert task["issued_at"] < ms(RESOLVED_AT) <= task["deadline_at"]
    [resolved] = facts(story, [resolution(story)])
    assert claim.add(resolved, rules) == []  # still due: resolved after its period
    # comply's view: the task and the claim's versions
    tracked = ClaimEvidence()
    tracked.add_task(TaskFact.of(task, "omm.tasks.tmall/0/0", task["issued_at"]))
    tracked.add_complaint(fact)
    tracked.add_complaint(resolved)
    tracked.advance_clock(WATERMARK)
    [status] = tracked.changes(rules)
    assert status.status == "COMPLETED_ON_TIME"


def test_the_enterprise_is_listed_and_flagged_on_two_platforms() -> None:
    story = intel_story()
    cfg = CFG.credit
    state = EnterpriseState()
    for p in story.penalties:
        state.add(penalty_fact(p), cfg)
    [event] = state.advance(WATERMARK, cfg)  # the LISTED is final; the REMOVED years away
    assert event.event == LISTED
    assert event.penalty_ids == tuple(sorted(p["penalty_id"] for p in story.penalties))
    latest: dict[str, Record] = {}
    for records in story.listings.values():
        for r in sorted(records, key=lambda r: r["observed_at"]):
            latest[r["listing_id"]] = r
    live = [
        r
        for r in latest.values()
        if r["status"] == "ACTIVE" and f"{r['platform']}:{r['seller_id']}" in event.sellers
    ]
    assert len({r["platform"] for r in live}) == 2
    assert any(r["status"] == "REMOVED" for r in latest.values())
