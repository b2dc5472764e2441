"""The feed-health report's overview page (omm/reports/feeds.py); no Kafka.

The renderer's tests use health records written here; the last test builds the Data
Docs beside the page with Great Expectations (one ~3 s import).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

import pytest

from omm.reports.feeds import (
    feed_order,
    render_feeds,
    severity,
    split_observed,
    write_feeds_report,
)
from pipelines.feed_health.results import ExpectationOutcome, FeedHealth
from tests.offline import other_origin_references, self_contained_problems

NOW = datetime(2026, 5, 20, 9, 30, tzinfo=UTC)


def outcome(
    expectation: str, success: bool, observed: str, threshold: str, critical: bool
) -> ExpectationOutcome:
    column = expectation.split("(", 1)[1].rstrip(")").split(" ")[0]
    return ExpectationOutcome(
        expectation=expectation,
        column=column,
        success=success,
        observed=observed,
        threshold=threshold,
        critical=critical,
        description=f"checks {column}",
        observed_value=None,
        kwargs_json=f'{{"column": "{column}"}}',
    )


BRAND_MISSING = outcome(
    "expect_column_values_to_not_be_null(brand)",
    False,
    "0.67 of 90 rows non-null (30 unexpected)",
    "mostly >= 0.90",
    critical=True,
)
ODD_CURRENCY = outcome(
    "expect_column_values_to_be_in_set(currency)",
    False,
    "0.9 of 90 rows in set (9 unexpected, e.g. 'USD', 'EU, R')",
    "in {CNY}; mostly >= 0.95",
    critical=False,
)
PRICES_OUT = outcome(
    "expect_column_values_to_be_between(price_minor where category == kitchen)",
    False,
    "0.8 of 40 non-null rows in range (8 unexpected: kitchen 1290000 (6 rows), toys 9 (2 rows))",
    "1000 <= value <= 500000; mostly >= 0.98",
    critical=False,
)
BRAND_OK = outcome(
    "expect_column_values_to_not_be_null(brand)",
    True,
    "1 of 120 rows non-null",
    "mostly >= 0.90",
    critical=True,
)


def health(
    platform: str, feed: str, outcomes: tuple[ExpectationOutcome, ...], on_failure: str = "warn"
) -> FeedHealth:
    return FeedHealth(
        platform=platform,
        feed=feed,
        window_start=NOW - timedelta(hours=1),
        window_end=NOW,
        rows=90,
        success=all(o.success for o in outcomes),
        outcomes=outcomes,
        validated_at=NOW,
        suite=f"omm.{feed}",
        on_failure=on_failure,
    )


HEALTHS = [
    health("amazon_cn", "listings", (BRAND_OK,)),
    health("jd", "complaints", (BRAND_OK, PRICES_OUT)),
    health("yixun", "listings", (BRAND_MISSING, ODD_CURRENCY), on_failure="quarantine"),
    health("dangdang", "listings", (ODD_CURRENCY, BRAND_MISSING)),
]


def test_failing_feeds_come_first_critical_failures_before_warnings() -> None:
    ordered = feed_order(HEALTHS)
    assert [(h.platform, severity(h)) for h in ordered] == [
        ("dangdang", 0),
        ("yixun", 0),
        ("jd", 1),
        ("amazon_cn", 2),
    ]
    html = render_feeds(HEALTHS, generated_at=NOW)
    overview = re.search(r'<section id="feeds">(.*?)</section>', html, re.S)
    assert overview
    rows = re.findall(r"<tr><td>(\w+)</td>", overview.group(1))
    assert rows == ["dangdang", "yixun", "jd", "amazon_cn"]
    assert "quarantined" in overview.group(1) and "healthy" in overview.group(1)


def test_each_failing_expectation_shows_observed_expected_and_the_examples() -> None:
    html = render_feeds(HEALTHS, generated_at=NOW)
    failing = re.search(r'<section id="failing">(.*?)</section>', html, re.S)
    assert failing
    text = failing.group(1)
    # one block per failing feed, in the overview's order; healthy feeds have none
    headings = re.findall(r'<h3 id="feed-(\w+)-(\w+)">', text)
    assert headings == [("dangdang", "listings"), ("yixun", "listings"), ("jd", "complaints")]
    # within a feed, critical expectations first
    dangdang = text[: text.index('id="feed-yixun')]
    assert dangdang.index("not_be_null(brand)") < dangdang.index("be_in_set(currency)")
    assert "0.67 of 90 rows non-null (30 unexpected)" in text
    assert "mostly &gt;= 0.90" in text
    assert "0.9 of 90 rows in set (9 unexpected)" in text
    assert "<li><code>&#x27;USD&#x27;</code></li>" in text
    assert "<li><code>&#x27;EU, R&#x27;</code></li>" in text  # one value, comma and all
    assert "<li><code>kitchen 1290000 (6 rows)</code></li>" in text
    assert "the batch was quarantined" in text
    assert "checks price_minor" in text  # the description
    assert "omm.listings" in text and "omm.complaints" in text


def test_rows_link_their_data_docs_pages() -> None:
    docs = {"jd:complaints": "gx/validations/omm/complaints/run/t/jd.complaints.html"}
    html = render_feeds(HEALTHS, generated_at=NOW, data_docs=docs, data_docs_index="gx/index.html")
    assert html.count(f'<a href="{docs["jd:complaints"]}">') == 2  # overview and failing block
    assert '<a href="gx/index.html">Great Expectations Data Docs</a>' in html


def test_the_page_is_self_contained_and_escapes_record_values() -> None:
    assert self_contained_problems(render_feeds(HEALTHS, generated_at=NOW)) == []
    hostile = outcome(
        "expect_column_values_to_be_in_set(brand)",
        False,
        "0.5 of 2 rows in set (1 unexpected, e.g. '<script>x</script>')",
        "in {<b>}",
        critical=True,
    )
    html = render_feeds([health("p<i>", "listings", (hostile,))], generated_at=NOW)
    assert "<script>" not in html and "<b>" not in html and "<i>" not in html
    assert "&lt;script&gt;" in html and "p&lt;i&gt;" in html


def test_every_feed_healthy_says_so() -> None:
    html = render_feeds([health("tmall", "listings", (BRAND_OK,))], generated_at=NOW)
    assert "Every feed met every expectation." in html


@pytest.mark.parametrize(
    ("observed", "summary", "examples"),
    [
        ("0.62 of 9 rows non-null (3 unexpected)", "0.62 of 9 rows non-null (3 unexpected)", []),
        (
            "0.9 of 90 rows in set (9 unexpected, e.g. 'USD', 'EUR')",
            "0.9 of 90 rows in set (9 unexpected)",
            ["'USD'", "'EUR'"],
        ),
        (
            "0.5 of 4 rows unique (2 unexpected, e.g. {'a': 1, 'b': 2}, ('x, y', 3), 'it\\'s, ok')",
            "0.5 of 4 rows unique (2 unexpected)",
            ["{'a': 1, 'b': 2}", "('x, y', 3)", "'it\\'s, ok'"],
        ),
        (
            # a repr cut short by the adapter has no closing quote; "…" ends it
            "0.5 of 4 rows in set (2 unexpected, e.g. 'a very long value, cut…, 'b')",
            "0.5 of 4 rows in set (2 unexpected)",
            ["'a very long value, cut…", "'b'"],
        ),
        (
            "0.8 of 40 non-null rows in range (8 unexpected: kitchen 1290000 (6 rows), toys 9 "
            "(2 rows))",
            "0.8 of 40 non-null rows in range (8 unexpected)",
            ["kitchen 1290000 (6 rows)", "toys 9 (2 rows)"],
        ),
        ("error: column brand missing", "error: column brand missing", []),
        ("0.9 (largest value)", "0.9 (largest value)", []),
    ],
)
def test_split_observed_separates_the_examples_the_record_carries(
    observed: str, summary: str, examples: list[str]
) -> None:
    assert split_observed(observed) == (summary, examples)


def test_write_feeds_report_puts_offline_data_docs_beside_the_page(tmp_path: Path) -> None:
    out = tmp_path / "feeds"
    index = write_feeds_report(HEALTHS, out, generated_at=NOW, source="omm.feed.health")
    assert index == out.resolve() / "index.html"
    html = index.read_text(encoding="utf-8")
    assert self_contained_problems(html) == []
    links = re.findall(r'<a href="(gx/[^"#]+)">', html)
    assert "gx/index.html" in links
    pages = {unquote(link) for link in links if link.startswith("gx/validations/")}
    assert len(pages) == len(HEALTHS)  # every feed links its own page
    for page in pages:
        assert (out / page).is_file(), page
    for path in [*out.rglob("*.html"), *out.rglob("*.css")]:
        text = path.read_text(encoding="utf-8")
        assert other_origin_references(text) == [], path
        assert "<script" not in text, path
