"""Topics, in one place: the names omm uses and the catalog they are created from.

Every topic name omm uses is built here by :class:`TopicNames`, with an
optional namespace prefix so that a test (or a second tenant on a shared
cluster) gets a private set of topics without touching the catalog
(``config/topics.yaml``, typed by :class:`TopicCatalog`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

from pipelines.rules.platforms import PlatformRegistry
from schemas.feeds import FEED_ENTITIES, FEED_NAMES, REGULATOR_ENTITIES

REGULATOR = "regulator"


@dataclass(frozen=True)
class SourceTopic:
    """What a feed topic says about the records on it."""

    name: str
    entity: str
    platform: str | None  # None for regulator topics


@dataclass(frozen=True)
class TopicNames:
    prefix: str = ""

    def _n(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def feed(self, platform: str, feed: str) -> str:
        if feed not in FEED_ENTITIES:
            raise ValueError(f"unknown feed {feed!r}; expected one of {sorted(FEED_ENTITIES)}")
        return self._n(f"omm.feed.{platform}.{feed}")

    def regulator(self, feed: str) -> str:
        if feed not in REGULATOR_ENTITIES:
            raise ValueError(
                f"unknown regulator feed {feed!r}; expected one of {sorted(REGULATOR_ENTITIES)}"
            )
        return self._n(f"omm.reg.{feed}")

    def valid(self, entity: str) -> str:
        return self._n(f"omm.valid.{FEED_NAMES[entity]}")

    def quarantine(self, entity: str) -> str:
        return self._n(f"omm.quarantine.{FEED_NAMES[entity]}")

    @property
    def dlq(self) -> str:
        return self._n("omm.dlq")

    def feedback(self, platform: str | None) -> str:
        return self._n(f"omm.feedback.{platform or REGULATOR}")

    def tasks(self, platform: str) -> str:
        return self._n(f"omm.tasks.{platform}")

    @property
    def review(self) -> str:
        return self._n("omm.review.matches")

    @property
    def decisions(self) -> str:
        return self._n("omm.review.decisions")

    @property
    def compliance_status(self) -> str:
        return self._n("omm.compliance.status")

    @property
    def scorecards(self) -> str:
        return self._n("omm.compliance.scorecards")

    def compliance(self, platform: str) -> str:
        """The statuses of one platform's tasks, for that platform to read."""
        return self._n(f"omm.compliance.{platform}")

    @property
    def feed_health(self) -> str:
        return self._n("omm.feed.health")

    @property
    def sampling(self) -> str:
        """Targeted-sampling recommendations (the regulator's alone)."""
        return self._n("omm.intel.sampling")

    @property
    def leads(self) -> str:
        """Case leads (the regulator's alone)."""
        return self._n("omm.intel.leads")

    @property
    def credit_events(self) -> str:
        """The serious-violation list's events (the regulator's alone)."""
        return self._n("omm.credit.events")

    def sources(self, platforms: list[str]) -> list[SourceTopic]:
        """Every topic ingest reads: each platform's feeds, then the regulator's."""
        out = [
            SourceTopic(self.feed(p, feed), entity, p)
            for p in platforms
            for feed, entity in FEED_ENTITIES.items()
        ]
        out += [
            SourceTopic(self.regulator(feed), entity, None)
            for feed, entity in REGULATOR_ENTITIES.items()
        ]
        return out

    def ingest_outputs(self, platforms: list[str]) -> list[str]:
        return (
            [self.valid(e) for e in FEED_NAMES]
            + [self.quarantine(e) for e in FEED_NAMES if e != "penalty"]
            + [self.dlq, self.feedback(None)]
            + [self.feedback(p) for p in platforms]
        )

    def strip(self, topic: str) -> str:
        return topic[len(self.prefix) :] if self.prefix and topic.startswith(self.prefix) else topic


# ------------------------------------------------------------ the catalog


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
