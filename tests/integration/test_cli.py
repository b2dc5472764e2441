"""The `omm` command as an operator types it: schemas check, topics create, tail.

Every command runs through typer's CliRunner against the real broker the suite starts;
what a command claims to have done is checked on the broker itself.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kafka.admin import ConfigResource, ConfigResourceType
from typer.testing import CliRunner, Result

from connectors import kafka_client
from omm.cli import app
from omm.config import resolved_topics
from omm.generate import GARBAGE, FeedGenerator
from schemas.registry import DEFAULT_ROOT
from tests.helpers import REGISTRY, fresh_namespace, produce_avro

pytestmark = pytest.mark.integration

WIDE = {"COLUMNS": "400"}  # rich would otherwise wrap and truncate at 80 columns


def omm(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env=WIDE)


# ------------------------------------------------------------------ schemas check


def shipped_entities() -> list[str]:
    return sorted(p.parent.name for p in DEFAULT_ROOT.glob("*/v1.avsc"))


def test_schemas_check_passes_on_the_shipped_schemas_and_lists_every_entity() -> None:
    result = omm("schemas", "check")

    assert result.exit_code == 0, result.output
    entities = shipped_entities()
    assert len(entities) >= 10  # the glob found the tree
    listed = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("│")}
    assert listed == set(entities)
    assert "BACKWARD compatible" in result.stdout
    assert result.stderr == ""


@pytest.fixture
def schema_tree(tmp_path: Path) -> Path:
    root = tmp_path / "avro"
    shutil.copytree(DEFAULT_ROOT, root)
    return root


def add_listing_v2(root: Path, new_field: dict[str, Any]) -> Path:
    schema = json.loads((root / "listing" / "v1.avsc").read_text(encoding="utf-8"))
    schema["fields"].append(new_field)
    path = root / "listing" / "v2.avsc"
    path.write_text(json.dumps(schema, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


ENERGY_LABEL = {
    "name": "energy_label",
    "type": "string",
    "doc": 'China energy label grade 1-5 as printed. Example: "1".',
}


def test_schemas_check_fails_when_a_new_version_adds_a_field_without_default(
    schema_tree: Path,
) -> None:
    add_listing_v2(schema_tree, ENERGY_LABEL)  # no "default": v2 cannot read v1 data

    result = omm("schemas", "check", "--root", str(schema_tree))

    assert result.exit_code == 1, result.output
    assert "listing v2" in result.stderr and "v1" in result.stderr
    assert "'energy_label'" in result.stderr
    assert "default" in result.stderr
    # the incompatibility, and the model that was not changed with the schema (issue 8a)
    assert "2 compatibility problem" in result.stderr
    assert "model drift: field 'energy_label'" in result.stderr
    assert "BACKWARD compatible with every" not in result.stdout


def test_schemas_check_accepts_the_same_field_with_a_default_but_not_the_stale_model(
    schema_tree: Path,
) -> None:
    """Compatible, but Listing (schemas/models.py) lacks the field: every decoded record
    would be dead-lettered as unknown_field, so the check fails naming it (issue 8a)."""
    add_listing_v2(schema_tree, {**ENERGY_LABEL, "type": ["null", "string"], "default": None})

    result = omm("schemas", "check", "--root", str(schema_tree))

    assert result.exit_code == 1, result.output
    assert "reading v1 data" not in result.stderr  # BACKWARD compatible
    assert "listing v2: model drift: field 'energy_label'" in result.stderr
    assert "1 compatibility problem" in result.stderr


# ------------------------------------------------------------------ topics create


@pytest.fixture
def prefix(kafka_bootstrap: str) -> Iterator[str]:
    """A unique topic prefix; whatever the test created under it is deleted afterwards."""
    name = f"c{uuid.uuid4().hex[:10]}."
    yield name
    admin = kafka_client.admin(kafka_bootstrap)
    try:
        mine = [t for t in admin.list_topics() if t.startswith(name)]
        if mine:
            with contextlib.suppress(Exception):  # hygiene only
                admin.delete_topics(mine)
    finally:
        admin.close()


def test_topics_create_is_idempotent_and_follows_the_catalog(
    kafka_bootstrap: str, prefix: str
) -> None:
    catalog = {prefix + t.name: t for t in resolved_topics()}

    first = omm("topics", "create", "--bootstrap", kafka_bootstrap, "--prefix", prefix)
    second = omm("topics", "create", "--bootstrap", kafka_bootstrap, "--prefix", prefix)

    assert first.exit_code == 0, first.output
    assert f"{len(catalog)} topics created, 0 already existed" in first.stdout
    assert {line.split()[1] for line in first.stdout.splitlines() if "  + " in line} == set(catalog)
    assert second.exit_code == 0, second.output
    assert f"0 topics created, {len(catalog)} already existed" in second.stdout

    admin = kafka_client.admin(kafka_bootstrap)
    try:
        described = {t["name"]: t for t in admin.describe_topics(sorted(catalog))}
        configs = admin.describe_configs(
            [
                ConfigResource(ConfigResourceType.TOPIC, name, ["cleanup.policy", "retention.ms"])
                for name in sorted(catalog)
            ],
            config_filter="all",
        )["topic"]
    finally:
        admin.close()
    assert set(described) == set(catalog)
    for name, spec in catalog.items():
        assert described[name]["error_code"] == 0, name
        assert len(described[name]["partitions"]) == spec.partitions, name
        assert configs[name]["cleanup.policy"]["value"] == spec.cleanup_policy, name
        assert configs[name]["retention.ms"]["value"] == str(spec.retention_ms), name
    assert configs[prefix + "omm.compliance.status"]["cleanup.policy"]["value"] == "compact"
    assert configs[prefix + "omm.dlq"]["cleanup.policy"]["value"] == "delete"
    assert len(described[prefix + "omm.feedback.jd"]["partitions"]) == 1
    assert len(described[prefix + "omm.feed.jd.listings"]["partitions"]) == 3


# ------------------------------------------------------------------ tail


def json_lines(stdout: str) -> list[dict[str, Any]]:
    lines = stdout.splitlines()
    assert lines, "tail printed nothing"
    parsed = [json.loads(line) for line in lines]  # every line is one JSON document
    assert all(isinstance(p, dict) for p in parsed)
    return parsed


def test_tail_prints_decoded_records_as_json_lines(
    kafka_bootstrap: str, unique_topic: Callable[..., str]
) -> None:
    topic = unique_topic("tail")  # one partition, so the order is the produce order
    gen = FeedGenerator(seed=41)
    listings = [gen.listing("tmall", i) for i in range(3)]
    produce_avro(kafka_bootstrap, topic, "listing", listings, key_field="listing_id")

    result = omm(
        "tail", topic, "--from-beginning", "--max", "3", "--timeout", "10",
        "--bootstrap", kafka_bootstrap,
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    lines = json_lines(result.stdout)
    assert [line["offset"] for line in lines] == [0, 1, 2]
    for line, record in zip(lines, listings, strict=True):
        assert line["topic"] == topic
        assert line["key"] == record["listing_id"]
        assert line["entity"] == "listing"
        value = line["value"]
        assert datetime.fromisoformat(value.pop("observed_at")) == record["observed_at"]
        assert value == {k: v for k, v in record.items() if k != "observed_at"}
        assert "headers" not in line  # none were sent


def test_tail_stops_after_max_records(
    kafka_bootstrap: str, unique_topic: Callable[..., str]
) -> None:
    topic = unique_topic("tail-max")
    gen = FeedGenerator(seed=42)
    produce_avro(
        kafka_bootstrap,
        topic,
        "listing",
        [gen.listing("tmall", i) for i in range(5)],
        key_field="listing_id",
    )

    result = omm(
        "tail", topic, "--from-beginning", "--max", "2", "--timeout", "10",
        "--bootstrap", kafka_bootstrap,
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert [line["offset"] for line in json_lines(result.stdout)] == [0, 1]


def test_tail_of_the_dlq_shows_the_headers_and_the_undecodable_bytes(
    kafka_bootstrap: str,
) -> None:
    topics = fresh_namespace(["jd"], kafka_bootstrap)
    source = topics.feed("jd", "listings")
    headers = [
        ("__connect.errors.topic", source.encode()),
        ("__connect.errors.partition", b"2"),
        ("__connect.errors.offset", b"17"),
        ("__connect.errors.stage", b"DECODE"),
        ("__connect.errors.class.name", b"NotSingleObjectEncoded"),
        ("omm.errors.rule", "校验 gtin_check_digit".encode()),
    ]
    avro_value = REGISTRY.encode("listing", FeedGenerator(seed=43).listing("jd", 1))
    producer = kafka_client.producer(kafka_bootstrap)
    # omm.dlq has three partitions: pin both records to one so their order is known
    producer.send(topics.dlq, key=b"g", value=GARBAGE, headers=headers, partition=0)
    producer.send(topics.dlq, key=b"a", value=avro_value, headers=headers[:1], partition=0)
    producer.flush()
    producer.close()

    result = omm(
        "tail", topics.dlq, "--from-beginning", "--max", "2", "--timeout", "10",
        "--bootstrap", kafka_bootstrap,
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    garbage, decodable = json_lines(result.stdout)
    assert garbage["key"] == "g"
    assert garbage["headers"] == {k: v.decode("utf-8") for k, v in headers}
    assert garbage["value_hex"] == GARBAGE.hex()
    assert garbage["value_bytes"] == len(GARBAGE)
    assert garbage["decode_error"]
    assert "value" not in garbage
    assert decodable["headers"] == {"__connect.errors.topic": source}
    assert decodable["entity"] == "listing"
    assert decodable["value"]["listing_id"] == "jd-L0000001"


# ------------------------------------------------------------------ tables


def first_column_text(stdout: str) -> str:
    """The first column's cells, top to bottom, joined: a folded name reads back whole."""
    cells = [line.split("│")[1].strip() for line in stdout.splitlines() if line.startswith("│")]
    return "".join(cells)


@pytest.mark.parametrize("columns", ["80", "60"])
def test_topics_list_never_cuts_a_topic_name_short(columns: str) -> None:
    result = CliRunner().invoke(app, ["topics", "list"], env={"COLUMNS": columns})

    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= int(columns)
    column = first_column_text(result.stdout)
    for topic in resolved_topics():
        assert topic.name in column, topic.name


def test_the_push_summary_never_cuts_a_prefixed_topic_name_short(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topics = fresh_namespace(["amazon_cn"], kafka_bootstrap)
    gen = FeedGenerator(seed=44)
    path = tmp_path / "l.jsonl"
    path.write_text(
        json.dumps(gen.listing("amazon_cn", 1), default=lambda v: v.isoformat()) + "\n",
        encoding="utf-8",
    )

    result = CliRunner().invoke(
        app,
        ["push", "listings", str(path), "--platform", "amazon_cn",
         "--bootstrap", kafka_bootstrap, "--prefix", topics.prefix],
        env={"COLUMNS": "60"},
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout
    assert topics.feed("amazon_cn", "listings") in first_column_text(result.stdout)


# ------------------------------------------------------------------ topics delete / demo clean-up


def topics_under(bootstrap: str, prefix: str) -> list[str]:
    admin = kafka_client.admin(bootstrap)
    try:
        return sorted(t for t in admin.list_topics() if t.startswith(prefix))
    finally:
        admin.close()


def test_topics_delete_removes_the_namespace_and_nothing_else(
    kafka_bootstrap: str, prefix: str
) -> None:
    other = fresh_namespace(["jd"], kafka_bootstrap)
    created = omm("topics", "create", "--bootstrap", kafka_bootstrap, "--prefix", prefix)
    assert created.exit_code == 0, created.output
    assert topics_under(kafka_bootstrap, prefix)

    result = omm("topics", "delete", "--bootstrap", kafka_bootstrap, "--prefix", prefix)

    assert result.exit_code == 0, result.output
    assert f"{len(resolved_topics())} topics deleted under {prefix}" in result.stdout
    assert topics_under(kafka_bootstrap, prefix) == []
    assert topics_under(kafka_bootstrap, other.prefix)  # another namespace is untouched
    # the names are free again at once
    again = omm("topics", "create", "--bootstrap", kafka_bootstrap, "--prefix", prefix)
    assert again.exit_code == 0, again.output
    assert f"{len(resolved_topics())} topics created" in again.stdout


def test_topics_delete_refuses_a_prefix_that_is_not_a_namespace(kafka_bootstrap: str) -> None:
    result = omm("topics", "delete", "--bootstrap", kafka_bootstrap, "--prefix", "")

    assert result.exit_code == 2
    assert "ending in '.'" in result.stderr


class StoryBroke(RuntimeError):
    pass


def commit_until_accepted(bootstrap: str, group: str, topic: str, deadline_s: float = 60.0) -> None:
    """Commit offset 0 of topic/0 for the group, polling while a fresh broker's group
    coordinator is still loading, as a real run would have."""
    import time

    from kafka.errors import NoError
    from kafka.structs import OffsetAndMetadata, TopicPartition

    admin = kafka_client.admin(bootstrap)
    deadline = time.monotonic() + deadline_s
    try:
        while True:
            result = kafka_client.retrying(  # CoordinatorNotAvailable is raised, not returned
                lambda: admin.alter_group_offsets(
                    group, {TopicPartition(topic, 0): OffsetAndMetadata(0, "", -1)}
                ),
                timeout_s=deadline_s,
            )
            if all(err is NoError for err in result.values()):
                return
            assert time.monotonic() < deadline, result
            time.sleep(0.2)
    finally:
        admin.close()


def test_the_demo_deletes_its_topics_and_groups_even_when_a_step_fails(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo's real first steps (topics, pushes) then a failure: its namespace is gone."""
    import io

    from rich.console import Console

    from omm import demo as demo_module

    seen: dict[str, Any] = {}

    def broken_ingest(self: demo_module.Demo, title: str) -> None:
        prefix = self.topics.prefix
        seen["prefix"] = prefix
        seen["topics"] = topics_under(kafka_bootstrap, prefix)
        # a group the pipelines would have left, named as ingest names it
        group = f"{self.settings.consumer_group_prefix}.{prefix}ingest"
        commit_until_accepted(kafka_bootstrap, group, self.topics.dlq)
        raise StoryBroke("ingest failed halfway")

    monkeypatch.setattr(demo_module.Demo, "ingest", broken_ingest)
    out = io.StringIO()

    with pytest.raises(StoryBroke):
        demo_module.run_demo(
            Console(file=out, width=200), bootstrap=kafka_bootstrap, start_broker=False
        )

    prefix = seen["prefix"]
    assert len(seen["topics"]) == len(resolved_topics())  # they existed while it ran
    assert topics_under(kafka_bootstrap, prefix) == []
    admin = kafka_client.admin(kafka_bootstrap)
    try:
        groups = [g["group_id"] for g in admin.list_groups()]
    finally:
        admin.close()
    assert not [g for g in groups if prefix in g]
    assert f"{len(resolved_topics())} demo topics deleted ({prefix}*)" in out.getvalue()


def test_two_demos_get_different_namespaces() -> None:
    import io

    from rich.console import Console

    from omm.demo import Demo

    console = Console(file=io.StringIO())
    assert Demo(console, 1).topics.prefix != Demo(console, 1).topics.prefix
