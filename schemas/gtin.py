"""GTIN check digits (GS1): part of the contract, since a listing's ``gtin`` is
accepted only with a correct check digit, and of matching, which keys on it.

Here, at the bottom layer, so the models and the matching rules share one
definition without the contracts importing the domain. Pure standard library.
"""

from __future__ import annotations

import unicodedata

_GTIN_LENGTHS = frozenset({8, 12, 13, 14})


def gtin_digits(gtin: str) -> str | None:
    """The code's digits (whitespace dropped, full-width mapped), or None if not a GTIN shape."""
    digits = "".join(unicodedata.normalize("NFKC", gtin).split())
    if len(digits) not in _GTIN_LENGTHS or not all("0" <= ch <= "9" for ch in digits):
        return None
    return digits


def gtin_is_valid(gtin: str) -> bool:
    """GTIN-8, -12 (UPC-A), -13 (EAN) or -14, with a correct GS1 mod-10 check digit.

    Whitespace is ignored (printed codes are often grouped ``4 006381 333931``);
    after that only ASCII digits are accepted (full-width digits are NFKC-mapped
    first). Check digit: weighting the data digits 3, 1, 3, ... from the right
    (the digit next to the check digit gets 3), the check digit makes the
    weighted sum a multiple of 10. An all-zero code passes that arithmetic but
    is not a GTIN (GS1 never allocates it; it is the usual placeholder), so it
    is rejected.
    """
    digits = gtin_digits(gtin)
    if digits is None or not digits.strip("0"):
        return False
    body, check = digits[:-1], int(digits[-1])
    weighted = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - weighted % 10) % 10 == check
