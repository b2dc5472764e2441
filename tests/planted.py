"""Planted personal data: a seeded generator of complaint texts and a detector that finds them.

The generator writes phone numbers, resident ID numbers, e-mail addresses,
bank-card numbers and consumer ids the ways people (and evasive platforms)
write them: separators between digit groups or between every digit,
full-width and Arabic-Indic digits, Chinese numerals, zero-width characters,
IDN domains, ``at``/``dot`` spelt out. Every identifier is random (valid
check characters where the format has one), so none occurs by chance.

The detector is deliberately written apart from pipelines/rules/personal_data.py
(its own normalisation, no shared pattern), so a blind spot of the redactor is
not mirrored here: it strips every separator, so it is stricter than the
redactor, and looks for each identifier's canonical characters in every
window of the right length.
"""

from __future__ import annotations

import functools
import random
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

PHONE, ID, EMAIL, CARD, CONSUMER = "PHONE", "ID", "EMAIL", "CARD", "CONSUMER"

_FULL_WIDTH = str.maketrans(
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ@.",
    "０１２３４５６７８９ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ"
    "ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ＠．",
)
_ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
_CN_NUMERALS = str.maketrans("0123456789", "零幺二三四五六七八九")
_NUMERAL_DIGITS = {
    "〇": "0", "零": "0", "一": "1", "幺": "1", "二": "2", "两": "2", "三": "3",
    "四": "4", "五": "5", "六": "6", "七": "7", "八": "8", "九": "9",
}  # fmt: skip
ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff")
# rare characters for non-ASCII e-mail local parts: not used anywhere else
_LOCAL_CHARS = "鑫淼焱垚犇骉羴猋麤龘"
_REGIONS = ("110105", "310104", "440305", "510107", "330106", "420111", "610113", "210202")
# filler without digits or numerals, so every digit in a text is a planted one
_FILLER = (
    "产品质量有问题",
    "商家拒绝退货",
    "请尽快处理",
    "我要投诉这个卖家",
    "收到的商品是假货",
    "客服不回复",
    "包装破损严重",
    "The seller refused a refund",
    "please call me back",
)


@dataclass(frozen=True)
class Plant:
    kind: str
    written: str  # as it stands in the text
    canonical: str  # what the detector looks for (digits; casefolded letters and digits)


@dataclass
class PlantedText:
    text: str
    plants: list[Plant] = field(default_factory=list)


def _luhn_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def _id_check(first17: str) -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return "10X98765432"[sum(int(d) * w for d, w in zip(first17, weights, strict=True)) % 11]


def _groups(s: str, sizes: Iterable[int]) -> list[str]:
    out, at = [], 0
    for n in sizes:
        out.append(s[at : at + n])
        at += n
    if at < len(s):
        out.append(s[at:])
    return [g for g in out if g]


class PlantGenerator:
    """Seeded: the same seed writes the same texts."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def _digits(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789") for _ in range(n))

    def _zero_width(self, s: str) -> str:
        return "".join(ch + self.rng.choice(ZERO_WIDTH) for ch in s[:-1]) + s[-1]

    # -- identifiers

    def phone_number(self) -> str:
        return "1" + self.rng.choice("3456789") + self._digits(9)

    def id_number(self) -> str:
        year = self.rng.randint(1940, 2008)
        born = f"{year}{self.rng.randint(1, 12):02d}{self.rng.randint(1, 28):02d}"
        first17 = self.rng.choice(_REGIONS) + born + self._digits(3)
        return first17 + _id_check(first17)

    def card_number(self) -> str:
        length = self.rng.choice((16, 16, 16, 17, 18, 19))
        body = self.rng.choice(("62", "4", "5")) + self._digits(length - 1)
        body = body[: length - 1]
        return body + _luhn_digit(body)

    def email_local(self) -> str:
        letters = "".join(self.rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(6))
        return f"zq{letters}{self._digits(2)}"

    def consumer_id(self) -> str:
        letters = "".join(self.rng.choice("abcdefghijklmnopqrstvwxyz") for _ in range(4))
        return f"u{letters}{self._digits(6)}"

    # -- the ways they are written

    def phone_written(self, d: str) -> str:
        a, b, c = d[:3], d[3:7], d[7:]
        forms = [
            f"{a}.{b}.{c}",
            f"{a}  {b}  {c}",
            " ".join(d),
            f"{a} - {b} - {c}",
            d.translate(_FULL_WIDTH),
            f"{a} {b} {c}".translate(_FULL_WIDTH),
            f"+86 {a} {b} {c}",
            f"(+86){d}",
            f"0086-{d}",
            f"86 {a}-{b}-{c}",
            self._zero_width(d),
            d,
            f"{a}-{b}-{c}",
            d.translate(_ARABIC_INDIC),
            d.translate(_CN_NUMERALS),
            f"{a}\u3000{b}\u3000{c}",
            f"{a}\u00a0{b}\u00a0{c}",
            f"{a}/{b}/{c}",
        ]
        return self.rng.choice(forms)

    def id_written(self, n: str) -> str:
        forms = [
            f"{n[:6]} {n[6:14]} {n[14:]}",
            n,
            n.lower(),
            n.translate(_FULL_WIDTH),
            f"{n[:6]}-{n[6:14]}-{n[14:]}",
            " ".join(_groups(n, (4, 4, 4, 4))),
            self._zero_width(n),
            f"{n[:6]}  {n[6:10]} {n[10:14]}  {n[14:]}",
        ]
        return self.rng.choice(forms)

    def card_written(self, n: str) -> str:
        forms = [
            " ".join(_groups(n, (4, 4, 4, 4))),
            "-".join(_groups(n, (4, 4, 4, 4))),
            n,
            n.translate(_FULL_WIDTH),
            self._zero_width(n),
            "  ".join(_groups(n, (4, 4, 4, 4))),
            " ".join(_groups(n, (6, 13))),
        ]
        return self.rng.choice(forms)

    def email_written(self, local: str) -> str:
        forms = [
            f"{local}@example.com",
            f"{local}@例子.中国",
            f"{local}@mail.例子.公司",
            f"{local} at example dot com",
            f"{local} [at] example [dot] com",
            f"{local.upper()}(AT)EXAMPLE(DOT)COM",
            f"{local}@example.com".translate(_FULL_WIDTH),
            f"{local} @ example.org",
            f"{local} AT mail DOT example DOT net",
            f"{local}@例子。中国",
            f"{local}艾特example点com",
        ]
        return self.rng.choice(forms)

    def consumer_written(self, cid: str) -> str:
        forms = [
            cid,
            cid.upper(),
            f"{cid[:5]} {cid[5:]}",
            f"{cid[:5]}-{cid[5:8]}-{cid[8:]}",
            cid.translate(_FULL_WIDTH),
            self._zero_width(cid),
            " ".join(cid),
        ]
        return self.rng.choice(forms)

    # -- texts

    def plant(self, kind: str, consumer_id: str) -> Plant:
        if kind == PHONE:
            d = self.phone_number()
            return Plant(PHONE, self.phone_written(d), d)
        if kind == ID:
            n = self.id_number()
            return Plant(ID, self.id_written(n), n.lower())
        if kind == CARD:
            n = self.card_number()
            return Plant(CARD, self.card_written(n), n)
        if kind == EMAIL:
            if self.rng.random() < 0.1:
                local = "".join(self.rng.choice(_LOCAL_CHARS) for _ in range(3))
                return Plant(EMAIL, f"{local}@例子.中国", local)
            local = self.email_local()
            return Plant(EMAIL, self.email_written(local), local)
        return Plant(CONSUMER, self.consumer_written(consumer_id), consumer_id)

    def text(self, consumer_id: str, min_chars: int = 0) -> PlantedText:
        """A complaint text holding 1-5 planted identifiers, padded to ``min_chars``."""
        kinds = [PHONE, ID, EMAIL, CARD, CONSUMER]
        chosen = self.rng.sample(kinds, self.rng.randint(1, 5))
        out = PlantedText("")
        parts: list[str] = []
        for kind in chosen:
            p = self.plant(kind, consumer_id)
            out.plants.append(p)
            label = {PHONE: "电话", ID: "身份证", EMAIL: "邮箱", CARD: "卡号", CONSUMER: "用户"}
            parts.append(f"{self.rng.choice(_FILLER)}。{label[kind]}：{p.written}。")
        body = "".join(parts)
        while len(body) < min_chars:
            body += self.rng.choice(_FILLER) + "。"
            if len(body) < min_chars and self.rng.random() < 0.02:
                p = self.plant(self.rng.choice(kinds), consumer_id)
                out.plants.append(p)
                body += f"联系：{p.written}。"
        out.text = body
        return out


# --------------------------------------------------------------------------- detector

_HEX_DUMP = re.compile(r"(?:\b[0-9a-f]{2} ){3,}[0-9a-f]{2}\b")
_NOT_ALNUM = re.compile(r"[\W_]+")
# where a planted identifier can start in a squeezed text (overlapping matches)
_CANDIDATES = re.compile(
    r"(?=([0-9]{11,}x?|u[a-z]{4}[0-9]{6}|zq[a-z]{6}[0-9]{2}|[" + _LOCAL_CHARS + r"]{3}))"
)


@functools.lru_cache(maxsize=65536)
def _plain_char(ch: str) -> str:
    if unicodedata.category(ch) in ("Cf", "Mn", "Me"):
        return ""
    digit = unicodedata.decimal(ch, None)
    return str(digit) if digit is not None else _NUMERAL_DIGITS.get(ch, ch)


def _plain(text: str) -> str:
    """NFKC, Unicode digits and numerals as ASCII, invisible characters gone."""
    normal = unicodedata.normalize("NFKC", text)
    return normal if normal.isascii() else "".join(map(_plain_char, normal))


def plain_digits(text: str) -> str:
    """Every digit of the text in a row, whatever its script or numeral."""
    return "".join(ch for ch in _plain(text) if ch.isdigit())


def views(text: str) -> Iterator[str]:
    """The raw text, its normalised form, and the text of any hex dump in it, squeezed.

    Squeezed: casefolded letters and digits only, every separator, space and
    symbol removed, so "138 - 1234 - 5678" and "1.3.8..." read as 13812345678.
    """
    texts = [text, _plain(text)]
    for dump in _HEX_DUMP.findall(text):
        decoded = bytes.fromhex(dump.replace(" ", "")).decode("utf-8", "replace")
        texts += [decoded, _plain(decoded)]
    for t in texts:
        yield _NOT_ALNUM.sub("", t.casefold())


class Detector:
    """Finds any planted identifier in a text, whatever its separators or digit forms."""

    def __init__(self, plants: Iterable[Plant]) -> None:
        self.table: dict[str, Plant] = {}
        for p in plants:
            canon = p.canonical.casefold()
            self.table[canon] = p
            if p.kind == ID:
                # the ID's 17 digits alone: found even if only its X check char went
                self.table[canon[:17]] = p
        self.lengths = sorted({len(c) for c in self.table})

    def find(self, text: str) -> list[Plant]:
        found: list[Plant] = []
        for squeezed in views(text):
            for m in _CANDIDATES.finditer(squeezed):
                run = m.group(1)  # candidates start at every position: test prefixes only
                for length in self.lengths:
                    if length <= len(run) and (hit := self.table.get(run[:length])) is not None:
                        found.append(hit)
        return found
