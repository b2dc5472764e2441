"""Product identity: normalisation and matching of inspection results to listings.

docs/design.md §3 rule 2. A failed inspection result names a product (brand, model,
labelled manufacturer, maybe a GTIN); every platform lists that product under
its own spelling: full-width characters typed with a Chinese IME
(``ＫＸ－２０００Ａ``), hyphens and spaces in model codes (``KX-2000A``,
``kx 2000a``), the brand in Chinese or Latin script (美的 / Midea), company forms
on the manufacturer (``美的集团股份有限公司`` / ``Midea Group Co., Ltd.``).
This module reduces each field to a comparable form and decides whether a
listing shows the same product, with *how* (:class:`MatchMethod`) and *how
sure* (a confidence from ``config/matching.yaml``). :func:`classify` turns the
confidence into a decision: a task, a review by a person, or nothing. Anything
uncertain is a review, never straight a takedown.

Normalisation in one place:

* :func:`normalise_text` -- NFKC (full-width -> half-width, ligatures, circled
  digits), case-folded, whitespace collapsed. For names and titles.
* :func:`normalise_model` -- NFKC, upper case, only letters and digits kept.
* :class:`BrandAliases` -- canonical brand for any configured alias.
* :func:`normalise_manufacturer` -- :func:`normalise_text` minus trailing
  company-form suffixes.
* :func:`normalise_gtin` -- valid GTIN-8/12/13/14 zero-padded to 14 digits.

Pure: imports neither Beam nor Kafka, and every object here pickles (Beam
ships the config to workers inside DoFns).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from schemas.gtin import gtin_digits, gtin_is_valid

__all__ = [
    "BrandAliases",
    "Confidences",
    "Decision",
    "ListingView",
    "LookAlikeSettings",
    "Match",
    "MatchMethod",
    "MatchingConfig",
    "MatchingConfigError",
    "ProductIdentity",
    "Thresholds",
    "TitleTokenSettings",
    "classify",
    "gtin_is_valid",
    "is_look_alike",
    "load_matching_config",
    "match",
    "matching_config_from_mapping",
    "model_tokens_from_title",
    "normalise_gtin",
    "normalise_manufacturer",
    "normalise_model",
    "normalise_text",
    "product_key",
]

# --- text normalisation ---------------------------------------------------------------


def normalise_text(s: str) -> str:
    """NFKC, case-fold, collapse whitespace: the comparable form of a name or title.

    NFKC maps compatibility characters to their plain form, which covers the
    full-width Latin letters and digits Chinese input methods produce
    (``ＭＩＤＥＡ`` -> ``MIDEA``) and the ideographic space. ``casefold`` is
    the Unicode-aware ``lower`` (``Straße`` == ``STRASSE``); NFKC is applied
    again afterwards because case folding can leave non-normalised sequences.
    Leading/trailing whitespace goes, inner runs become one space.
    """
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", s).casefold())
    return " ".join(folded.split())


def normalise_model(s: str) -> str:
    """NFKC, upper case, letters and digits only: ``KX-2000A``, ``kx 2000a``,
    ``KX2000A`` and ``ＫＸ－２０００Ａ`` all become ``KX2000A``.

    Platforms and labs write the same model code with arbitrary separators
    (space, ``-``, ``_``, ``.``, ``/``, full-width variants, dashes); none of
    them distinguishes two products in practice, so all punctuation, symbols and
    whitespace are dropped. Letters of any script are kept (a model may contain
    型 or Cyrillic). Returns ``""`` when nothing is left.
    """
    return "".join(ch for ch in unicodedata.normalize("NFKC", s).upper() if ch.isalnum())


def _compact(s: str) -> str:
    """normalise_text without spaces or punctuation: the brand look-up key."""
    return "".join(ch for ch in normalise_text(s) if ch.isalnum())


def _is_blank(s: str | None) -> bool:
    return s is None or not s.strip()


# --- brands -------------------------------------------------------------------------


@dataclass(frozen=True)
class BrandAliases:
    """Canonical brand -> aliases, from ``brand_aliases`` in ``config/matching.yaml``.

    Look-ups compare the NFKC, case-folded text with spaces and punctuation
    removed, so ``MIDEA``, ``Midea``, ``ＭＩＤＥＡ`` and ``Mi-dea`` find the same
    entry and the table only has to list genuinely different spellings (scripts,
    transliterations, group names). The canonical name is an alias of itself.
    An alias that would resolve to two canonical brands is a config error:
    silently picking one would merge two brands' populations.
    """

    table: Mapping[str, tuple[str, ...]]
    _lookup: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        lookup: dict[str, str] = {}
        canonical_table: dict[str, tuple[str, ...]] = {}
        for raw_canonical, aliases in self.table.items():
            canonical = normalise_text(raw_canonical)
            if not _compact(canonical):
                raise ValueError(f"brand_aliases: canonical brand {raw_canonical!r} is blank")
            if canonical in canonical_table:
                raise ValueError(
                    f"brand_aliases: canonical brand {raw_canonical!r} is listed twice "
                    f"(as {canonical!r})"
                )
            canonical_table[canonical] = tuple(aliases)
            for alias in (raw_canonical, *aliases):
                key = _compact(alias)
                if not key:
                    raise ValueError(
                        f"brand_aliases: {raw_canonical!r} has a blank alias {alias!r}"
                    )
                other = lookup.setdefault(key, canonical)
                if other != canonical:
                    raise ValueError(
                        f"brand_aliases: alias {alias!r} belongs to both {other!r} and "
                        f"{canonical!r}"
                    )
        object.__setattr__(self, "table", canonical_table)
        object.__setattr__(self, "_lookup", lookup)

    @classmethod
    def from_mapping(cls, table: Mapping[str, Iterable[str]]) -> BrandAliases:
        return cls({canonical: tuple(aliases) for canonical, aliases in table.items()})

    def canonical_brand(self, s: str) -> str:
        """The canonical brand for ``s``; an unknown brand is its own :func:`normalise_text`."""
        return self._lookup.get(_compact(s), normalise_text(s))

    def aliases_of(self, canonical: str) -> tuple[str, ...]:
        """Configured aliases of a canonical brand (empty if not configured)."""
        return self.table.get(normalise_text(canonical), ())

    def __contains__(self, s: object) -> bool:
        return isinstance(s, str) and _compact(s) in self._lookup


# --- manufacturers ------------------------------------------------------------------


def _words(s: str) -> list[str]:
    """normalise_text, then punctuation and symbols become word breaks."""
    text = normalise_text(s)
    spaced = "".join(
        " " if unicodedata.category(ch)[0] in "PSZ" or ch.isspace() else ch for ch in text
    )
    return spaced.split()


def _is_latin_word(s: str) -> bool:
    return any("a" <= ch <= "z" for ch in s)


@functools.lru_cache(maxsize=16)
def _suffix_patterns(suffixes: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Suffixes as word tuples, longest (in characters) first; cached per suffix list."""
    return sorted(
        {tuple(_words(suffix)) for suffix in suffixes if _words(suffix)},
        key=lambda p: (-sum(len(w) for w in p), p),
    )


def normalise_manufacturer(s: str | None, suffixes: Iterable[str]) -> str | None:
    """Comparable form of a labelled manufacturer, or None if absent/blank.

    :func:`normalise_text`, punctuation treated as spaces (``Co.,Ltd`` ==
    ``co., ltd.``), then company-form ``suffixes`` (``manufacturer_suffixes``
    in the config, e.g. ``有限公司``, ``集团``, ``co., ltd.``) removed from the
    *end* only, repeatedly: ``美的集团股份有限公司`` -> ``美的``,
    ``Midea Group Co., Ltd.`` -> ``midea``.

    Conservative on purpose, because a wrong strip merges two producers'
    populations: suffixes containing Latin letters are removed only as whole
    trailing words (``Zinc`` keeps ``inc``; Chinese has no word breaks, so CJK
    suffixes are removed as trailing characters); nothing in the middle of a
    name is touched; and a strip that would leave nothing is not made
    (``集团`` stays ``集团``). Longer suffixes are tried first so
    ``股份有限公司`` wins over ``有限公司``.
    """
    if s is None:
        return None
    words = _words(s)
    if not words:
        return None
    patterns = _suffix_patterns(tuple(suffixes))
    changed = True
    while changed:
        changed = False
        for pattern in patterns:
            k = len(pattern)
            if len(words) > k and tuple(words[-k:]) == pattern:
                words = words[:-k]  # whole trailing words, any script
                changed = True
                break
            if k == 1 and not _is_latin_word(pattern[0]):
                # CJK: no word breaks, so the suffix is trailing characters
                suffix, last = pattern[0], words[-1]
                if last.endswith(suffix) and len(last) > len(suffix):
                    words = [*words[:-1], last[: -len(suffix)]]
                    changed = True
                    break
    return " ".join(words)


# --- GTIN ---------------------------------------------------------------------------


def normalise_gtin(s: str | None) -> str | None:
    """A valid GTIN zero-padded to 14 digits (GTIN-14 form), else None.

    GS1 defines every GTIN as a 14-digit number with leading zeros for the
    shorter formats, so ``036000291452`` (UPC-A) and ``0036000291452`` (EAN-13)
    are the same trade item; padding makes them compare equal. An invalid code
    is treated as absent: a wrong check digit means a typo, and matching on a
    typo could hit an unrelated product.
    """
    if s is None or not gtin_is_valid(s):
        return None
    digits = gtin_digits(s)
    return digits.zfill(14) if digits is not None else None


# --- keys and title tokens ------------------------------------------------------------


def product_key(brand: str | None, model: str | None, aliases: BrandAliases) -> str | None:
    """Partition key ``"<canonical brand>|<normalised model>"``, or None.

    None when either part is missing or blank: never a brand-only key, because
    one brand's listings would then all land on one key (a hot key that
    serialises the join) and a brand is not a product. The labelled
    manufacturer is part of the population identity (rule 1) but not of the
    key, because it is optional on listings; :func:`match` checks it instead.
    The model part never contains ``|`` (it is letters and digits only), so the
    key splits unambiguously with ``key.rpartition("|")``.
    """
    if brand is None or model is None or not brand.strip():
        return None
    canonical = aliases.canonical_brand(brand)
    normalised = normalise_model(model)
    if not canonical or not normalised:
        return None
    return f"{canonical}|{normalised}"


@dataclass(frozen=True)
class TitleTokenSettings:
    """``title_tokens`` in the config: how model codes are recognised in titles."""

    min_length: int
    max_length: int
    unit_suffixes: tuple[str, ...]
    join_spaced_prefix_max_length: int = 0
    _spec: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        units = sorted(
            {unicodedata.normalize("NFKC", u).upper() for u in self.unit_suffixes},
            key=lambda u: (-len(u), u),
        )
        unit = "|".join(re.escape(u) for u in units if u)
        quantity = rf"\d+(?:\.\d+)?(?:{unit})?" if unit else r"\d+(?:\.\d+)?"
        # quantities, optionally chained by x (30X40CM) or run together (5V2A)
        object.__setattr__(self, "_spec", re.compile(rf"(?:{quantity})(?:X?(?:{quantity}))*"))

    def is_specification(self, chunk: str) -> bool:
        """True if every ``-``/``_``/``/``-separated part is a number or quantity."""
        return all(self._spec.fullmatch(part) for part in re.split(r"[-_/]", chunk) if part)


# ASCII letters/digits joined by single separators; anything else (CJK, spaces,
# other punctuation) ends a chunk. Runs on NFKC + upper-cased text.
_CHUNK = re.compile(r"[A-Z0-9]+(?:[-_./][A-Z0-9]+)*")


def model_tokens_from_title(title: str, settings: TitleTokenSettings) -> list[str]:
    """Candidate model codes in a free-text title, normalised like :func:`normalise_model`.

    ``"美的 电热水壶 MK-HJ1705 1.7L"`` -> ``["MKHJ1705"]``. After NFKC and upper
    case, runs of ASCII letters and digits joined by ``- _ . /`` are chunks (so
    Chinese characters and spaces separate them: ``2024新款`` gives ``2024``).
    A chunk is a candidate when, with separators removed, it has at least one
    letter AND one digit and its length is within
    ``[min_length, max_length]``: words (``MIDEA``) and bare numbers
    (``2024``) are not model codes. Chunks that are only quantities with a unit
    from ``unit_suffixes`` (``1.7L``, ``220V``, ``5V2A``, ``30X40CM``) are
    specifications, not models. A short letters-only chunk followed by a space
    and a chunk starting with a digit is also tried joined (``KX 2000A`` ->
    ``KX2000A``) when ``join_spaced_prefix_max_length`` allows, and a chunk with
    ``/`` also offers each part (``MK1705S/MK1705`` usually lists alternatives).
    Generous on purpose: a candidate only matters if it *equals* a result's
    model, so an extra candidate costs nothing, a missed one costs a match.
    Order of first appearance, no duplicates.
    """
    text = unicodedata.normalize("NFKC", title).upper()
    chunks = list(_CHUNK.finditer(text))
    found: dict[str, None] = {}

    def consider(raw: str, *, spec_ok: bool = False) -> None:
        if not spec_ok and settings.is_specification(raw):
            return
        token = re.sub(r"[-_./]", "", raw)
        if not settings.min_length <= len(token) <= settings.max_length:
            return
        if any(ch.isdigit() for ch in token) and any(ch.isalpha() for ch in token):
            found.setdefault(token, None)

    for i, chunk in enumerate(chunks):
        raw = chunk.group()
        nxt = chunks[i + 1] if i + 1 < len(chunks) else None
        if (
            nxt is not None
            and raw.isalpha()
            and len(raw) <= settings.join_spaced_prefix_max_length
            and text[chunk.end() : nxt.start()].isspace()
            and nxt.group()[0].isdigit()
            and "." not in nxt.group()
        ):
            # "KX 2000A": the tail alone may look like a quantity (2000 amperes),
            # joined it is a code.
            consider(raw + nxt.group(), spec_ok=True)
        consider(raw)
        if "/" in raw:
            # "MK1705S/MK1705" usually lists alternatives: offer each part too
            for part in raw.split("/"):
                consider(part)
    return list(found)


# --- look-alikes ----------------------------------------------------------------------


def _osa_distance(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment (restricted Damerau-Levenshtein) distance, capped at limit+1.

    Insertions, deletions, substitutions and swaps of two adjacent characters
    each cost 1; a swap is the commonest typing slip (``KX2010`` / ``KX2100``).
    """
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return min(prev[-1], limit + 1)


@dataclass(frozen=True)
class LookAlikeSettings:
    """``look_alike`` in the config: when two different model codes look alike."""

    max_edit_distance: int
    max_suffix_length: int
    min_model_length: int


def is_look_alike(a: str, b: str, settings: LookAlikeSettings) -> str | None:
    """How two *normalised, different* model codes look alike, or None.

    Look-alikes: one is the other plus a suffix of at most ``max_suffix_length``
    characters (``KX2000A`` / ``KX2000AS``: often a variant, sometimes the same
    product with a colour or region letter), or they are within
    ``max_edit_distance`` edits (typos). Both codes must be at least
    ``min_model_length`` long: among short codes (``X5`` / ``X6``) every code is
    one edit from many others, so the signal is noise.
    """
    if a == b or min(len(a), len(b)) < settings.min_model_length:
        return None
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    if long_.startswith(short) and len(long_) - len(short) <= settings.max_suffix_length:
        return f"differ by the suffix {long_[len(short) :]!r}"
    distance = _osa_distance(a, b, settings.max_edit_distance)
    if distance <= settings.max_edit_distance:
        return f"are {distance} edit{'s' if distance > 1 else ''} apart"
    return None


# --- config -----------------------------------------------------------------------------


class MatchingConfigError(ValueError):
    """config/matching.yaml is missing a key, has an unknown one, or a bad value."""


@dataclass(frozen=True)
class Thresholds:
    """Confidence >= ``task`` -> TASK; >= ``review`` -> REVIEW; else IGNORE."""

    task: float
    review: float


@dataclass(frozen=True)
class Confidences:
    """Confidence assigned to each kind of match (``confidence`` in the config)."""

    gtin: float
    gtin_brand_conflict: float
    brand_model: float
    brand_model_manufacturer_agrees: float
    manufacturer_disagrees: float
    model_in_title: float
    look_alike: float


@dataclass(frozen=True)
class MatchingConfig:
    """Everything :func:`match` and :func:`classify` need; numbers from config/matching.yaml."""

    thresholds: Thresholds
    confidence: Confidences
    look_alike: LookAlikeSettings
    title_tokens: TitleTokenSettings
    manufacturer_suffixes: tuple[str, ...]
    brand_aliases: BrandAliases

    def __post_init__(self) -> None:
        t, c = self.thresholds, self.confidence
        for name in ("task", "review"):
            _require_unit_interval(f"thresholds.{name}", getattr(t, name))
        for name in Confidences.__dataclass_fields__:
            _require_unit_interval(f"confidence.{name}", getattr(c, name))
        if not 0 < t.review <= t.task:
            raise MatchingConfigError(
                f"thresholds.review must be > 0 and <= thresholds.task={t.task}, got {t.review}"
            )
        # Uncertain by construction: must never be confident enough for a takedown.
        for name in ("look_alike", "gtin_brand_conflict"):
            value = getattr(c, name)
            if value >= t.task:
                raise MatchingConfigError(
                    f"confidence.{name}={value} must stay below thresholds.task={t.task}: "
                    "such matches go to review, never straight to a takedown"
                )
        la, tt = self.look_alike, self.title_tokens
        for name in ("max_edit_distance", "max_suffix_length", "min_model_length"):
            _require_int(f"look_alike.{name}", getattr(la, name), minimum=0)
        _require_int("title_tokens.min_length", tt.min_length, minimum=2)
        _require_int("title_tokens.max_length", tt.max_length, minimum=tt.min_length)
        _require_int(
            "title_tokens.join_spaced_prefix_max_length",
            tt.join_spaced_prefix_max_length,
            minimum=0,
        )

    def normalise_manufacturer(self, s: str | None) -> str | None:
        """:func:`normalise_manufacturer` with this config's suffixes."""
        return normalise_manufacturer(s, self.manufacturer_suffixes)

    def model_tokens_from_title(self, title: str) -> list[str]:
        """:func:`model_tokens_from_title` with this config's settings."""
        return model_tokens_from_title(title, self.title_tokens)

    def product_key(self, brand: str | None, model: str | None) -> str | None:
        """:func:`product_key` with this config's brand aliases."""
        return product_key(brand, model, self.brand_aliases)


def _require_unit_interval(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise MatchingConfigError(f"{name} must be a number between 0 and 1, got {value!r}")


def _require_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise MatchingConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


_SECTIONS: dict[str, tuple[str, ...]] = {
    "thresholds": ("task", "review"),
    "confidence": tuple(Confidences.__dataclass_fields__),
    "look_alike": ("max_edit_distance", "max_suffix_length", "min_model_length"),
    "title_tokens": ("min_length", "max_length", "join_spaced_prefix_max_length", "unit_suffixes"),
}
_OPTIONAL = {"title_tokens": {"join_spaced_prefix_max_length"}}


def _section(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    raw = data.get(name)
    if not isinstance(raw, Mapping):
        raise MatchingConfigError(f"{name} must be a mapping, got {raw!r}")
    expected = _SECTIONS[name]
    unknown = sorted(str(k) for k in raw if k not in expected)
    if unknown:
        raise MatchingConfigError(
            f"{name}: unknown key(s) {', '.join(unknown)}; expected {', '.join(expected)}"
        )
    missing = [k for k in expected if k not in raw and k not in _OPTIONAL.get(name, set())]
    if missing:
        raise MatchingConfigError(f"{name}: missing key(s) {', '.join(missing)}")
    return dict(raw)


def _string_list(name: str, raw: object) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise MatchingConfigError(f"{name} must be a list of strings, got {raw!r}")
    for item in raw:
        if not isinstance(item, str) or not item.strip():
            # YAML 1.1 reads bare ON/NO/YES as booleans: quote such entries
            raise MatchingConfigError(
                f"{name}: every entry must be a non-blank string, got {item!r} "
                "(quote values such as ON or NO in YAML)"
            )
    return tuple(raw)


def matching_config_from_mapping(data: object) -> MatchingConfig:
    """Build and validate a :class:`MatchingConfig` from parsed YAML (a mapping)."""
    if not isinstance(data, Mapping):
        raise MatchingConfigError(f"top level must be a mapping, got {type(data).__name__}")
    known = {*_SECTIONS, "manufacturer_suffixes", "brand_aliases"}
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise MatchingConfigError(
            f"unknown top-level key(s) {', '.join(unknown)}; expected {', '.join(sorted(known))}"
        )
    thresholds = _section(data, "thresholds")
    confidence = _section(data, "confidence")
    look_alike = _section(data, "look_alike")
    title = _section(data, "title_tokens")
    units = _string_list("title_tokens.unit_suffixes", title.pop("unit_suffixes"))
    for unit in units:
        if not unicodedata.normalize("NFKC", unit).isalpha():
            raise MatchingConfigError(f"title_tokens.unit_suffixes: {unit!r} must be letters only")
    suffixes = _string_list("manufacturer_suffixes", data.get("manufacturer_suffixes", []))
    raw_aliases = data.get("brand_aliases", {})
    if not isinstance(raw_aliases, Mapping):
        raise MatchingConfigError(f"brand_aliases must be a mapping, got {raw_aliases!r}")
    table: dict[str, tuple[str, ...]] = {}
    for canonical, aliases in raw_aliases.items():
        if not isinstance(canonical, str):
            raise MatchingConfigError(f"brand_aliases: brand {canonical!r} must be a string")
        table[canonical] = _string_list(f"brand_aliases.{canonical}", aliases or [])
    try:
        return MatchingConfig(
            thresholds=Thresholds(**thresholds),
            confidence=Confidences(**confidence),
            look_alike=LookAlikeSettings(**look_alike),
            title_tokens=TitleTokenSettings(unit_suffixes=units, **title),
            manufacturer_suffixes=suffixes,
            brand_aliases=BrandAliases(table),
        )
    except MatchingConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise MatchingConfigError(str(exc)) from exc


def load_matching_config(path: Path) -> MatchingConfig:
    """Read and validate ``config/matching.yaml``; errors name the file and the key."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise MatchingConfigError(f"{path}: matching config file missing") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MatchingConfigError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return matching_config_from_mapping(data)
    except MatchingConfigError as exc:
        raise MatchingConfigError(f"{path}: {exc}") from exc


# --- matching -------------------------------------------------------------------------


@dataclass(frozen=True)
class ProductIdentity:
    """The product an inspection result is about (raw fields as published)."""

    brand: str | None = None
    model: str | None = None
    manufacturer: str | None = None
    gtin: str | None = None

    @classmethod
    def from_record(cls, record: object) -> ProductIdentity:
        """From any object with these attributes (e.g. the InspectionResult model)."""
        return cls(**{name: _opt_str(record, name) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class ListingView:
    """What matching needs from a listing (raw fields as the platform sent them)."""

    brand: str | None = None
    model: str | None = None
    gtin: str | None = None
    title: str = ""
    manufacturer: str | None = None

    @classmethod
    def from_record(cls, record: object) -> ListingView:
        """From any object with these attributes (e.g. the Listing model)."""
        return cls(
            brand=_opt_str(record, "brand"),
            model=_opt_str(record, "model"),
            gtin=_opt_str(record, "gtin"),
            title=_opt_str(record, "title") or "",
            manufacturer=_opt_str(record, "manufacturer"),
        )


def _opt_str(record: object, name: str) -> str | None:
    value = getattr(record, name, None)
    return None if value is None else str(value)


class MatchMethod(StrEnum):
    """How a listing was matched to a result."""

    GTIN = "GTIN"
    BRAND_MODEL = "BRAND_MODEL"
    MODEL_IN_TITLE = "MODEL_IN_TITLE"


class Decision(StrEnum):
    """What to do with a match: issue a task, ask a person, or nothing."""

    TASK = "TASK"
    REVIEW = "REVIEW"
    IGNORE = "IGNORE"


@dataclass(frozen=True)
class Match:
    """A listing matched to a result: how, how sure, and a sentence saying what matched."""

    method: MatchMethod
    confidence: float
    reason: str

    def __post_init__(self) -> None:
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence must be between 0 and 1, got {self.confidence!r}")


def match(result: ProductIdentity, listing: ListingView, cfg: MatchingConfig) -> Match | None:
    """Does ``listing`` offer the product of inspection ``result``? (docs/design.md rule 2)

    In order, first that applies:

    1. **GTIN**: both GTINs valid and equal as GTIN-14 -> ``GTIN`` at
       ``confidence.gtin``; but if both brands are given and canonically
       differ, the barcode was copied onto another brand (counterfeit or data
       error) -> ``confidence.gtin_brand_conflict`` (review). Two different
       valid GTINs do not rule a match out (pack sizes and colours get their
       own GTINs), so matching continues.
    2. Otherwise the canonical brands must be present and equal, and the
       result must have a model; if not -> None.
    3. **Brand + model**: normalised models equal -> ``BRAND_MODEL`` at
       ``confidence.brand_model``; ``brand_model_manufacturer_agrees`` when both
       labelled manufacturers are given and agree (the full population identity
       of rule 1); capped at ``manufacturer_disagrees`` when both are given and
       differ (probably another producer's population).
    4. **Look-alike**: the listing's model differs but looks alike
       (:func:`is_look_alike`) -> ``BRAND_MODEL`` at ``confidence.look_alike``,
       meant for human review. A different, unlike model -> None, even if the
       title mentions the result's model (titles are keyword-stuffed).
    5. **Model in title**: the listing has no model, and the result's model is
       among :func:`model_tokens_from_title` -> ``MODEL_IN_TITLE`` at
       ``confidence.model_in_title`` (also capped on manufacturer disagreement).

    Invalid GTINs count as absent. All confidences come from ``cfg``.
    """
    conf = cfg.confidence
    aliases = cfg.brand_aliases
    r_brand = None if _is_blank(result.brand) else aliases.canonical_brand(result.brand or "")
    l_brand = None if _is_blank(listing.brand) else aliases.canonical_brand(listing.brand or "")

    r_gtin, l_gtin = normalise_gtin(result.gtin), normalise_gtin(listing.gtin)
    if r_gtin is not None and r_gtin == l_gtin:
        if r_brand and l_brand and r_brand != l_brand:
            return Match(
                MatchMethod.GTIN,
                conf.gtin_brand_conflict,
                f"GTIN {l_gtin} equal, but brand {listing.brand!r} (-> {l_brand!r}) differs "
                f"from the result's {result.brand!r} (-> {r_brand!r}): copied barcode?",
            )
        return Match(MatchMethod.GTIN, conf.gtin, f"GTIN {l_gtin} equal")

    if not r_brand or not l_brand or r_brand != l_brand:
        return None
    r_model = normalise_model(result.model or "")
    if not r_model:
        return None
    l_model = normalise_model(listing.model or "")
    brand_text = f"brand {l_brand!r}" + _spelling(listing.brand, result.brand, l_brand)
    manufacturer = _manufacturer_agreement(result, listing, cfg)

    if l_model == r_model:
        reason = f"{brand_text} and model {r_model!r} equal" + _spelling(
            listing.model, result.model, r_model
        )
        if manufacturer is True:
            return Match(
                MatchMethod.BRAND_MODEL,
                conf.brand_model_manufacturer_agrees,
                f"{reason}; labelled manufacturer agrees ({listing.manufacturer!r})",
            )
        if manufacturer is False:
            return Match(
                MatchMethod.BRAND_MODEL,
                min(conf.brand_model, conf.manufacturer_disagrees),
                f"{reason}; but labelled manufacturer {listing.manufacturer!r} differs from "
                f"the result's {result.manufacturer!r}",
            )
        return Match(MatchMethod.BRAND_MODEL, conf.brand_model, reason)

    if l_model:
        how = is_look_alike(r_model, l_model, cfg.look_alike)
        if how is None:
            return None
        return Match(
            MatchMethod.BRAND_MODEL,
            conf.look_alike,
            f"look-alike for review: {brand_text} equal; listing model {l_model!r} and "
            f"result model {r_model!r} {how}",
        )

    if r_model in model_tokens_from_title(listing.title, cfg.title_tokens):
        reason = f"{brand_text} equal; listing has no model, title {listing.title!r} contains "
        reason += f"model {r_model!r}"
        if manufacturer is False:
            return Match(
                MatchMethod.MODEL_IN_TITLE,
                min(conf.model_in_title, conf.manufacturer_disagrees),
                f"{reason}; but labelled manufacturer {listing.manufacturer!r} differs from "
                f"the result's {result.manufacturer!r}",
            )
        return Match(MatchMethod.MODEL_IN_TITLE, conf.model_in_title, reason)
    return None


def _spelling(listing_raw: str | None, result_raw: str | None, normalised: str) -> str:
    """`` (listing 'x', result 'y')`` when a raw spelling differs from the normalised one."""
    if listing_raw == normalised and result_raw == normalised:
        return ""
    return f" (listing {listing_raw!r}, result {result_raw!r})"


def _manufacturer_agreement(
    result: ProductIdentity, listing: ListingView, cfg: MatchingConfig
) -> bool | None:
    """True/False when both labelled manufacturers are given; None when either is unknown."""
    r = cfg.normalise_manufacturer(result.manufacturer)
    lst = cfg.normalise_manufacturer(listing.manufacturer)
    if r is None or lst is None:
        return None
    return r == lst


def classify(m: Match | None, cfg: MatchingConfig) -> Decision:
    """``confidence >= thresholds.task`` -> TASK; ``>= thresholds.review`` -> REVIEW; else
    IGNORE (also for no match). Only TASK may lead to a takedown (docs/design.md rule 2)."""
    if m is None:
        return Decision.IGNORE
    if m.confidence >= cfg.thresholds.task:
        return Decision.TASK
    if m.confidence >= cfg.thresholds.review:
        return Decision.REVIEW
    return Decision.IGNORE
