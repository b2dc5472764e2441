"""The operator's figures (omm/figures.py) from plain offsets, their table and their
Prometheus text, and the groups and topics `omm status` watches held to the jobs'."""

from __future__ import annotations

import io
import json

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from connectors.kafka_client import commit_metadata, committed_at_ms
from connectors.topics import TopicNames
from omm.figures import (
    DEAD_LETTER,
    QUARANTINED,
    VALID,
    IngestOutput,
    PartitionReading,
    SourceFigures,
    TaskCounts,
    ingest_output,
    task_counts,
)
from omm.metrics import families
from omm.monitor import PIPELINES, Status, ingest_outcomes, watched
from omm.status import print_status

NOW_MS = 1_780_000_000_000


def reading(
    end: int,
    start: int,
    committed: int | None = None,
    at_ms: int | None = None,
    partition: int = 0,
    topic: str = "omm.feed.tmall.listings",
) -> PartitionReading:
    return PartitionReading(topic, partition, end, start, committed, at_ms)


# ------------------------------------------------------------------ one partition


def test_lag_is_what_was_written_and_not_committed() -> None:
    assert reading(end=120, start=100, committed=90).lag == 30
    assert reading(end=120, start=100, committed=120).lag == 0


def test_a_partition_never_committed_has_no_lag_rather_than_zero() -> None:
    assert reading(end=120, start=100).lag is None


def test_a_commit_past_the_end_is_no_negative_lag() -> None:
    # a topic deleted and re-created under the same name keeps the group's old commit
    assert reading(end=5, start=0, committed=900).lag == 0


def test_lag_in_seconds_is_how_long_the_oldest_record_waiting_has_waited() -> None:
    waiting = PartitionReading("t", 0, 120, 100, 90, None, waiting_since_ms=NOW_MS - 90_000)
    assert waiting.lag_s(NOW_MS) == 90.0
    caught_up = PartitionReading("t", 0, 120, 100, 120, None, waiting_since_ms=None)
    assert caught_up.lag_s(NOW_MS) == 0.0  # nothing waits
    unknown = PartitionReading("t", 0, 120, 100, 90, None, waiting_since_ms=None)
    assert unknown.lag_s(NOW_MS) is None  # a lag, and no time read for it
    assert reading(end=120, start=100).lag_s(NOW_MS) is None  # never committed
    future = PartitionReading("t", 0, 120, 100, 90, None, waiting_since_ms=NOW_MS + 5_000)
    assert future.lag_s(NOW_MS) == 0.0  # a producer's clock ahead of ours


def test_commit_age_comes_from_the_commit_time_and_is_never_negative() -> None:
    assert reading(10, 0, 10, at_ms=NOW_MS - 42_500).commit_age_s(NOW_MS) == 42.5
    assert reading(10, 0, 10, at_ms=NOW_MS + 3_000).commit_age_s(NOW_MS) == 0.0  # clock skew
    assert reading(10, 0, 10, at_ms=None).commit_age_s(NOW_MS) is None


def test_records_in_the_window_are_the_offsets_written_since_its_start() -> None:
    assert reading(end=120, start=100).in_window == 20
    assert reading(end=120, start=120).in_window == 0


def test_the_commit_time_round_trips_through_the_commit_metadata() -> None:
    assert committed_at_ms(commit_metadata(NOW_MS / 1000)) == NOW_MS
    for foreign in ("", None, "some other tool", "omm:committed_at_ms=soon"):
        assert committed_at_ms(foreign) is None


# ------------------------------------------------------------------ one topic


def test_a_topic_sums_its_partitions_and_its_newest_commit_gives_the_age() -> None:
    topic = SourceFigures(
        "ingest",
        "omm.feed.tmall.listings",
        (
            reading(100, 40, committed=70, at_ms=NOW_MS - 10_000, partition=0),
            reading(50, 50, committed=50, at_ms=NOW_MS - 600_000, partition=1),  # idle
            reading(30, 0, partition=2),  # never committed: no lag to add
        ),
        window_s=300,
    )

    assert topic.end == 180
    assert topic.committed == 120
    assert topic.lag == 30
    assert topic.commit_age_s(NOW_MS) == 10.0
    assert topic.in_window == 60 + 0 + 30
    assert topic.records_per_second == pytest.approx(90 / 300)


def test_a_topic_nobody_committed_on_has_unknown_lag_committed_and_age() -> None:
    topic = SourceFigures("enforce", "omm.valid.listings", (reading(9, 0),), window_s=60)

    assert (topic.lag, topic.committed, topic.commit_age_s(NOW_MS)) == (None, None, None)
    assert topic.records_per_second == pytest.approx(9 / 60)


# ------------------------------------------------------------------ ingest's output


def test_dead_letter_and_quarantine_ratios_are_shares_of_what_ingest_processed() -> None:
    outcome_of = {"v1": VALID, "v2": VALID, "q": QUARANTINED, "d": DEAD_LETTER}
    readings = [
        reading(700, 100, topic="v1"),  # 600 valid
        reading(250, 0, topic="v2"),  # 250 valid
        reading(60, 10, topic="q"),  # 50 quarantined
        reading(1100, 1000, topic="d"),  # 100 dead letters
    ]

    out = ingest_output(readings, outcome_of, window_s=100)

    assert (out.valid, out.quarantined, out.dead_letters, out.processed) == (850, 50, 100, 1000)
    assert out.dead_letter_ratio == pytest.approx(0.1)
    assert out.quarantine_ratio == pytest.approx(0.05)
    assert out.records_per_second == pytest.approx(10.0)
    assert out.per_second(DEAD_LETTER) == pytest.approx(1.0)


def test_no_ratio_when_ingest_processed_nothing_in_the_window() -> None:
    out = IngestOutput(0, 0, 0, window_s=300)
    assert out.dead_letter_ratio is None and out.quarantine_ratio is None
    assert out.records_per_second == 0.0


def test_a_window_must_last() -> None:
    with pytest.raises(ValueError, match="more than 0"):
        _ = IngestOutput(1, 0, 0, window_s=0).records_per_second


# ------------------------------------------------------------------ tasks


def test_open_tasks_are_those_still_asking_a_platform_or_the_regulator_to_act() -> None:
    latest = [
        ("tmall", "ISSUED"),
        ("tmall", "OVERDUE"),
        ("tmall", "RELISTED"),
        ("tmall", "DISPUTED"),
        ("tmall", "COMPLETED_ON_TIME"),
        ("tmall", "COMPLETED_LATE"),
        ("tmall", "WITHDRAWN"),
        ("jd", "COMPLETED_LATE"),
    ]

    counts = task_counts(latest)

    assert [c.platform for c in counts] == ["jd", "tmall"]
    jd, tmall = counts
    assert (tmall.open, tmall.closed) == (4, 3)
    assert (jd.open, jd.closed) == (0, 1)
    assert tmall.by_state["OVERDUE"] == 1


# ------------------------------------------------------------------ what is watched


def test_the_groups_watched_are_the_ones_the_jobs_commit_as() -> None:
    from omm.jobs import comply_job, enforce_job, ingest_job, intel_job

    topics = TopicNames("t1.")
    by_pipeline = {w.pipeline: w for w in watched(topics, ["tmall"], "omm", PIPELINES)}

    assert by_pipeline["ingest"].group_id == (
        ingest_job("x:1", topics, platforms=["tmall"], key=b"k", feed_health=False).group_id
    )
    assert by_pipeline["enforce"].group_id == enforce_job("x:1", topics).group_id
    assert by_pipeline["comply"].group_id == comply_job("x:1", topics, platforms=["tmall"]).group_id
    assert by_pipeline["intel"].group_id == intel_job("x:1", topics).group_id


def test_ingest_is_watched_on_every_feed_it_reads_and_judged_on_every_output_but_feedback() -> None:
    topics = TopicNames("t1.")
    [ingest] = watched(topics, ["tmall", "jd"], "omm", ["ingest"])

    assert set(ingest.sources) == {s.name for s in topics.sources(["tmall", "jd"])}
    outputs = set(topics.ingest_outputs(["tmall", "jd"]))
    feedback = {topics.feedback(p) for p in (None, "tmall", "jd")}
    assert set(ingest_outcomes(topics)) == outputs - feedback


def test_an_unknown_pipeline_is_refused() -> None:
    with pytest.raises(ValueError, match="credit"):
        watched(TopicNames(), ["tmall"], "omm", ["credit"])


# ------------------------------------------------------------------ shown and exported


def a_status() -> Status:
    ingest_topic = "omm.feed.tmall.listings"
    ingest_source = SourceFigures(
        "ingest",
        "omm.feed.tmall.listings",
        (
            PartitionReading(ingest_topic, 0, 100, 40, 70, NOW_MS - 10_000, NOW_MS - 65_000),
            reading(50, 50, committed=50, at_ms=NOW_MS - 20_000, partition=1),
        ),
        window_s=300,
    )
    enforce_source = SourceFigures(
        "enforce", "omm.valid.listings", (reading(80, 20, topic="omm.valid.listings"),), 300
    )
    return Status(
        at_ms=NOW_MS,
        window_s=300,
        sources=[ingest_source, enforce_source],
        ingest=IngestOutput(valid=90, quarantined=0, dead_letters=10, window_s=300),
        tasks=[TaskCounts("tmall", {"ISSUED": 2, "OVERDUE": 1, "COMPLETED_LATE": 4})],
    )


def scraped(status: Status) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The text exposition of the families, parsed back: value by (name, labels)."""

    class Fixed:
        def collect(self) -> list:  # type: ignore[type-arg]
            return families(status)

    registry = CollectorRegistry()
    registry.register(Fixed())
    text = generate_latest(registry).decode("utf-8")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_the_prometheus_text_holds_every_figure_under_its_labels() -> None:
    values = scraped(a_status())
    src = (("partition", "0"), ("pipeline", "ingest"), ("topic", "omm.feed.tmall.listings"))

    assert values[("omm_status_up", ())] == 1
    assert values[("omm_consumer_lag_records", src)] == 30
    assert values[("omm_committed_offset", src)] == 70
    assert values[("omm_log_end_offset", src)] == 100
    assert values[("omm_committed_offset_age_seconds", src)] == 10
    assert values[("omm_consumer_lag_seconds", src)] == 65
    caught_up = (("partition", "1"), *src[1:])
    assert values[("omm_consumer_lag_seconds", caught_up)] == 0
    per_topic = (("pipeline", "ingest"), ("topic", "omm.feed.tmall.listings"))
    assert values[("omm_records_per_second", per_topic)] == pytest.approx(60 / 300)
    assert values[("omm_dead_letter_ratio", ())] == pytest.approx(0.1)
    assert values[("omm_quarantine_ratio", ())] == 0
    assert values[("omm_ingest_output_records_per_second", (("outcome", "dead_letter"),))] == (
        pytest.approx(10 / 300)
    )
    assert values[("omm_open_tasks", (("platform", "tmall"),))] == 3
    assert values[("omm_tasks", (("platform", "tmall"), ("status", "COMPLETED_LATE")))] == 4
    assert values[("omm_tasks", (("platform", "tmall"), ("status", "WITHDRAWN")))] == 0
    # a pipeline that commits nothing has no lag series, rather than a lag of 0
    enforce = (("partition", "0"), ("pipeline", "enforce"), ("topic", "omm.valid.listings"))
    assert ("omm_consumer_lag_records", enforce) not in values
    assert values[("omm_log_end_offset", enforce)] == 80


def test_no_ratio_series_when_ingest_processed_nothing() -> None:
    quiet = a_status()
    quiet = Status(quiet.at_ms, 300, quiet.sources, IngestOutput(0, 0, 0, 300), quiet.tasks)
    names = {name for name, _ in scraped(quiet)}
    assert "omm_dead_letter_ratio" not in names and "omm_quarantine_ratio" not in names
    assert "omm_ingest_output_records_per_second" in names


def test_the_table_and_the_json_show_the_same_figures() -> None:
    status = a_status()
    out = io.StringIO()
    print_status(status, Console(file=out, width=200))
    text = out.getvalue()
    rows = {
        cells[2].strip(): [c.strip() for c in cells[1:-1]]
        for line in text.splitlines()
        if line.startswith("│") and len(cells := line.split("│")) > 7
    }

    ingest_row = rows["omm.feed.tmall.listings"]
    assert ingest_row == [
        "ingest",
        "omm.feed.tmall.listings",
        "150",
        "120",
        "30",
        "65s",
        "10s ago",
        "0.20",
    ]
    assert rows["omm.valid.listings"][3:7] == ["-", "-", "-", "-"]  # enforce commits nothing
    assert "10.0%" in text  # the dead-letter share
    as_json = json.loads(json.dumps(status.to_json()))
    first = as_json["sources"][0]
    assert (first["lag"], first["committed_offset"], first["commit_age_s"]) == (30, 120, 10.0)
    assert first["lag_s"] == 65.0
    assert as_json["ingest"]["dead_letter_ratio"] == pytest.approx(0.1)
    assert as_json["tasks"]["tmall"]["open"] == 3
