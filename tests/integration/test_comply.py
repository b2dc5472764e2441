"""Compliance tracking on the real broker with the real stateful Beam pipeline.

Tasks, listing observations, takedown notices and decisions are written straight
to the topics comply reads (as enforce, ingest and `omm review` leave them);
comply runs; the tests read omm.compliance.status and omm.compliance.scorecards.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from connectors.topics import TopicNames
from omm.beam_runtime import pipeline_args_with_defaults
from omm.generate import FeedGenerator
from omm.jobs import comply_job
from pipelines.comply import ComplyAccount, run_comply
from pipelines.rules.intel import compensation_task, complaint_fact
from tests.helpers import delist_task, fresh_namespace, produce_avro, read_all

pytestmark = pytest.mark.integration

PLATFORMS = ["jd", "tmall"]
CST = ZoneInfo("Asia/Shanghai")


def cst(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=CST).astimezone(UTC)


def end_of(month: int, day: int) -> datetime:
    return datetime(2026, month, day, 23, 59, 59, 999000, tzinfo=CST).astimezone(UTC)


class Market:
    """A private market: its topics, and records written where comply reads them."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.topics: TopicNames = fresh_namespace(PLATFORMS, bootstrap)
        self.gen = FeedGenerator(seed=5, now=cst(3, 2))
        self.listings: dict[str, dict[str, Any]] = {}

    def task(
        self,
        tid: str,
        listing_id: str,
        issued: datetime,
        deadline: datetime,
        platform: str = "jd",
        **changes: Any,
    ) -> dict[str, Any]:
        record = delist_task(tid, platform, listing_id, issued, deadline, **changes)
        produce_avro(self.bootstrap, self.topics.tasks(platform), "task", [record], "task_id")
        return record

    def seen(self, listing_id: str, at: datetime, active: bool, platform: str = "jd") -> None:
        base = self.listings.setdefault(
            listing_id, {**self.gen.listing(platform, len(self.listings)), "listing_id": listing_id}
        )
        record = {**base, "status": "ACTIVE" if active else "REMOVED", "observed_at": at}
        produce_avro(
            self.bootstrap, self.topics.valid("listing"), "listing", [record], "listing_id"
        )

    def notice(
        self,
        nid: str,
        listing_id: str,
        at: datetime,
        action: str = "REMOVED",
        task_id: str | None = None,
        platform: str = "jd",
    ) -> None:
        record = {
            "notice_id": nid,
            "platform": platform,
            "listing_id": listing_id,
            "task_id": task_id,
            "action": action,
            "reason": "we dispute the match" if action == "DISPUTED" else "taken down",
            "acted_at": at,
        }
        produce_avro(
            self.bootstrap, self.topics.valid("takedown"), "takedown", [record], "notice_id"
        )

    def decide(self, tid: str, listing_id: str, at: datetime, decision: str) -> None:
        record = {
            "decision_id": f"d-{tid}-{decision}",
            "decision": decision,
            "review_id": None,
            "task_id": tid,
            "platform": "jd",
            "listing_id": listing_id,
            "inspection_id": "SAMR-2026-00001",
            "decided_by": "officer-7",
            "reason": "checked the listing",
            "decided_at": at,
        }
        produce_avro(self.bootstrap, self.topics.decisions, "review_decision", [record], "task_id")

    def comply(
        self, streaming: bool = False, idle_s: float = 3.0, tick_s: float = 1.0
    ) -> ComplyAccount:
        job = comply_job(
            self.bootstrap,
            self.topics,
            platforms=PLATFORMS,
            idle_timeout_s=idle_s,
            tick_seconds=tick_s,
        )
        account = run_comply(job, pipeline_args_with_defaults(None, streaming=streaming))
        assert account.balanced, account
        return account

    def statuses(self) -> dict[str, dict[str, Any]]:
        latest: dict[str, dict[str, Any]] = {}
        for m in read_all(self.bootstrap, self.topics.compliance_status):
            assert m.record is not None
            latest[m.record["task_id"]] = m.record
        return latest

    def scorecards(self) -> dict[str, dict[str, Any]]:
        latest: dict[str, dict[str, Any]] = {}
        for m in read_all(self.bootstrap, self.topics.scorecards):
            assert m.record is not None and m.key is not None
            latest[m.key.decode()] = m.record
        return latest


@pytest.fixture
def market(kafka_bootstrap: str) -> Market:
    return Market(kafka_bootstrap)


def story(m: Market) -> None:
    """Every transition, on tasks issued Monday 2 March 2026 10:00 (deadline: end of 4 March)."""
    issued, deadline = cst(3, 2, 10), end_of(3, 4)
    for tid, listing in [
        ("on-time", "L1"), ("feed-only", "L2"), ("contradicted", "L3"), ("relisted", "L4"),
        ("disputed", "L5"), ("withdrawn", "L6"), ("overdue", "L7"), ("late", "L8"),
    ]:  # fmt: skip
        m.seen(listing, cst(3, 1), active=True)
        m.task(tid, listing, issued, deadline)
    m.task("on-time", "L1", issued, deadline)  # enforce re-sends identical tasks on replay
    m.notice("n1", "L1", cst(3, 3, 9), task_id="on-time")
    m.seen("L2", cst(3, 2, 18), active=False)  # removed, no notice
    m.notice("n3", "L3", cst(3, 3, 9), task_id="contradicted")
    m.seen("L3", cst(3, 5, 9), active=True)  # ...but still on sale after the deadline
    m.seen("L4", cst(3, 3, 9), active=False)
    m.seen("L4", cst(3, 6, 10), active=True)  # back on sale on Friday 6 March
    m.notice("n5", "L5", cst(3, 3), action="DISPUTED", task_id="disputed")
    m.decide("disputed", "L5", cst(3, 9, 11), "UPHOLD")  # new deadline: end of 11 March
    m.task("withdrawn", "L6", issued, deadline, state="WITHDRAWN", reason="result overturned")
    m.notice("n8", "L8", cst(3, 5, 8), task_id="late")


def test_every_transition_in_one_bounded_run(market: Market) -> None:
    story(market)
    account = market.comply()
    assert account.read == 10 + 11 + 5 + 1  # tasks, observations, notices, decision
    assert account.dead == 0 and account.untracked == 0
    s = market.statuses()
    assert {t: r["status"] for t, r in s.items()} == {
        "on-time": "COMPLETED_ON_TIME",
        "feed-only": "COMPLETED_ON_TIME",
        "contradicted": "OVERDUE",
        "relisted": "OVERDUE",  # not removed again by its new deadline (end of 10 March)
        "disputed": "OVERDUE",  # upheld on 9 March, nothing done by end of 11 March
        "withdrawn": "WITHDRAWN",
        "overdue": "OVERDUE",
        "late": "COMPLETED_LATE",
    }
    assert s["on-time"]["evidence_kind"] == "TAKEDOWN_NOTICE"
    assert s["on-time"]["hours_to_takedown"] == 23.0
    assert s["feed-only"]["evidence_kind"] == "LISTING_FEED"
    assert s["feed-only"]["evidence_ref"].startswith(market.topics.valid("listing"))
    assert "notice n3 said REMOVED" in s["contradicted"]["note"]
    assert s["relisted"]["relisted_at"] == cst(3, 6, 10)
    assert s["relisted"]["first_outcome"] == "COMPLETED_ON_TIME"
    assert s["disputed"]["deadline_at"] == end_of(3, 11)
    assert s["overdue"]["evidence_kind"] == "DEADLINE"
    assert s["overdue"]["changed_at"] == end_of(3, 4)
    assert s["withdrawn"]["note"] == "result overturned"
    # the platform reads its own tasks' statuses, the same records
    own = {m.key: m.record for m in read_all(market.bootstrap, market.topics.compliance("jd"))}
    assert {k.decode(): r["status"] for k, r in own.items() if k and r} == {
        t: r["status"] for t, r in s.items()
    }
    assert read_all(market.bootstrap, market.topics.compliance("tmall")) == []
    total = market.scorecards()["jd|TOTAL"]
    assert (total["tasks_issued"], total["completed_on_time"], total["completed_late"]) == (8, 3, 1)
    assert (total["overdue"], total["withdrawn"], total["relisted"]) == (4, 1, 1)
    # decided: 3 on time (on-time, feed-only, relisted) of 7 (all but withdrawn)
    assert total["kpi1_removed_within_deadline"] == round(3 / 7, 4)


def test_deadlines_across_a_holiday_and_a_make_up_day(market: Market) -> None:
    # issued Thu 30 April: 1, 4, 5 May are holidays, so the deadline is the end of 7 May
    market.task("holiday", "H1", cst(4, 30, 10), end_of(5, 7))
    market.seen("H1", cst(5, 7, 20), active=False)
    # issued Fri 8 May: Saturday 9 May is a make-up working day, so the deadline is the
    # end of Monday 11 May; the listing comes back on Tuesday 12 May, a re-listing whose
    # own deadline counts the same calendar: the end of Thursday 14 May
    market.task("make-up", "M1", cst(5, 8, 16), end_of(5, 11))
    market.seen("M1", cst(5, 9, 16), active=False)
    market.seen("M1", cst(5, 12, 9), active=True)
    market.comply()
    statuses = market.statuses()
    s = statuses["holiday"]
    assert s["status"] == "COMPLETED_ON_TIME"
    # 14 h on 30 April, 24 on 6 May, 20 on 7 May: the holidays and the weekend do not count
    assert s["working_hours_to_takedown"] == 58.0
    m = statuses["make-up"]
    # taken down on the make-up Saturday: 8 h of Friday and 16 of Saturday count
    assert (m["first_outcome"], m["working_hours_to_takedown"]) == ("COMPLETED_ON_TIME", 24.0)
    assert (m["status"], m["deadline_at"]) == ("OVERDUE", end_of(5, 14))


def test_restarting_midway_ends_in_the_same_statuses(market: Market, kafka_bootstrap: str) -> None:
    story(market)
    market.comply()
    first = market.statuses()
    # more evidence arrives; a new run rebuilds its state from the topics and carries on
    market.seen("L4", cst(3, 9, 9), active=False)  # the re-listing is caught
    market.notice("n7", "L7", cst(3, 20), task_id="overdue")
    market.comply()
    after = market.statuses()
    assert (
        after["relisted"]["status"] == "COMPLETED_ON_TIME" and after["relisted"]["relisted_removed"]
    )
    assert after["overdue"]["status"] == "COMPLETED_LATE"
    assert {t: r for t, r in after.items() if t not in ("relisted", "overdue")} == {
        t: r for t, r in first.items() if t not in ("relisted", "overdue")
    }
    # the same evidence in one run, in a market of its own, ends the same
    fresh = Market(kafka_bootstrap)
    story(fresh)
    fresh.seen("L4", cst(3, 9, 9), active=False)
    fresh.notice("n7", "L7", cst(3, 20), task_id="overdue")
    fresh.comply()
    assert _comparable(fresh.statuses(), fresh) == _comparable(after, market)


def _comparable(statuses: dict[str, dict[str, Any]], m: Market) -> dict[str, dict[str, Any]]:
    """Statuses with what differs between two markets taken out: their topic names, and the
    time a withdrawal was written (a withdrawal's own record time is its evidence time)."""
    out = {}
    for tid, record in statuses.items():
        plain = {
            k: v.replace(m.topics.prefix, "") if isinstance(v, str) else v
            for k, v in record.items()
        }
        if plain["status"] == "WITHDRAWN":
            del plain["changed_at"], plain["evidence_at"]
        out[tid] = plain
    return out


def test_overdue_is_published_when_the_deadline_passes_with_no_other_traffic(
    market: Market,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    deadline = now + timedelta(seconds=8)
    market.task("soon", "S1", now - timedelta(minutes=5), deadline)
    done: list[ComplyAccount] = []
    # streaming, ending only after a long quiet spell: nothing but the clock arrives
    runner = threading.Thread(
        target=lambda: done.append(market.comply(streaming=True, idle_s=25.0)), daemon=True
    )
    runner.start()
    runner.join(timeout=240)
    assert not runner.is_alive() and done
    records = [m for m in read_all(market.bootstrap, market.topics.compliance_status) if m.record]
    overdue = [m for m in records if m.record and m.record["status"] == "OVERDUE"]
    assert [m.record["status"] for m in records if m.record] == ["ISSUED", "OVERDUE"]
    assert overdue[0].record is not None and overdue[0].record["changed_at"] == deadline
    # When the broker appended it: after the deadline and within the promised minute;
    # indeed within 15 s, long before the run's last tick (25 s of quiet after the task,
    # so at least 17 s after the deadline): the clock fired it, not the end of the run.
    appended = _append_time(market, overdue[0])
    assert deadline <= appended <= deadline + timedelta(seconds=15), (deadline, appended)


def _append_time(market: Market, message: Any) -> datetime:
    from kafka import TopicPartition

    from connectors import kafka_client

    consumer = kafka_client.consumer(market.bootstrap)
    tp = TopicPartition(message.topic, message.partition)
    consumer.assign([tp])
    consumer.seek(tp, message.offset)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            for r in records:
                if r.offset == message.offset:
                    consumer.close()
                    return datetime.fromtimestamp(r.timestamp / 1000, UTC)
    consumer.close()
    raise AssertionError("status record not found again")


# ------------------------------------------------------------------ compensation-first


def test_compensation_first_tasks_are_completed_by_their_claim_ending(market: Market) -> None:
    """Tasks as intel issues them, the complaints as ingest leaves them: the claim ending by
    the deadline completes a task on time, after it late; still open it is overdue."""
    claims = comply_job(market.bootstrap, market.topics, platforms=PLATFORMS).claims

    def complaint(cid: str, platform: str = "tmall", **changes: Any) -> dict[str, Any]:
        record = {
            **market.gen.complaint(platform, 0),
            "complaint_id": cid,
            "channel": "PLATFORM",
            "issue_type": "QUALITY",
            "consumer_id": "pseudonym-3f9a",
            "received_at": cst(3, 2, 9),
            **changes,
        }
        produce_avro(
            market.bootstrap,
            market.topics.valid("complaint"),
            "complaint",
            [record],
            "complaint_id",
        )
        return record

    def task_for(record: dict[str, Any]) -> dict[str, Any]:
        fact = complaint_fact(record, "omm.valid.complaints/0/0")
        task = compensation_task(fact, claims.period_end_ms(fact) + claims.lateness_ms, claims)
        produce_avro(
            market.bootstrap, market.topics.tasks(fact.platform), "task", [task], "task_id"
        )
        return task

    paid, overdue = (
        task_for(complaint("C-1")),
        task_for(complaint("H-2", "jd", channel="HOTLINE_12315")),
    )
    late, withdrawn = task_for(complaint("C-3")), task_for(complaint("C-4"))
    deadline = datetime.fromtimestamp(paid["deadline_at"] / 1000, UTC)
    complaint("C-1", status="RESOLVED", resolved_at=deadline - timedelta(hours=2))
    complaint("C-3", status="CLOSED", resolved_at=deadline + timedelta(days=1))
    complaint("H-2", "jd", channel="HOTLINE_12315", status="IN_PROGRESS")  # not an end
    produce_avro(
        market.bootstrap,
        market.topics.tasks("tmall"),
        "task",
        [{**withdrawn, "state": "WITHDRAWN", "reason": "withdrawn: resolved in time"}],
        "task_id",
    )
    complaint("C-5", "suning")  # suning is not bound by compensation-first
    complaint("C-6", issue_type="PRIVACY")  # not a claim
    # a takedown task beside them: the scorecards count it alone
    market.seen("L1", cst(3, 1), active=True)
    market.task("delist", "L1", cst(3, 2, 10), end_of(3, 4))

    account = market.comply()
    assert (account.read, account.untracked, account.dead) == (5 + 1 + 9 + 1, 2, 0)
    s = market.statuses()
    assert {t: (r["task_kind"], r["status"]) for t, r in s.items()} == {
        paid["task_id"]: ("COMPENSATION_FIRST", "COMPLETED_ON_TIME"),
        overdue["task_id"]: ("COMPENSATION_FIRST", "OVERDUE"),
        late["task_id"]: ("COMPENSATION_FIRST", "COMPLETED_LATE"),
        withdrawn["task_id"]: ("COMPENSATION_FIRST", "WITHDRAWN"),
        "delist": ("DELIST", "OVERDUE"),
    }
    on_time = s[paid["task_id"]]
    assert on_time["complaint_id"] == "tmall:C-1" and on_time["evidence_kind"] == "COMPLAINT"
    assert on_time["evidence_ref"].startswith(market.topics.valid("complaint"))
    assert on_time["completed_at"] == deadline - timedelta(hours=2)
    assert s[late["task_id"]]["first_outcome"] == "OVERDUE"
    assert s[overdue["task_id"]]["complaint_id"] == "12315:H-2"
    assert s[overdue["task_id"]]["evidence_kind"] == "DEADLINE"
    # each platform reads its own: jd the hotline claim and its takedown, tmall three claims
    own = {
        p: {
            m.key.decode() for m in read_all(market.bootstrap, market.topics.compliance(p)) if m.key
        }
        for p in PLATFORMS
    }
    assert own == {
        "jd": {overdue["task_id"], "delist"},
        "tmall": {paid["task_id"], late["task_id"], withdrawn["task_id"]},
    }
    cards = market.scorecards()
    assert cards["jd|TOTAL"]["tasks_issued"] == 1 and "tmall|TOTAL" not in cards
