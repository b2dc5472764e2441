"""Security settings to kafka-python kwargs; the ACLs config/security.yaml grants (no broker)."""

from __future__ import annotations

import logging
import os
import pickle
import stat
from pathlib import Path

import pytest
from kafka.errors import KafkaConfigurationError
from pydantic import SecretStr

from connectors.security import KafkaSecurity, SecurityConfigError, write_secret_file
from connectors.topics import TopicNames
from omm.platforms import AccessRules, grants_for, load_security_config
from omm.settings import Settings

SECRET = "s3cret-for-a-test-only"


def test_plaintext_default_adds_nothing() -> None:
    assert KafkaSecurity().kafka_kwargs() == {}
    assert Settings().kafka_security() is None


def test_scram_over_plaintext_maps_to_kafka_python_kwargs() -> None:
    sec = KafkaSecurity(
        protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        username="tmall",
        password=SecretStr(SECRET),
    )
    assert sec.kafka_kwargs() == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "tmall",
        "sasl_plain_password": SECRET,
    }
    assert sec.principal == "User:tmall"


def test_tls_with_client_certificate_and_plain_sasl() -> None:
    sec = KafkaSecurity(
        protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
        username="regulator",
        password=SecretStr(SECRET),
        ssl_cafile="/etc/omm/ca.pem",
        ssl_certfile="/etc/omm/client.pem",
        ssl_keyfile="/etc/omm/client.key",
        ssl_check_hostname=False,
    )
    kwargs = sec.kafka_kwargs()
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "PLAIN"
    assert kwargs["ssl_cafile"] == "/etc/omm/ca.pem"
    assert kwargs["ssl_certfile"] == "/etc/omm/client.pem"
    assert kwargs["ssl_keyfile"] == "/etc/omm/client.key"
    assert kwargs["ssl_check_hostname"] is False


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"protocol": "SASL_SSL", "username": "a", "password": SecretStr("x")}, "mechanism"),
        ({"protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN"}, "user name"),
        ({"protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "username": "a"}, "password"),
        ({"protocol": "SSL", "ssl_certfile": "/c.pem"}, "key"),
        ({"protocol": "KERBEROS"}, "protocol"),
    ],
)
def test_contradictory_settings_fail_at_construction(fields: dict[str, object], says: str) -> None:
    with pytest.raises(SecurityConfigError, match=says):
        KafkaSecurity(**fields)  # type: ignore[arg-type]


def test_the_secret_never_shows_in_repr_and_a_reference_pickles_without_it(
    tmp_path: Path,
) -> None:
    inline = KafkaSecurity(
        protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        username="tmall",
        password=SecretStr(SECRET),
    )
    assert SECRET not in repr(inline) and SECRET not in inline.describe()
    path = tmp_path / "tmall.password"
    write_secret_file(path, SECRET)
    by_reference = KafkaSecurity(
        protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        username="tmall",
        password_file=str(path),
    )
    pickled = pickle.dumps(by_reference)
    assert SECRET.encode() not in pickled
    # resolved where the client is made, e.g. in a Beam worker
    assert pickle.loads(pickled).kafka_kwargs()["sasl_plain_password"] == SECRET
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_an_unreadable_password_file_names_the_file_not_a_secret(tmp_path: Path) -> None:
    missing = tmp_path / "nope.password"
    sec = KafkaSecurity(
        protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        username="tmall",
        password_file=str(missing),
    )
    with pytest.raises(SecurityConfigError, match=r"nope\.password"):
        sec.kafka_kwargs()


def test_settings_from_the_environment_prefer_the_password_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "p"
    write_secret_file(path, SECRET)
    monkeypatch.setenv("OMM_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("OMM_KAFKA_SASL_USERNAME", "omm-pipelines")
    monkeypatch.setenv("OMM_KAFKA_SASL_PASSWORD", "inline-ignored")
    monkeypatch.setenv("OMM_KAFKA_SASL_PASSWORD_FILE", str(path))
    settings = Settings()
    assert "inline-ignored" not in repr(settings)
    sec = settings.kafka_security()
    assert sec is not None
    assert sec.password is None and sec.password_file == str(path)
    assert sec.sasl_mechanism == "SCRAM-SHA-512"  # the default mechanism
    assert sec.kafka_kwargs()["sasl_plain_password"] == SECRET


def _described(rules: AccessRules, **kwargs: object) -> set[str]:
    return {g.describe() for g in grants_for("tmall", rules, **kwargs)}  # type: ignore[arg-type]


def test_a_platform_gets_write_on_its_feeds_and_read_on_its_own_outputs_only() -> None:
    rules = load_security_config().platform
    catalog = {"omm.tasks.{platform}", "omm.feedback.{platform}"}
    got = _described(rules, topics=TopicNames("p."), platform="tmall", catalog_names=catalog)
    assert got == {
        "User:tmall WRITE topic p.omm.feed.tmall.*",
        "User:tmall DESCRIBE topic p.omm.feed.tmall.*",
        "User:tmall READ topic p.omm.tasks.tmall",
        "User:tmall DESCRIBE topic p.omm.tasks.tmall",
        "User:tmall READ topic p.omm.feedback.tmall",
        "User:tmall DESCRIBE topic p.omm.feedback.tmall",
        "User:tmall READ group tmall.*",
        "User:tmall READ group p.tmall.*",
    }
    # the feed prefix ends in a dot: tmall's grant does not cover a platform "tmallx"
    grants = grants_for("tmall", rules, TopicNames(), "tmall")
    (feed,) = {g.name for g in grants if g.prefixed and g.resource == "TOPIC"}
    assert feed == "omm.feed.tmall."


def test_the_compliance_view_is_granted_once_the_catalog_has_one() -> None:
    rules = load_security_config().platform
    catalog = {"omm.tasks.{platform}", "omm.feedback.{platform}", "omm.compliance.{platform}"}
    got = _described(rules, topics=TopicNames(), platform="tmall", catalog_names=catalog)
    assert "User:tmall READ topic omm.compliance.tmall" in got


def test_kafka_pythons_debug_log_of_the_admin_configuration_masks_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from kafka import KafkaAdminClient

    # an unknown option fails right after the configuration is logged, before any I/O
    with (
        caplog.at_level(logging.DEBUG, logger="kafka.admin.client"),
        pytest.raises(KafkaConfigurationError),
    ):
        KafkaAdminClient(sasl_plain_password=SECRET, no_such_option=1)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "sasl_plain_password" in logged
    assert SECRET not in logged
