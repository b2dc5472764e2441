"""The records that cross omm's Kafka edges, as plain values (no Beam, no Kafka client)."""

from __future__ import annotations

from dataclasses import dataclass

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class KafkaRecord:
    """One record as read, with its provenance."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp_ms: int

    @property
    def position(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


@dataclass(frozen=True)
class OutboundMessage:
    """One record to write; ``source`` names the input it came from, for the offset commit."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    source: tuple[str, int, int] | None = None


@dataclass(frozen=True)
class ClockTick:
    """The wall clock, read by the reader (see ``connectors.beam_io.Clock``): lets a
    pipeline act on time passing, a deadline, when no record arrives at all."""

    shard: int
    now_ms: int
