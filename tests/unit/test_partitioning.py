"""Keyed records land where Kafka's own default partitioner puts them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from kafka.partitioner.default import murmur2 as kafka_murmur2

from connectors.partitioning import murmur2, partition_for


@given(st.binary(max_size=64))
def test_murmur2_is_kafka_pythons(key: bytes) -> None:
    assert murmur2(key) == kafka_murmur2(key)


# Kafka's own UtilsTest.testMurmur2: the Java client's signed 32-bit hashes.
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def test_murmur2_is_javas() -> None:
    signed = {
        k: (h - (1 << 32) if h & 0x80000000 else h)
        for k, h in ((k, murmur2(k)) for k in JAVA_MURMUR2)
    }
    assert signed == JAVA_MURMUR2


def test_partition_is_the_positive_hash_modulo_the_count() -> None:
    # -973932308 & 0x7fffffff = 1173551340
    assert partition_for(b"21", 7) == 1173551340 % 7
    assert {partition_for(b"tmall-B%09d" % i, 3) for i in range(100)} == {0, 1, 2}
