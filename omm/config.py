"""Typed views of the YAML files in ``config/``.

One loader per file, each returning a validated pydantic model, so a typo in
config fails at start with the file and key named rather than deep in a run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from omm.settings import get_settings
from pipelines.rules.personal_data import PersonalDataConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Platform(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str
    compensation_first: bool = False


class PlatformRegistry(_Strict):
    platforms: list[Platform]

    @property
    def ids(self) -> list[str]:
        return [p.id for p in self.platforms]

    def __contains__(self, platform_id: object) -> bool:
        return platform_id in self.ids


class TopicSpec(_Strict):
    name: str
    entity: str | None
    partitions: int | None = None
    replication_factor: int | None = None
    retention_ms: int | None = None
    cleanup_policy: Literal["delete", "compact"] = "delete"


class TopicDefaults(_Strict):
    partitions: int = 3
    replication_factor: int = 1
    retention_ms: int = 604_800_000


class ResolvedTopic(_Strict):
    """A concrete topic: the catalog entry with `{platform}` expanded and defaults applied."""

    name: str
    entity: str | None
    partitions: int
    replication_factor: int
    retention_ms: int
    cleanup_policy: Literal["delete", "compact"]
    platform: str | None = None

    def kafka_config(self) -> dict[str, str]:
        return {"cleanup.policy": self.cleanup_policy, "retention.ms": str(self.retention_ms)}


class TopicCatalog(_Strict):
    defaults: TopicDefaults
    topics: list[TopicSpec]

    def resolve(self, platforms: PlatformRegistry) -> list[ResolvedTopic]:
        resolved: list[ResolvedTopic] = []
        for spec in self.topics:
            owners: list[str | None] = list(platforms.ids) if "{platform}" in spec.name else [None]
            for owner in owners:
                resolved.append(
                    ResolvedTopic(
                        name=spec.name.format(platform=owner) if owner else spec.name,
                        entity=spec.entity,
                        partitions=spec.partitions or self.defaults.partitions,
                        replication_factor=spec.replication_factor
                        or self.defaults.replication_factor,
                        retention_ms=spec.retention_ms
                        if spec.retention_ms is not None
                        else self.defaults.retention_ms,
                        cleanup_policy=spec.cleanup_policy,
                        platform=owner,
                    )
                )
        return resolved


class RecordRulesConfig(_Strict):
    max_future_skew_seconds: int = Field(ge=0)
    max_price_minor: int = Field(gt=0)
    currencies: list[str]
    max_text_chars: int = Field(gt=0)
    max_id_chars: int = Field(default=200, gt=0)
    max_field_chars: int = Field(default=2000, gt=0)
    earliest_event_time: AwareDatetime = datetime(2000, 1, 1, tzinfo=UTC)


class FeedHealthConfig(_Strict):
    enabled: bool = True
    # a batch closes at this many rows, or when its window ends
    batch_rows: int = Field(default=20_000, gt=0)
    # streaming runs: fixed event-time windows of this length
    window_seconds: int = Field(default=600, gt=0)


class RulesConfig(_Strict):
    record_rules: RecordRulesConfig
    personal_data: PersonalDataConfig
    feed_health: FeedHealthConfig = FeedHealthConfig()


def _read_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"config file missing: {path}") from exc


def config_path(name: str, config_dir: Path | None = None) -> Path:
    return (config_dir or get_settings().config_dir) / name


@lru_cache(maxsize=8)
def load_platforms(config_dir: Path | None = None) -> PlatformRegistry:
    return PlatformRegistry.model_validate(_read_yaml(config_path("platforms.yaml", config_dir)))


@lru_cache(maxsize=8)
def load_topic_catalog(config_dir: Path | None = None) -> TopicCatalog:
    return TopicCatalog.model_validate(_read_yaml(config_path("topics.yaml", config_dir)))


@lru_cache(maxsize=8)
def load_rules(config_dir: Path | None = None) -> RulesConfig:
    return RulesConfig.model_validate(_read_yaml(config_path("rules.yaml", config_dir)))


def resolved_topics(
    config_dir: Path | None = None, only_platforms: list[str] | None = None
) -> list[ResolvedTopic]:
    """Every concrete topic; with ``only_platforms``, per-platform topics of just those."""
    registry = load_platforms(config_dir)
    if only_platforms is not None:
        unknown = set(only_platforms) - set(registry.ids)
        if unknown:
            raise ValueError(f"unknown platform(s) {sorted(unknown)}; see config/platforms.yaml")
        registry = PlatformRegistry(
            platforms=[p for p in registry.platforms if p.id in only_platforms]
        )
    return load_topic_catalog(config_dir).resolve(registry)
