"""The one place pipeline jobs are made: the operator's settings and ``config/`` in, a job out.

A pipeline reads neither settings nor files; everything its workers need is
in the job made here (Kafka connection and timing, topics, rules, suites,
deadlines, the pseudonym key), so a job runs the same on any worker.
"""

from __future__ import annotations

from pathlib import Path

from connectors.beam_io import Clock
from connectors.connection import KafkaConnection
from connectors.topics import TopicNames
from omm.beam_runtime import Start
from omm.config import (
    load_compliance,
    load_enforcement,
    load_feed_suites,
    load_intel,
    load_platforms,
    load_rules,
)
from omm.settings import Settings, get_settings, pseudonym_key
from pipelines.comply import ComplyJob
from pipelines.enforce import EnforceJob
from pipelines.ingest import IngestJob
from pipelines.intel import IntelJob
from pipelines.rules.compliance import ComplianceConfig
from pipelines.rules.intel import CompensationFirst


def kafka_connection(bootstrap: str, settings: Settings | None = None) -> KafkaConnection:
    """``bootstrap`` with this process's credentials and delivery timing."""
    settings = settings or get_settings()
    return KafkaConnection(
        bootstrap, settings.kafka_security(), settings.delivery_policy(), settings.kafka_client
    )


def ingest_job(
    bootstrap: str,
    topics: TopicNames,
    *,
    platforms: list[str] | None = None,
    idle_timeout_s: float | None = None,
    feed_health: bool = True,
    group_id: str | None = None,
    key: bytes | None = None,
    config_dir: Path | None = None,
    settings: Settings | None = None,
) -> IngestJob:
    """The ingest job for ``platforms`` (default: every platform in config/platforms.yaml).

    ``feed_health=False`` (or ``feed_health.enabled: false`` in rules.yaml) runs no suites;
    ``key`` replaces the pseudonym key (benchmarks and tests).
    """
    settings = settings or get_settings()
    registry = load_platforms(config_dir)
    rules = load_rules(config_dir)
    read = platforms if platforms is not None else registry.ids
    checked = feed_health and rules.feed_health.enabled
    return IngestJob(
        kafka=kafka_connection(bootstrap, settings),
        topics=topics,
        group_id=group_id or f"{settings.consumer_group_prefix}.{topics.prefix}ingest",
        registry=registry,
        platforms=tuple(read),
        record_rules=rules.record_rules,
        personal_data=rules.personal_data,
        pseudonym_key=key if key is not None else pseudonym_key(settings),
        feed_health=rules.feed_health,
        suites=load_feed_suites(config_dir) if checked else {},
        idle_timeout_s=idle_timeout_s,
    )


def enforce_job(
    bootstrap: str,
    topics: TopicNames,
    *,
    idle_timeout_s: float | None = None,
    in_event_order: bool | None = None,
    max_records_per_poll: int = 20000,
    start: Start = "earliest",
    config_dir: Path | None = None,
    settings: Settings | None = None,
) -> EnforceJob:
    """The enforce job: deadlines, matching and calendar from config/enforcement.yaml.

    ``start``: where it reads from (:func:`omm.beam_runtime.default_start` says which
    one suits a runner).
    """
    return EnforceJob(
        kafka=kafka_connection(bootstrap, settings),
        topics=topics,
        config=load_enforcement(config_dir),
        idle_timeout_s=idle_timeout_s,
        in_event_order=in_event_order,
        max_records_per_poll=max_records_per_poll,
        start=start,
        platforms=tuple(load_platforms(config_dir).ids),
    )


def comply_job(
    bootstrap: str,
    topics: TopicNames,
    *,
    platforms: list[str] | None = None,
    idle_timeout_s: float | None = None,
    tick_seconds: float | None = None,
    start: Start = "earliest",
    config_dir: Path | None = None,
    settings: Settings | None = None,
) -> ComplyJob:
    """The comply job for the tasks of ``platforms`` (default: every registered platform):
    enforcement's calendar and delisting period, compliance.yaml's clock, and what makes
    a complaint a compensation-first claim (intel.yaml, the platform registry)."""
    enforcement = load_enforcement(config_dir)
    clock = load_compliance(config_dir)
    return ComplyJob(
        kafka=kafka_connection(bootstrap, settings),
        topics=topics,
        platforms=tuple(platforms if platforms is not None else load_platforms(config_dir).ids),
        config=ComplianceConfig(enforcement.calendar, enforcement.delist_working_days),
        clock=Clock(every_s=tick_seconds or clock.tick_seconds, shards=clock.shards),
        claims=CompensationFirst.of(load_intel(config_dir), load_platforms(config_dir)),
        idle_timeout_s=idle_timeout_s,
        start=start,
    )


def intel_job(
    bootstrap: str,
    topics: TopicNames,
    *,
    idle_timeout_s: float | None = None,
    in_event_order: bool | None = None,
    tick_seconds: float | None = None,
    start: Start = "earliest",
    config_dir: Path | None = None,
    settings: Settings | None = None,
) -> IntelJob:
    """The intel job: config/intel.yaml with its calendar, the platforms bound by
    compensation-first (platforms.yaml), enforce's matching for product keys, and
    compliance.yaml's clock (a streaming run's watermark reaches every shard on its ticks)."""
    clock = load_compliance(config_dir)
    return IntelJob(
        kafka=kafka_connection(bootstrap, settings),
        topics=topics,
        platforms=load_platforms(config_dir),
        config=load_intel(config_dir),
        matching=load_enforcement(config_dir).matching,
        clock=Clock(every_s=tick_seconds or clock.tick_seconds, shards=clock.shards),
        idle_timeout_s=idle_timeout_s,
        start=start,
        in_event_order=in_event_order,
    )
