"""Runtime settings: where Kafka is, where omm keeps its files, which config to read.

Values come from environment variables (prefix ``OMM_``) over defaults; the
domain numbers (deadlines, thresholds, calendars) live in YAML under
``config/`` and are loaded by :mod:`omm.config`.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors import delivery
from connectors.producers import ClientName
from connectors.security import KafkaSecurity, Mechanism, Protocol

REPO_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    """Operator settings. Every field can be set as ``OMM_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="OMM_", extra="ignore")

    kafka_bootstrap: str = Field(
        default="127.0.0.1:9092",
        description="Kafka bootstrap servers, comma-separated. Any cluster works.",
    )
    kafka_probe_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="How long a command waits for the bootstrap to answer before it gives up "
        "with a one-line error (a client's own default is 30 s, and more for a missing topic).",
    )
    home: Path = Field(
        default=Path(".omm"),
        description="Embedded broker data, logs and local secrets live here.",
    )
    config_dir: Path = Field(default=REPO_ROOT / "config")
    broker_port: int = 9092
    controller_port: int = 9093
    consumer_group_prefix: str = "omm"
    # The keyed-pseudonym secret. Never in code or config files: from the
    # environment, or generated once into <home>/pseudonym.key.
    pseudonym_key: SecretStr | None = None

    # ---- delivery: retries, broker outages, commit cadence (connectors.delivery)
    delivery_timeout_s: float = Field(
        default=delivery.DeliveryPolicy.delivery_timeout_s,
        description="A send is retried (leader moving, broker busy) until this passes.",
    )
    retry_backoff_ms: int = Field(default=delivery.DeliveryPolicy.retry_backoff_ms)
    reconnect_backoff_max_ms: int = Field(
        default=delivery.DeliveryPolicy.reconnect_backoff_max_ms,
        description="Longest wait between reconnects: how soon a client sees the broker back.",
    )
    outage_budget_s: float = Field(
        default=delivery.DeliveryPolicy.outage_budget_s,
        description="A streaming pipeline rides out a broker outage this long, then gives up.",
    )
    leader_wait_s: float = Field(
        default=delivery.DeliveryPolicy.leader_wait_s,
        description="`omm topics create` waits this long for every partition to have a leader.",
    )
    commit_every_records: int = Field(
        default=delivery.DeliveryPolicy.commit_every_records,
        gt=0,  # 0 would end every bundle before it read anything: a reader that never reads
        description="A reader's bundle ends (outputs flushed, offsets committed) after this many.",
    )
    commit_every_s: float = Field(
        default=delivery.DeliveryPolicy.commit_every_s,
        gt=0,
        description="... or after this many seconds: what a crash replays at most, roughly.",
    )

    kafka_client: ClientName = Field(
        default="kafka-python",
        description="The client library pipelines write with: kafka-python (the default) or "
        "confluent (confluent-kafka, librdkafka: faster sends; an optional dependency).",
    )

    stop_grace_s: float = Field(
        default=60.0,
        description="After Ctrl-C, how long `omm run` waits for pipelines to flush and commit.",
    )

    # ---- what an operator watches (`omm status`, /metrics: omm/status.py)
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="When set, `omm run ...` (and `omm status --serve`) serve the status "
        "figures on http://<OMM_METRICS_HOST>:<port>/metrics in Prometheus' text format. "
        "Unset (the default): no endpoint.",
    )
    metrics_host: str = Field(
        default="127.0.0.1",
        description="The address /metrics listens on: loopback unless the operator opens it "
        "(0.0.0.0 for a Prometheus on another machine).",
    )
    status_window_s: float = Field(
        default=300.0,
        gt=0,
        description="Records per second, dead-letter and quarantine rates are over this window.",
    )

    def delivery_policy(self) -> delivery.DeliveryPolicy:
        return delivery.DeliveryPolicy(
            delivery_timeout_s=self.delivery_timeout_s,
            retry_backoff_ms=self.retry_backoff_ms,
            reconnect_backoff_max_ms=self.reconnect_backoff_max_ms,
            outage_budget_s=self.outage_budget_s,
            leader_wait_s=self.leader_wait_s,
            commit_every_records=self.commit_every_records,
            commit_every_s=self.commit_every_s,
        )

    # How every Kafka client of this process authenticates (see README, Secured
    # clusters). PLAINTEXT, the default, needs none of the rest.
    kafka_security_protocol: Protocol = "PLAINTEXT"
    kafka_sasl_mechanism: Mechanism = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    # Preferred over the inline password: pipelines then carry only the path.
    kafka_sasl_password_file: Path | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_check_hostname: bool = True
    # The embedded broker (`omm broker start`): "none", or SASL/SCRAM with ACLs.
    broker_security: Literal["none", "sasl_scram"] = "none"

    @field_validator("kafka_bootstrap")
    @classmethod
    def _strip_bootstrap(cls, value: str) -> str:
        servers = [s.strip() for s in value.split(",") if s.strip()]
        if not servers:
            raise ValueError("OMM_KAFKA_BOOTSTRAP must name at least one host:port")
        return ",".join(servers)

    @property
    def bootstrap_servers(self) -> list[str]:
        return self.kafka_bootstrap.split(",")

    def kafka_security(self) -> KafkaSecurity | None:
        """What every client this process makes is given; None for an unsecured cluster."""
        if self.kafka_security_protocol == "PLAINTEXT":
            return None
        sasl = self.kafka_security_protocol.startswith("SASL_")
        return KafkaSecurity(
            protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism if sasl else None,
            username=self.kafka_sasl_username if sasl else None,
            # the file wins: a reference keeps the secret out of pickled job graphs
            password=self.kafka_sasl_password
            if sasl and self.kafka_sasl_password_file is None
            else None,
            password_file=_opt_str(self.kafka_sasl_password_file) if sasl else None,
            ssl_cafile=_opt_str(self.kafka_ssl_cafile),
            ssl_certfile=_opt_str(self.kafka_ssl_certfile),
            ssl_keyfile=_opt_str(self.kafka_ssl_keyfile),
            ssl_check_hostname=self.kafka_ssl_check_hostname,
        )


def _opt_str(path: Path | None) -> str | None:
    return str(path) if path is not None else None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


# Every Kafka client omm makes takes its timing from the operator's settings.
delivery.use_policy(lambda: get_settings().delivery_policy())


def pseudonym_key(settings: Settings | None = None) -> bytes:
    """The HMAC key for consumer pseudonyms.

    From ``OMM_PSEUDONYM_KEY`` when set (what a deployment does); otherwise a
    random key generated once into ``<home>/pseudonym.key`` (mode 0600) so a
    local run is stable across restarts without any secret in the repository.
    """
    settings = settings or get_settings()
    if settings.pseudonym_key is not None:
        return settings.pseudonym_key.get_secret_value().encode("utf-8")
    path = settings.home / "pseudonym.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(32))
    return path.read_bytes()
