"""What the DLQ keeps of a rejected record from a personal-data feed (complaints).

Other feeds' dead letters keep the original bytes, as Kafka Connect does. A
complaint's original bytes hold a consumer's identity and free text, and
``omm.dlq`` is kept for 30 days and read by operators and DLQ tooling, not
only by the regulator. So for an entity with a personal-data policy the DLQ
keeps:

- **a redacted copy**: when the bytes decoded, the record re-encoded (current
  schema version, single-object Avro, so DLQ tooling still reads it) with the
  consumer id keyed into the same pseudonym ``omm.valid.complaints`` carries
  and the free text redacted, i.e. exactly what would have gone downstream.
  When they did not decode there is no telling which bytes are text, so the
  body is withheld (null value);
- **a keyed digest of the original** (``omm.dlq.original.hmac-sha256``,
  HMAC-SHA256 under a sub-key of the pseudonym key) and its length: whoever
  holds the key can prove that bytes a platform re-sends or disputes are the
  ones rejected, and nobody else can test guesses against it;
- the Connect provenance headers as for any dead letter (topic, partition,
  offset: the original can be found at the source while the feed keeps it),
  with the record id and the reason redacted;
- the key only when it is the record's own id (a complaint's key is its
  complaint_id); any other key, or any key of bytes that did not decode, is
  replaced by its keyed pseudonym: a platform keying complaints by consumer
  would otherwise put the consumer on the DLQ and its feedback topic;
- the original headers by name, each value replaced by its keyed pseudonym
  (equal values stay equal, for correlation): what a platform puts in headers
  is not described by any schema, so nothing in it can be vouched for.

Why not the original encrypted under a key only the regulator holds: the DLQ
is for finding out what went wrong and telling the platform, and the redacted
copy and the reason do that; a decryptable copy would be a second, 30-day
store of the personal data omm otherwise refuses to keep, with a key to issue,
rotate and guard, for a benefit (replaying a complaint) that belongs to the
platform, which holds the original and fixes and re-sends it from the
feedback record anyway. Data minimisation wins.

The ``omm.dlq.body`` header says which of the two the value is (``redacted``
or ``withheld``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from pipelines.dead_letters import DeadLetter
from pipelines.rules.personal_data import Redactor, keyed_digest, pseudonymise_bytes
from schemas.registry import CodecError, SchemaRegistry

DIGEST_HEADER = "omm.dlq.original.hmac-sha256"
LENGTH_HEADER = "omm.dlq.original.bytes"
BODY_HEADER = "omm.dlq.body"
BODY_REDACTED, BODY_WITHHELD = "redacted", "withheld"


def protect_dead_letter(
    letter: DeadLetter,
    entity: str,
    decoded: Mapping[str, Any] | None,
    redactor: Redactor,
    pseudonym_key: bytes,
    registry: SchemaRegistry,
) -> DeadLetter:
    """The dead letter as it may be written, for a record read from a feed of ``entity``.

    ``entity`` is the feed's (the topic's), not what the bytes claim: garbage on
    a complaint feed is treated as a complaint. Letters of entities without a
    personal-data policy are returned unchanged.
    """
    if redactor.policy(entity) is None:
        return letter
    rec = letter.record
    own = redactor.own_ids(entity, decoded)
    value: bytes | None = None
    if decoded is not None:
        copy = {**decoded, **redactor.protected_fields(entity, decoded, pseudonym_key)}
        try:
            value = registry.encode(entity, copy)
        except CodecError:
            value = None  # cannot happen for bytes that decoded; withhold rather than leak
    original = rec.value or b""
    protection = (
        (BODY_HEADER, (BODY_REDACTED if value is not None else BODY_WITHHELD).encode()),
        (DIGEST_HEADER, keyed_digest(original, pseudonym_key).encode()),
        (LENGTH_HEADER, str(len(original)).encode()),
    )
    headers = tuple(
        (redactor.redact(name, own), pseudonymise_bytes(raw or b"", pseudonym_key).encode())
        for name, raw in rec.headers
    )

    def text(s: str | None) -> str | None:
        return redactor.redact(redactor.redact_byte_dumps(s), own) if s is not None else None

    return dataclasses.replace(
        letter,
        record=dataclasses.replace(
            rec,
            key=_key(rec.key, letter.record_id, redactor, own, pseudonym_key),
            value=value if rec.value is not None else None,
            headers=headers + protection,
        ),
        message=text(letter.message) or "",
        record_id=text(letter.record_id),
        field=text(letter.field),
        value=text(letter.value),
    )


def _key(
    key: bytes | None,
    record_id: str | None,
    redactor: Redactor,
    own: tuple[str, ...],
    pseudonym_key: bytes,
) -> bytes | None:
    if key is None:
        return None
    if record_id is not None and key == record_id.encode("utf-8"):
        return redactor.redact_bytes(key, own)
    return pseudonymise_bytes(key, pseudonym_key).encode("utf-8")
