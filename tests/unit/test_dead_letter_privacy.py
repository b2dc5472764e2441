"""What the DLQ keeps of a rejected complaint; other feeds' dead letters unchanged. No Kafka."""

from __future__ import annotations

from datetime import UTC, datetime

from connectors.records import KafkaRecord
from omm.config import load_rules
from omm.generate import FeedGenerator
from pipelines.dead_letter_privacy import (
    BODY_HEADER,
    DIGEST_HEADER,
    LENGTH_HEADER,
    protect_dead_letter,
)
from pipelines.dead_letters import DeadLetter, dlq_headers, rejection_record
from pipelines.rules.personal_data import PSEUDONYM_PREFIX, Redactor, keyed_digest
from schemas.registry import SchemaRegistry

REDACTOR = Redactor.from_config(load_rules().personal_data)
REGISTRY = SchemaRegistry.load()
KEY = b"unit-test-key"
NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)
CID = "uqzkx482913"


def complaint() -> dict:
    return {
        **FeedGenerator(seed=3, now=NOW).complaint("jd", 7),
        "consumer_id": CID,
        "text": f"我是 {CID}, 电话 138 1234 5678",
    }


def letter(value: bytes | None, key: bytes | None, **detail: str | None) -> DeadLetter:
    rec = KafkaRecord("omm.feed.jd.complaints", 1, 42, key, value, (("x-user", CID.encode()),), 0)
    return DeadLetter(rec, "RECORD_RULES", "RuleViolation", "m", "jd", "complaint", **detail)


def everything(d: DeadLetter) -> str:
    headers = dlq_headers(d, "omm-ingest")
    rejection = rejection_record(d, NOW)
    return repr((d.record.key, d.record.value, headers, rejection))


def test_a_rejected_complaint_keeps_a_redacted_copy_and_a_keyed_digest() -> None:
    record = complaint()
    original = REGISTRY.encode("complaint", record)
    dead = letter(original, record["complaint_id"].encode(), record_id=record["complaint_id"])
    out = protect_dead_letter(dead, "complaint", record, REDACTOR, KEY, REGISTRY)
    _, copy = REGISTRY.decode(out.record.value or b"")
    assert copy["consumer_id"].startswith(PSEUDONYM_PREFIX)
    assert copy["text"] == "我是 [CONSUMER], 电话 [PHONE]"
    headers = dict(out.record.headers)
    assert headers[DIGEST_HEADER] == keyed_digest(original, KEY).encode()
    assert headers[LENGTH_HEADER] == str(len(original)).encode()
    assert headers[BODY_HEADER] == b"redacted"
    assert out.record.key == record["complaint_id"].encode()  # its own id: kept
    # provenance unchanged
    assert (out.record.topic, out.record.partition, out.record.offset) == (
        "omm.feed.jd.complaints",
        1,
        42,
    )
    assert CID not in everything(out) and "12345678" not in everything(out)


def test_undecodable_complaint_bytes_are_withheld_and_foreign_keys_keyed() -> None:
    raw = f"13812345678 {CID} not avro at all".encode()
    message = "not Avro: got " + raw[:16].hex(" ") + " ..."
    dead = letter(raw, CID.encode())
    dead = DeadLetter(dead.record, "DECODE", "NotSingleObjectEncoded", message, "jd", None)
    out = protect_dead_letter(dead, "complaint", None, REDACTOR, KEY, REGISTRY)
    assert out.record.value is None
    assert dict(out.record.headers)[BODY_HEADER] == b"withheld"
    assert out.record.key is not None and out.record.key.startswith(PSEUDONYM_PREFIX.encode())
    assert "[BYTES]" in out.message
    text = everything(out)
    assert CID not in text and "13812345678" not in text
    assert raw[:16].hex(" ") not in text


def test_other_feeds_keep_their_original_bytes() -> None:
    listing = FeedGenerator(seed=4, now=NOW).listing("jd", 1)
    original = REGISTRY.encode("listing", listing)
    rec = KafkaRecord("omm.feed.jd.listings", 0, 1, b"k", original, (("h", b"v"),), 0)
    dead = DeadLetter(rec, "RECORD_RULES", "RuleViolation", "m", "jd", "listing")
    assert protect_dead_letter(dead, "listing", listing, REDACTOR, KEY, REGISTRY) is dead
