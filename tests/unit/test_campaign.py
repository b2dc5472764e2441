"""The demo's spring campaign (omm/campaign.py): the figures it claims, and each platform's cast."""

from __future__ import annotations

from datetime import UTC, datetime

from omm.campaign import BEHAVIOURS, PUBLISHED, behaviour_evidence, campaign
from omm.config import load_enforcement, load_platforms
from pipelines.rules.compliance import ComplianceConfig

PLATFORMS = load_platforms().ids


def test_the_campaign_is_modelled_on_2016() -> None:
    spring = campaign(PLATFORMS)
    assert len(spring.results) == 503
    assert spring.counts == {"FAIL": 172, "PASS": 325, "THREE_NO": 4, "COUNTERFEIT": 2}
    assert sum(len(v) for v in spring.listings.values()) > 1500
    assert set(BEHAVIOURS) == set(PLATFORMS)


def test_its_deadline_crosses_labour_day() -> None:
    cfg = load_enforcement()
    deadline = ComplianceConfig(cfg.calendar, cfg.delist_working_days).deadline_after(
        int(PUBLISHED.timestamp() * 1000)
    )
    # Wed 29 April: Thu 30 April counts, 1-5 May do not, Wed 6 May is the second day
    assert datetime.fromtimestamp(deadline / 1000, UTC).isoformat() == (
        "2026-05-06T15:59:59.999000+00:00"
    )


def test_each_platform_answers_its_tasks_its_own_way() -> None:
    spring = campaign(PLATFORMS)
    listings = {r["listing_id"]: r for rs in spring.listings.values() for r in rs}
    tasks = [
        {"task_id": f"t-{p}-{i}", "platform": p, "listing_id": r["listing_id"]}
        for p, rs in spring.listings.items()
        for i, r in enumerate(rs[:6])
    ]
    ev = behaviour_evidence(tasks, listings)
    assert "jd" not in ev.notices and len(ev.observations["jd"]) == 6  # the feed only
    assert {n["action"] for n in ev.notices["vip"]} == {"DISPUTED"}
    assert {d for _, d in ev.decisions} == {"UPHOLD", "WITHDRAW"}
    assert all(n["acted_at"] > PUBLISHED for ns in ev.notices.values() for n in ns)
    # suning's own feed shows its "removed" listings still on sale
    assert all(o["status"] == "ACTIVE" for o in ev.observations["suning"])
    statuses = [o["status"] for o in ev.observations["gome"]]
    assert statuses.count("ACTIVE") == 6 and statuses.count("REMOVED") > 6
