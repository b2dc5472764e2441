"""Topic names built in code and the catalog in config/topics.yaml agree, in both directions."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from connectors.topics import ResolvedTopic, TopicNames
from omm.config import load_platforms, resolved_topics
from schemas.feeds import FEED_ENTITIES, FEED_NAMES, REGULATOR_ENTITIES

PLATFORMS = load_platforms().ids
CATALOG: dict[str, ResolvedTopic] = {t.name: t for t in resolved_topics()}
# entities that ingest reads from feeds or writes to omm.valid.* / omm.feedback.*
INGEST_ENTITIES = {*FEED_ENTITIES.values(), *REGULATOR_ENTITIES.values(), "rejection"}


def producible(names: TopicNames) -> dict[str, str | None]:
    """Every topic name TopicNames can build, for every registered platform -> its entity."""
    out: dict[str, str | None] = {}
    for platform in PLATFORMS:
        for feed, entity in FEED_ENTITIES.items():
            out[names.feed(platform, feed)] = entity
        out[names.feedback(platform)] = "rejection"
        out[names.tasks(platform)] = "task"
    for feed, entity in REGULATOR_ENTITIES.items():
        out[names.regulator(feed)] = entity
    for entity in FEED_NAMES:
        out[names.valid(entity)] = entity
        if entity != "penalty":  # penalties have no feed-health suite
            out[names.quarantine(entity)] = entity
    out[names.feedback(None)] = "rejection"
    out[names.dlq] = None  # original bytes of any entity
    out[names.review] = "match_review"
    out[names.decisions] = "review_decision"
    out[names.feed_health] = "feed_health"
    return out


def test_the_platform_registry_and_catalog_are_not_empty() -> None:
    assert len(PLATFORMS) >= 2
    assert len(CATALOG) == len(resolved_topics())  # no name appears twice


def test_every_name_topicnames_builds_is_in_the_catalog_with_the_same_entity() -> None:
    built = producible(TopicNames())
    missing = sorted(set(built) - set(CATALOG))
    assert missing == []
    wrong = {name: (entity, CATALOG[name].entity) for name, entity in built.items()}
    assert {n: e for n, e in wrong.items() if e[0] != e[1]} == {}


def test_every_catalog_topic_ingest_uses_can_be_built() -> None:
    built = producible(TopicNames())
    ingest_topics = {
        name
        for name, t in CATALOG.items()
        if t.entity in INGEST_ENTITIES or name in ("omm.dlq", "omm.feed.health")
    }
    assert len(ingest_topics) >= 3 * len(PLATFORMS) + 2  # feeds of every platform at least
    assert sorted(ingest_topics - set(built)) == []


def test_ingest_sources_and_outputs_are_catalog_topics() -> None:
    names = TopicNames()
    sources = names.sources(PLATFORMS)
    assert len(sources) == len(PLATFORMS) * len(FEED_ENTITIES) + len(REGULATOR_ENTITIES)
    for source in sources:
        assert source.name in CATALOG
        assert CATALOG[source.name].entity == source.entity
        assert CATALOG[source.name].platform == source.platform
    outputs = names.ingest_outputs(PLATFORMS)
    assert sorted(set(outputs) - set(CATALOG)) == []
    assert names.dlq in outputs and names.feedback(None) in outputs
    assert all(names.feedback(p) in outputs for p in PLATFORMS)


def test_per_platform_catalog_topics_belong_to_that_platform() -> None:
    names = TopicNames()
    for platform in PLATFORMS:
        for built in (names.feed(platform, "listings"), names.tasks(platform)):
            assert CATALOG[built].platform == platform
    assert CATALOG[names.dlq].platform is None


def test_a_prefix_goes_in_front_of_every_name_and_strip_takes_it_off() -> None:
    plain = producible(TopicNames())
    prefixed = producible(TopicNames("t1234.")).keys()

    assert sorted(prefixed) == sorted("t1234." + name for name in plain)
    names = TopicNames("t1234.")
    assert names.feed("jd", "listings") == "t1234.omm.feed.jd.listings"
    assert names.regulator("inspections") == "t1234.omm.reg.inspections"
    assert names.dlq == "t1234.omm.dlq"
    assert names.feedback(None) == "t1234.omm.feedback.regulator"
    assert sorted(names.strip(name) for name in prefixed) == sorted(plain)
    assert [s.name for s in names.sources(["jd"])] == [
        "t1234." + s.name for s in TopicNames().sources(["jd"])
    ]


@pytest.mark.parametrize(
    ("prefix", "topic"),
    [("t1234.", "omm.dlq"), ("t1234.", "other.omm.dlq"), ("", "t1234.omm.dlq")],
)
def test_strip_leaves_names_without_the_prefix_alone(prefix: str, topic: str) -> None:
    assert TopicNames(prefix).strip(topic) == topic


@pytest.mark.parametrize(
    "build",
    [
        lambda n: n.feed("jd", "inspections"),
        lambda n: n.feed("jd", "offers"),
        lambda n: n.regulator("listings"),
    ],
    ids=["regulator-feed-as-platform-feed", "unknown-feed", "platform-feed-as-regulator"],
)
def test_names_outside_the_catalog_cannot_be_built(build: Callable[[TopicNames], str]) -> None:
    with pytest.raises(ValueError, match="unknown"):
        build(TopicNames())


@pytest.mark.parametrize("prefix", ["", "demo", "."])
def test_delete_namespace_refuses_a_prefix_that_is_not_a_namespace(prefix: str) -> None:
    from connectors.kafka_client import delete_namespace

    # refused before any client is made: an empty prefix would be the whole cluster
    with pytest.raises(ValueError, match=r"ends with '\.'"):
        delete_namespace("127.0.0.1:1", prefix, "omm")
