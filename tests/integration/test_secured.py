"""Platforms isolated by the broker: a private SASL/SCRAM + ACL broker, real clients, real ingest.

The module starts its own secured EmbeddedKafka (the session broker stays
unsecured for the rest of the suite), provisions two platforms, the pipelines
and the regulator exactly as `omm platform add` / `omm platform services` do,
and then acts as each principal.
"""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from kafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError
from pydantic import SecretStr

from connectors import kafka_client
from connectors.acl import grants_of
from connectors.broker.manager import EmbeddedKafka, free_port
from connectors.push import push_records
from connectors.security import AuthenticationFailed, KafkaSecurity
from connectors.tail import tail_records
from connectors.topics import TopicNames
from omm.config import load_platforms, load_rules, resolved_topics
from omm.generate import FeedGenerator
from omm.jobs import ingest_job
from omm.platforms import PIPELINES, REGULATOR, Provisioned, add_platform, add_services
from pipelines.ingest import run_ingest
from tests.helpers import REGISTRY

pytestmark = pytest.mark.integration

A, B = "tmall", "jd"


@dataclass(frozen=True)
class SecuredCluster:
    bootstrap: str
    home: Path
    admin: KafkaSecurity
    topics: TopicNames
    principals: dict[str, Provisioned]

    def login(self, user: str) -> KafkaSecurity:
        return self.principals[user].client_security()


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredCluster]:
    home = tmp_path_factory.mktemp("secured")
    port = free_port()
    controller_port = free_port()
    while controller_port == port:
        controller_port = free_port()
    broker = EmbeddedKafka(
        home / "kafka", port=port, controller_port=controller_port, security="sasl_scram"
    )
    status = broker.start(timeout_s=180.0)
    try:
        admin = broker.admin_security()
        topics = TopicNames(prefix=f"s{uuid.uuid4().hex[:8]}.")
        kafka_client.create_topics(
            status.bootstrap,
            resolved_topics(only_platforms=[A, B]),
            prefix=topics.prefix,
            security=admin,
        )
        common = {"bootstrap": status.bootstrap, "admin": admin, "home": home, "topics": topics}
        principals = {p: add_platform(p, **common) for p in (A, B)}  # type: ignore[arg-type]
        principals.update({s.user: s for s in add_services(**common)})  # type: ignore[arg-type]
        yield SecuredCluster(status.bootstrap, home, admin, topics, principals)
    finally:
        broker.stop()


def _listing(platform: str, n: int, claimed: str | None = None) -> dict[str, object]:
    record = FeedGenerator(seed=41).listing(platform, n)
    return {**record, "platform": claimed or platform}


def _send(cluster: SecuredCluster, user: str, topic: str, value: bytes) -> None:
    producer = kafka_client.producer(cluster.bootstrap, cluster.login(user))
    try:
        producer.send(topic, key=b"k", value=value).get(timeout=30)
    finally:
        producer.close()


def _read(cluster: SecuredCluster, user: str, topic: str) -> list[dict[str, object]]:
    return list(tail_records(cluster.bootstrap, topic, security=cluster.login(user), timeout_s=2))


# ---------------------------------------------------------------- isolation


def test_a_platform_cannot_write_another_platforms_feed(secured: SecuredCluster) -> None:
    value = REGISTRY.encode("listing", _listing(A, 1, claimed=B))
    with pytest.raises(TopicAuthorizationFailedError):
        _send(secured, A, secured.topics.feed(B, "listings"), value)
    # nor a regulator feed, nor anything downstream of ingest
    for topic in (secured.topics.regulator("inspections"), secured.topics.valid("listing")):
        with pytest.raises(TopicAuthorizationFailedError):
            _send(secured, A, topic, value)


def test_a_platform_cannot_read_another_platforms_tasks_or_feedback(
    secured: SecuredCluster,
) -> None:
    _send(secured, PIPELINES, secured.topics.tasks(B), b"a task for jd only")
    for topic in (secured.topics.tasks(B), secured.topics.feedback(B), secured.topics.dlq):
        with pytest.raises(TopicAuthorizationFailedError, match=topic):
            _read(secured, A, topic)
    # the Beam reader's seeding says the same instead of finding no partitions
    with pytest.raises(TopicAuthorizationFailedError):
        kafka_client.partitions_for(secured.bootstrap, [secured.topics.tasks(B)], secured.login(A))


def test_a_platform_writes_its_own_feed_and_reads_its_own_tasks(secured: SecuredCluster) -> None:
    report = push_records(
        [(1, _listing(A, 2))],
        feed="listings",
        platform=A,
        bootstrap=secured.bootstrap,
        rules=load_rules().record_rules,
        platforms=load_platforms(),
        topics=secured.topics,
        security=secured.login(A),
    )
    assert report.sent == 1 and report.all_accepted
    marker = f"task-{uuid.uuid4().hex}".encode()
    _send(secured, PIPELINES, secured.topics.tasks(A), marker)
    seen = _read(secured, A, secured.topics.tasks(A))
    assert any(line.get("value_hex") == marker.hex() for line in seen)
    # its own feedback topic too (empty so far, but readable)
    _read(secured, A, secured.topics.feedback(A))


def test_a_platform_cannot_use_another_platforms_consumer_group(
    secured: SecuredCluster,
) -> None:
    group = f"{B}.stolen"
    with pytest.raises(GroupAuthorizationFailedError):
        kafka_client.committed_offsets(
            secured.bootstrap, group, [secured.topics.tasks(A)], secured.login(A)
        )


def test_pipelines_and_regulator_have_only_their_own_rights(secured: SecuredCluster) -> None:
    value = REGISTRY.encode("listing", _listing(A, 3))
    # the pipelines read feeds but never write one
    with pytest.raises(TopicAuthorizationFailedError):
        _send(secured, PIPELINES, secured.topics.feed(A, "listings"), value)
    # the regulator publishes inspections but cannot write a platform's feed
    _send(secured, REGULATOR, secured.topics.regulator("inspections"), b"x")
    with pytest.raises(TopicAuthorizationFailedError):
        _send(secured, REGULATOR, secured.topics.feed(A, "listings"), value)
    # a decision on a review is the regulator's word: no pipeline may write one
    _send(secured, REGULATOR, secured.topics.decisions, b"x")
    with pytest.raises(TopicAuthorizationFailedError):
        _send(secured, PIPELINES, secured.topics.decisions, b"x")


def test_intelligence_and_the_credit_list_are_the_regulators_alone(
    secured: SecuredCluster,
) -> None:
    t = secured.topics
    intel = (t.sampling, t.leads, t.credit_events)
    for topic in intel:  # intel writes them; only the regulator reads them
        _send(secured, PIPELINES, topic, b"an intel record")
        assert _read(secured, REGULATOR, topic)
        for user in (A, PIPELINES):
            with pytest.raises(TopicAuthorizationFailedError, match=topic):
                _read(secured, user, topic)
    # a platform's flags and compensation-first tasks come on its own task topic only
    _send(secured, PIPELINES, t.tasks(A), b"a FLAG task for tmall")
    assert _read(secured, A, t.tasks(A))
    with pytest.raises(TopicAuthorizationFailedError):
        _read(secured, B, t.tasks(A))


def test_acls_on_the_broker_are_exactly_the_configured_ones(secured: SecuredCluster) -> None:
    client = kafka_client.admin(secured.bootstrap, secured.admin)
    try:
        on_broker = grants_of(client, f"User:{A}")
    finally:
        client.close()
    p = secured.topics.prefix
    assert {g.describe() for g in on_broker} == {
        f"User:{A} WRITE topic {p}omm.feed.{A}.*",
        f"User:{A} DESCRIBE topic {p}omm.feed.{A}.*",
        f"User:{A} READ topic {p}omm.tasks.{A}",
        f"User:{A} DESCRIBE topic {p}omm.tasks.{A}",
        f"User:{A} READ topic {p}omm.feedback.{A}",
        f"User:{A} DESCRIBE topic {p}omm.feedback.{A}",
        # its own tasks' compliance statuses (omm.compliance.<platform>)
        f"User:{A} READ topic {p}omm.compliance.{A}",
        f"User:{A} DESCRIBE topic {p}omm.compliance.{A}",
        f"User:{A} READ group {A}.*",
        f"User:{A} READ group {p}{A}.*",
    }


# ---------------------------------------------------------------- the spoofing rule


def test_a_forged_platform_field_in_its_own_feed_is_still_dead_lettered(
    secured: SecuredCluster,
) -> None:
    topics = secured.topics
    # A bypasses the push client (which would refuse it) and writes raw bytes
    _send(
        secured,
        A,
        topics.feed(A, "listings"),
        REGISTRY.encode("listing", _listing(A, 7, claimed=B)),
    )
    job = ingest_job(
        secured.bootstrap,
        topics,
        platforms=[A, B],
        group_id=f"{topics.prefix}omm.ingest",
        key=b"test-key-not-a-secret",
        idle_timeout_s=3.0,
    )
    # the pipelines' own principal, whatever this process's settings say
    job = replace(job, kafka=replace(job.kafka, security=secured.login(PIPELINES)))
    accounts = {topics.strip(a.topic): a for a in run_ingest(job, ["--runner=FnApiRunner"])}

    feed = accounts[f"omm.feed.{A}.listings"]
    assert feed.balanced
    assert feed.dead >= 1
    # A reads its own feedback (as itself) and finds the reason
    rejections = [
        line["value"]
        for line in _read(secured, A, topics.feedback(A))
        if isinstance(line.get("value"), dict)
    ]
    spoofed = [r for r in rejections if r["rule"] == "platform_matches_topic"]  # type: ignore[index]
    assert len(spoofed) == 1
    assert spoofed[0]["value"] == B  # type: ignore[index]
    # and B's feedback learns nothing of it (read as B)
    assert _read(secured, B, topics.feedback(B)) == []
    # the DLQ copy (readable by the admin, not by A) carries the same rule
    dlq = list(tail_records(secured.bootstrap, topics.dlq, security=secured.admin, timeout_s=2))
    rules = [line.get("headers", {}).get("omm.errors.rule") for line in dlq]
    assert rules.count("platform_matches_topic") == 1


# ---------------------------------------------------------------- authentication


def test_a_wrong_password_fails_with_a_clear_message(secured: SecuredCluster) -> None:
    wrong = KafkaSecurity(
        protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        username=A,
        password=SecretStr("not-the-password-0123456789"),
    )
    with pytest.raises(AuthenticationFailed) as failure:
        # a short bootstrap: kafka-python otherwise retries the refused login for 30 s
        kafka_client.producer(secured.bootstrap, wrong, bootstrap_timeout_ms=6000)
    message = str(failure.value)
    assert f"as '{A}'" in message and "refused the login" in message
    assert "SASL_PLAINTEXT SCRAM-SHA-512" in message
    assert "not-the-password" not in message


def test_credentials_are_owner_only_files_never_in_the_repo(secured: SecuredCluster) -> None:
    for done in secured.principals.values():
        mode = stat.S_IMODE(os.stat(done.password_file).st_mode)
        assert mode == 0o600, (done.password_file, oct(mode))
        assert secured.home in done.password_file.parents
    admin_file = Path(secured.admin.password_file or "")
    assert stat.S_IMODE(os.stat(admin_file).st_mode) == 0o600
    properties = secured.home / "kafka" / "server.properties"
    assert stat.S_IMODE(os.stat(properties).st_mode) == 0o600


def test_provisioning_again_keeps_the_password_and_rotate_replaces_it(
    secured: SecuredCluster,
) -> None:
    before = secured.principals[B].password_file.read_text()
    common = {
        "bootstrap": secured.bootstrap,
        "admin": secured.admin,
        "home": secured.home,
        "topics": secured.topics,
    }
    again = add_platform(B, **common)  # type: ignore[arg-type]
    assert not again.new_password and again.password_file.read_text() == before
    _read(secured, B, secured.topics.tasks(B))  # still logs in
    rotated = add_platform(B, rotate=True, **common)  # type: ignore[arg-type]
    assert rotated.new_password and rotated.password_file.read_text() != before
    _read(secured, B, secured.topics.tasks(B))  # logs in with the new one


def test_a_home_keeps_the_security_it_was_formatted_with(tmp_path: Path) -> None:
    from connectors.broker.manager import BrokerError

    home = tmp_path / "kafka"
    (home / "data").mkdir(parents=True)
    (home / "data" / "meta.properties").write_text("formatted\n")  # as StorageTool leaves it
    (home / "security").write_text("sasl_scram\n")
    unsecured = EmbeddedKafka(home, port=free_port(), controller_port=free_port())
    assert unsecured.formatted_security() == "sasl_scram"
    with pytest.raises(BrokerError, match="OMM_BROKER_SECURITY=sasl_scram"):
        unsecured.start(timeout_s=30.0)
    assert not unsecured.status().running
