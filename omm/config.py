"""Typed views of the YAML files in ``config/``.

One loader per file, each returning a validated pydantic model, so a typo in
config fails at start with the file and key named rather than deep in a run.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from connectors.topics import ResolvedTopic, TopicCatalog
from omm.settings import get_settings
from pipelines.feed_health.suites import FeedHealthConfig, SuiteConfig, load_suites
from pipelines.rules.calendar import load_calendar
from pipelines.rules.enforcement import EnforcementConfig, load_enforcement_config
from pipelines.rules.intel import IntelConfig
from pipelines.rules.personal_data import PersonalDataConfig
from pipelines.rules.platforms import PlatformRegistry
from pipelines.rules.record_rules import RecordRulesConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ComplianceFile(_Strict):
    """``config/compliance.yaml``."""

    tick_seconds: float = Field(gt=0, le=60)
    shards: int = Field(gt=0, le=1024)


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
        registry = registry.only(only_platforms)
    return load_topic_catalog(config_dir).resolve(registry)


@lru_cache(maxsize=8)
def load_feed_suites(config_dir: Path | None = None) -> dict[str, SuiteConfig]:
    """feed -> its expectation suite (``config/expectations/<feed>.yaml``), checked."""
    return load_suites(config_path("expectations", config_dir))


@lru_cache(maxsize=8)
def load_enforcement(config_dir: Path | None = None) -> EnforcementConfig:
    """Deadlines, matching and the working calendar (``enforcement.yaml`` and its files)."""
    return load_enforcement_config(config_path("", config_dir))


@lru_cache(maxsize=8)
def load_compliance(config_dir: Path | None = None) -> ComplianceFile:
    return ComplianceFile.model_validate(_read_yaml(config_path("compliance.yaml", config_dir)))


@lru_cache(maxsize=8)
def load_intel(config_dir: Path | None = None) -> IntelConfig:
    """Complaint intelligence and credit (``intel.yaml``) with the calendar it names."""
    raw = _read_yaml(config_path("intel.yaml", config_dir))
    if not isinstance(raw, dict) or not isinstance(raw.get("calendar"), str):
        raise ValueError(f"{config_path('intel.yaml', config_dir)}: calendar: <name> missing")
    calendar = load_calendar(config_path("calendars", config_dir) / f"{raw['calendar']}.yaml")
    return IntelConfig.model_validate({**raw, "calendar": calendar})
