"""The intel bench's market has the spread it claims: every rule of config/intel.yaml has
work (no Kafka, no Beam: the generator alone)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from omm.bench.intel import DAYS, ENTITIES, intel_records
from omm.config import load_intel, load_platforms
from omm.generate import ISSUE_TYPES
from schemas.registry import SchemaRegistry

END = datetime(2026, 11, 30, tzinfo=UTC)
PLATFORMS = load_platforms().ids
CFG = load_intel()
N = 20_000
RECORDS = intel_records(N, END, PLATFORMS)


def test_counts_and_every_record_encodes() -> None:
    assert len(RECORDS.complaints) == N
    assert 100 <= len(RECORDS.penalties) <= 1000
    assert 100 <= len(RECORDS.inspections) <= 1000
    registry = SchemaRegistry.load()
    for entity in ENTITIES:
        for record in RECORDS.of(entity)[:200]:
            registry.encode(entity, record)


def test_complaints_spread_over_platforms_issue_types_and_days() -> None:
    complaints = RECORDS.complaints
    assert {c["platform"] for c in complaints} == set(PLATFORMS)
    assert {c["issue_type"] for c in complaints} == set(ISSUE_TYPES)
    days = {c["received_at"].date() for c in complaints}
    assert len(days) >= DAYS - 1
    assert all(END - timedelta(days=DAYS) <= c["received_at"] <= END for c in complaints)
    products = Counter((c["brand"], c["model"]) for c in complaints)
    sellers = Counter(c["seller_id"] for c in complaints)
    assert len(products) >= 1000 and len(sellers) >= 1000
    # skewed: the most complained-about product draws many times the median's
    counts = sorted(products.values())
    assert counts[-1] >= 20 * counts[len(counts) // 2]


def test_every_rule_has_work() -> None:
    complaints = RECORDS.complaints
    window = CFG.sampling.windows[0]
    # a product with enough complaints in one week for the shortest window
    by_week = Counter(
        ((c["brand"], c["model"]), c["received_at"].toordinal() // window.days) for c in complaints
    )
    assert max(by_week.values()) >= 3 * window.min_complaints
    # a seller with enough violation complaints in one window for a lead
    violations = set(CFG.case_leads.violation_issue_types)
    by_seller = Counter(
        (c["seller_id"], c["received_at"].toordinal() // CFG.case_leads.window_days)
        for c in complaints
        if c["issue_type"] in violations
    )
    assert max(by_seller.values()) >= CFG.case_leads.threshold
    # claims on compensation-first platforms open past their period
    bound = {p.id for p in load_platforms().platforms if p.compensation_first}
    period = timedelta(days=CFG.compensation_first.unresolved_days + 2)
    assert any(
        c["platform"] in bound
        and c["status"] == "OPEN"
        and c["received_at"] < END - period
        and c["issue_type"] in CFG.compensation_first.claim_issue_types
        for c in complaints
    )
    # an enterprise penalised on a listed ground often enough to be listed
    rule = CFG.credit.rules[0]
    per_enterprise = Counter(
        p["enterprise_id"] for p in RECORDS.penalties if p["ground"] in rule.grounds
    )
    assert max(per_enterprise.values()) >= rule.count
    # complaints naming listings that exist (their category comes from them)
    listed = {ls["listing_id"] for ls in RECORDS.listings}
    named = [c["listing_id"] for c in complaints if c["listing_id"]]
    assert named and all(lid in listed for lid in named)


def test_same_seed_same_market() -> None:
    again = intel_records(N, END, PLATFORMS)
    assert again.complaints[:100] == RECORDS.complaints[:100]
    assert again.penalties == RECORDS.penalties
