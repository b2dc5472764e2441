"""The optional client is configured as the default one is: same batching, timing, security."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors import kafka_client
from connectors.confluent_fetcher import consumer_config
from connectors.delivery import DeliveryPolicy
from connectors.producers import confluent_config, make_producer
from connectors.security import KafkaSecurity


def test_confluent_producer_takes_omms_batching_and_the_policys_timing() -> None:
    policy = DeliveryPolicy(delivery_timeout_s=30, outage_budget_s=90, retry_backoff_ms=150)
    config = confluent_config("h1:9092,h2:9092", None, policy)
    defaults = kafka_client.PRODUCER_DEFAULTS
    assert config["bootstrap.servers"] == "h1:9092,h2:9092"
    assert (config["acks"], config["linger.ms"], config["compression.type"]) == (
        defaults["acks"],
        defaults["linger_ms"],
        defaults["compression_type"],
    )
    # a streaming sink holds its records for the whole outage budget, as kafka-python's does
    assert config["delivery.timeout.ms"] == 90_000
    assert config["retry.backoff.ms"] == 150
    # keyed records land where Java's (and kafka-python's) partitioner puts them
    assert config["partitioner"] == "murmur2_random"
    assert not any(k.startswith(("security.", "sasl.", "ssl.")) for k in config)


def test_confluent_clients_get_the_principal_and_tls_files(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n", encoding="utf-8")
    security = KafkaSecurity(
        protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        username="omm-ingest",
        password_file=str(secret),
        ssl_cafile="/etc/omm/ca.pem",
        ssl_check_hostname=False,
    )
    producer = confluent_config("h:9093", security, DeliveryPolicy())
    consumer = consumer_config("h:9093", "omm-read-1", security, DeliveryPolicy())
    for config in (producer, consumer):
        assert config["security.protocol"] == "SASL_SSL"
        assert config["sasl.mechanism"] == "SCRAM-SHA-512"
        assert config["sasl.username"] == "omm-ingest"
        assert config["sasl.password"] == "s3cret"  # read from the file in the worker
        assert config["ssl.ca.location"] == "/etc/omm/ca.pem"
        assert config["ssl.endpoint.identification.algorithm"] == "none"
    # the reader commits nothing itself: the sink commits after its flush
    assert consumer["enable.auto.commit"] is False
    assert "linger.ms" not in consumer


def test_an_unknown_client_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown Kafka client"):
        make_producer("kafka-go", "h:9092", None, DeliveryPolicy(), {})  # type: ignore[arg-type]
