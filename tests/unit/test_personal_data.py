"""Rule 10: consumer identity pseudonymised, contact data redacted. No Kafka, no Beam."""

from __future__ import annotations

from datetime import UTC, datetime

from omm.config import load_rules
from omm.generate import FeedGenerator
from pipelines.rules.personal_data import (
    PSEUDONYM_PREFIX,
    Redactor,
    protect_complaint,
    pseudonymise,
)
from schemas.models import Complaint

REDACTOR = Redactor.from_config(load_rules().personal_data)


def test_pseudonym_is_stable_keyed_and_not_the_identifier() -> None:
    a = pseudonymise("13800001234", b"key-one")
    assert a == pseudonymise("13800001234", b"key-one")
    assert a != pseudonymise("13800001234", b"key-two")
    assert a != pseudonymise("13800001235", b"key-one")
    assert a.startswith(PSEUDONYM_PREFIX) and "13800001234" not in a


def test_phone_id_number_and_email_are_redacted() -> None:
    text = "电话 138-0000-1234, +86 13912345678, 身份证 11010519491231002X, mail x.y@example.org"
    out = REDACTOR.redact(text)
    for secret in ("1234", "13912345678", "11010519491231002X", "x.y@example.org"):
        assert secret not in out
    assert out.count("[phone redacted]") == 2
    assert "[id_number redacted]" in out and "[email redacted]" in out


def test_order_numbers_and_prices_are_not_mistaken_for_phones() -> None:
    text = "订单 2026112812345 价格 129.00 型号 KX-2000A"
    assert REDACTOR.redact(text) == text


def test_protect_complaint_rekeys_even_pseudonym_looking_input() -> None:
    raw = FeedGenerator(seed=1, now=datetime(2026, 11, 28, tzinfo=UTC)).complaint("jd", 1)
    c = Complaint.from_record({**raw, "consumer_id": PSEUDONYM_PREFIX + "13800001234"})
    out = protect_complaint(c, b"k", REDACTOR)
    assert "13800001234" not in out.consumer_id
    assert "1380000" not in out.text
