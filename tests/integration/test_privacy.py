"""No personal data on any topic ingest writes (issue 8, defect 5), over the real broker.

10,000 generated complaints carry phone numbers, resident ID numbers, e-mail
addresses, bank-card numbers and consumer ids in the forms people write them
(tests/planted.py), in their text, in their consumer_id, in Kafka keys and
headers, and in bytes that do not even decode. About a quarter break a rule or
do not decode, so the valid path and every rejection path run. Afterwards
every topic the run wrote (listed by the test's topic prefix) is read back,
every key, value, header name and value, raw and decoded, and no planted
identifier may appear in any normalised form.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kafka import TopicPartition

from connectors import kafka_client
from connectors.topics import TopicNames
from omm.config import load_rules
from omm.generate import FeedGenerator
from pipelines.rules.personal_data import PSEUDONYM_PREFIX
from schemas.registry import CodecError
from tests.helpers import REGISTRY, fresh_namespace, ingest_until_idle
from tests.planted import CONSUMER, PHONE, Detector, Plant, PlantGenerator

pytestmark = pytest.mark.integration

PLATFORM = "jd"
N = 10_000
KEY = b"test-key-not-a-secret"  # the key tests/helpers.py gives ingest
NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass
class Corpus:
    messages: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = field(
        default_factory=list
    )
    plants: list[Plant] = field(default_factory=list)
    expected: Counter[str] = field(default_factory=Counter)  # outcome -> count


def build_corpus(seed: int) -> Corpus:
    """Complaints with planted identifiers; about 75 % valid, the rest broken ten ways."""
    gen = PlantGenerator(seed)
    feed = FeedGenerator(seed=seed, now=NOW)
    max_text = load_rules().record_rules.max_text_chars
    out = Corpus()
    for i in range(N):
        cid = gen.consumer_id()
        out.plants.append(Plant(CONSUMER, cid, cid))
        case = i % 100
        planted = gen.text(cid, min_chars=max_text + 50 if case < 5 else 0)
        out.plants += planted.plants
        record = {
            **feed.complaint(PLATFORM, i),
            "consumer_id": cid,
            "text": planted.text,
            "received_at": NOW - timedelta(hours=2),
        }
        if 5 <= case < 15:
            record["resolved_at"] = record["received_at"] - timedelta(minutes=5)
            outcome = "resolved_after_received"
        elif 15 <= case < 18:
            phone = gen.phone_number()
            out.plants.append(Plant(PHONE, phone, phone))
            record["consumer_id"] = f"{cid} {gen.phone_written(phone)} " + "x" * 200
            outcome = "max_length"
        elif 18 <= case < 20:
            record["platform"] = "tmall"
            outcome = "platform_matches_topic"
        elif case == 24:
            record["received_at"] = NOW + timedelta(days=2)
            outcome = "future_timestamp"
        else:
            outcome = "max_text_length" if case < 5 else "valid"
        value = REGISTRY.encode("complaint", record)
        if case in (20, 21):
            value = value[: len(value) // 2]  # truncated in the middle of the text
            outcome = "CorruptBody"
        elif case == 22:
            # trailing bytes: the decoder's message shows them as a hex dump
            phone = gen.phone_number()
            out.plants.append(Plant(PHONE, phone, phone))
            value += f" {phone} {cid}".encode()
            outcome = "CorruptBody"
        elif case == 23:
            # not Avro at all: a platform sending its text as is; the message dumps its start
            phone = gen.phone_number()
            out.plants.append(Plant(PHONE, phone, phone))
            value = f"{phone} {planted.text}".encode()
            outcome = "NotSingleObjectEncoded"
        # some platforms key complaints by consumer and put contact data in headers
        key = cid if i % 7 == 0 else record["complaint_id"]
        headers = []
        if i % 11 == 0:
            phone = gen.phone_number()
            out.plants.append(Plant(PHONE, phone, phone))
            headers = [("x-contact", gen.phone_written(phone).encode()), ("x-user", cid.encode())]
        out.messages.append((key.encode(), value, headers))
        out.expected[outcome] += 1
    return out


def produce(bootstrap: str, topic: str, corpus: Corpus) -> None:
    # Generous retries: partitions of a just-created topic may not have a leader yet
    # (NotLeaderForPartition), and a loaded broker takes its time electing one;
    # idempotent, so a retried batch is not written twice (the accounts count exactly).
    producer = kafka_client.producer(
        bootstrap, retries=200, retry_backoff_ms=300, enable_idempotence=True
    )
    futures = [
        producer.send(topic, key=key, value=value, headers=headers)
        for key, value, headers in corpus.messages
    ]
    producer.flush()
    for f in futures:
        f.get(timeout=120)  # every send acknowledged, or the test stops here
    producer.close()


@dataclass(frozen=True)
class Read:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]


def read_topic(bootstrap: str, topic: str, timeout_s: float = 120.0) -> list[Read]:
    """Everything on ``topic`` up to its end offsets, every header kept (names repeat)."""
    consumer = kafka_client.consumer(bootstrap)
    tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    ends = consumer.end_offsets(tps)
    out: list[Read] = []
    deadline = time.monotonic() + timeout_s
    while any(consumer.position(tp) < ends[tp] for tp in tps):
        assert time.monotonic() < deadline, f"{topic}: not read to its end in {timeout_s}s"
        for records in consumer.poll(timeout_ms=500).values():
            out += [
                Read(r.topic, r.partition, r.offset, r.key, r.value, list(r.headers or []))
                for r in records
            ]
    consumer.close()
    return out


def strings(value: Any) -> Iterator[str]:
    """Every string inside a decoded record (and the text of its other values)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from strings(v)
    elif value is not None:
        yield value if isinstance(value, str) else str(value)


def texts_of(message: Read) -> Iterator[tuple[str, str]]:
    """(where, text) for everything a reader of the topic can see in one message."""
    if message.key is not None:
        yield "key", message.key.decode("utf-8", "replace")
    for name, raw in message.headers:
        yield "header name", name
        if raw is not None:
            yield f"header {name}", raw.decode("utf-8", "replace")
    if message.value is not None:
        yield "value bytes", message.value.decode("utf-8", "replace")
        try:
            _, decoded = REGISTRY.decode(message.value)
        except CodecError:
            return
        for text in strings(decoded):
            yield "value field", text


def writes_of(bootstrap: str, topics: TopicNames) -> list[str]:
    """Every topic under the test's prefix but the feeds the test itself wrote."""
    consumer = kafka_client.consumer(bootstrap)
    names = sorted(consumer.topics())
    consumer.close()
    inputs = {topics.feed(PLATFORM, "complaints")}
    return [n for n in names if n.startswith(topics.prefix) and n not in inputs]


def header(message: Read, name: str) -> bytes | None:
    values = [v for k, v in message.headers if k == name]
    assert len(values) == 1, f"{name}: {values}"
    return values[0]


@dataclass(frozen=True)
class Run:
    """One ingest of the planted corpus, and everything it wrote, read back."""

    topics: TopicNames
    corpus: Corpus
    accounts: dict[str, Any]
    seen: dict[str, list[Read]]  # topic -> every message on it
    originals: dict[tuple[int, int], bytes | None]  # (partition, offset) on the feed -> value

    @property
    def dead(self) -> int:
        return N - self.corpus.expected["valid"]

    def decoded(self, topic: str) -> list[dict[str, Any]]:
        return [REGISTRY.decode(m.value or b"")[1] for m in self.seen[topic]]


@pytest.fixture(scope="module")
def run(kafka_bootstrap: str) -> Run:
    topics = fresh_namespace([PLATFORM], kafka_bootstrap)
    feed_topic = topics.feed(PLATFORM, "complaints")
    corpus = build_corpus(seed=20261201)
    produce(kafka_bootstrap, feed_topic, corpus)

    accounts = ingest_until_idle(kafka_bootstrap, topics, [PLATFORM], idle_s=5.0)

    written = writes_of(kafka_bootstrap, topics)
    seen = {topic: read_topic(kafka_bootstrap, topic) for topic in written}
    originals = {(m.partition, m.offset): m.value for m in read_topic(kafka_bootstrap, feed_topic)}
    return Run(topics, corpus, accounts, seen, originals)


def test_ten_thousand_planted_complaints_leave_no_identifier_on_any_topic(run: Run) -> None:
    detector = Detector(run.corpus.plants)
    # the detector sees what was planted (else "nothing found" below would prove nothing)
    assert all(detector.find(v.decode("utf-8", "replace")) for _, v, _ in run.corpus.messages)
    topics = run.topics
    assert {topics.valid("complaint"), topics.dlq, topics.feedback(PLATFORM)} <= set(run.seen)
    leaks: list[str] = []
    for topic, messages in run.seen.items():
        for message in messages:
            for where, text in texts_of(message):
                for plant in detector.find(text):
                    leaks.append(
                        f"{topic}@{message.partition}/{message.offset} {where}: "
                        f"{plant.kind} {plant.written!r} in {text[:160]!r}"
                    )
    assert not leaks, f"{len(leaks)} planted identifiers found, e.g.:\n" + "\n".join(leaks[:20])


def test_valid_and_rejection_paths_both_ran_and_every_record_is_accounted_for(run: Run) -> None:
    acc = run.accounts["omm.feed.jd.complaints"]
    assert (acc.read, acc.valid, acc.dead) == (N, run.corpus.expected["valid"], run.dead)
    assert acc.balanced
    valid = run.decoded(run.topics.valid("complaint"))
    assert len(valid) == run.corpus.expected["valid"]
    assert all(r["consumer_id"].startswith(PSEUDONYM_PREFIX) for r in valid)
    assert sum("[PHONE]" in r["text"] for r in valid) > 1000
    assert sum("[CONSUMER]" in r["text"] for r in valid) > 1000
    feedback = run.decoded(run.topics.feedback(PLATFORM))
    assert len(feedback) == run.dead
    outcomes = Counter(r["rule"] or r["error_class"] for r in feedback)
    assert outcomes == run.corpus.expected - Counter(valid=run.corpus.expected["valid"])


def test_rejections_still_say_what_to_fix(run: Run) -> None:
    by_rule = {r["rule"]: r for r in run.decoded(run.topics.feedback(PLATFORM)) if r["rule"]}
    too_long = by_rule["max_text_length"]
    assert (too_long["field"], too_long["value"]) == ("text", None)
    assert "characters" in too_long["message"]
    resolved_at = NOW - timedelta(hours=2, minutes=5)
    assert by_rule["resolved_after_received"]["value"] == resolved_at.isoformat()
    assert by_rule["platform_matches_topic"]["value"] == "tmall"
    assert (by_rule["max_length"]["field"], by_rule["max_length"]["value"]) == (
        "consumer_id",
        None,
    )


def test_dlq_keeps_provenance_a_redacted_copy_and_a_keyed_digest(run: Run) -> None:
    from pipelines.dead_letter_privacy import BODY_HEADER, DIGEST_HEADER, LENGTH_HEADER
    from pipelines.rules.personal_data import keyed_digest

    dlq = run.seen[run.topics.dlq]
    assert len(dlq) == run.dead
    feed_topic = run.topics.feed(PLATFORM, "complaints")
    bodies: Counter[str] = Counter()
    for m in dlq:
        assert header(m, "__connect.errors.topic") == feed_topic.encode()
        assert header(m, "__connect.errors.stage") in (b"DECODE", b"RECORD_RULES")
        position = (
            int(header(m, "__connect.errors.partition") or b""),
            int(header(m, "__connect.errors.offset") or b""),
        )
        original = run.originals[position] or b""
        assert header(m, DIGEST_HEADER) == keyed_digest(original, KEY).encode()
        assert header(m, LENGTH_HEADER) == str(len(original)).encode()
        body = (header(m, BODY_HEADER) or b"").decode()
        bodies[body] += 1
        if body == "redacted":
            _, copy = REGISTRY.decode(m.value or b"")
            assert copy["consumer_id"].startswith(PSEUDONYM_PREFIX)
            assert copy["complaint_id"] == (m.key or b"").decode() or (m.key or b"").startswith(
                PSEUDONYM_PREFIX.encode()
            )
        else:
            assert body == "withheld" and m.value is None
    expected = run.corpus.expected
    undecodable = expected["CorruptBody"] + expected["NotSingleObjectEncoded"]
    assert bodies == Counter(redacted=run.dead - undecodable, withheld=undecodable)
