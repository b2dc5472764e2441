"""``omm report compliance`` and ``omm report feeds`` opened in a real headless Chromium.

Records go to a fresh topic namespace on the suite's broker, the commands read them
back and write their pages, and Chromium renders each page from disk. The pages must
load nothing from the network, proven two ways:

- statically: no script, stylesheet link, ``url()`` or absolute URL in the pages
  (:mod:`tests.offline`), and no reference to another origin in the Data Docs;
- in the browser: Chromium is told to send every request through a proxy at
  ``127.0.0.1:<trap>`` (``--proxy-bypass-list=<-loopback>`` so not even loopback is
  exempt), and the trap, a bare TCP listener, must receive no connection at all. A
  control test shows the trap does catch a page that asks the network.

Chromium itself calls Google even with ``--disable-background-networking``: Debian's
156 checks the network time, lists the signed-in accounts and installs an on-demand
component at start, whatever the page. Those three are switched off or pointed at a
second loopback listener (the "own services" sink, outside the proxy) by flags, so the
trap sees only what the page asks for. The browser is Debian's ``chromium``; ``make
browser`` installs it (``make test`` runs it). Missing, the tests fail; they never skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from typer.testing import CliRunner

from connectors.topics import TopicNames
from omm.cli import app
from pipelines.feed_health.results import ExpectationOutcome, FeedHealth
from tests.helpers import REGISTRY, fresh_namespace, produce_avro, produce_raw
from tests.offline import other_origin_references, self_contained_problems

pytestmark = pytest.mark.integration

CHROMIUM_TIMEOUT_S = 90.0
NOW = datetime.now(UTC).replace(microsecond=0)
PLATFORMS = ["tmall", "jd", "suning"]


# --------------------------------------------------------------------------- the browser


def chromium_binary() -> str:
    """Debian's chromium; OMM_TEST_CHROMIUM names another build."""
    candidates = [
        os.environ.get("OMM_TEST_CHROMIUM"),
        shutil.which("chromium"),
        "/usr/bin/chromium",
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(
        "Chromium is not installed (no `chromium` on PATH, no /usr/bin/chromium): run "
        "`make browser`, which installs Debian's chromium package (apt-get, as root)",
        pytrace=False,
    )


@dataclass
class Listener:
    """A TCP listener on loopback that accepts, notes the request's first line, closes."""

    requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(64)
        self.port: int = self._socket.getsockname()[1]
        self._lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._socket.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._note, args=(conn,), daemon=True).start()

    def _note(self, conn: socket.socket) -> None:
        conn.settimeout(2.0)
        try:
            first = conn.recv(4096).split(b"\r\n", 1)[0].decode("latin-1")
        except OSError:
            first = ""
        finally:
            conn.close()  # an answer the browser gives up on at once: no request waits
        with self._lock:
            self.requests.append(first or "(connection without a request)")

    def close(self) -> None:
        self._socket.close()


@dataclass
class Browser:
    binary: str
    trap: Listener
    own_services: Listener
    profiles: Path

    def flags(self) -> list[str]:
        profile = tempfile.mkdtemp(prefix="profile-", dir=self.profiles)  # fresh every run
        sink = f"http://127.0.0.1:{self.own_services.port}"
        return [
            "--headless",
            "--no-sandbox",  # root in a container has no user namespace sandbox
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            # every request of the page goes to the trap, loopback included ...
            f"--proxy-server=http://127.0.0.1:{self.trap.port}",
            # ... except the browser's own services, pointed at the sink just below
            f"--proxy-bypass-list=<-loopback>;127.0.0.1:{self.own_services.port}",
            f"--gaia-url={sink}",
            f"--component-updater=url-source={sink}/components",
            "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,"
            "OptimizationGuideModelDownloading,OptimizationHintsFetching,"
            "OptimizationTargetPrediction",
        ]

    def _run(self, page: Path, *action: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [self.binary, *self.flags(), *action, page.resolve().as_uri()],
            capture_output=True,
            text=True,
            timeout=CHROMIUM_TIMEOUT_S,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        # The browser has exited; its connections, if any, were accepted by now or are
        # in the listener's backlog: give the accepting thread a moment to note them.
        time.sleep(0.5)
        return done

    def dump_dom(self, page: Path) -> str:
        return self._run(page, "--dump-dom").stdout

    def screenshot(self, page: Path, png: Path) -> None:
        self._run(page, f"--screenshot={png}", "--window-size=1400,2200", "--hide-scrollbars")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        assert png.stat().st_size > 20_000, "an empty page screenshots to a few KB"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    binary = chromium_binary()
    trap, own_services = Listener(), Listener()
    profiles = tmp_path / "chromium-profiles"
    profiles.mkdir()
    try:
        yield Browser(binary, trap, own_services, profiles)
    finally:
        trap.close()
        own_services.close()


def report(*args: str) -> Any:
    result = CliRunner().invoke(app, ["report", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


# --------------------------------------------------------------------------- the control


def test_the_trap_catches_a_page_that_asks_the_network(browser: Browser, tmp_path: Path) -> None:
    page = tmp_path / "asks.html"
    page.write_text(
        "<!DOCTYPE html><html><head>"
        '<link rel="stylesheet" href="https://cdn.example.invalid/site.css">'
        '</head><body><p>tmall</p><img src="http://images.example.invalid/logo.png">'
        "</body></html>",
        encoding="utf-8",
    )
    dom = browser.dump_dom(page)
    assert "<p>tmall</p>" in dom
    asked = " ".join(browser.trap.requests)
    assert "cdn.example.invalid" in asked and "images.example.invalid" in asked, asked


# --------------------------------------------------------------------------- compliance


def _status(task_id: str, platform: str, state: str, deadline: datetime, **more: Any) -> dict:
    record = {
        "task_id": task_id,
        "platform": platform,
        "listing_id": f"{platform}-L-{task_id[-4:]}",
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
    return {**record, **more}


def _scorecard(
    platform: str, kpi1: float | None, kpi2: float | None, period: str = "TOTAL"
) -> dict:
    return {
        "platform": platform,
        "period_start": NOW - timedelta(days=10),
        "period_end": NOW,
        "tasks_issued": 40,
        "completed_on_time": 30,
        "completed_late": 5,
        "overdue": 3,
        "relisted": 2,
        "relisted_removed": 1,
        "median_hours_to_takedown": 20.5,
        "p90_hours_to_takedown": 70.25,
        "kpi1_removed_within_deadline": kpi1,
        "kpi2_relistings_removed": kpi2,
        "computed_at": NOW,
        "period": period,
        "disputed": 1,
        "withdrawn": 1,
        "median_working_hours_to_takedown": 15.0,
        "p90_working_hours_to_takedown": 50.0,
    }


CONTRADICTION = (
    "notice omm.feed.jd.takedowns/0/41 said REMOVED, "
    "but the listing feed showed it ACTIVE two hours later"
)


def _produce_compliance(bootstrap: str, status_topic: str, scorecard_topic: str) -> None:
    past = NOW - timedelta(days=4)
    statuses = [
        _status("t-jd-0001", "jd", "OVERDUE", past),
        _status(
            "t-jd-0002",
            "jd",
            "OVERDUE",
            past + timedelta(hours=6),
            evidence_kind="TAKEDOWN_NOTICE",
            evidence_ref="omm.feed.jd.takedowns/0/41",
            note=CONTRADICTION,
        ),
        _status(
            "t-tmall-0003",
            "tmall",
            "RELISTED",
            past,
            evidence_kind="LISTING_FEED",
            evidence_ref="omm.feed.tmall.listings/1/310",
            completed_at=past - timedelta(days=2),
            hours_to_takedown=24.0,
            working_hours_to_takedown=16.0,
            relisted_at=past + timedelta(days=1),
        ),
        _status(
            "t-tmall-0004",
            "tmall",
            "COMPLETED_ON_TIME",
            past,
            completed_at=past - timedelta(days=1),
            hours_to_takedown=48.0,
        ),
        # first overdue, then taken down late: the latest record wins, not overdue now
        _status("t-suning-0005", "suning", "OVERDUE", past),
        _status(
            "t-suning-0005",
            "suning",
            "COMPLETED_LATE",
            past,
            completed_at=past + timedelta(days=1),
            hours_to_takedown=96.0,
        ),
    ]
    produce_raw(
        bootstrap,
        status_topic,
        ((s["task_id"].encode(), REGISTRY.encode("compliance_status", s)) for s in statuses),
    )
    scorecards = [
        ("tmall|TOTAL", _scorecard("tmall", 0.875, 0.75)),
        ("jd|TOTAL", _scorecard("jd", 150 / 172, None)),
        ("suning|TOTAL", _scorecard("suning", 0.4, 1.0)),
        (f"jd|DAY|{NOW.date()}", _scorecard("jd", 0.123, None, period="DAY")),
    ]
    produce_raw(
        bootstrap,
        scorecard_topic,
        ((key.encode(), REGISTRY.encode("scorecard", s)) for key, s in scorecards),
    )


#: Verbatim text a complainant or seller typed (a task's reason, a product's brand):
#: the report must never show it.
VERBATIM = "李四 13900139000 充电宝鼓包"


def _produce_intel(bootstrap: str, topics: TopicNames) -> None:
    """What intel would have written: two recommendations (one recomputed), a lead, an
    enterprise listed with two flagged listings (one flag withdrawn since), another
    listed and removed, and a DELIST task beside the flags."""
    start, end = NOW - timedelta(days=30), NOW - timedelta(hours=1)
    recommendations = [
        ("sr-a", 3.5, NOW - timedelta(days=1)),
        ("sr-b", 7.75, NOW - timedelta(days=1)),
        ("sr-a", 12.5, NOW),  # recomputed: now ranks first
    ]
    produce_avro(
        bootstrap,
        topics.sampling,
        "sampling_recommendation",
        (
            {
                "recommendation_id": rid,
                "product_key": f"key-{rid}",
                "brand": VERBATIM,
                "model": None,
                "manufacturer": None,
                "complaint_count": 6,
                "window_start": start,
                "window_end": end,
                "score": score,
                "rank": 1,
                "last_sampled_at": None,
                "computed_at": at,
                "counts_by_issue_type": {"QUALITY": 6},
                "counts_by_platform": {"jd": 6},
                "counts_by_channel": {"PLATFORM": 6},
                "example_complaint_ids": [f"jd:cmp-{rid}"],
            }
            for rid, score, at in recommendations
        ),
        "recommendation_id",
    )
    produce_avro(
        bootstrap,
        topics.leads,
        "case_lead",
        [
            {
                "lead_id": "lead-1",
                "platform": "jd",
                "seller_id": "seller-lead",
                "violation_complaints": 4,
                "window_start": start,
                "window_end": end,
                "threshold": 3,
                "issue_types": ["COUNTERFEIT"],
                "computed_at": NOW,
                "complaint_ids": [f"jd:cmp-lead-{i}" for i in range(4)],
                "counts_by_issue_type": {"COUNTERFEIT": 4},
            }
        ],
        "lead_id",
    )

    def event(eid: str, enterprise: str, kind: str, at: datetime) -> dict[str, Any]:
        return {
            "event_id": eid,
            "enterprise_id": enterprise,
            "enterprise_name": f"{enterprise} Trading Co.",
            "event": kind,
            "ground": "3 penalties within 2 years on PRODUCT_SAFETY",
            "penalty_ids": [f"pen-{enterprise}"],
            "effective_at": at,
            "computed_at": at,
            "sellers": [f"jd:seller-{enterprise}"],
            "listed_event_id": "ev-gone" if kind == "REMOVED" else None,
        }

    produce_avro(
        bootstrap,
        topics.credit_events,
        "credit_event",
        [
            event("ev-on", "ENT-ON", "LISTED", NOW - timedelta(days=9)),
            event("ev-gone", "ENT-GONE", "LISTED", NOW - timedelta(days=900)),
            event("ev-gone-off", "ENT-GONE", "REMOVED", NOW - timedelta(days=2)),
        ],
        "event_id",
    )

    def task(tid: str, kind: str, listing: str, event_id: str | None, **more: Any) -> dict:
        return {
            "task_id": tid,
            "kind": kind,
            "platform": "jd",
            "seller_id": "seller-ENT-ON",
            "listing_id": listing,
            "inspection_id": None,
            "product_key": "key",
            "brand": VERBATIM,
            "model": None,
            "manufacturer": None,
            "verdict": None,
            "match_method": None,
            "match_confidence": None,
            "legal_basis": "《电子商务法》第三十八条",
            "reason": VERBATIM,
            "state": "ISSUED",
            "deadline_at": NOW + timedelta(days=5),
            "issued_at": NOW - timedelta(days=8),
            "evidence_ref": "omm.valid.listings/0/7",
            "complaint_id": None,
            "credit_event_id": event_id,
            **more,
        }

    produce_avro(
        bootstrap,
        topics.tasks("jd"),
        "task",
        [
            task("flag-live", "FLAG", "listing-live", "ev-on"),
            task("flag-out", "FLAG", "listing-withdrawn", "ev-on"),
            task(
                "flag-out", "FLAG", "listing-withdrawn", "ev-on", state="WITHDRAWN", issued_at=NOW
            ),
            task("flag-gone", "FLAG", "listing-of-removed", "ev-gone", state="WITHDRAWN"),
            task("delist-1", "DELIST", "listing-delisted", None),
        ],
        "task_id",
    )


def test_compliance_report_renders_in_chromium_without_a_network_request(
    kafka_bootstrap: str, browser: Browser, tmp_path: Path
) -> None:
    topics = fresh_namespace(PLATFORMS, kafka_bootstrap)
    _produce_compliance(kafka_bootstrap, topics.compliance_status, topics.scorecards)
    _produce_intel(kafka_bootstrap, topics)
    out = tmp_path / "reports" / "compliance"

    result = report(
        "compliance", "--out", str(out), "--bootstrap", kafka_bootstrap, "--prefix", topics.prefix
    )

    assert result.exit_code == 0, result.output
    assert "87.5%" in result.output and "87.2%" in result.output  # the KPI table
    assert (
        "intel: 2 sampling recommendation(s), 1 case lead(s), 1 enterprise(s) on the "
        "serious-violation list with 1 live listing(s)"
    ) in result.output
    index = out / "index.html"
    assert str(index) in result.output.replace("\n", "")
    html = index.read_text(encoding="utf-8")
    assert self_contained_problems(html) == []
    assert '<a href="../feeds/index.html">Feed health report</a>' in html

    dom = browser.dump_dom(index)
    for platform in PLATFORMS:
        assert f"<td>{platform}</td>" in dom, platform
    for kpi in ("87.5%", "75.0%", "87.2%", "40.0%", "100.0%"):
        assert kpi in dom, kpi
    assert "12.3%" not in dom  # a DAY scorecard is not a platform's total
    for chart in ("kpi1", "takedown", "overdue-days"):
        assert f'id="{chart}"' in dom, chart
    overdue = dom[dom.index('id="overdue"') : dom.index('id="relisted"')]
    assert "t-jd-0001" in overdue and "t-jd-0002" in overdue and "t-suning-0005" not in overdue
    relisted = dom[dom.index('id="relisted"') : dom.index('id="contradicted"')]
    assert "t-tmall-0003" in relisted and "omm.feed.tmall.listings/1/310" in relisted
    contradicted = dom[dom.index('id="contradicted"') : dom.index('id="sampling"')]
    assert "t-jd-0002" in contradicted and "but the listing feed showed it ACTIVE" in contradicted
    sampling = dom[dom.index('id="sampling"') : dom.index('id="leads"')]
    assert sampling.index("key-sr-a") < sampling.index("key-sr-b")  # 12.5 over 7.75
    assert "12.50" in sampling and "3.50" not in sampling and "jd:cmp-sr-b" in sampling
    leads = dom[dom.index('id="leads"') : dom.index('id="credit"')]
    assert "seller-lead" in leads and "jd:cmp-lead-3" in leads
    listed = dom[dom.index('id="credit"') :]
    assert "ENT-ON" in listed and "pen-ENT-ON" in listed and "listing-live" in listed
    assert "ENT-GONE" not in listed and "listing-of-removed" not in listed
    assert "listing-withdrawn" not in listed and "listing-delisted" not in listed
    assert "李四" not in dom and "13900139000" not in dom and "鼓包" not in dom

    browser.screenshot(index, tmp_path / "compliance.png")
    assert browser.trap.requests == [], browser.trap.requests


def test_report_compliance_on_empty_topics_says_to_run_comply_first(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topics = fresh_namespace(PLATFORMS, kafka_bootstrap)
    omm = Path(sys.executable).with_name("omm")
    out = tmp_path / "compliance"
    args = ["--out", str(out), "--bootstrap", kafka_bootstrap, "--prefix", topics.prefix]
    done = subprocess.run(
        [str(omm), "report", "compliance", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "80"},
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "run comply first" in lines[0] and topics.compliance_status in lines[0]
    assert not out.exists()


# --------------------------------------------------------------------------- feeds


def _outcome(expectation: str, success: bool, observed: str, critical: bool) -> ExpectationOutcome:
    return ExpectationOutcome(
        expectation=expectation,
        column="brand",
        success=success,
        observed=observed,
        threshold="mostly >= 0.90",
        critical=critical,
        description="Brand is declared",
        observed_value=None,
        kwargs_json='{"column": "brand", "mostly": 0.9}',
    )


def _produce_health(bootstrap: str, topic: str) -> None:
    window = (NOW - timedelta(hours=1), NOW)
    healths = [
        FeedHealth(
            "tmall",
            "listings",
            *window,
            rows=120,
            success=True,
            outcomes=(
                _outcome(
                    "expect_column_values_to_not_be_null(brand)",
                    True,
                    "1 of 120 rows non-null",
                    True,
                ),
            ),
            validated_at=NOW,
            suite="omm.listings",
        ),
        FeedHealth(
            "jd",
            "listings",
            *window,
            rows=90,
            success=False,
            outcomes=(
                _outcome(
                    "expect_column_values_to_not_be_null(brand)",
                    False,
                    "0.67 of 90 rows non-null (30 unexpected)",
                    True,
                ),
                _outcome(
                    "expect_column_values_to_be_in_set(brand)",
                    False,
                    "0.8 of 60 non-null rows in set (12 unexpected, e.g. 'Meidi', 'Haeir')",
                    False,
                ),
            ),
            validated_at=NOW,
            suite="omm.listings",
            on_failure="quarantine",
        ),
    ]
    produce_raw(
        bootstrap,
        topic,
        ((h.key.encode(), REGISTRY.encode("feed_health", h.to_record())) for h in healths),
    )


def test_feeds_report_renders_in_chromium_without_a_network_request(
    kafka_bootstrap: str, browser: Browser, tmp_path: Path
) -> None:
    topics = fresh_namespace(PLATFORMS, kafka_bootstrap)
    _produce_health(kafka_bootstrap, topics.feed_health)
    out = tmp_path / "reports" / "feeds"

    result = report(
        "feeds", "--out", str(out), "--bootstrap", kafka_bootstrap, "--prefix", topics.prefix
    )

    assert result.exit_code == 0, result.output
    index = out / "index.html"
    html = index.read_text(encoding="utf-8")
    assert self_contained_problems(html) == []
    for path in [*out.rglob("*.html"), *out.rglob("*.css")]:  # the Data Docs in gx/ too
        assert other_origin_references(path.read_text(encoding="utf-8")) == [], path
    # failing feeds first
    assert html.index("<td>jd</td>") < html.index("<td>tmall</td>")

    dom = browser.dump_dom(index)
    assert "<td>jd</td>" in dom and "<td>tmall</td>" in dom
    assert "quarantined" in dom and "healthy" in dom
    assert "0.67 of 90 rows non-null (30 unexpected)" in dom
    assert "&#x27;Meidi&#x27;" in dom or "'Meidi'" in dom
    docs = [
        unquote(href)
        for href in (line.split('"', 1)[0] for line in dom.split('<a href="gx/validations/')[1:])
    ]
    assert len(set(docs)) == 2, docs  # both feeds link their Data Docs page
    browser.screenshot(index, tmp_path / "feeds.png")

    # The Data Docs themselves, index and a validation page, load nothing either.
    gx_index = browser.dump_dom(out / "gx" / "index.html")
    assert "jd" in gx_index and "omm.listings" in gx_index
    jd_page = out / "gx" / "validations" / next(d for d in docs if d.endswith("jd.listings.html"))
    assert "expect_column_values_to_not_be_null(brand)" in browser.dump_dom(jd_page)

    assert browser.trap.requests == [], browser.trap.requests
