"""Complaint intelligence and the credit list on the real broker with the real Beam pipeline.

Valid complaints, penalties, inspections and listings are written straight to
omm.valid.* (as ingest leaves them); intel runs bounded; the tests read
omm.intel.sampling, omm.intel.leads, omm.credit.events and the platforms' task
topics. The scenario is small and computed by hand (config/intel.yaml's numbers:
72 h lateness; 7-day windows need a score of 12 from 3 complaints, QUALITY weighs 3;
a lead is 5 violation complaints in 30 days; compensation-first after 7 days
unresolved on tmall, jd or taobao; 3 product-safety penalties in 2 years list an
enterprise, final 30 days after the day of the third).
"""

from __future__ import annotations

import random
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from connectors.topics import TopicNames
from omm.beam_runtime import pipeline_args_with_defaults
from omm.cli import app
from omm.config import load_intel, load_platforms
from omm.generate import CATALOG, FeedGenerator
from omm.jobs import intel_job
from pipelines.intel import IntelAccount, run_intel
from tests.helpers import REGISTRY, fresh_namespace, produce_avro, produce_raw, read_all

pytestmark = pytest.mark.integration

PLATFORMS = ["tmall", "jd", "suning"]
CST = ZoneInfo("Asia/Shanghai")
CFG = load_intel()
KETTLE = next(p for p in CATALOG if p.model == "KX-2000A")  # the hotspot
INSPECTED = next(p for p in CATALOG if p.model == "ST-88")  # as hot, but sampled last month
PRIVATE = ("consumer-", "请联系我")  # what every complaint carries and no output may


def cst(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=CST).astimezone(UTC)


def ms(at: Any) -> int:
    """Epoch millis of a datetime (as records decode) or of millis."""
    return at if isinstance(at, int) else int(at.timestamp() * 1000)


class Market:
    """A private namespace and the records written to omm.valid.* (kept, to replay them)."""

    def __init__(self, bootstrap: str, platforms: list[str] = PLATFORMS) -> None:
        self.bootstrap = bootstrap
        self.topics: TopicNames = fresh_namespace(platforms, bootstrap)
        self.gen = FeedGenerator(seed=12, now=cst(2026, 3, 1))
        self.written: list[tuple[str, dict[str, Any]]] = []  # (entity, record)
        self._n = 0

    def _put(self, entity: str, record: dict[str, Any], key_field: str | None) -> None:
        """``key_field`` None: one key for all, so one partition keeps the written order."""
        self.written.append((entity, record))
        topic = self.topics.valid(entity)
        if key_field is None:
            produce_raw(self.bootstrap, topic, [(b"in-order", REGISTRY.encode(entity, record))])
        else:
            produce_avro(self.bootstrap, topic, entity, [record], key_field)

    def complaint(
        self,
        platform: str,
        seller: str,
        at: datetime,
        issue: str = "QUALITY",
        product: Any = None,
        listing_id: str | None = None,
        resolved: datetime | None = None,
        key_field: str | None = "complaint_id",
        gtin: str | None = None,
    ) -> str:
        self._n += 1
        cid = f"C{self._n:03d}"
        record = {
            "complaint_id": cid,
            "platform": platform,
            "channel": "HOTLINE_12315" if self._n % 3 == 0 else "PLATFORM",
            "consumer_id": f"consumer-{self._n}",
            "seller_id": seller,
            "listing_id": listing_id,
            "product_name": product.name if product else None,
            "brand": product.brand if product else None,
            "model": product.model if product else None,
            "gtin": gtin,
            "issue_type": issue,
            "text": f"坏了, 请联系我 13800000{self._n:03d}",
            "status": "RESOLVED" if resolved else "OPEN",
            "received_at": at,
            "resolved_at": resolved,
        }
        self._put("complaint", record, key_field)
        return ("12315:" if self._n % 3 == 0 else f"{platform}:") + cid

    def listing(
        self,
        lid: str,
        platform: str,
        seller: str,
        at: datetime,
        active: bool = True,
        **changes: Any,
    ) -> None:
        base = self.gen.listing(platform, 1, KETTLE)
        record = {**base, "listing_id": lid, "seller_id": seller, "observed_at": at,
                  "status": "ACTIVE" if active else "REMOVED", **changes}  # fmt: skip
        self._put("listing", record, "listing_id")

    def penalty(
        self, pid: str, enterprise: str, decided: datetime, platform: str, seller: str
    ) -> None:
        record = {
            "penalty_id": pid,
            "enterprise_id": enterprise,
            "enterprise_name": f"{enterprise} Appliances Co.",
            "platform": platform,
            "seller_id": seller,
            "ground": "PRODUCT_SAFETY",
            "legal_basis": "Product Quality Law Art. 49",
            "decision_no": f"D-{pid}",
            "authority": "Shanghai AMR",
            "decided_at": decided,
            "published_at": decided + timedelta(days=3),
        }
        self._put("penalty", record, "penalty_id")

    def inspection(self, product: Any, published: datetime) -> None:
        record = {**self.gen.inspection(1, product, verdict="PASS"), "published_at": published}
        self._put("inspection", record, "inspection_id")

    def intel(self, streaming: bool = False, idle_s: float = 2.0) -> IntelAccount:
        job = intel_job(self.bootstrap, self.topics, idle_timeout_s=idle_s, tick_seconds=1.0)
        account = run_intel(job, pipeline_args_with_defaults(None, streaming=streaming))
        assert account.balanced, account
        return account

    def read(self, topic: str) -> list[dict[str, Any]]:
        out = []
        for m in read_all(self.bootstrap, topic):
            assert m.record is not None and m.value is not None
            for private in PRIVATE:
                assert private.encode() not in m.value, (topic, m.record)
            out.append(m.record)
        return out

    def outputs(self) -> dict[str, list[dict[str, Any]]]:
        return {
            "sampling": self.read(self.topics.sampling),
            "leads": self.read(self.topics.leads),
            "credit": self.read(self.topics.credit_events),
            **{p: self.read(self.topics.tasks(p)) for p in PLATFORMS},
        }


@pytest.fixture
def market(kafka_bootstrap: str) -> Market:
    return Market(kafka_bootstrap)


def scenario(m: Market) -> dict[str, Any]:
    """Everything each rule acts on, once; what the test expects is computed beside it."""
    # Targeted sampling: 4 QUALITY complaints about the kettle on Tue 3 March on two
    # platforms, 4 sellers (no lead): score 12, in every 7-day window holding 3 March
    # (ending 4..10 March); too few for a 30-day window. The same about a product the
    # regulator inspected on 20 February: not recommended.
    # (resolved that evening: no compensation-first claim; a window counts a complaint
    # once, from its receipt, whatever became of it)
    hot = [
        m.complaint(
            p, f"{p}-hot-{i}", cst(2026, 3, 3, 9 + i), product=KETTLE, resolved=cst(2026, 3, 3, 18)
        )
        for i, p in enumerate(["suning", "suning", "tmall", "jd"])
    ]
    for i in range(4):
        m.complaint("suning", f"suning-cold-{i}", cst(2026, 3, 3, 9 + i), product=INSPECTED)
    m.inspection(INSPECTED, cst(2026, 2, 20, 10))
    # Complaint-to-case on suning (not bound by compensation-first): s-lead has 4 QUALITY
    # and 1 RETURN_REFUSED about kitchenware (a 7-day return right): 5, a lead. s-below
    # has as many, but its RETURN_REFUSED is about fresh food (lawful to refuse): 4, none.
    m.listing("SN-K1", "suning", "s-lead", cst(2026, 3, 1), category="kitchen")
    m.listing("SN-F1", "suning", "s-below", cst(2026, 3, 1), category="fresh_food/fruit")
    lead = [m.complaint("suning", "s-lead", cst(2026, 3, 4, 9 + i)) for i in range(4)]
    lead.append(
        m.complaint("suning", "s-lead", cst(2026, 3, 5, 9), "RETURN_REFUSED", listing_id="SN-K1")
    )
    for i in range(4):
        m.complaint("suning", "s-below", cst(2026, 3, 4, 9 + i))
    m.complaint("suning", "s-below", cst(2026, 3, 5, 9), "RETURN_REFUSED", listing_id="SN-F1")
    # Compensation-first: an AFTER_SALES claim on tmall still open (its period: 3..9 March,
    # ends 24:00 on Mon 9 March; decided 72 h later, 00:00 on 13 March); one on suning (not
    # bound) and one on jd resolved on 6 March: no task.
    claim = m.complaint("tmall", "tm-shop", cst(2026, 3, 2, 10), "AFTER_SALES")
    m.complaint("suning", "sn-shop", cst(2026, 3, 2, 10), "AFTER_SALES")
    m.complaint("jd", "jd-shop", cst(2026, 3, 2, 10), "AFTER_SALES", resolved=cst(2026, 3, 6))
    # The credit list: Acme's third product-safety penalty within 2 years on 2 March 2026
    # lists it that day, final 30 days after (00:00 on 2 April); its sellers' live listings
    # are flagged: one on tmall, one on jd (a removed one and another seller's: no flag).
    # Beta has two: not listed.
    m.penalty("P1", "acme", cst(2025, 1, 10, 10), "tmall", "tm-acme")
    m.penalty("P2", "acme", cst(2025, 6, 5, 10), "tmall", "tm-acme")
    m.penalty("P3", "acme", cst(2026, 3, 2, 10), "jd", "jd-acme")
    m.penalty("Q1", "beta", cst(2025, 6, 5, 10), "jd", "jd-beta")
    m.penalty("Q2", "beta", cst(2026, 3, 2, 10), "jd", "jd-beta")
    m.listing("TM-A1", "tmall", "tm-acme", cst(2026, 3, 1))
    m.listing("TM-A2", "tmall", "tm-acme", cst(2026, 3, 1))
    m.listing("TM-A2", "tmall", "tm-acme", cst(2026, 3, 20), active=False)
    m.listing("TM-B1", "tmall", "tm-other", cst(2026, 3, 1))
    # the latest event read: the watermark (3 April, 10:00), past everything above
    m.listing("JD-A1", "jd", "jd-acme", cst(2026, 4, 3, 10))
    return {"hot": hot, "lead": lead, "claim": claim, "watermark": ms(cst(2026, 4, 3, 10))}


def check_scenario(m: Market, expected: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out = m.outputs()
    wm = expected["watermark"]
    # sampling: exactly the 7 windows of 7 days holding 3 March, the kettle first (alone)
    recs = out["sampling"]
    ends = [ms(cst(2026, 3, d)) for d in range(4, 11)]
    assert sorted((ms(r["window_start"]), ms(r["window_end"])) for r in recs) == [
        (e - 7 * 86_400_000, e) for e in ends
    ]
    key = recs[0]["product_key"]
    assert key.endswith("|KX2000A")
    for r in recs:
        assert (r["product_key"], r["complaint_count"], r["score"], r["rank"]) == (key, 4, 12.0, 1)
        assert r["counts_by_platform"] == {"jd": 1, "suning": 2, "tmall": 1}
        assert sorted(r["example_complaint_ids"]) == sorted(expected["hot"])
        assert r["last_sampled_at"] is None and ms(r["computed_at"]) == wm
    # case leads: one, for s-lead's five in the window ending 6 March (4 Feb..5 March)
    [lead] = out["leads"]
    assert (lead["platform"], lead["seller_id"]) == ("suning", "s-lead")
    assert (ms(lead["window_start"]), ms(lead["window_end"])) == (
        ms(cst(2026, 2, 4)),
        ms(cst(2026, 3, 6)),
    )
    assert sorted(lead["complaint_ids"]) == sorted(expected["lead"])
    assert lead["counts_by_issue_type"] == {"QUALITY": 4, "RETURN_REFUSED": 1}
    # the credit list: Acme listed on 2 March with its three penalties as evidence
    [event] = out["credit"]
    assert (event["enterprise_id"], event["event"]) == ("acme", "LISTED")
    assert event["penalty_ids"] == ["P1", "P2", "P3"]
    assert ms(event["effective_at"]) == ms(cst(2026, 3, 2))
    assert event["sellers"] == ["jd:jd-acme", "tmall:tm-acme"]
    # tasks: the claim on tmall, and one FLAG per live listing of Acme's sellers
    assert out["suning"] == []
    [flag_jd] = out["jd"]
    assert (flag_jd["kind"], flag_jd["listing_id"], flag_jd["state"]) == ("FLAG", "JD-A1", "ISSUED")
    assert flag_jd["credit_event_id"] == event["event_id"]
    by_kind = {t["kind"]: t for t in out["tmall"]}
    assert len(out["tmall"]) == 2 and set(by_kind) == {"FLAG", "COMPENSATION_FIRST"}
    assert by_kind["FLAG"]["listing_id"] == "TM-A1"
    task = by_kind["COMPENSATION_FIRST"]
    issued = cst(2026, 3, 13)
    assert task["complaint_id"] == expected["claim"] and task["state"] == "ISSUED"
    assert task["issued_at"] == issued
    assert task["deadline_at"] == CFG.calendar.add_working_days(issued, 5).at
    return out


def test_a_complaint_naming_only_a_barcode_counts_toward_its_product(market: Market) -> None:
    """Complaints with a GTIN and no brand or model are keyed by the GTIN, as enforce keys
    it; an inspection names its product's GTIN too, so it excludes them as it would the
    brand and model."""
    hot = [
        market.complaint("jd", f"jd-b-{i}", cst(2026, 3, 3, 9 + i), gtin=KETTLE.gtin)
        for i in range(4)
    ]
    for i in range(4):
        market.complaint("jd", f"jd-c-{i}", cst(2026, 3, 3, 9 + i), gtin=INSPECTED.gtin)
    market.inspection(INSPECTED, cst(2026, 2, 20, 10))
    market.listing("JD-W1", "jd", "jd-w", cst(2026, 4, 3, 10))  # the watermark
    account = market.intel()
    assert account.read == len(market.written) and account.dead == 0
    recs = market.outputs()["sampling"]
    # the 7 seven-day windows holding 3 March, as for the brand-and-model hotspot
    assert len(recs) == 7 and account.recommendations == 7
    for r in recs:
        assert r["product_key"] == f"gtin:{KETTLE.gtin.zfill(14)}"
        assert (r["brand"], r["model"], r["complaint_count"]) == (None, None, 4)
        assert sorted(r["example_complaint_ids"]) == sorted(hot)


def comparable(out: dict[str, list[dict[str, Any]]]) -> dict[str, set[str]]:
    """Decoded records as sets, with provenance (topic prefix, partition, offset) left out:
    those differ between namespaces and production orders, the records must not."""

    def plain(record: dict[str, Any]) -> str:
        text = repr(sorted(record.items()))
        return re.sub(r"t[0-9a-f]{10}\.(omm\.[a-z.]+)/\d+/\d+", r"\1", text)

    return {name: {plain(r) for r in records} for name, records in out.items()}


def test_the_scenario_and_its_replay_in_another_order(market: Market, kafka_bootstrap: str) -> None:
    expected = scenario(market)
    account = market.intel()
    assert account.read == len(market.written) and account.dead == 0
    assert (account.recommendations, account.leads, account.compensation_first) == (7, 1, 1)
    assert (account.credit_events, account.flags, account.late) == (1, 2, 0)
    first = check_scenario(market, expected)

    # the command checks every registered platform's task topic, so the replay has them all
    replay = Market(kafka_bootstrap, load_platforms().ids)
    shuffled = list(market.written)
    random.Random(7).shuffle(shuffled)
    keys = {"complaint": "complaint_id", "listing": "listing_id", "penalty": "penalty_id",
            "inspection": "inspection_id"}  # fmt: skip
    for entity, record in shuffled:
        replay._put(entity, record, keys[entity])
    ran = CliRunner().invoke(
        app,
        ["run", "intel", "--bootstrap", kafka_bootstrap, "--prefix", replay.topics.prefix,
         "--until-idle", "2"],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert ran.exit_code == 0, ran.output
    assert "intel output" in ran.stdout
    assert comparable(replay.outputs()) == comparable(first)


def test_a_streaming_run_counts_a_record_past_the_lateness_as_late(market: Market) -> None:
    """As events arrive: a complaint read after the watermark has closed every window of
    its day (7 and 30 days, plus 72 h) and they were published is counted late and is in
    no window."""
    hot = [
        market.complaint("suning", f"s{i}", cst(2026, 3, 3, 9 + i), product=KETTLE)
        for i in range(4)
    ]
    # 10 April: past 3 March + 30 days + 72 h, so every window of 3 March closes
    market.complaint("suning", "s9", cst(2026, 4, 10), product=KETTLE)
    done: list[IntelAccount] = []
    # streaming; it ends after a quiet spell longer than the wait below takes
    runner = threading.Thread(
        target=lambda: done.append(market.intel(streaming=True, idle_s=15.0)), daemon=True
    )
    runner.start()
    deadline = time.monotonic() + 120
    while len(read_all(market.bootstrap, market.topics.sampling, timeout_s=1.0)) < 7:
        assert time.monotonic() < deadline and runner.is_alive(), "no recommendations"
        time.sleep(0.5)
    late = market.complaint("suning", "s5", cst(2026, 3, 3, 20), product=KETTLE)
    runner.join(timeout=240)
    assert not runner.is_alive() and done
    account = done[0]

    assert account.late == 1 and account.recommendations == 7
    recs = market.outputs()["sampling"]
    assert len(recs) == 7
    for r in recs:
        assert r["complaint_count"] == 4 and late not in r["example_complaint_ids"]
        assert sorted(r["example_complaint_ids"]) == sorted(hot)


def test_as_events_arrive_leads_claims_and_the_list_are_those_of_a_bounded_run(
    market: Market,
) -> None:
    """Streaming, complaints read in event order (one partition): the same lead,
    compensation-first task, LISTED event and flag as in event order."""
    claim = market.complaint("tmall", "tm-shop", cst(2026, 3, 2, 10), "AFTER_SALES", key_field=None)
    lead = [
        market.complaint("suning", "s-lead", cst(2026, 3, 4, 9 + i), key_field=None)
        for i in range(4)
    ]
    lead.append(market.complaint("suning", "s-lead", cst(2026, 3, 5, 9), key_field=None))
    market.listing("TM-A1", "tmall", "tm-acme", cst(2026, 3, 1))
    market.penalty("P1", "acme", cst(2025, 1, 10, 10), "tmall", "tm-acme")
    market.penalty("P2", "acme", cst(2025, 6, 5, 10), "tmall", "tm-acme")
    market.penalty("P3", "acme", cst(2026, 3, 2, 10), "tmall", "tm-acme")
    # the watermark moves on with later complaints: past 13 March, then past 2 April
    market.complaint("suning", "s-x", cst(2026, 3, 20), "OTHER", key_field=None)
    market.complaint("suning", "s-x", cst(2026, 4, 3, 10), "OTHER", key_field=None)

    account = market.intel(streaming=True, idle_s=3.0)

    assert (account.leads, account.compensation_first, account.credit_events) == (1, 1, 1)
    assert (account.flags, account.late) == (1, 0)
    out = market.outputs()
    [found] = out["leads"]
    assert sorted(found["complaint_ids"]) == sorted(lead)
    assert ms(found["window_end"]) == ms(cst(2026, 3, 6))
    [event] = out["credit"]
    assert (event["event"], event["penalty_ids"]) == ("LISTED", ["P1", "P2", "P3"])
    by_kind = {t["kind"]: t for t in out["tmall"]}
    assert len(out["tmall"]) == 2
    assert by_kind["COMPENSATION_FIRST"]["complaint_id"] == claim
    assert by_kind["COMPENSATION_FIRST"]["issued_at"] == cst(2026, 3, 13)
    flag = by_kind["FLAG"]
    assert (flag["listing_id"], flag["credit_event_id"]) == ("TM-A1", event["event_id"])
