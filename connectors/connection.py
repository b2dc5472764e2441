"""Where a pipeline's Kafka is and how its clients behave there, as one plain value.

A pipeline is given a :class:`KafkaConnection` in its job and hands it to every
reader and writer, so what a worker connects to, as whom and with which
timing comes from the job it was given, never from the settings of the
machine it runs on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from connectors.delivery import DeliveryPolicy
from connectors.producers import ClientName
from connectors.security import KafkaSecurity


@dataclass(frozen=True)
class KafkaConnection:
    bootstrap: str
    # the pipelines' principal on a secured cluster; None: unsecured
    security: KafkaSecurity | None = None
    delivery: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    # which client library the pipeline's writers produce with (connectors.producers)
    client: ClientName = "kafka-python"
