"""Rule 10: personal data never leaves ingest in clear.

Consumer identifiers become a keyed pseudonym (HMAC-SHA256): stable, so
complaints from one consumer still group together downstream, but not
reversible without the key, and not guessable by hashing a phone number.

Free text is redacted: phone numbers, resident ID numbers, e-mail addresses,
bank-card numbers and the record's own consumer id are replaced by a marker
naming what was removed (``[PHONE]``, ``[ID]``, ``[EMAIL]``, ``[CARD]``,
``[CONSUMER]``). People write these in many ways (``138 - 1234 - 5678``,
full-width ``１３８…``, zero-width spaces between digits, ``user at example dot
com``, ``@例子.中国``), so matching runs on a *normalised view* of the text and
the matching span of the *original* text is replaced; the rest of the text is
kept exactly as written. The patterns and limits are policy and live in
``config/rules.yaml`` (``personal_data``); the algorithms (normalisation, ID
check character, Luhn, the consumer-id matcher) are here.

Where in doubt the redactor removes too much rather than too little: a
redacted order number costs a reader some context, a leaked phone number
cannot be taken back.

Pure: imports neither Beam nor Kafka.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.models import Complaint

PSEUDONYM_PREFIX = "psn:"
# Sub-key label for digests of whole messages: the same secret as pseudonyms,
# but a digest can never collide with (or be replayed as) a pseudonym.
_DIGEST_LABEL = b"omm.dlq.original.v1"
_SEP = "{sep}"


# --------------------------------------------------------------------------- config


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Digit = Annotated[str, Field(pattern=r"^[0-9]$")]


class PatternSpec(_Strict):
    kind: str
    # id_checksum: the GB 11643 check character must be right for the match to count
    check: Literal["none", "id_checksum"] = "none"
    # whether numeral aliases (一, 三, 幺, ...) count as digits for this pattern
    numerals: bool = True
    regex: str


class BankCardSpec(_Strict):
    kind: str
    min_digits: int = Field(gt=0)
    max_digits: int = Field(gt=0)


class ConsumerSpec(_Strict):
    kind: str
    min_chars: int = Field(gt=0)


class ByteDumpSpec(_Strict):
    kind: str
    min_bytes: int = Field(gt=1)


class RecordPolicy(_Strict):
    """Which fields of one entity are personal, and which may be echoed in a rejection."""

    identity_fields: tuple[str, ...]
    free_text_fields: tuple[str, ...]
    echo_fields: tuple[str, ...]


class PersonalDataConfig(_Strict):
    """``personal_data`` in config/rules.yaml."""

    marker: str
    separators: str
    max_separator_run: int = Field(ge=0)
    # one character each way, so the numeral view of a text aligns with the text
    numeral_aliases: dict[Annotated[str, Field(min_length=1, max_length=1)], Digit]
    patterns: tuple[PatternSpec, ...]
    bank_card: BankCardSpec
    consumer: ConsumerSpec
    byte_dump: ByteDumpSpec
    records: dict[str, RecordPolicy]


# --------------------------------------------------------------------------- keys


def pseudonymise(identifier: str, key: bytes) -> str:
    return pseudonymise_bytes(identifier.encode("utf-8"), key)


def pseudonymise_bytes(identifier: bytes, key: bytes) -> str:
    """The pseudonym of an identifier given as bytes (the same as its UTF-8 text's)."""
    digest = hmac.new(key, identifier, hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[:32]


def keyed_digest(data: bytes, key: bytes) -> str:
    """HMAC-SHA256 (hex) of ``data`` under a sub-key derived from the pseudonym key.

    Whoever holds the key can tell whether some bytes are exactly the ones
    digested; whoever does not cannot test guesses (a phone number has only
    ~10^9 candidates, so a plain hash would be no protection at all).
    """
    sub_key = hmac.new(key, _DIGEST_LABEL, hashlib.sha256).digest()
    return hmac.new(sub_key, data, hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------- checks


_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK_CHARS = "10X98765432"


def id_check_char(first17: str) -> str:
    """The GB 11643-1999 check character (ISO 7064 mod 11-2) of an 18-character ID."""
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK_CHARS[total % 11]


def id_checksum_ok(chars: str) -> bool:
    return (
        len(chars) == 18 and chars[:17].isdigit() and id_check_char(chars[:17]) == chars[17].upper()
    )


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


class _LuhnWindows:
    """Luhn check of any window of a digit string in O(1), for long runs of digits.

    A window's checksum doubles every second digit counted from its right end,
    so prefix sums are kept per position parity, plain and doubled.
    """

    def __init__(self, digits: str) -> None:
        n = len(digits)
        self._plain = [[0] * (n + 1), [0] * (n + 1)]
        self._doubled = [[0] * (n + 1), [0] * (n + 1)]
        for i, ch in enumerate(digits):
            d = int(ch)
            for parity in (0, 1):
                hit = i % 2 == parity
                self._plain[parity][i + 1] = self._plain[parity][i] + (d if hit else 0)
                doubled = (d * 2 - 9 if d > 4 else d * 2) if hit else 0
                self._doubled[parity][i + 1] = self._doubled[parity][i] + doubled

    def ok(self, start: int, end: int) -> bool:
        """Whether digits[start..end] (inclusive) pass the Luhn check."""
        kept, doubled = end % 2, 1 - end % 2
        total = (self._plain[kept][end + 1] - self._plain[kept][start]) + (
            self._doubled[doubled][end + 1] - self._doubled[doubled][start]
        )
        return total % 10 == 0


# --------------------------------------------------------------------------- normalising

_NOT_ALNUM = re.compile(r"[\W_]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# format (zero-width space/joiners, BOM, bidi controls, soft hyphen) and combining
# marks (keycaps, variation selectors, underlines): invisible or decorative, and
# each one placed between two digits would otherwise break a match
_IGNORED_CATEGORIES = frozenset({"Cf", "Mn", "Me"})


@functools.lru_cache(maxsize=8192)
def _normal_char(ch: str) -> str:
    category = unicodedata.category(ch)
    if category in _IGNORED_CATEGORIES or (category == "Cc" and not ch.isspace()):
        return ""
    out = []
    for c in unicodedata.normalize("NFKC", ch):
        digit = unicodedata.decimal(c, None)
        out.append(str(digit) if digit is not None else c)
    return "".join(out)


def normalise(text: str) -> tuple[str, list[int]]:
    """The text as matched, and for each of its characters the index it came from.

    Per character: NFKC, any Unicode decimal digit (full-width, Arabic-Indic,
    Devanagari, ...) read as an ASCII digit, format characters and combining
    marks dropped.
    """
    if text.isascii() and not _CONTROL.search(text):
        return text, list(range(len(text)))
    chars: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        mapped = ch if ch.isascii() and ch.isprintable() else _normal_char(ch)
        chars.append(mapped)
        origin.extend([i] * len(mapped))
    return "".join(chars), origin


def _squeeze_id(identifier: str) -> str:
    return "".join(ch.casefold() for ch in identifier if ch.isalnum())


# --------------------------------------------------------------------------- redactor

Span = tuple[int, int, str]  # start, end (original text), kind


class Redactor:
    """Finds and replaces personal data in text, per ``personal_data`` in config/rules.yaml."""

    def __init__(self, cfg: PersonalDataConfig) -> None:
        self.cfg = cfg
        self._sep = f"[{cfg.separators}]{{0,{cfg.max_separator_run}}}"
        self._patterns = tuple(
            (p.kind, p.check, p.numerals, re.compile(p.regex.replace(_SEP, self._sep)))
            for p in cfg.patterns
        )
        self._separator_run = re.compile(self._sep)
        self._digit_run = re.compile(f"[0-9](?:{self._sep}[0-9])*")
        self._byte_dump = re.compile(
            rf"\b(?:[0-9a-fA-F]{{2}} ){{{cfg.byte_dump.min_bytes - 1},}}[0-9a-fA-F]{{2}}\b"
            r"(?: \.\.\.)?"
        )
        kinds = [cfg.consumer.kind, *(p.kind for p in cfg.patterns), cfg.bank_card.kind]
        # ties between overlapping matches of equal length go to the kind listed first
        self._priority = {kind: i for i, kind in reversed(list(enumerate(kinds)))}
        self._numerals = str.maketrans(dict(cfg.numeral_aliases))

    @classmethod
    def from_config(cls, cfg: PersonalDataConfig) -> Redactor:
        return cls(cfg)

    # -- finding

    def _squeezed(self, norm: str) -> tuple[str, list[int]]:
        """Letters and digits of ``norm``, casefolded, separators skipped, anything else a break.

        With the index in ``norm`` of each character, so a match maps back.
        """
        chars: list[str] = []
        where: list[int] = []

        def keep(start: int, end: int) -> None:
            segment = norm[start:end]
            folded = segment.casefold()
            if len(folded) == len(segment):
                chars.append(folded)
                where.extend(range(start, end))
                return
            for i in range(start, end):  # a letter that folds to several ("ß" -> "ss")
                one = norm[i].casefold()
                chars.append(one)
                where.extend([i] * len(one))

        at = 0
        for gap in _NOT_ALNUM.finditer(norm):
            keep(at, gap.start())
            if not self._separator_run.fullmatch(gap.group()):
                chars.append("\0")  # never part of an identifier: a break
                where.append(gap.start())
            at = gap.end()
        keep(at, len(norm))
        return "".join(chars), where

    def _own_id_spans(self, norm: str, own_ids: Iterable[str]) -> Iterator[tuple[int, int]]:
        """Where the record's own identifiers recur: case, separators and digit forms ignored."""
        wanted = set()
        for identifier in own_ids:
            chars = _squeeze_id(normalise(identifier)[0])
            if len(chars) >= self.cfg.consumer.min_chars:
                wanted.add(chars)
        if not wanted:
            return
        squeezed, where = self._squeezed(norm)
        for chars in wanted:
            at = squeezed.find(chars)
            while at >= 0:
                yield where[at], where[at + len(chars) - 1] + 1
                at = squeezed.find(chars, at + 1)

    def _card_spans(self, norm: str) -> Iterator[tuple[int, int]]:
        lo, hi = self.cfg.bank_card.min_digits, self.cfg.bank_card.max_digits
        for run in self._digit_run.finditer(norm):
            if run.end() - run.start() < lo:
                continue
            where = [run.start() + i for i, c in enumerate(run.group()) if c.isdigit()]
            if len(where) < lo:
                continue
            luhn = _LuhnWindows("".join(norm[i] for i in where))
            # candidates start and end at the run's edges or at a separator, so a
            # card written in groups is found inside a longer run of numbers without
            # testing every window (one in ten random windows passes Luhn)
            starts = [k for k in range(len(where)) if k == 0 or where[k] - where[k - 1] > 1]
            ends = {
                k for k in range(len(where)) if k == len(where) - 1 or where[k + 1] - where[k] > 1
            }
            for s in starts:
                for e in range(s + lo - 1, min(s + hi, len(where))):
                    if e in ends and luhn.ok(s, e):
                        yield where[s], where[e] + 1

    def spans(self, text: str, own_ids: Iterable[str] = ()) -> list[Span]:
        """Spans of ``text`` holding personal data, merged where they overlap."""
        norm, origin = normalise(text)
        if not norm:
            return []
        # the same text with numerals as digits, character for character
        numeric = norm.translate(self._numerals)
        found: list[tuple[int, int, str]] = []
        kind = self.cfg.consumer.kind
        found += [(s, e, kind) for s, e in self._own_id_spans(norm, own_ids)]
        for kind, check, numerals, pattern in self._patterns:
            for m in pattern.finditer(numeric if numerals else norm):
                if check == "id_checksum" and not id_checksum_ok(
                    "".join(c for c in m.group() if c.isalnum())
                ):
                    continue
                found.append((m.start(), m.end(), kind))
        found += [(s, e, self.cfg.bank_card.kind) for s, e in self._card_spans(numeric)]
        return self._merge([(origin[s], origin[e - 1] + 1, kind) for s, e, kind in found if e > s])

    def _merge(self, found: list[Span]) -> list[Span]:
        merged: list[Span] = []
        best: list[tuple[int, int]] = []  # (length, priority) of the span naming each merge
        for start, end, kind in sorted(found):
            rank = (-(end - start), self._priority.get(kind, len(self._priority)))
            if merged and start < merged[-1][1]:
                last_start, last_end, last_kind = merged[-1]
                if rank < best[-1]:
                    last_kind, best[-1] = kind, rank
                merged[-1] = (last_start, max(last_end, end), last_kind)
            else:
                merged.append((start, end, kind))
                best.append(rank)
        return merged

    # -- replacing

    def redact(self, text: str, own_ids: Iterable[str] = ()) -> str:
        """``text`` with every span of personal data replaced by its marker."""
        spans = self.spans(text, own_ids)
        if not spans:
            return text
        out, at = [], 0
        for start, end, kind in spans:
            out += [text[at:start], self.cfg.marker.format(kind=kind)]
            at = end
        out.append(text[at:])
        return "".join(out)

    def redact_byte_dumps(self, message: str) -> str:
        """Hex dumps of raw bytes (decoder messages) replaced: they can spell out text."""
        return self._byte_dump.sub(self.cfg.marker.format(kind=self.cfg.byte_dump.kind), message)

    def redact_bytes(self, data: bytes | None, own_ids: Iterable[str] = ()) -> bytes | None:
        """Bytes holding text (a key, a header) redacted; unchanged bytes are returned as given."""
        if data is None:
            return None
        text = data.decode("utf-8", "replace")
        redacted = self.redact(text, own_ids)
        return data if redacted == text else redacted.encode("utf-8")

    # -- records

    def policy(self, entity: str | None) -> RecordPolicy | None:
        """The personal-data policy of ``entity``; None when its records hold none."""
        return self.cfg.records.get(entity) if entity is not None else None

    def own_ids(self, entity: str | None, record: Mapping[str, Any] | None) -> tuple[str, ...]:
        """The identities a record names, to be redacted wherever they recur.

        Each identity field whole, and each of its words: a field holding "id
        phone" names the consumer by either.
        """
        policy = self.policy(entity)
        if policy is None or record is None:
            return ()
        out: list[str] = []
        for name in policy.identity_fields:
            value = record.get(name)
            if isinstance(value, str) and value.strip():
                words = value.split()
                out += [value, *words] if len(words) > 1 else [value]
        return tuple(out)

    def protected_fields(
        self, entity: str, record: Mapping[str, Any], key: bytes
    ) -> dict[str, Any]:
        """New values for the personal fields of ``record``: identities keyed, free text redacted.

        Identities are always re-keyed, even when the input already looks like a
        pseudonym: a platform could otherwise pass clear data through behind the prefix.
        """
        policy = self.policy(entity)
        if policy is None:
            return {}
        own = self.own_ids(entity, record)
        update: dict[str, Any] = {}
        for name in policy.identity_fields:
            if isinstance(value := record.get(name), str):
                update[name] = pseudonymise(value, key)
        for name in policy.free_text_fields:
            if isinstance(value := record.get(name), str):
                update[name] = self.redact(value, own)
        return update


def protect_complaint(complaint: Complaint, key: bytes, redactor: Redactor) -> Complaint:
    """The complaint as it may travel beyond ingest: consumer keyed, free text redacted."""
    return complaint.model_copy(
        update=redactor.protected_fields(Complaint.entity, complaint.model_dump(), key)
    )
