"""`omm status` and /metrics against the real broker and a real ingest run.

Known numbers go in (valid listings, garbage, records left unread, compliance
statuses), ingest runs as an operator runs it (`omm run ingest`), and what the
command prints, what it gives scripts and what a Prometheus scrape reads must be
those numbers. A streaming run serves /metrics itself while OMM_METRICS_PORT is set.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner, Result

from connectors import delivery
from connectors.broker.manager import free_port
from connectors.topics import TopicNames
from omm.cli import app
from omm.generate import GARBAGE, FeedGenerator
from omm.settings import get_settings
from tests.helpers import fresh_namespace, produce_avro, produce_raw

pytestmark = pytest.mark.integration

WIDE = {"COLUMNS": "400"}
VALID, GARBAGE_N, UNREAD = 40, 6, 7
WINDOW_S = "3600"  # longer than this module takes: every record written here is inside it
KEY = {"OMM_PSEUDONYM_KEY": "status-test-key-not-a-secret"}


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Settings from these variables for the block (settings are cached: cleared around)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()


def omm(*args: str, env: dict[str, str] | None = None) -> Result:
    with environment({**KEY, **(env or {})}):
        return CliRunner().invoke(app, list(args), env=WIDE)


def listings(start: int, n: int) -> list[dict[str, Any]]:
    gen = FeedGenerator(seed=start)
    return [gen.listing("tmall", i) for i in range(start, start + n)]


def status_record(task: str, platform: str, state: str) -> dict[str, Any]:
    at = datetime.now(UTC).replace(microsecond=0)
    return {
        "task_id": task,
        "platform": platform,
        "listing_id": f"{platform}-L{task}",
        "status": state,
        "deadline_at": at + timedelta(days=2),
        "changed_at": at,
        "evidence_kind": "TASK",
        "evidence_ref": "test",
        "evidence_at": at,
    }


@dataclass(frozen=True)
class Ran:
    bootstrap: str
    topics: TopicNames
    feed: str
    started_s: float  # wall clock before the run: no commit of it is older
    unread_s: tuple[float, float]  # wall clock before and after the unread records were sent


@pytest.fixture(scope="module")
def ran(kafka_bootstrap: str) -> Ran:
    """40 valid listings and 6 garbage records read by a bounded `omm run ingest`, then 7
    more listings it has not read; and statuses of five tasks as comply would leave them."""
    topics = fresh_namespace(["tmall"], kafka_bootstrap)
    feed = topics.feed("tmall", "listings")
    produce_avro(kafka_bootstrap, feed, "listing", listings(0, VALID), key_field="listing_id")
    produce_raw(kafka_bootstrap, feed, [(f"g{i}".encode(), GARBAGE) for i in range(GARBAGE_N)])
    started = time.time()
    run = omm(
        "run", "ingest", "--until-idle", "3", "--platforms", "tmall",
        "--bootstrap", kafka_bootstrap, "--prefix", topics.prefix,
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    before_unread = time.time()
    produce_avro(kafka_bootstrap, feed, "listing", listings(VALID, UNREAD), key_field="listing_id")
    unread = (before_unread, time.time())
    statuses = [
        status_record("A", "tmall", "ISSUED"),
        status_record("B", "tmall", "ISSUED"),
        status_record("B", "tmall", "COMPLETED_ON_TIME"),  # the latest wins: B is done
        status_record("C", "tmall", "OVERDUE"),
        status_record("D", "jd", "DISPUTED"),
        status_record("E", "tmall", "ISSUED"),
    ]
    produce_avro(
        kafka_bootstrap, topics.compliance_status, "compliance_status", statuses, "task_id"
    )
    produce_raw(kafka_bootstrap, topics.compliance_status, [(b"E", None)])  # E's tombstone
    return Ran(kafka_bootstrap, topics, feed, started, unread)


def status_json(ran: Ran) -> dict[str, Any]:
    import json

    result = omm(
        "status", "--json", "--window", WINDOW_S, "--platforms", "tmall",
        "--bootstrap", ran.bootstrap, "--prefix", ran.topics.prefix,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def source(status: dict[str, Any], pipeline: str, topic: str) -> dict[str, Any]:
    [found] = [s for s in status["sources"] if (s["pipeline"], s["topic"]) == (pipeline, topic)]
    return found


def test_status_shows_ingests_commits_lag_and_commit_age_on_the_feed_it_read(ran: Ran) -> None:
    before = time.time()
    status = status_json(ran)

    feed = source(status, "ingest", ran.feed)
    assert feed["committed_offset"] == VALID + GARBAGE_N
    assert feed["end_offset"] == VALID + GARBAGE_N + UNREAD
    assert feed["lag"] == UNREAD
    assert sum(p["lag"] or 0 for p in feed["partitions"]) == UNREAD
    # committed during the run: after it started, and not after this look
    assert 0 <= feed["commit_age_s"] <= before - ran.started_s + 1
    # the oldest record waiting is one of the unread, sent after the run: it waited
    # from when it was sent until this look
    after = time.time()
    assert before - ran.unread_s[1] - 1 <= feed["lag_s"] <= after - ran.unread_s[0] + 1
    assert feed["records_in_window"] == VALID + GARBAGE_N + UNREAD
    assert feed["records_per_second"] == pytest.approx(feed["records_in_window"] / 3600)
    # a feed with nothing on it was never committed: no lag to show
    complaints = source(status, "ingest", ran.topics.feed("tmall", "complaints"))
    assert (complaints["end_offset"], complaints["lag"]) == (0, None)
    # enforce and comply have not run here, so never committed: their lag is unknown, not 0
    valid = source(status, "enforce", ran.topics.valid("listing"))
    assert (valid["end_offset"], valid["lag"], valid["committed_offset"]) == (VALID, None, None)


def test_status_gives_ingests_dead_letter_and_quarantine_rates(ran: Ran) -> None:
    ingest = status_json(ran)["ingest"]

    assert ingest["records_in_window"] == {
        "valid": VALID,
        "quarantined": 0,
        "dead_letter": GARBAGE_N,
    }
    assert ingest["dead_letter_ratio"] == pytest.approx(GARBAGE_N / (VALID + GARBAGE_N))
    assert ingest["quarantine_ratio"] == 0
    assert ingest["records_per_second"] == pytest.approx((VALID + GARBAGE_N) / 3600)


def test_status_counts_open_tasks_per_platform_by_latest_status(ran: Ran) -> None:
    tasks = status_json(ran)["tasks"]

    assert tasks["jd"] == {"open": 1, "DISPUTED": 1}
    assert tasks["tmall"] == {"open": 2, "ISSUED": 1, "OVERDUE": 1, "COMPLETED_ON_TIME": 1}


def test_status_prints_the_same_figures_as_tables(ran: Ran) -> None:
    result = omm(
        "status", "--window", WINDOW_S, "--platforms", "tmall",
        "--bootstrap", ran.bootstrap, "--prefix", ran.topics.prefix,
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    rows = [
        [c.strip() for c in line.split("│")[1:-1]]
        for line in result.stdout.splitlines()
        if line.startswith("│")
    ]
    [feed] = [r for r in rows if r[:2] == ["ingest", ran.feed]]
    assert feed[2:5] == [str(VALID + GARBAGE_N + UNREAD), str(VALID + GARBAGE_N), str(UNREAD)]
    assert feed[5] != "-"  # how long the oldest unread record has waited
    assert feed[6].endswith("s ago") or feed[6].endswith("m ago")
    [dead] = [r for r in rows if r and r[0] == "dead_letter"]
    assert dead[1] == str(GARBAGE_N)
    assert dead[3] == f"{GARBAGE_N / (VALID + GARBAGE_N):.1%}"
    [tmall] = [r for r in rows if r and r[0] == "tmall"]
    assert tmall[1] == "2"  # open


def scrape(address: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=30) as response:
        assert response.status == 200
        text = response.read().decode("utf-8")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def summed(values: dict[Any, float], name: str, **labels: str) -> float:
    """The sum of a metric's series whose labels include ``labels`` (e.g. over partitions)."""
    return sum(
        v
        for (n, ls), v in values.items()
        if n == name and all((k, want) in ls for k, want in labels.items())
    )


def test_the_metrics_endpoint_exports_the_same_figures_computed_on_each_scrape(
    ran: Ran,
) -> None:
    from omm.metrics import serve_metrics
    from omm.monitor import reader_for

    with environment(KEY):
        reader = reader_for(ran.bootstrap, ran.topics.prefix, ["tmall"], window_s=3600.0)
    try:
        with serve_metrics(reader, "127.0.0.1", 0) as address:
            first = scrape(address)
            # a status written after the first scrape is read by the next one (for a
            # platform of its own, so the other tests' figures stay as they are)
            produce_avro(
                ran.bootstrap,
                ran.topics.compliance_status,
                "compliance_status",
                [status_record("F", "pdd", "OVERDUE")],
                "task_id",
            )
            second = scrape(address)
    finally:
        reader.close()

    feed = {"pipeline": "ingest", "topic": ran.feed}
    assert first[("omm_status_up", ())] == 1
    assert summed(first, "omm_committed_offset", **feed) == VALID + GARBAGE_N
    assert summed(first, "omm_consumer_lag_records", **feed) == UNREAD
    assert ("omm_open_tasks", (("platform", "pdd"),)) not in first
    assert second[("omm_open_tasks", (("platform", "pdd"),))] == 1
    assert second[("omm_open_tasks", (("platform", "tmall"),))] == 2
    assert first[("omm_dead_letter_ratio", ())] == pytest.approx(GARBAGE_N / (VALID + GARBAGE_N))
    assert first[("omm_open_tasks", (("platform", "tmall"),))] == 2
    assert first[("omm_tasks", (("platform", "jd"), ("status", "DISPUTED")))] == 1
    waits = [v for (n, ls), v in first.items() if n == "omm_consumer_lag_seconds"]
    assert max(waits) <= time.time() - ran.unread_s[0] + 1 and max(waits) > 0
    ages = [v for (n, ls), v in first.items() if n == "omm_committed_offset_age_seconds"]
    assert ages and all(0 <= a <= time.time() - ran.started_s + 1 for a in ages)
    # nothing of enforce's: it has not run here, so it has no lag series
    assert not summed(first, "omm_consumer_lag_records", pipeline="enforce")
    assert (
        summed(first, "omm_log_end_offset", pipeline="enforce", topic=ran.topics.valid("listing"))
        == VALID
    )


def test_a_scrape_when_the_broker_does_not_answer_says_not_up() -> None:
    from omm.metrics import serve_metrics
    from omm.monitor import reader_for

    nobody = f"127.0.0.1:{free_port()}"
    with environment({**KEY, "OMM_KAFKA_PROBE_TIMEOUT_S": "1"}):
        reader = reader_for(nobody, "x.", ["tmall"], pipelines=["ingest"])
    try:
        with serve_metrics(reader, "127.0.0.1", 0) as address:
            values = scrape(address)
    finally:
        reader.close()
    assert values == {("omm_status_up", ()): 0} | {
        k: v for k, v in values.items() if k[0].startswith("process_")
    }


def test_a_streaming_omm_run_serves_its_figures_while_it_runs(kafka_bootstrap: str) -> None:
    topics = fresh_namespace(["tmall"], kafka_bootstrap)
    feed = topics.feed("tmall", "listings")
    produce_avro(kafka_bootstrap, feed, "listing", listings(0, 30), key_field="listing_id")
    port = free_port()
    results: list[Result] = []
    args = ["run", "ingest", "--platforms", "tmall", "--bootstrap", kafka_bootstrap]
    args += ["--prefix", topics.prefix]
    env = {**KEY, "OMM_METRICS_PORT": str(port), "OMM_STATUS_WINDOW_S": WINDOW_S}
    with environment(env):
        runner = threading.Thread(
            target=lambda: results.append(CliRunner().invoke(app, args, env=WIDE)), daemon=True
        )
        runner.start()
        seen: dict[Any, float] = {}
        deadline = time.monotonic() + 240  # the pipeline starts, reads and commits by then
        try:
            while time.monotonic() < deadline and runner.is_alive():
                try:
                    seen = scrape(f"127.0.0.1:{port}")
                except (urllib.error.URLError, ConnectionError):
                    seen = {}  # not serving yet
                labels = {"pipeline": "ingest", "topic": feed}
                if summed(seen, "omm_committed_offset", **labels) == 30:
                    break
                time.sleep(0.5)
        finally:
            delivery.request_stop()
            runner.join(timeout=120)
    assert not runner.is_alive() and results, "the run did not stop"
    assert results[0].exit_code == 0, results[0].output
    assert summed(seen, "omm_committed_offset", pipeline="ingest", topic=feed) == 30, seen
    assert summed(seen, "omm_consumer_lag_records", pipeline="ingest", topic=feed) == 0
    assert seen[("omm_ingest_output_records_per_second", (("outcome", "valid"),))] > 0
    # only the stages this process runs: no enforce or comply series, no task counts
    assert not [k for k in seen if ("pipeline", "enforce") in k[1]]
    assert not [k for k in seen if k[0] == "omm_open_tasks"]
    # the endpoint ends with the run
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        scrape(f"127.0.0.1:{port}")


def test_status_exits_3_in_one_line_when_the_broker_does_not_answer() -> None:
    nobody = f"127.0.0.1:{free_port()}"
    result = omm("status", "--bootstrap", nobody, env={"OMM_KAFKA_PROBE_TIMEOUT_S": "1"})

    assert result.exit_code == 3, result.output
    assert "no Kafka broker answered" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_status_serve_without_a_port_says_how_to_give_one() -> None:
    result = omm("status", "--serve")

    assert result.exit_code == 2, result.output
    assert "OMM_METRICS_PORT" in result.stderr


def test_a_run_whose_metrics_port_is_taken_stops_before_it_starts_in_one_line(ran: Ran) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = omm(
            "run", "ingest", "--until-idle", "1", "--platforms", "tmall",
            "--bootstrap", ran.bootstrap, "--prefix", ran.topics.prefix,
            env={"OMM_METRICS_PORT": str(port)},
        )  # fmt: skip

    assert result.exit_code == 2, result.output
    assert f"cannot serve metrics on 127.0.0.1:{port}" in result.stderr
    assert "OMM_METRICS_PORT" in result.stderr
    # nothing was read: the unread records still wait
    assert source(status_json(ran), "ingest", ran.feed)["lag"] == UNREAD
