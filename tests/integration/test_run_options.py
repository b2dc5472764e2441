"""`omm run` options as an operator types them: where a stateful stage starts reading
(``--start``) and Beam options after ``--`` reaching every stage.

Listings and a failed inspection are written straight to omm.valid.* (as ingest
would leave them); the commands run through typer's CliRunner against the real
broker, and what they did is read back from the platforms' task topics.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner, Result

from connectors.topics import TopicNames
from omm.cli import app
from omm.config import load_platforms
from omm.generate import CATALOG, FeedGenerator
from tests.helpers import fresh_namespace, produce_avro, read_all

pytestmark = pytest.mark.integration

WIDE = {"COLUMNS": "400"}
KETTLE = next(p for p in CATALOG if p.model == "KX-2000A")
NOW = datetime.now(UTC).replace(microsecond=0)
SELLING = ["tmall", "jd"]


def omm(bootstrap: str, *args: str) -> Result:
    return CliRunner().invoke(app, [*args[:2], "--bootstrap", bootstrap, *args[2:]], env=WIDE)


@pytest.fixture
def market(kafka_bootstrap: str) -> TopicNames:
    """Every registered platform's topics (the commands check them all); the kettle
    listed on two platforms, then failed by an inspection."""
    topics = fresh_namespace(load_platforms().ids, kafka_bootstrap)
    gen = FeedGenerator(seed=5, now=NOW)
    listings = [
        {**gen.listing(p, n, KETTLE), "observed_at": NOW - timedelta(hours=5)}
        for n, p in enumerate(SELLING, start=1)
    ]
    produce_avro(kafka_bootstrap, topics.valid("listing"), "listing", listings, "listing_id")
    failed = {**gen.inspection(1, KETTLE, verdict="FAIL"), "published_at": NOW - timedelta(hours=2)}
    produce_avro(
        kafka_bootstrap, topics.valid("inspection"), "inspection", [failed], "inspection_id"
    )
    return topics


def tasks(bootstrap: str, topics: TopicNames) -> Counter[tuple[bytes | None, bytes | None]]:
    """Every task record on the selling platforms' topics, as (key, value) bytes."""
    return Counter((m.key, m.value) for p in SELLING for m in read_all(bootstrap, topics.tasks(p)))


def test_start_committed_resumes_without_re_emitting_tasks_and_earliest_rebuilds_them(
    kafka_bootstrap: str, market: TopicNames
) -> None:
    prefix = ["--prefix", market.prefix, "--until-idle", "2"]

    first = omm(kafka_bootstrap, "run", "enforce", *prefix)
    assert first.exit_code == 0, first.output
    issued = tasks(kafka_bootstrap, market)
    for platform in SELLING:  # each platform selling the failed kettle was told
        assert read_all(kafka_bootstrap, market.tasks(platform))
    # enforce committed what it read, once its bundles were finalized: no lag left
    status = omm(kafka_bootstrap, "status", "--json", "--prefix", market.prefix)
    assert status.exit_code == 0, status.output
    read = {
        s["topic"]: (s["committed_offset"], s["end_offset"], s["lag"])
        for s in json.loads(status.stdout)["sources"]
        if s["pipeline"] == "enforce"
    }
    assert read[market.valid("listing")] == (len(SELLING), len(SELLING), 0)
    assert read[market.valid("inspection")] == (1, 1, 0)

    resumed = omm(kafka_bootstrap, "run", "enforce", *prefix, "--start", "committed")
    assert resumed.exit_code == 0, resumed.output
    assert tasks(kafka_bootstrap, market) == issued  # nothing new was written
    # the FnApiRunner keeps no state across restarts: the operator is told what that costs
    assert "keeps no state across restarts" in resumed.stderr

    rebuilt = omm(kafka_bootstrap, "run", "enforce", *prefix)  # the default here: earliest
    assert rebuilt.exit_code == 0, rebuilt.output
    again = tasks(kafka_bootstrap, market)
    # state rebuilt from the start: the same tasks written once more, byte for byte
    assert again == Counter({record: 2 for record in issued})


def test_an_unknown_start_is_a_usage_error(kafka_bootstrap: str, market: TopicNames) -> None:
    result = omm(kafka_bootstrap, "run", "comply", "--prefix", market.prefix, "--start", "latest")

    assert result.exit_code == 2
    assert "--start" in result.output and "earliest or committed" in result.output


def test_beam_options_after_the_double_dash_reach_every_stage(
    kafka_bootstrap: str, market: TopicNames
) -> None:
    # Beam parses them: a bad value fails the run before anything is written
    bad = omm(
        kafka_bootstrap, "run", "all", "--prefix", market.prefix, "--until-idle", "2", "--",
        "--direct_num_workers=not-a-number",
    )  # fmt: skip
    assert bad.exit_code != 0
    assert tasks(kafka_bootstrap, market) == Counter()

    good = omm(
        kafka_bootstrap, "run", "all", "--prefix", market.prefix, "--until-idle", "2", "--",
        "--runner=fnapirunner", "--direct_num_workers=1",
    )  # fmt: skip
    assert good.exit_code == 0, good.output
    for stage in ("ingest", "enforce", "comply", "intel"):
        assert f"{stage} on fnapirunner" in good.stdout  # as given, not the default
    for platform in SELLING:
        assert read_all(kafka_bootstrap, market.tasks(platform))


def test_run_all_on_prism_from_the_command_line(kafka_bootstrap: str, market: TopicNames) -> None:
    # Prism is found where `make prism` built it, with LOOPBACK workers (omm.beam_runtime)
    result = omm(
        kafka_bootstrap, "run", "all", "--prefix", market.prefix, "--until-idle", "2", "--",
        "--runner=PrismRunner",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    for stage in ("ingest", "enforce", "comply", "intel"):
        assert f"{stage} on PrismRunner" in result.stdout
    delistings = {
        m.key
        for p in SELLING
        for m in read_all(kafka_bootstrap, market.tasks(p))
        if m.record is not None and m.record["kind"] == "DELIST"
    }
    assert len(delistings) == len(SELLING)
    # comply tracked every delisting task it was given: one status per task id
    statuses = {
        m.key for m in read_all(kafka_bootstrap, market.compliance_status) if m.record is not None
    }
    assert statuses == delistings
