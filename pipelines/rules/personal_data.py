"""Rule 10: consumer identity never leaves ingest in clear.

Identifiers become a keyed pseudonym (HMAC-SHA256): stable, so complaints from
one consumer still group together downstream, but not reversible without the
key, and not guessable by hashing a phone number. Phone numbers, ID numbers and
e-mail addresses in free text are redacted. Pure: imports neither Beam nor Kafka.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from omm.config import PersonalDataConfig
from schemas.models import Complaint

PSEUDONYM_PREFIX = "psn:"


def pseudonymise(identifier: str, key: bytes) -> str:
    digest = hmac.new(key, identifier.encode("utf-8"), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[:32]


@dataclass(frozen=True)
class Redactor:
    patterns: tuple[tuple[str, re.Pattern[str]], ...]
    replacement: str

    @classmethod
    def from_config(cls, cfg: PersonalDataConfig) -> Redactor:
        return cls(
            patterns=tuple((kind, re.compile(rx)) for kind, rx in cfg.redact_patterns.items()),
            replacement=cfg.replacement,
        )

    def redact(self, text: str) -> str:
        for kind, pattern in self.patterns:
            text = pattern.sub(self.replacement.format(kind=kind), text)
        return text


def protect_complaint(complaint: Complaint, key: bytes, redactor: Redactor) -> Complaint:
    """The complaint as it may travel beyond ingest.

    Always re-keyed, even when the input already looks like a pseudonym: a
    platform could otherwise pass clear data through behind the prefix.
    """
    return complaint.model_copy(
        update={
            "consumer_id": pseudonymise(complaint.consumer_id, key),
            "text": redactor.redact(complaint.text),
        }
    )
