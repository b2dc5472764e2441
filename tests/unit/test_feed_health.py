"""Feed health (issue 4): GX suites from config/expectations on generated feed batches.

No Kafka, no Beam; Great Expectations is real (one validator, so one ~3 s import, for the
module). Timings are measured by the benchmark, not here.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import yaml

from omm.config import load_platforms
from omm.generate import CATALOG, FeedGenerator
from pipelines.feed_health.gx import FeedValidator
from pipelines.feed_health.report import offline_css, offline_html, write_data_docs
from pipelines.feed_health.results import ExpectationOutcome, FeedHealth
from pipelines.feed_health.suites import FEEDS, load_suite_config, load_suites
from schemas.registry import SchemaRegistry
from tests.offline import other_origin_references

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config"


def make_validator(
    config_dir: Path, known_task_ids: Callable[[], set[str]] | None = None
) -> FeedValidator:
    """A validator for the suites and platforms of ``config_dir``, as ingest's job has them."""
    suites = load_suites(config_dir / "expectations")
    return FeedValidator(suites, load_platforms(config_dir).ids, known_task_ids)


@pytest.fixture(scope="module")
def validator() -> FeedValidator:
    v = make_validator(CONFIG)
    v.prepare()  # imports GX and builds every shipped suite: a bad config fails here
    return v


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC)


def window(now: datetime) -> tuple[datetime, datetime]:
    return now - timedelta(hours=1), now


def listings(now: datetime, n: int = 300, platform: str = "taobao") -> list[dict[str, Any]]:
    gen = FeedGenerator(seed=7, now=now)
    return [gen.listing(platform, i) for i in range(n)]


def outcome(health: FeedHealth, prefix: str) -> ExpectationOutcome:
    found = [o for o in health.outcomes if o.expectation.startswith(prefix)]
    assert len(found) == 1, [o.expectation for o in health.outcomes]
    return found[0]


def config_copy(tmp_path: Path, feed: str, **changes: Any) -> Path:
    """A copy of config/ whose <feed> suite has top-level keys replaced."""
    target = tmp_path / "config"
    shutil.copytree(CONFIG, target)
    path = target / "expectations" / f"{feed}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data.update(changes)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return target


# --------------------------------------------------------------------------- clean data


def test_a_clean_window_of_listings_meets_every_expectation(
    validator: FeedValidator, now: datetime
) -> None:
    start, end = window(now)
    health = validator.validate("taobao", "listings", listings(now), start, end)
    assert health.success, health.summary()
    assert health.failing() == []
    assert health.rows == 300
    assert health.suite == "omm.listings" and health.on_failure == "warn"
    assert len(health.outcomes) == len(validator.suite_for("listings").expectations)
    assert health.window_end - health.window_start == end - start
    assert abs(health.window_start - start) < timedelta(milliseconds=1)  # Avro keeps millis
    assert not health.quarantine()


@pytest.mark.parametrize("feed", FEEDS)
def test_clean_generated_batches_of_every_feed_pass(
    validator: FeedValidator, now: datetime, feed: str
) -> None:
    gen = FeedGenerator(seed=11, now=now)
    make = {
        "listings": lambda i: gen.listing("jd", i),
        "complaints": lambda i: gen.complaint("jd", i),
        "takedowns": lambda i: gen.takedown("jd", i),
        "inspections": lambda i: gen.inspection(i, platform="jd"),
    }[feed]
    platform = "regulator" if feed == "inspections" else "jd"
    health = validator.validate(platform, feed, [make(i) for i in range(200)], *window(now))
    assert health.success, health.summary()
    assert health.outcomes


def test_an_empty_batch_is_healthy_and_evaluates_nothing(
    validator: FeedValidator, now: datetime
) -> None:
    health = validator.validate("jd", "listings", [], *window(now))
    assert health.rows == 0 and health.success and health.outcomes == ()


# --------------------------------------------------------------------------- drift


def test_a_third_of_listings_losing_their_brand_fails_the_brand_expectation(
    validator: FeedValidator, now: datetime
) -> None:
    records = [{**r, "brand": None} if i % 3 == 0 else r for i, r in enumerate(listings(now, 300))]
    health = validator.validate("suning", "listings", records, *window(now))
    assert not health.success
    brand = outcome(health, "expect_column_values_to_not_be_null(brand)")
    assert health.failing() == [brand]
    assert brand.expectation == "expect_column_values_to_not_be_null(brand)"
    assert brand.column == "brand"
    assert brand.critical and not brand.success
    assert brand.observed == "0.667 of 300 rows non-null (100 unexpected)"
    assert brand.observed_value == pytest.approx(2 / 3)
    assert brand.threshold == "mostly >= 0.90"
    assert "Brand is declared" in brand.description
    assert "brand" in health.summary() and "0.667" in health.summary()


def test_duplicate_listing_observations_fail_uniqueness(
    validator: FeedValidator, now: datetime
) -> None:
    records = listings(now, 200)
    records += [dict(r) for r in records[:10]]  # the platform resent ten snapshots
    health = validator.validate("gome", "listings", records, *window(now))
    unique = outcome(health, "expect_compound_columns_to_be_unique(listing_id, observed_at)")
    assert not unique.success and unique.critical
    assert unique.threshold == "all values unique"
    assert "20 unexpected" in unique.observed  # both copies of each duplicate
    assert "'taobao-L0000000'" in unique.observed  # an example of a duplicated id
    assert [o.expectation for o in health.failing()] == [unique.expectation]


def test_a_listing_seen_twice_with_a_status_change_is_not_a_duplicate(
    validator: FeedValidator, now: datetime
) -> None:
    records = listings(now, 200)
    later = now - timedelta(minutes=5)
    records += [{**r, "status": "REMOVED", "observed_at": later} for r in records[:10]]
    health = validator.validate("gome", "listings", records, *window(now))
    unique = outcome(health, "expect_compound_columns_to_be_unique(listing_id, observed_at)")
    assert unique.success


def test_prices_a_hundred_times_too_high_fail_the_price_range(
    validator: FeedValidator, now: datetime
) -> None:
    records = [{**r, "price_minor": r["price_minor"] * 100} for r in listings(now, 300)]
    health = validator.validate("vip", "listings", records, *window(now))
    price = outcome(health, "expect_column_values_to_be_in_set(price_in_range)")
    assert not price.success and price.critical
    assert price.threshold == "in {true}; mostly >= 0.98"
    assert price.observed_value is not None and price.observed_value < 0.5
    # the observed value names the categories out of range and an example price
    assert re.search(r"kitchen \d+ \(\d+ rows\)", price.observed), price.observed


def test_prices_in_another_currency_are_not_judged_by_cny_bounds(
    validator: FeedValidator, now: datetime
) -> None:
    records = [
        {**r, "price_minor": r["price_minor"] * 100, "currency": "USD"} for r in listings(now, 100)
    ]
    health = validator.validate("vip", "listings", records, *window(now))
    price = outcome(health, "expect_column_values_to_be_in_set(price_in_range)")
    assert price.success and price.observed.startswith("no values to check")


def test_stale_observed_at_fails_the_event_time_bound(
    validator: FeedValidator, now: datetime
) -> None:
    bound = next(
        s.kwargs["max_value"]
        for s in validator.suite_for("listings").expectations
        if s.column == "age_hours"
    )
    records = [
        {**r, "observed_at": now - timedelta(hours=bound + 1 + i % 5)}
        for i, r in enumerate(listings(now, 100))
    ]
    health = validator.validate("dangdang", "listings", records, *window(now))
    age = outcome(health, "expect_column_values_to_be_between(age_hours)")
    assert not age.success and age.critical
    assert age.observed.startswith("0.00 of 100 rows in range (100 unexpected, e.g. 73")
    assert age.threshold == f"-0.0833 <= value <= {bound}; mostly >= 0.99"


def test_event_times_in_the_future_fail_too(validator: FeedValidator, now: datetime) -> None:
    records = [{**r, "observed_at": now + timedelta(hours=2)} for r in listings(now, 50)]
    health = validator.validate("dangdang", "listings", records, *window(now))
    assert not outcome(health, "expect_column_values_to_be_between(age_hours)").success


def test_invalid_gtins_lower_the_valid_gtin_share(validator: FeedValidator, now: datetime) -> None:
    records = [
        {**r, "gtin": "6900000001012"} if r["gtin"] and i % 2 else r
        for i, r in enumerate(listings(now, 200))
    ]
    health = validator.validate("jd", "listings", records, *window(now))
    gtin = outcome(health, "expect_column_values_to_be_in_set(gtin_valid)")
    assert not gtin.success and not gtin.critical
    assert "non-null rows true" in gtin.observed  # listings without a GTIN are not counted


def test_platform_outside_the_registry_fails(validator: FeedValidator, now: datetime) -> None:
    records = [{**r, "platform": "pinduoduo"} for r in listings(now, 20)]
    health = validator.validate("jd", "listings", records, *window(now))
    platform = outcome(health, "expect_column_values_to_be_in_set(platform)")
    assert not platform.success
    assert "taobao" in platform.threshold and "amazon_cn" in platform.threshold
    assert "'pinduoduo'" in platform.observed


def test_complaints_all_of_one_issue_type_fail_the_share_expectation(
    validator: FeedValidator, now: datetime
) -> None:
    gen = FeedGenerator(seed=3, now=now)
    records = [{**gen.complaint("tmall", i), "issue_type": "OTHER"} for i in range(60)]
    health = validator.validate("tmall", "complaints", records, *window(now))
    share = outcome(health, "expect_column_max_to_be_between(issue_type_share)")
    assert not share.success
    assert share.observed_value == 1.0
    assert share.observed == "1 (largest value)"
    assert share.threshold == "max <= 0.6"
    # still within the known set: only the share expectation fails
    assert [o.expectation for o in health.failing()] == [share.expectation]


def test_the_share_expectation_is_skipped_for_small_batches(
    validator: FeedValidator, now: datetime
) -> None:
    gen = FeedGenerator(seed=3, now=now)
    records = [{**gen.complaint("tmall", i), "issue_type": "OTHER"} for i in range(10)]
    health = validator.validate("tmall", "complaints", records, *window(now))
    assert not [o for o in health.outcomes if "issue_type_share" in o.expectation]
    assert health.success


def test_takedowns_claiming_an_unknown_task_fail_when_tasks_are_known(now: datetime) -> None:
    gen = FeedGenerator(seed=5, now=now)
    records = [gen.takedown("jd", i) for i in range(20)]
    records[0] = {**records[0], "task_id": "task-known"}
    records[1] = {**records[1], "task_id": "task-made-up"}

    unknown = make_validator(CONFIG)  # no task ids: the check is skipped, not failed
    health = unknown.validate("jd", "takedowns", records, *window(now))
    assert health.success
    assert not [o for o in health.outcomes if "task_known" in o.expectation]

    known = make_validator(CONFIG, known_task_ids=lambda: {"task-known"})
    health = known.validate("jd", "takedowns", records, *window(now))
    task = outcome(health, "expect_column_values_to_be_in_set(task_known)")
    assert not task.success and task.critical
    # own-initiative notices (no task_id) are not counted
    assert task.observed == "0.50 of 2 non-null rows true (1 unexpected, e.g. false)"


def test_ingest_passes_the_platforms_task_ids_and_an_empty_set_is_an_answer(
    validator: FeedValidator, now: datetime
) -> None:
    """Issue 9: ingest now hands the validator the ids issued to the batch's platform. A
    notice naming a task that does not exist fails, also when none was ever issued."""
    gen = FeedGenerator(seed=6, now=now)
    records = [{**gen.takedown("jd", i), "task_id": f"t-{i}"} for i in range(10)]

    health = validator.validate("jd", "takedowns", records, *window(now), known_task_ids=set())
    task = outcome(health, "expect_column_values_to_be_in_set(task_known)")
    assert not health.success and not task.success and task.critical
    assert task.observed.startswith("0.00 of 10 rows true")

    issued = {f"t-{i}" for i in range(10)}
    health = validator.validate("jd", "takedowns", records, *window(now), known_task_ids=issued)
    assert outcome(health, "expect_column_values_to_be_in_set(task_known)").success
    assert health.success


# --------------------------------------------------------------------------- quarantine


def _health(on_failure: str, *, critical: bool, success: bool) -> FeedHealth:
    at = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    o = ExpectationOutcome(
        expectation="expect_column_values_to_not_be_null(brand)",
        column="brand",
        success=success,
        observed="0.62 of 100 rows non-null (38 unexpected)",
        threshold="mostly >= 0.90",
        critical=critical,
        description="Brand is declared on at least 90 % of listings.",
        observed_value=0.62,
        kwargs_json=json.dumps({"column": "brand", "mostly": 0.9}),
    )
    return FeedHealth(
        platform="jd",
        feed="listings",
        window_start=at,
        window_end=at + timedelta(hours=1),
        rows=100,
        success=success,
        outcomes=(o,),
        validated_at=at + timedelta(hours=1, seconds=3),
        suite="omm.listings",
        on_failure=on_failure,
    )


@pytest.mark.parametrize(
    ("on_failure", "critical", "success", "expected"),
    [
        ("quarantine", True, False, True),
        ("quarantine", False, False, False),  # a non-critical failure only warns
        ("quarantine", True, True, False),
        ("warn", True, False, False),  # the default: warn, pass the records on
    ],
)
def test_quarantine_needs_quarantine_configured_and_a_critical_failure(
    on_failure: str, critical: bool, success: bool, expected: bool
) -> None:
    health = _health(on_failure, critical=critical, success=success)
    assert health.quarantine() is expected
    assert health.quarantine(on_failure) is expected
    assert health.to_record()["quarantined"] is expected


def test_quarantine_takes_an_explicit_mode_over_the_suites() -> None:
    health = _health("warn", critical=True, success=False)
    assert health.quarantine("quarantine") is True
    assert _health("quarantine", critical=True, success=False).quarantine("warn") is False


def test_on_failure_quarantine_comes_from_the_suite_config(tmp_path: Path, now: datetime) -> None:
    config = config_copy(tmp_path, "listings", on_failure="quarantine")
    v = make_validator(config)
    assert v.suite_for("listings").on_failure == "quarantine"
    records = [{**r, "brand": None} for r in listings(now, 30)]
    health = v.validate("jd", "listings", records, *window(now))
    assert health.on_failure == "quarantine" and health.quarantine()
    assert "QUARANTINED" in health.summary()
    clean = v.validate("jd", "listings", listings(now, 30), *window(now))
    assert not clean.quarantine()


# --------------------------------------------------------------------------- records


def test_to_record_encodes_as_feed_health_and_round_trips(
    validator: FeedValidator, now: datetime
) -> None:
    records = [{**r, "brand": None} if i % 3 == 0 else r for i, r in enumerate(listings(now, 90))]
    health = validator.validate("jd", "listings", records, *window(now))
    registry = SchemaRegistry.load()
    data = registry.encode("feed_health", health.to_record())
    entity, decoded = registry.decode(data, "feed_health")
    assert entity == "feed_health"
    assert decoded["platform"] == "jd" and decoded["feed"] == "listings"
    assert decoded["suite"] == "omm.listings" and decoded["rows"] == 90
    assert decoded["quarantined"] is False and decoded["on_failure"] == "warn"
    brand = next(o for o in decoded["outcomes"] if o["column"] == "brand")
    assert brand["success"] is False and brand["threshold"] == "mostly >= 0.90"
    assert json.loads(brand["kwargs_json"]) == {"column": "brand", "mostly": 0.9}
    assert FeedHealth.from_record(decoded) == health


def test_the_schema_documents_every_field() -> None:
    schema = SchemaRegistry.load().current("feed_health").schema
    names = [f["name"] for f in schema["fields"]]
    assert names == [
        "platform",
        "feed",
        "suite",
        "window_start",
        "window_end",
        "rows",
        "success",
        "on_failure",
        "quarantined",
        "outcomes",
        "validated_at",
    ]
    outcome_fields = schema["fields"][names.index("outcomes")]["type"]["items"]["fields"]
    assert [f["name"] for f in outcome_fields][:4] == [
        "expectation",
        "column",
        "success",
        "observed",
    ]


# --------------------------------------------------------------------------- data docs


def _text_outside_scripts(html: str) -> str:
    return re.sub(r"<script.*?</script>", " ", html, flags=re.S)


def test_write_data_docs_names_each_platform_and_suite_and_works_offline(
    validator: FeedValidator, now: datetime, tmp_path: Path
) -> None:
    gen = FeedGenerator(seed=9, now=now)
    drifted = [
        {**r, "brand": None} if i % 3 == 0 else r for i, r in enumerate(listings(now, 90, "yixun"))
    ]
    healths = [
        validator.validate("yixun", "listings", drifted, *window(now)),
        validator.validate("amazon_cn", "listings", listings(now, 50, "amazon_cn"), *window(now)),
        validator.validate(
            "tmall", "complaints", [gen.complaint("tmall", i) for i in range(40)], *window(now)
        ),
    ]
    # From the records alone, as the report reads them back from omm.feed.health.
    registry = SchemaRegistry.load()
    read_back = [
        FeedHealth.from_record(registry.decode(registry.encode("feed_health", h.to_record()))[1])
        for h in healths
    ]
    out = tmp_path / "docs"
    index = write_data_docs(read_back, out)
    assert index == out.resolve() / "index.html" and index.is_file()
    html = index.read_text(encoding="utf-8")
    # The index table is static HTML (GX's own needs bootstrap-table from a CDN).
    visible = _text_outside_scripts(html)
    for name in ("yixun", "amazon_cn", "tmall", "omm.listings", "omm.complaints"):
        assert name in visible, name
    links = re.findall(r'<a href="(validations/[^"]+\.html)"', visible)
    assert len(links) == 3
    pages = {link: (out / unquote(link)).read_text(encoding="utf-8") for link in links}
    yixun = next(text for link, text in pages.items() if "yixun" in link)
    assert "Failed" in yixun
    assert "expect_column_values_to_not_be_null(brand)" in yixun
    assert "mostly &gt;= 0.90" in yixun  # the threshold, HTML-escaped
    assert "66.667% not null" in yixun  # GX's own observed-value renderer for not-null
    assert "Brand is declared" in yixun
    # Nothing in the site reaches another origin: no CDN script, stylesheet, logo or font.
    for path in [*out.rglob("*.html"), *out.rglob("*.css")]:
        text = path.read_text(encoding="utf-8")
        assert other_origin_references(text) == [], path
        assert "<script" not in text, path


PLANTED = """<!DOCTYPE html>
<html><head>
<link rel="stylesheet" href="https://cdn.example/bootstrap.css"/>
<link rel="shortcut icon" href="./static/images/favicon.ico">
<style>.logo { background: url('https://s3.example/logo.png') 0 0; }
.ok { background: url(static/images/local.png); }
@import url("//fonts.example/font.css");</style>
<script src="https://code.example/jquery.js"></script>
<script>vegaEmbed('#x', {"url": "https://data.example/x.json"});</script>
</head><body>
<a href="https://greatexpectations.io">Great Expectations</a> &amp; <a href="#s1">Overview</a>
<img src="http://img.example/a.png" alt="logo"><img src="static/b.png" alt="b">
<div style="background-image: url(//x.example/bg.png); color: red">kept &#8212; text</div>
<iframe src="https://frame.example/"></iframe><!-- a comment -->
</body></html>
"""


def test_offline_html_drops_every_reference_to_another_origin_and_keeps_the_rest() -> None:
    assert len(other_origin_references(PLANTED)) >= 7  # the check sees what is planted
    page = offline_html(PLANTED)
    assert other_origin_references(page) == []
    assert "<script" not in page and "vegaEmbed" not in page
    assert "cdn.example" not in page and "frame.example" not in page
    # what stays on the page is copied as written
    assert page.startswith("<!DOCTYPE html>")
    assert '<link rel="shortcut icon" href="./static/images/favicon.ico">' in page
    assert "url(static/images/local.png)" in page
    assert '<a>Great Expectations</a> &amp; <a href="#s1">Overview</a>' in page
    assert '<img src="static/b.png" alt="b">' in page and "img.example" not in page
    assert "kept &#8212; text" in page and "color: red" in page
    assert "<!-- a comment -->" in page


def test_offline_css_replaces_urls_to_other_origins_and_drops_their_imports() -> None:
    css = (
        "@import 'https://a.example/x.css';\n@import 'local.css';\n"
        '.a { background: url("https://b.example/y.png") }\n'
        ".b { background: url(img/z.png) }\n"
    )
    assert offline_css(css) == (
        "\n@import 'local.css';\n.a { background: none }\n.b { background: url(img/z.png) }\n"
    )


def test_write_data_docs_drops_pages_of_results_no_longer_given(
    validator: FeedValidator, now: datetime, tmp_path: Path
) -> None:
    out = tmp_path / "docs"
    first = validator.validate("jd", "listings", listings(now, 20, "jd"), *window(now))
    write_data_docs([first], out)
    second = validator.validate("jd", "listings", listings(now, 30, "jd"), *window(now))
    html = write_data_docs([second], out).read_text(encoding="utf-8")
    assert len(list(out.glob("validations/**/*.html"))) == 1
    assert "jd" in _text_outside_scripts(html)


def test_last_results_keeps_the_gx_result_per_platform_and_feed(
    validator: FeedValidator, now: datetime
) -> None:
    validator.validate("yihaodian", "listings", listings(now, 20, "yihaodian"), *window(now))
    result = validator.last_results()[("yihaodian", "listings")]
    assert result.success is True
    assert result.suite_name == "omm.listings"


# --------------------------------------------------------------------------- config


def test_every_shipped_suite_config_loads() -> None:
    for feed in FEEDS:
        cfg = load_suite_config(CONFIG / "expectations" / f"{feed}.yaml")
        assert cfg.feed == feed and cfg.on_failure in ("warn", "quarantine")
        assert all(s.description for s in cfg.expectations)
        assert any(s.critical for s in cfg.expectations)


def test_row_conditions_in_config_become_gx_row_conditions(tmp_path: Path, now: datetime) -> None:
    config = config_copy(
        tmp_path,
        "listings",
        expectations=[
            {
                "expectation": "ExpectColumnValuesToBeBetween",
                "kwargs": {"column": "price_minor", "min_value": 1000, "max_value": 500000},
                "where": {"category": "kitchen", "currency": "CNY"},
                "critical": True,
                "description": "Kitchen appliances cost 10 - 5 000 CNY.",
            },
            {
                "expectation": "ExpectColumnValuesToBeBetween",
                "kwargs": {"column": "price_minor", "max_value": 10},
                "where": {"category": {"not_in": ["kitchen"]}},
                "description": "Everything else is (absurdly) at most 0.10 CNY.",
            },
        ],
    )
    v = make_validator(config)
    kitchen = next(p for p in CATALOG if p.category == "kitchen")
    toys = next(p for p in CATALOG if p.category == "toys")
    gen = FeedGenerator(seed=1, now=now)
    records = [gen.listing("jd", i, kitchen) for i in range(20)]
    records += [{**gen.listing("jd", 100 + i, toys), "price_minor": 10**7} for i in range(5)]
    health = v.validate("jd", "listings", records, *window(now))
    first, second = health.outcomes
    assert first.expectation == (
        "expect_column_values_to_be_between(price_minor where category == kitchen AND "
        "currency == CNY)"
    )
    assert json.loads(first.kwargs_json)["row_condition"]["type"] == "and"
    assert first.success  # the expensive toys are outside its row condition
    assert first.observed == "1.00 of 20 rows in range"
    assert second.expectation.endswith("where category not in (kitchen))")
    assert not second.success


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"expectation": "ExpectNothingInParticular"}, "not a Great Expectations expectation"),
        ({"kwargs": {"column": "brand", "row_condition": "x"}}, "use `where`"),
        ({"where": {"category": {"like": "k%"}}}, "where.category"),
        ({"description": "costs $5"}, "may not contain '$'"),
        ({"kwargs": {"column": "brnd"}}, "brnd are neither fields of listing"),
    ],
)
def test_bad_suite_configs_fail_with_the_file_and_reason(
    tmp_path: Path, entry: dict[str, Any], message: str
) -> None:
    base = {
        "expectation": "ExpectColumnValuesToNotBeNull",
        "kwargs": {"column": "brand"},
        "description": "Brand given.",
    }
    config = config_copy(tmp_path, "listings", expectations=[{**base, **entry}])
    with pytest.raises(ValueError, match=re.escape(message)):
        make_validator(config).prepare()


def test_importing_feed_health_loads_neither_gx_nor_beam_nor_kafka() -> None:
    probe = (
        "import sys, pipelines.feed_health.suites, pipelines.feed_health.results, "
        "pipelines.feed_health.gx, pipelines.feed_health.report; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'great_expectations', 'apache_beam', 'kafka'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_an_expectation_gx_cannot_evaluate_fails_with_the_error_named(
    tmp_path: Path, now: datetime
) -> None:
    config = config_copy(
        tmp_path,
        "listings",
        expectations=[
            {
                "expectation": "ExpectColumnMeanToBeBetween",
                "kwargs": {"column": "brand", "min_value": 1},
                "description": "A mean of brand names (a config mistake).",
            },
            {
                "expectation": "ExpectColumnValuesToNotBeNull",
                "kwargs": {"column": "brand"},
                "description": "Brand given.",
            },
        ],
    )
    health = make_validator(config).validate("jd", "listings", listings(now, 10), *window(now))
    broken, fine = health.outcomes
    assert not broken.success and broken.observed_value is None
    assert broken.observed.startswith("error: ") and "mean" in broken.observed
    assert broken.threshold == "mean >= 1"
    assert fine.success and not health.success


def test_unknown_feeds_are_refused(validator: FeedValidator) -> None:
    with pytest.raises(KeyError, match="no expectation suite for feed 'penalties'"):
        validator.suite_for("penalties")
