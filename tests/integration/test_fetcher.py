"""The shared consumer behind the Beam reader: every record of every partition, exactly once."""

from __future__ import annotations

import pytest

from connectors.confluent_fetcher import ConfluentPartitionFetcher
from connectors.fetcher import PartitionFetcher
from tests.helpers import produce_raw

pytestmark = pytest.mark.integration

# the same contract on both clients (OMM_KAFKA_CLIENT picks one for the reader)
FETCHERS = pytest.mark.parametrize(
    "fetcher_class",
    [PartitionFetcher, ConfluentPartitionFetcher],
    ids=["kafka-python", "confluent"],
)


@FETCHERS
def test_interleaved_readers_get_every_record_in_order_with_a_small_buffer(
    kafka_bootstrap: str, unique_topic, fetcher_class
) -> None:
    topic = unique_topic("fetch", partitions=3)
    produce_raw(kafka_bootstrap, topic, ((str(i).encode(), b"v%d" % i) for i in range(3000)))
    # a buffer far smaller than a partition: readers must still see everything
    fetcher = fetcher_class(kafka_bootstrap, client_id="t", max_buffered=300)
    next_offset = {p: 0 for p in range(3)}
    seen: dict[int, list[int]] = {p: [] for p in range(3)}
    idle_rounds = 0
    try:
        while idle_rounds < 20:
            got = 0
            for p in range(3):
                records = fetcher.take(topic, p, next_offset[p], max_records=250, timeout_ms=50)
                for r in records:
                    assert r.offset == next_offset[p]  # contiguous, starting where asked
                    seen[p].append(r.offset)
                    next_offset[p] = r.offset + 1
                got += len(records)
            idle_rounds = idle_rounds + 1 if got == 0 else 0
        assert sum(len(v) for v in seen.values()) == 3000
        assert all(fetcher.caught_up(topic, p, next_offset[p]) for p in range(3))
        # a reader that restarts from an earlier offset (a retried bundle) gets it again
        again = fetcher.take(topic, 0, 5, max_records=3, timeout_ms=500)
        assert [r.offset for r in again] == [5, 6, 7]
        assert not fetcher.caught_up(topic, 0, 8)
    finally:
        fetcher.close()


@FETCHERS
def test_records_put_back_are_taken_first_without_a_refetch(
    kafka_bootstrap: str, unique_topic, fetcher_class
) -> None:
    """A reader that ends its bundle mid-poll hands the rest back (connectors.beam_io)."""
    topic = unique_topic("unread", partitions=1)
    produce_raw(kafka_bootstrap, topic, ((None, b"v%d" % i) for i in range(100)))
    fetcher = fetcher_class(kafka_bootstrap, client_id="t")
    try:
        got: list = []
        deadline_rounds = 200
        while len(got) < 10 and deadline_rounds:
            got += fetcher.take(topic, 0, len(got), max_records=10 - len(got), timeout_ms=100)
            deadline_rounds -= 1
        assert [r.offset for r in got] == list(range(10))
        fetcher.unread(topic, 0, got[4:])
        again = fetcher.take(topic, 0, 4, max_records=6, timeout_ms=0)
        assert [r.offset for r in again] == list(range(4, 10))
    finally:
        fetcher.close()
