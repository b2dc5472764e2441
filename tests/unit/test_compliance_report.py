"""The compliance report's page (omm/reports/compliance.py), from decoded records; no Kafka.

Records go through the Avro codec first, so the renderer sees what ``omm report
compliance`` reads back from the topics (aware datetimes, enums as strings).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from omm.reports.compliance import (
    TaskStatus,
    overdue_by_day,
    render_compliance,
    takedown_bins,
    total_scorecards,
)
from schemas.registry import SchemaRegistry
from tests.offline import other_origin_references, self_contained_problems

REGISTRY = SchemaRegistry.load()
NOW = datetime(2026, 5, 20, 9, 30, tzinfo=UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")
CONTRADICTION = (
    "notice omm.feed.jd.takedowns/1/77 said REMOVED at 2026-05-14 10:00 UTC, "
    "but the listing feed showed it ACTIVE at 2026-05-14 12:00 UTC"
)


def decoded(entity: str, record: dict[str, Any]) -> dict[str, Any]:
    return REGISTRY.decode(REGISTRY.encode(entity, record))[1]


def status(task_id: str, platform: str, state: str, deadline: datetime, **more: Any) -> dict:
    record = {
        "task_id": task_id,
        "platform": platform,
        "listing_id": f"{platform}-L-{task_id}",
        "status": state,
        "deadline_at": deadline,
        "changed_at": deadline,
        "evidence_kind": "DEADLINE",
        "evidence_ref": f"deadline of {task_id}",
        "evidence_at": deadline,
        "issued_at": deadline - timedelta(days=3),
        "completed_at": None,
        "hours_to_takedown": None,
        "working_hours_to_takedown": None,
        "relisted_at": None,
        "relisted_removed": False,
        "first_outcome": None,
        "note": None,
    }
    record.update(more)
    return decoded("compliance_status", record)


def scorecard(platform: str, period: str = "TOTAL", **more: Any) -> dict:
    record = {
        "platform": platform,
        "period_start": NOW - timedelta(days=30),
        "period_end": NOW,
        "tasks_issued": 172,
        "completed_on_time": 150,
        "completed_late": 15,
        "overdue": 7,
        "relisted": 4,
        "relisted_removed": 3,
        "median_hours_to_takedown": 20.5,
        "p90_hours_to_takedown": 70.25,
        "kpi1_removed_within_deadline": 150 / 172,
        "kpi2_relistings_removed": 0.75,
        "computed_at": NOW,
        "period": period,
        "disputed": 1,
        "withdrawn": 2,
        "median_working_hours_to_takedown": 18.0,
        "p90_working_hours_to_takedown": 40.5,
    }
    record.update(more)
    return decoded("scorecard", record)


def statuses() -> list[dict]:
    d = NOW - timedelta(days=6)
    return [
        status("t-overdue", "jd", "OVERDUE", d, evidence_kind="DEADLINE"),
        status(
            "t-contradicted",
            "jd",
            "OVERDUE",
            d + timedelta(days=1),
            evidence_kind="TAKEDOWN_NOTICE",
            evidence_ref="omm.feed.jd.takedowns/1/77",
            note=CONTRADICTION,
        ),
        status(
            "t-relisted",
            "tmall",
            "RELISTED",
            d,
            evidence_kind="LISTING_FEED",
            evidence_ref="omm.feed.tmall.listings/0/912",
            completed_at=d - timedelta(days=1),
            hours_to_takedown=48.0,
            working_hours_to_takedown=24.0,
            relisted_at=d + timedelta(days=2),
        ),
        status(
            "t-on-time",
            "tmall",
            "COMPLETED_ON_TIME",
            d,
            completed_at=d - timedelta(hours=30),
            hours_to_takedown=42.0,
        ),
        status("t-withdrawn", "suning", "WITHDRAWN", d - timedelta(days=1)),
    ]


def page() -> str:
    return render_compliance(
        statuses(),
        [
            scorecard("jd"),
            scorecard("tmall", kpi1_removed_within_deadline=0.5, kpi2_relistings_removed=None),
            scorecard("suning", kpi1_removed_within_deadline=None),
            scorecard("jd", period="DAY", kpi1_removed_within_deadline=0.123),
        ],
        generated_at=NOW,
        feeds_report="../feeds/index.html",
        timezone="Asia/Shanghai",
    )


def section(html: str, anchor: str) -> str:
    match = re.search(rf'<section id="{anchor}">(.*?)</section>', html, re.S)
    assert match, anchor
    return match.group(1)


# --------------------------------------------------------------------------- the page


def test_the_platform_table_shows_each_total_scorecard_with_kpis_as_percentages() -> None:
    platforms = section(page(), "platforms")
    rows = re.findall(r"<tr><td>(\w+)</td>(.*?)</tr>", platforms, re.S)
    assert [name for name, _ in rows] == ["jd", "suning", "tmall"]
    jd = re.findall(r'<td class="num">([^<]*)</td>', dict(rows)["jd"])
    # issued, on time, late, overdue, relisted, relisted removed, disputed, withdrawn,
    # median h, p90 h, median working h, p90 working h, KPI1, KPI2
    assert jd == [
        "172", "150", "15", "7", "4", "3", "1", "2",
        "20.5", "70.2", "18.0", "40.5", "87.2%", "75.0%",
    ]  # fmt: skip
    assert "50.0%" in dict(rows)["tmall"] and "n/a" in dict(rows)["tmall"]
    assert "12.3%" not in platforms  # a DAY scorecard is not the platform's total


def test_the_kpi1_chart_has_a_bar_per_platform_and_says_when_there_is_none() -> None:
    charts = section(page(), "charts")
    kpi1 = re.search(r'<svg class="chart" id="kpi1".*?</svg>', charts, re.S)
    assert kpi1
    assert kpi1.group(0).count('<rect class="bar"') == 2  # jd and tmall; suning has no KPI1
    assert "87.2%" in kpi1.group(0) and "50.0%" in kpi1.group(0)
    assert "no decided task yet" in kpi1.group(0)


def test_task_tables_list_overdue_relisted_and_contradicted_tasks_with_their_evidence() -> None:
    html = page()
    overdue = section(html, "overdue")
    assert "t-overdue" in overdue and "t-contradicted" in overdue
    assert "t-relisted" not in overdue and "t-withdrawn" not in overdue
    # longest overdue first
    assert overdue.index("t-overdue") < overdue.index("t-contradicted")
    relisted = section(html, "relisted")
    assert "t-relisted" in relisted and "omm.feed.tmall.listings/0/912" in relisted
    assert "LISTING_FEED" in relisted
    contradicted = section(html, "contradicted")
    assert "t-contradicted" in contradicted and "t-overdue" not in contradicted
    assert "but the listing feed showed it ACTIVE" in contradicted
    assert "omm.feed.jd.takedowns/1/77" in contradicted


def test_compensation_first_tasks_have_their_own_table_and_stay_out_of_the_takedown_ones() -> None:
    deadline = NOW - timedelta(days=2)
    claims = [
        status(
            f"cf-{state.lower()}",
            "tmall",
            state,
            deadline + timedelta(hours=i),
            task_kind="COMPENSATION_FIRST",
            complaint_id=f"tmall:C-{i}",
            listing_id=None,
        )
        for i, state in enumerate(["COMPLETED_ON_TIME", "OVERDUE", "ISSUED"])
    ]
    html = render_compliance([*statuses(), *claims], [], generated_at=NOW, timezone="UTC")
    table = section(html, "compensation")
    # overdue first, then open, then the rest
    order = [table.index(f"cf-{s}") for s in ("overdue", "issued", "completed_on_time")]
    assert order == sorted(order)
    assert "tmall:C-1" in table and "t-overdue" not in table
    assert "cf-overdue" not in section(html, "overdue")  # not a takedown overdue
    assert "3 compensation-first task(s)" in html
    empty = section(render_compliance(statuses(), [], generated_at=NOW), "compensation")
    assert "omm run intel" in empty


def test_the_page_links_the_feed_health_report_and_says_when_it_was_made() -> None:
    html = page()
    assert '<a href="../feeds/index.html">Feed health report</a>' in html
    assert "2026-05-20 09:30 UTC" in html


def test_the_page_is_self_contained() -> None:
    assert self_contained_problems(page()) == []


def test_every_value_from_a_record_is_escaped() -> None:
    hostile = '<script>alert("x")</script><img src=https://evil.example/x.png>'
    html = render_compliance(
        [status("t<1>", "jd", "OVERDUE", NOW - timedelta(days=1), note=hostile)],
        [scorecard('jd"><b>')],
        generated_at=NOW,
        feeds_report='"><script>x</script>',
    )
    assert "<script>" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "t&lt;1&gt;" in html
    assert other_origin_references(html) == []  # the URL is text now, not an image


def test_empty_topics_still_render_a_page_saying_so() -> None:
    html = render_compliance([], [], generated_at=NOW)
    assert "No TOTAL scorecard on omm.compliance.scorecards yet." in html
    assert "No task is overdue." in html


# --------------------------------------------------------------------------- the series


def test_overdue_by_day_counts_tasks_past_their_deadline_and_not_taken_down_by_each_days_end() -> (
    None
):
    # Days in Asia/Shanghai (UTC+8): the 17th ends at 16:00 UTC on the 17th, and so on.
    def at(day: int, hour: int) -> datetime:
        return datetime(2026, 5, day, hour, tzinfo=SHANGHAI).astimezone(UTC)

    records = [
        # deadline on the 17th, taken down on the 18th: overdue at the end of the 17th only
        status("a", "jd", "COMPLETED_LATE", at(17, 10), completed_at=at(18, 9)),
        # deadline on the 18th, never taken down: overdue from the 18th on
        status("b", "jd", "OVERDUE", at(18, 10)),
        # deadline on the 19th, but withdrawn: never counted
        status("c", "jd", "WITHDRAWN", at(19, 10)),
        # deadline at 20:00 on the 20th, after the report's time: not overdue yet
        status("d", "jd", "ISSUED", at(20, 20)),
    ]
    tasks = [TaskStatus.from_record(r) for r in records]
    days = overdue_by_day(tasks, until=at(20, 12), zone=SHANGHAI)
    assert days == [
        (date(2026, 5, 17), 1),
        (date(2026, 5, 18), 1),
        (date(2026, 5, 19), 1),
        (date(2026, 5, 20), 1),
    ]


def test_overdue_by_day_is_empty_without_tasks_and_bounded_in_length() -> None:
    assert overdue_by_day([], until=NOW, zone=SHANGHAI) == []
    old = TaskStatus.from_record(status("x", "jd", "OVERDUE", NOW - timedelta(days=900)))
    days = overdue_by_day([old], until=NOW, zone=SHANGHAI, max_days=30)
    assert len(days) == 30 and all(n == 1 for _, n in days)


EMPTY_24_TO_96 = [(h, h + 12, 0) for h in range(24, 96, 12)]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], []),
        ([0.0], [(0, 1, 1)]),
        ([0.5, 1.5, 2.0], [(0, 1, 1), (1, 2, 1), (2, 3, 1)]),
        # 100 h: 8-hour bins would need 13, so 12-hour bins; a negative hour counts as 0
        ([-1.0, 11.9, 12.0, 100.0], [(0, 12, 2), (12, 24, 1), *EMPTY_24_TO_96, (96, 108, 1)]),
    ],
)
def test_takedown_bins_have_round_equal_widths_and_at_most_twelve_bins(
    values: list[float], expected: list[tuple[int, int, int]]
) -> None:
    assert takedown_bins(values) == expected
    assert len(takedown_bins([1.0, 9000.0])) <= 12


def test_total_scorecards_keep_the_latest_total_per_platform() -> None:
    older = scorecard("jd", computed_at=NOW - timedelta(hours=1), tasks_issued=1)
    newer = scorecard("jd", tasks_issued=2)
    day = scorecard("tmall", period="DAY")
    assert [(s.platform, s.tasks_issued) for s in total_scorecards([newer, older, day])] == [
        ("jd", 2)
    ]


@pytest.mark.parametrize(
    ("note", "contradicted"),
    [
        (CONTRADICTION, True),
        ("notice said REMOVED but the listing feed showed it ACTIVE later", True),
        ("the listing feed showed it ACTIVE", False),  # not about a notice
        ("notice omm.feed.jd.takedowns/1/7 confirmed by the listing feed", False),
        (None, False),
    ],
)
def test_a_task_is_contradicted_when_its_note_says_the_feed_showed_the_listing_active(
    note: str | None, contradicted: bool
) -> None:
    task = TaskStatus.from_record(status("t", "jd", "OVERDUE", NOW, note=note))
    assert task.contradicted is contradicted


# --------------------------------------------------------------------------- intel sections

WINDOW_END = NOW - timedelta(hours=1)
WINDOW_START = WINDOW_END - timedelta(days=30)
#: Verbatim text a complainant or seller typed: the report must never show it.
VERBATIM = "张三 13800138000 买到的吹风机冒烟"


def recommendation(rid: str, score: float, computed_at: datetime, **more: Any) -> dict:
    record = {
        "recommendation_id": rid,
        "product_key": f"pk-{rid}",
        "brand": VERBATIM,
        "model": VERBATIM,
        "manufacturer": VERBATIM,
        "complaint_count": 9,
        "window_start": WINDOW_START,
        "window_end": WINDOW_END,
        "score": score,
        "rank": 1,
        "last_sampled_at": None,
        "computed_at": computed_at,
        "counts_by_issue_type": {"QUALITY": 6, "COUNTERFEIT": 3},
        "counts_by_platform": {"jd": 7, "tmall": 2},
        "counts_by_channel": {"PLATFORM": 9},
        "example_complaint_ids": [f"jd:c-{rid}-1", f"12315:c-{rid}-2"],
    }
    record.update(more)
    return decoded("sampling_recommendation", record)


def lead(lid: str, seller: str, n: int, computed_at: datetime = NOW) -> dict:
    return decoded(
        "case_lead",
        {
            "lead_id": lid,
            "platform": "jd",
            "seller_id": seller,
            "violation_complaints": n,
            "window_start": WINDOW_START,
            "window_end": WINDOW_END,
            "threshold": 3,
            "issue_types": ["QUALITY"],
            "computed_at": computed_at,
            "complaint_ids": [f"jd:c-{seller}-{i}" for i in range(n)],
            "counts_by_issue_type": {"QUALITY": n},
        },
    )


def credit(eid: str, enterprise: str, event: str, effective_at: datetime, **more: Any) -> dict:
    record = {
        "event_id": eid,
        "enterprise_id": enterprise,
        "enterprise_name": f"{enterprise} 有限公司",
        "event": event,
        "ground": "3 penalties within 2 years on PRODUCT_SAFETY",
        "penalty_ids": [f"pen-{enterprise}-1", f"pen-{enterprise}-2"],
        "effective_at": effective_at,
        "computed_at": effective_at,
        "sellers": [f"jd:s-{enterprise}"],
        "listed_event_id": None,
    }
    record.update(more)
    return decoded("credit_event", record)


def task(task_id: str, kind: str, listing: str, seller: str, event_id: str | None, **more: Any):
    record = {
        "task_id": task_id,
        "kind": kind,
        "platform": "jd",
        "seller_id": seller,
        "listing_id": listing,
        "inspection_id": None,
        "product_key": "pk",
        "brand": VERBATIM,
        "model": None,
        "manufacturer": None,
        "verdict": None,
        "match_method": None,
        "match_confidence": None,
        "legal_basis": "《电子商务法》第二十九条",
        "reason": VERBATIM,
        "state": "ISSUED",
        "deadline_at": NOW + timedelta(days=5),
        "issued_at": NOW - timedelta(days=2),
        "evidence_ref": "omm.valid.listings/0/1",
        "complaint_id": None,
        "credit_event_id": event_id,
    }
    record.update(more)
    return decoded("task", record)


def intel_page() -> str:
    earlier = NOW - timedelta(days=1)
    return render_compliance(
        [],
        [],
        generated_at=NOW,
        sampling_records=[
            recommendation("low", 1.5, NOW),
            recommendation("high", 9.25, earlier),
            # recomputed: the later record replaces the earlier one, and its score ranks
            recommendation("mid", 99.0, earlier),
            recommendation("mid", 4.0, NOW),
        ],
        lead_records=[
            lead("l-few", "s-few", 3),
            lead("l-many", "s-many", 5, earlier),
            lead("l-many", "s-many", 7),
        ],
        credit_records=[
            credit("ev-a", "ENT-A", "LISTED", NOW - timedelta(days=10)),
            credit("ev-b", "ENT-B", "LISTED", NOW - timedelta(days=400)),
            credit("ev-b-off", "ENT-B", "REMOVED", NOW - timedelta(days=3), listed_event_id="ev-b"),
        ],
        task_records=[
            task("f-1", "FLAG", "L-live", "s-ENT-A", "ev-a"),
            task("f-2", "FLAG", "L-gone", "s-ENT-A", "ev-a"),
            task("f-2", "FLAG", "L-gone", "s-ENT-A", "ev-a", state="WITHDRAWN", issued_at=NOW),
            task("f-3", "FLAG", "L-of-b", "s-ENT-B", "ev-b"),
            task("d-1", "DELIST", "L-delist", "s-ENT-A", None),
        ],
    )


def rows(html: str) -> list[str]:
    return re.findall(r"<tr>(.*?)</tr>", html, re.S)[1:]  # the first is the head


def test_sampling_is_the_latest_recommendation_per_id_ranked_by_score() -> None:
    html = section(intel_page(), "sampling")
    keys = [re.search(r"<code>(pk-[a-z]+)</code>", r).group(1) for r in rows(html)]  # type: ignore[union-attr]
    assert keys == ["pk-high", "pk-mid", "pk-low"]
    assert "99.00" not in html and "4.00" in html
    assert "QUALITY: 6" in html and "jd: 7" in html and "12315:c-high-2" in html
    assert "2026-04-20 08:30 UTC – 2026-05-20 08:30 UTC" in html


def test_case_leads_show_seller_count_and_complaints_latest_per_lead() -> None:
    html = section(intel_page(), "leads")
    sellers = [re.search(r"<code>(s-[a-z]+)</code>", r).group(1) for r in rows(html)]  # type: ignore[union-attr]
    assert sellers == ["s-many", "s-few"]
    assert "jd:c-s-many-6" in html  # seven complaints, not the earlier five
    assert ">7<" in html and ">5<" not in html


def test_the_list_shows_listed_enterprises_with_penalties_and_live_listings_only() -> None:
    html = section(intel_page(), "credit")
    assert "ENT-A" in html and "pen-ENT-A-1" in html and "PRODUCT_SAFETY" in html
    assert "ENT-B" not in html and "L-of-b" not in html  # removed: off the list
    assert "L-live" in html and "s-ENT-A" in html
    assert "L-gone" not in html  # withdrawn flag
    assert "L-delist" not in html  # not a flag


def test_intel_sections_carry_no_consumer_identity_or_free_text() -> None:
    html = intel_page()
    assert "张三" not in html and "13800138000" not in html and "冒烟" not in html


def test_empty_intel_sections_say_to_run_intel() -> None:
    html = render_compliance([], [], generated_at=NOW)
    for anchor, topic in (
        ("sampling", "omm.intel.sampling"),
        ("leads", "omm.intel.leads"),
        ("credit", "omm.credit.events"),
    ):
        text = section(html, anchor)
        assert topic in text and "omm run intel" in text, anchor
