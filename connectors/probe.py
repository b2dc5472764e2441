"""Reach the cluster before doing any work, within a short bound.

A client left to its defaults waits 30 s to bootstrap and 60 s for metadata of a
topic that does not exist, and then fails deep inside whatever it was doing. A
command probes first: one metadata round trip, bounded by the caller's timeout,
that both proves the brokers answer and lists the topics, so a missing topic is
named before the first record is read or sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kafka.errors import KafkaConnectionError, KafkaTimeoutError

from connectors import kafka_client
from connectors.security import KafkaSecurity


class BrokerUnreachable(ConnectionError):
    """No broker of the bootstrap list answered within the probe's timeout."""

    def __init__(self, bootstrap: str, timeout_s: float | None, detail: str) -> None:
        self.bootstrap = bootstrap
        self.timeout_s = timeout_s
        self.detail = detail
        within = f" within {timeout_s:g}s" if timeout_s is not None else ""
        super().__init__(f"no Kafka broker answered at {bootstrap}{within} ({detail})")


class BadBootstrap(ValueError):
    """The bootstrap list is not a comma-separated list of host:port."""

    def __init__(self, bootstrap: str, detail: str) -> None:
        self.bootstrap = bootstrap
        super().__init__(f"bootstrap {bootstrap!r} is not host:port[,host:port…] ({detail})")


class MissingTopics(LookupError):
    """Topics a command needs do not exist (not created yet, or a mistyped prefix)."""

    def __init__(self, topics: Iterable[str], prefix: str = "") -> None:
        self.topics = sorted(topics)
        self.prefix = prefix
        first = self.topics[0] if self.topics else "?"
        more = f" (and {len(self.topics) - 1} more)" if len(self.topics) > 1 else ""
        if prefix:
            fix = f"run `omm topics create --prefix {prefix}` first, or check --prefix {prefix!r}"
        else:
            fix = "check the name (`omm topics list`), or run `omm topics create` first"
        super().__init__(f"topic {first!r}{more} does not exist: {fix}")


@dataclass(frozen=True)
class Cluster:
    """What the probe saw: the bootstrap that answered and the topics it knows."""

    bootstrap: str
    topics: frozenset[str]

    def require(self, topics: Iterable[str], prefix: str = "") -> None:
        """Raise :class:`MissingTopics` naming every wanted topic the cluster lacks."""
        missing = [t for t in topics if t not in self.topics]
        if missing:
            raise MissingTopics(missing, prefix)


def probe(
    bootstrap: str, timeout_s: float | None = None, security: KafkaSecurity | None = None
) -> Cluster:
    """Bootstrap and fetch the topic list within ``timeout_s`` (None: the client's default).

    On a secured cluster the list holds only the topics the principal may describe.
    """
    overrides: dict[str, Any] = (
        {} if timeout_s is None else {"bootstrap_timeout_ms": max(1, int(timeout_s * 1000))}
    )
    try:
        client = kafka_client.consumer(bootstrap, security=security, **overrides)
    except (KafkaTimeoutError, KafkaConnectionError) as exc:
        raise BrokerUnreachable(bootstrap, timeout_s, str(exc) or type(exc).__name__) from exc
    except ValueError as exc:  # kafka-python's parse of "host:port"
        raise BadBootstrap(bootstrap, str(exc)) from exc
    try:
        return Cluster(bootstrap, frozenset(client.topics()))
    finally:
        client.close()
