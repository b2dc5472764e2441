"""Topic names, in one place.

Every topic name omm uses is built here from the catalog's patterns, with an
optional namespace prefix so that a test (or a second tenant on a shared
cluster) gets a private set of topics without touching the catalog.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

# feed kind (as in topic names and `omm push <feed>`) -> Avro entity
FEED_ENTITIES: dict[str, str] = {
    "listings": "listing",
    "complaints": "complaint",
    "takedowns": "takedown",
}
REGULATOR_ENTITIES: dict[str, str] = {
    "inspections": "inspection",
    "penalties": "penalty",
}
# entity -> plural used in omm.valid.<...>
VALID_NAMES: dict[str, str] = {
    entity: feed for feed, entity in {**FEED_ENTITIES, **REGULATOR_ENTITIES}.items()
}
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
        return self._n(f"omm.valid.{VALID_NAMES[entity]}")

    def quarantine(self, entity: str) -> str:
        return self._n(f"omm.quarantine.{VALID_NAMES[entity]}")

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
    def feed_health(self) -> str:
        return self._n("omm.feed.health")

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
            [self.valid(e) for e in VALID_NAMES]
            + [self.quarantine(e) for e in VALID_NAMES if e != "penalty"]
            + [self.dlq, self.feedback(None)]
            + [self.feedback(p) for p in platforms]
        )

    def strip(self, topic: str) -> str:
        return topic[len(self.prefix) :] if self.prefix and topic.startswith(self.prefix) else topic


def delete_namespace(
    bootstrap: str, prefix: str, group_prefix: str, wait_s: float = 60.0
) -> list[str]:
    """Delete every topic named ``<prefix>…`` and the consumer groups named after the
    namespace; return the topics deleted, once the broker no longer lists them.

    Waits because Kafka deletes asynchronously: a topic re-created under the same
    name too early would be refused, or deleted after the fact. Group ids follow
    the pipelines' patterns, ``<prefix>…`` and ``<group_prefix>.<prefix>…``.
    """
    from connectors import kafka_client

    if not prefix.endswith(".") or len(prefix) < 2:
        # an empty prefix would be every topic of the cluster
        raise ValueError(f"a namespace prefix ends with '.', like 'demo.', not {prefix!r}")
    admin = kafka_client.admin(bootstrap)
    try:
        doomed = sorted(t for t in admin.list_topics() if t.startswith(prefix))
        if doomed:
            admin.delete_topics(doomed)
        owned = (prefix, f"{group_prefix}.{prefix}")
        mine = [g["group_id"] for g in admin.list_groups() if g["group_id"].startswith(owned)]
        if mine:
            admin.delete_groups(mine)
        deadline = time.monotonic() + wait_s
        while any(t.startswith(prefix) for t in admin.list_topics()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics under {prefix!r} still listed after {wait_s:g}s")
            time.sleep(0.2)
        return doomed
    finally:
        admin.close()
