"""Feed health inside the real ingest pipeline: drift named, quarantine routed, Data Docs."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka.errors import KafkaError
from typer.testing import CliRunner

from connectors import kafka_client
from omm.cli import app
from omm.generate import FeedGenerator
from omm.settings import REPO_ROOT
from tests.helpers import REGISTRY, fresh_namespace, ingest_until_idle, produce_avro, read_all

pytestmark = pytest.mark.integration

PLATFORMS = ["tmall", "dangdang"]


def listings_with_drift(platform: str, n: int, lose_brand_from: int | None) -> list[dict]:
    """n listings; from index ``lose_brand_from`` on, every third one has no brand."""
    gen = FeedGenerator(seed=21)
    out = []
    for i in range(n):
        record = gen.listing(platform, i)
        if lose_brand_from is not None and i >= lose_brand_from and i % 3 == 0:
            record["brand"] = None
        out.append(record)
    return out


def health_records(bootstrap: str, topic: str) -> dict[str, dict]:
    return {m.record["platform"]: m.record for m in read_all(bootstrap, topic) if m.record}


def test_drifting_feed_is_named_with_observed_value_and_threshold_clean_feed_passes(
    kafka_bootstrap: str,
) -> None:
    topics = fresh_namespace(PLATFORMS, kafka_bootstrap)
    # dangdang: halfway through, a third of the listings lose their brand (about 17 %)
    produce_avro(
        kafka_bootstrap,
        topics.feed("dangdang", "listings"),
        "listing",
        listings_with_drift("dangdang", 300, lose_brand_from=0),
        "listing_id",
    )
    produce_avro(
        kafka_bootstrap,
        topics.feed("tmall", "listings"),
        "listing",
        listings_with_drift("tmall", 300, lose_brand_from=None),
        "listing_id",
    )

    accounts = ingest_until_idle(kafka_bootstrap, topics, PLATFORMS)

    assert accounts["omm.feed.dangdang.listings"].valid == 300  # warn mode: records pass on
    health = health_records(kafka_bootstrap, topics.feed_health)
    drifted, clean = health["dangdang"], health["tmall"]
    assert drifted["rows"] == 300 and not drifted["success"]
    (brand,) = [o for o in drifted["outcomes"] if not o["success"]]
    assert brand["column"] == "brand"
    assert "not_be_null" in brand["expectation"]
    assert brand["observed_value"] == pytest.approx(200 / 300)
    assert "0.9" in brand["threshold"]
    assert clean["success"] and clean["rows"] == 300
    assert all(o["success"] for o in clean["outcomes"])


def test_quarantine_mode_routes_the_failing_batch_and_the_account_balances(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    shutil.copytree(REPO_ROOT / "config", config)
    suite_file = config / "expectations" / "listings.yaml"
    suite = yaml.safe_load(suite_file.read_text(encoding="utf-8"))
    suite["on_failure"] = "quarantine"
    suite_file.write_text(yaml.safe_dump(suite, allow_unicode=True), encoding="utf-8")
    topics = fresh_namespace(PLATFORMS, kafka_bootstrap)
    produce_avro(
        kafka_bootstrap,
        topics.feed("dangdang", "listings"),
        "listing",
        listings_with_drift("dangdang", 300, lose_brand_from=0),
        "listing_id",
    )
    produce_avro(
        kafka_bootstrap,
        topics.feed("tmall", "listings"),
        "listing",
        listings_with_drift("tmall", 120, lose_brand_from=None),
        "listing_id",
    )

    accounts = ingest_until_idle(kafka_bootstrap, topics, PLATFORMS, config_dir=str(config))

    bad, good = accounts["omm.feed.dangdang.listings"], accounts["omm.feed.tmall.listings"]
    assert (bad.read, bad.valid, bad.quarantined, bad.dead) == (300, 0, 300, 0)
    assert (good.read, good.valid, good.quarantined) == (120, 120, 0)
    assert bad.balanced and good.balanced
    quarantined = read_all(kafka_bootstrap, topics.quarantine("listing"))
    assert len(quarantined) == 300
    assert all("not_be_null" in m.headers["omm.quarantine.reason"] for m in quarantined)
    valid = read_all(kafka_bootstrap, topics.valid("listing"))
    assert {m.record["platform"] for m in valid if m.record} == {"tmall"}
    assert health_records(kafka_bootstrap, topics.feed_health)["dangdang"]["quarantined"] is True


def test_report_feeds_writes_data_docs_naming_platforms_and_suites(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topics = fresh_namespace(PLATFORMS, kafka_bootstrap)
    produce_avro(
        kafka_bootstrap,
        topics.feed("dangdang", "listings"),
        "listing",
        listings_with_drift("dangdang", 90, lose_brand_from=0),
        "listing_id",
    )
    ingest_until_idle(kafka_bootstrap, topics, PLATFORMS)

    out = tmp_path / "docs"
    result = CliRunner().invoke(
        app,
        [
            "report",
            "feeds",
            "--out",
            str(out),
            "--bootstrap",
            kafka_bootstrap,
            "--prefix",
            topics.prefix,
        ],
    )

    assert result.exit_code == 0, result.output
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "dangdang" in index and "omm.listings" in index
    assert "dangdang" in result.output


def _task(task_id: str, platform: str) -> dict:
    at = datetime.now(UTC) - timedelta(hours=2)
    return {
        "task_id": task_id,
        "kind": "DELIST",
        "platform": platform,
        "seller_id": f"{platform}-shop-1",
        "listing_id": f"{platform}-L1",
        "inspection_id": "SAMR-2026-0417-0031",
        "product_key": "maker|brand|MODEL1",
        "brand": "Brand",
        "model": "MODEL1",
        "manufacturer": "Maker",
        "verdict": "FAIL",
        "match_method": "BRAND_MODEL",
        "match_confidence": 0.97,
        "legal_basis": "E-Commerce Law art. 29",
        "reason": "same model, same labelled producer",
        "state": "ISSUED",
        "deadline_at": at + timedelta(days=3),
        "issued_at": at,
        "evidence_ref": "omm.valid.inspections/0/42",
    }


def _produce_acked(
    bootstrap: str, topic: str, entity: str, records: list[dict], key_field: str
) -> None:
    """Each record acknowledged, retried while the new topic's leader settles (a fresh
    topic answers NotLeaderForPartition for a moment; the retries are bounded by time)."""
    producer = kafka_client.producer(bootstrap, retries=50, retry_backoff_ms=200)
    try:
        for r in records:
            value = REGISTRY.encode(entity, r)
            deadline = time.monotonic() + 60
            while True:
                try:
                    producer.send(topic, key=str(r[key_field]).encode(), value=value).get(30)
                    break
                except KafkaError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
    finally:
        producer.close()


def _takedowns_and_tasks(bootstrap: str, topics: Any) -> None:
    """tmall answers tasks omm issued to it; dangdang names a task omm never issued and
    one issued to tmall, not to dangdang."""
    _produce_acked(
        bootstrap,
        topics.tasks("tmall"),
        "task",
        [_task(f"t-tmall-{i}", "tmall") for i in range(5)],
        "task_id",
    )
    gen = FeedGenerator(seed=9)
    tmall = [{**gen.takedown("tmall", i), "task_id": f"t-tmall-{i % 5}"} for i in range(10)]
    dangdang = [
        {**gen.takedown("dangdang", i), "task_id": "t-never-issued" if i % 2 else "t-tmall-0"}
        for i in range(10)
    ]
    for platform, notices in (("tmall", tmall), ("dangdang", dangdang)):
        _produce_acked(
            bootstrap, topics.feed(platform, "takedowns"), "takedown", notices, "notice_id"
        )


def test_quarantine_mode_keeps_task_ids_in_state_and_holds_only_the_bad_feed(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Issue 9 on the stateful path: issued ids live in a SetState per platform|takedowns."""
    config = tmp_path / "config"
    shutil.copytree(REPO_ROOT / "config", config)
    suite_file = config / "expectations" / "takedowns.yaml"
    suite = yaml.safe_load(suite_file.read_text(encoding="utf-8"))
    suite["on_failure"] = "quarantine"
    suite_file.write_text(yaml.safe_dump(suite, allow_unicode=True), encoding="utf-8")
    topics = fresh_namespace(PLATFORMS, kafka_bootstrap)
    _takedowns_and_tasks(kafka_bootstrap, topics)

    accounts = ingest_until_idle(kafka_bootstrap, topics, PLATFORMS, config_dir=str(config))

    bad, good = accounts["omm.feed.dangdang.takedowns"], accounts["omm.feed.tmall.takedowns"]
    assert (bad.read, bad.valid, bad.quarantined, bad.dead) == (10, 0, 10, 0)
    assert (good.read, good.valid, good.quarantined, good.dead) == (10, 10, 0, 0)
    quarantined = read_all(kafka_bootstrap, topics.quarantine("takedown"))
    assert len(quarantined) == 10
    assert all("task_known" in m.headers["omm.quarantine.reason"] for m in quarantined)


def test_takedowns_naming_unknown_tasks_make_the_feed_unhealthy(kafka_bootstrap: str) -> None:
    """Issue 9: the validator was built without the issued task ids, so a takedown naming a
    task that does not exist passed as healthy. tmall answers tasks omm issued to it;
    dangdang names a task omm never issued (and one issued to tmall, not to dangdang)."""
    topics = fresh_namespace(PLATFORMS, kafka_bootstrap)
    _takedowns_and_tasks(kafka_bootstrap, topics)

    accounts = ingest_until_idle(kafka_bootstrap, topics, PLATFORMS)

    # warn mode: every notice passes on; the tasks topics are read but not accounted
    assert accounts["omm.feed.dangdang.takedowns"].valid == 10
    assert accounts["omm.feed.tmall.takedowns"].valid == 10
    assert not any(topic.startswith("omm.tasks.") for topic in accounts)
    health = {
        m.record["platform"]: m.record
        for m in read_all(kafka_bootstrap, topics.feed_health)
        if m.record and m.record["feed"] == "takedowns"
    }
    bad, good = health["dangdang"], health["tmall"]
    assert not bad["success"]
    (failed,) = [o for o in bad["outcomes"] if not o["success"]]
    assert failed["column"] == "task_known" and failed["critical"]
    assert failed["observed_value"] == 0.0
    assert good["success"], [o for o in good["outcomes"] if not o["success"]]
    assert any(o["column"] == "task_known" and o["success"] for o in good["outcomes"])
