"""Enforcement on the real broker with the real stateful Beam pipeline.

Listings and results are written straight to omm.valid.* (as ingest would
leave them); enforce runs until idle; the tests read the platforms' task
topics and the review topic.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.topics import TopicNames
from omm.beam_runtime import pipeline_args_with_defaults
from omm.generate import CATALOG, FeedGenerator
from omm.jobs import enforce_job
from pipelines.enforce import EnforceAccount, run_enforce
from tests.helpers import fresh_namespace, produce_avro, read_all

pytestmark = pytest.mark.integration

PLATFORMS = ["tmall", "jd", "suning", "gome"]
KETTLE = next(p for p in CATALOG if p.model == "KX-2000A")  # Midea rice cooker
OTHER = next(p for p in CATALOG if p.model == "ST-88")
NOW = datetime.now(UTC).replace(microsecond=0)


class Market:
    """A private market: its topics, a generator, and what enforce made of it."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.topics: TopicNames = fresh_namespace(PLATFORMS, bootstrap)
        self.gen = FeedGenerator(seed=3, now=NOW)
        self._n = 0

    def list(
        self, platform: str, model: str = KETTLE.model, product: Any = KETTLE, **changes: Any
    ) -> dict:
        self._n += 1
        record = {
            **self.gen.listing(platform, self._n, product),
            "model": model,
            "observed_at": NOW - timedelta(hours=5),
            **changes,
        }
        produce_avro(
            self.bootstrap, self.topics.valid("listing"), "listing", [record], "listing_id"
        )
        return record

    def remove(self, listing: dict, at: datetime | None = None) -> None:
        removed = {**listing, "status": "REMOVED", "observed_at": at or NOW - timedelta(hours=1)}
        produce_avro(
            self.bootstrap, self.topics.valid("listing"), "listing", [removed], "listing_id"
        )

    def publish(self, n: int, verdict: str = "FAIL", product: Any = KETTLE, **changes: Any) -> dict:
        result = {
            **self.gen.inspection(
                n, product, verdict=verdict, platform=changes.pop("platform", None)
            ),
            "published_at": NOW - timedelta(hours=2),
            **changes,
        }
        produce_avro(
            self.bootstrap, self.topics.valid("inspection"), "inspection", [result], "inspection_id"
        )
        return result

    def enforce(self) -> EnforceAccount:
        job = enforce_job(self.bootstrap, self.topics, idle_timeout_s=3.0)
        account = run_enforce(job, pipeline_args_with_defaults(None, streaming=False))
        assert account.balanced, account
        return account

    def tasks(self, platform: str) -> list[dict]:
        return [m.record for m in read_all(self.bootstrap, self.topics.tasks(platform)) if m.record]

    def all_tasks(self) -> list[dict]:
        return [t for p in PLATFORMS for t in self.tasks(p)]

    def reviews(self) -> list[dict]:
        return [m.record for m in read_all(self.bootstrap, self.topics.review) if m.record]


def delists(tasks: list[dict]) -> dict[tuple[str, str], dict]:
    return {(t["platform"], t["listing_id"]): t for t in tasks if t["kind"] == "DELIST"}


@pytest.fixture
def market(kafka_bootstrap: str) -> Market:
    return Market(kafka_bootstrap)


def test_fail_delists_every_live_listing_of_the_product_across_platforms(market: Market) -> None:
    # no GTINs here: the model codes alone, written three ways, must match
    a = market.list("tmall", model="KX-2000A", gtin=None)
    b = market.list("jd", model="kx 2000a", gtin=None)
    c = market.list("suning", model="KX2000A", gtin=None)
    gone = market.list("gome", model="KX2000A", gtin=None)
    market.remove(gone, at=NOW - timedelta(hours=3))  # off sale before the result (NOW - 2 h)
    market.list("jd", model=OTHER.model, product=OTHER, brand=OTHER.brand)
    market.publish(1, verdict="FAIL", gtin=None)

    account = market.enforce()

    tasks = market.all_tasks()
    assert set(delists(tasks)) == {
        ("tmall", a["listing_id"]),
        ("jd", b["listing_id"]),
        ("suning", c["listing_id"]),
    }
    assert len([t for t in tasks if t["kind"] == "DELIST"]) == 3  # exactly one each
    remediation = {(t["platform"], t["seller_id"]) for t in tasks if t["kind"] == "REMEDIATION"}
    assert remediation == {(r["platform"], r["seller_id"]) for r in (a, b, c)}
    for task in delists(tasks).values():
        assert task["inspection_id"] == "SAMR-2026-00001"
        assert task["match_method"] == "BRAND_MODEL" and task["match_confidence"] >= 0.85
        assert task["legal_basis"] and task["evidence_ref"].startswith("inspection ")
        assert task["deadline_at"] > task["issued_at"]
    assert account.tasks == 6
    # each platform sees only its own tasks
    assert {t["platform"] for t in market.tasks("jd")} == {"jd"}


def test_listing_appearing_after_the_fail_and_relisting_get_tasks(market: Market) -> None:
    market.publish(2, verdict="FAIL")
    assert market.enforce().tasks == 0

    first = market.list("tmall")
    market.enforce()
    assert set(delists(market.tasks("tmall"))) == {("tmall", first["listing_id"])}

    market.remove(first)  # taken down ...
    relisted = market.list("tmall", listing_id="tmall-RELIST-1", observed_at=NOW)  # ... and back
    market.enforce()
    assert set(delists(market.tasks("tmall"))) == {
        ("tmall", first["listing_id"]),
        ("tmall", relisted["listing_id"]),
    }


def test_three_no_and_counterfeit_stay_with_the_sampled_seller_pass_issues_nothing(
    market: Market,
) -> None:
    sampled = market.list("jd", seller_id="jd-s001")
    same_product_other_seller = market.list("jd", seller_id="jd-s002")
    other_platform = market.list("tmall", seller_id="jd-s001")
    market.publish(3, verdict="THREE_NO", platform="jd", seller_id="jd-s001")
    market.publish(4, verdict="COUNTERFEIT", platform="jd", seller_id="jd-s001")
    market.publish(5, verdict="PASS", product=OTHER)
    market.list("gome", model=OTHER.model, product=OTHER, brand=OTHER.brand)

    market.enforce()

    tasks = market.all_tasks()
    assert {(t["listing_id"], t["inspection_id"]) for t in tasks if t["kind"] == "DELIST"} == {
        (sampled["listing_id"], "SAMR-2026-00003"),
        (sampled["listing_id"], "SAMR-2026-00004"),
    }
    assert same_product_other_seller["listing_id"] not in {t["listing_id"] for t in tasks}
    assert other_platform["listing_id"] not in {t["listing_id"] for t in tasks}
    assert not [t for t in tasks if t["inspection_id"] == "SAMR-2026-00005"]


def test_overturned_result_withdraws_its_open_tasks(market: Market) -> None:
    listing = market.list("suning")
    result = market.publish(6, verdict="FAIL")
    market.enforce()
    (issued,) = delists(market.tasks("suning")).values()
    assert issued["state"] == "ISSUED"

    market.publish(6, verdict="FAIL", status="OVERTURNED", published_at=NOW - timedelta(hours=1))
    market.enforce()

    latest = {t["task_id"]: t for t in market.tasks("suning")}  # compacted view: last wins
    assert latest[issued["task_id"]]["state"] == "WITHDRAWN"
    assert "overturned" in latest[issued["task_id"]]["reason"]
    assert all(t["state"] == "WITHDRAWN" for t in latest.values())
    assert (
        listing["listing_id"] == issued["listing_id"]
        and result["inspection_id"] == "SAMR-2026-00006"
    )


def test_look_alike_goes_to_review_not_to_a_takedown(market: Market) -> None:
    look_alike = market.list("gome", model="KX-2000AS", manufacturer=None, gtin=None)
    market.publish(7, verdict="FAIL")

    market.enforce()

    assert market.tasks("gome") == []
    (review,) = market.reviews()
    assert review["listing_id"] == look_alike["listing_id"]
    assert review["inspection_id"] == "SAMR-2026-00007"
    assert 0.40 <= review["match_confidence"] < 0.85


def test_rerunning_enforce_reissues_nothing_under_a_new_id(market: Market) -> None:
    for platform in PLATFORMS:
        market.list(platform)
    market.publish(8, verdict="FAIL")

    market.enforce()
    first = {t["task_id"]: t for t in market.all_tasks()}
    market.enforce()  # a restart: state rebuilt from the earliest offsets
    second = market.all_tasks()

    assert len(first) == 2 * len(PLATFORMS)
    assert {t["task_id"] for t in second} == set(first)
    for task in second:
        assert task == first[task["task_id"]]  # identical content, not just the same id
