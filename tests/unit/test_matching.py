"""Product-identity normalisation and matching (docs/design.md §3 rule 2)."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.rules.matching import (
    BrandAliases,
    Decision,
    ListingView,
    Match,
    MatchingConfig,
    MatchingConfigError,
    MatchMethod,
    ProductIdentity,
    classify,
    gtin_is_valid,
    load_matching_config,
    match,
    matching_config_from_mapping,
    model_tokens_from_title,
    normalise_gtin,
    normalise_manufacturer,
    normalise_model,
    normalise_text,
    product_key,
)

CONFIG_PATH = Path(__file__).resolve().parents[2] / "config" / "matching.yaml"


@pytest.fixture(scope="module")
def raw_config() -> dict[str, Any]:
    data = yaml.safe_load(CONFIG_PATH.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def cfg() -> MatchingConfig:
    return load_matching_config(CONFIG_PATH)


# --- text and model normalisation ----------------------------------------------------


def test_normalise_text() -> None:
    # full-width letters and the ideographic space (U+3000) become ASCII; case folded
    assert normalise_text("  ＭＩＤＥＡ\u3000Kettle \t 1.7L ") == "midea kettle 1.7l"
    assert normalise_text("Straße") == "strasse"
    assert normalise_text("美的  电热水壶") == "美的 电热水壶"
    assert normalise_text("   ") == ""


@pytest.mark.parametrize(
    "raw",
    [
        "KX-2000A",
        "kx 2000a",
        "KX2000A",
        "ＫＸ－２０００Ａ",  # full-width, as typed with a Chinese IME
        "KX_2000.A",
        "kx/2000a",
        "KX—2000A",  # em dash
        " KX 2000 A ",
        "Kx‐2000ａ",  # U+2010 hyphen, full-width a
    ],
)
def test_normalise_model_variants(raw: str) -> None:
    assert normalise_model(raw) == "KX2000A"


def test_normalise_model_keeps_letters_of_any_script_and_can_be_empty() -> None:
    assert normalise_model("МК-1") == "МК1"  # Cyrillic stays Cyrillic
    assert normalise_model(" -/. ") == ""


# --- brands -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", ["美的", "Midea", "MIDEA", "midea", "ＭＩＤＥＡ", "美的集团", " Mi-dea "]
)
def test_brand_aliases_midea(cfg: MatchingConfig, raw: str) -> None:
    assert cfg.brand_aliases.canonical_brand(raw) == "midea"
    assert raw in cfg.brand_aliases


def test_unknown_brand_is_its_own_normalised_text(cfg: MatchingConfig) -> None:
    assert cfg.brand_aliases.canonical_brand("  Acme  ELECTRIC ") == "acme electric"
    assert "Acme" not in cfg.brand_aliases


def test_brand_aliases_table() -> None:
    aliases = BrandAliases.from_mapping({"Midea": ["美的", "MIDEA"], "haier": ["海尔"]})
    assert aliases.canonical_brand("美的") == "midea"  # canonical itself normalised
    assert aliases.canonical_brand("Haier") == "haier"  # canonical is its own alias
    assert aliases.aliases_of("MIDEA") == ("美的", "MIDEA")
    assert aliases.aliases_of("acme") == ()


def test_brand_alias_conflict_is_an_error() -> None:
    with pytest.raises(ValueError, match="belongs to both 'xiaomi' and 'mi'"):
        BrandAliases.from_mapping({"xiaomi": ["小米", "MI"], "mi": []})
    with pytest.raises(ValueError, match="blank alias"):
        BrandAliases.from_mapping({"midea": ["美的", " - "]})
    with pytest.raises(ValueError, match="listed twice"):
        BrandAliases.from_mapping({"Midea": [], "MIDEA": []})


# --- manufacturers --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("美的集团股份有限公司", "美的"),  # 股份有限公司 (longest first), then 集团
        ("美的集团有限公司", "美的"),
        ("广东美的生活电器制造有限公司", "广东美的生活电器制造"),  # 电器/制造 are not legal forms
        ("Midea Group Co., Ltd.", "midea"),
        ("MIDEA GROUP CO.,LTD", "midea"),  # punctuation and spacing do not matter
        ("Ｍｉｄｅａ Ｇｒｏｕｐ Ｃｏ．， Ｌｔｄ．", "midea"),  # full-width
        (
            "Foshan Shunde Midea Electrical Heating Appliances Manufacturing Co., Limited",
            "foshan shunde midea electrical heating appliances manufacturing",
        ),
        ("Acme Zinc", "acme zinc"),  # "inc" only as a whole word
        ("Acme Inc", "acme"),
        ("集团", "集团"),  # never strip down to nothing
        ("Ltd", "ltd"),
        ("集团美的电器有限公司", "集团美的电器"),  # only trailing suffixes go
        ("美的集团(中国)有限公司", "美的集团 中国"),
    ],
)
def test_normalise_manufacturer(cfg: MatchingConfig, raw: str, expected: str) -> None:
    assert normalise_manufacturer(raw, cfg.manufacturer_suffixes) == expected
    assert cfg.normalise_manufacturer(raw) == expected


def test_normalise_manufacturer_absent_and_without_suffixes() -> None:
    assert normalise_manufacturer(None, ["有限公司"]) is None
    assert normalise_manufacturer("  ", ["有限公司"]) is None
    assert normalise_manufacturer("Midea Co., Ltd.", []) == "midea co ltd"


# --- GTIN -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "gtin",
    [
        # EAN-13. Body 400638133393 read right to left with weights 3,1,3,...:
        # 3*3+9+3*3+3+3*3+1+3*8+3+3*6+0+3*0+4 = 89 -> check (10 - 9) % 10 = 1
        "4006381333931",
        # GTIN-8. 7*3+0+5*3+8+3*3+6+9*3 = 86 -> check 4
        "96385074",
        # UPC-A (GTIN-12). Body 03600029145 reversed 5,4,1,9,2,0,0,0,6,3,0:
        # 15+4+3+9+6+0+0+0+18+3+0 = 58 -> check 2
        "036000291452",
        # GTIN-14. Body 0001234560001 reversed 1,0,0,0,6,5,4,3,2,1,0,0,0:
        # 3+0+0+0+18+5+12+3+6+1+0+0+0 = 48 -> check 2
        "00012345600012",
        "4 006381 333931",  # printed grouping: spaces ignored
        "４００６３８１３３３９３１",  # full-width digits
    ],
)
def test_gtin_valid(gtin: str) -> None:
    assert gtin_is_valid(gtin)


@pytest.mark.parametrize(
    "gtin",
    [
        "4006381333932",  # check digit should be 1
        "96385075",  # check digit should be 4
        "400638133393",  # 12 digits: as GTIN-12 the check digit would be 0
        "4006-381333931",  # only spaces are stripped
        "40063813339A1",
        "123456789",  # 9 digits: no such GTIN length
        "",
        "00000000",  # passes mod 10, but GS1 never allocates it
        "00000000000000",
    ],
)
def test_gtin_invalid(gtin: str) -> None:
    assert not gtin_is_valid(gtin)


def test_normalise_gtin_pads_to_14() -> None:
    # UPC-A and its EAN-13 form are the same trade item
    assert normalise_gtin("036000291452") == "00036000291452"
    assert normalise_gtin("0036000291452") == "00036000291452"
    assert normalise_gtin("96385074") == "00000096385074"
    assert normalise_gtin("4 006381 333931") == "04006381333931"
    assert normalise_gtin("4006381333932") is None
    assert normalise_gtin(None) is None


# --- product key ----------------------------------------------------------------------


def test_product_key(cfg: MatchingConfig) -> None:
    aliases = cfg.brand_aliases
    assert product_key("美的", "MK-HJ1705", aliases) == "midea|MKHJ1705"
    assert product_key("Midea", "ｍｋ ｈｊ１７０５", aliases) == "midea|MKHJ1705"
    assert cfg.product_key("MIDEA", "mk_hj.1705") == "midea|MKHJ1705"
    assert product_key("Acme", "X-1", aliases) == "acme|X1"
    assert "acme|X1".rpartition("|") == ("acme", "|", "X1")


@pytest.mark.parametrize(
    ("brand", "model"),
    [
        ("美的", None),
        ("美的", ""),
        ("美的", " - / "),
        (None, "KX2000A"),
        ("  ", "KX2000A"),
        (None, None),
    ],
)
def test_product_key_never_brand_only(
    cfg: MatchingConfig, brand: str | None, model: str | None
) -> None:
    assert product_key(brand, model, cfg.brand_aliases) is None


# --- title tokens ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("美的 电热水壶 MK-HJ1705 1.7L", ["MKHJ1705"]),
        ("美的电热水壶MK-HJ1705家用1.7L大容量", ["MKHJ1705"]),  # CJK separates chunks
        ("ＭＫ－ＨＪ１７０５ 美的", ["MKHJ1705"]),  # full-width
        # quantities are specifications, not models
        ("2024新款 220V 1800W 1.7L 5V2A 1.5-2L 30x40cm 1080P 4K 64GB 5000mAh 50Hz", []),
        ("美的 KX 2000A 电水壶", ["KX2000A"]),  # spaced code joined
        ("Midea MK1705S/MK1705 kettle", ["MK1705SMK1705", "MK1705S", "MK1705"]),
        ("A1B X5 AB12", ["AB12"]),  # shorter than min_length (4) dropped
        ("ABCDEFGHIJ1234567890X kettle", []),  # longer than max_length (20)
        ("MKHJ1705 mk-hj1705 MKHJ1705", ["MKHJ1705"]),  # no duplicates
        ("Apple iPhone 5S", []),
        ("", []),
    ],
)
def test_model_tokens_from_title(cfg: MatchingConfig, title: str, expected: list[str]) -> None:
    assert model_tokens_from_title(title, cfg.title_tokens) == expected
    assert cfg.model_tokens_from_title(title) == expected


def test_spaced_join_can_be_disabled(raw_config: dict[str, Any]) -> None:
    data = copy.deepcopy(raw_config)
    data["title_tokens"]["join_spaced_prefix_max_length"] = 0
    config = matching_config_from_mapping(data)
    assert config.model_tokens_from_title("美的 KX 2000A") == []


# --- match + classify ----------------------------------------------------------------

RESULT = ProductIdentity(
    brand="美的", model="MK-HJ1705", manufacturer="广东美的生活电器制造有限公司", gtin=None
)


def test_brand_alias_and_model_variants_match(cfg: MatchingConfig) -> None:
    listing = ListingView(brand="Midea", model="ｍｋ ｈｊ１７０５", title="Midea kettle")
    m = match(RESULT, listing, cfg)
    assert m is not None
    assert m.method is MatchMethod.BRAND_MODEL
    assert m.confidence == cfg.confidence.brand_model
    assert "'midea'" in m.reason and "'MKHJ1705'" in m.reason
    assert classify(m, cfg) is Decision.TASK


def test_manufacturer_agreement_raises_confidence(cfg: MatchingConfig) -> None:
    listing = ListingView(
        brand="MIDEA", model="MK-HJ1705", manufacturer="广东美的生活电器制造有限公司"
    )
    m = match(RESULT, listing, cfg)
    assert m is not None
    assert m.confidence == cfg.confidence.brand_model_manufacturer_agrees
    assert m.confidence > cfg.confidence.brand_model
    assert "manufacturer agrees" in m.reason
    assert classify(m, cfg) is Decision.TASK


def test_manufacturer_disagreement_lowers_confidence_to_review(cfg: MatchingConfig) -> None:
    listing = ListingView(
        brand="美的", model="MK-HJ1705", manufacturer="Ningbo Copycat Appliance Co., Ltd."
    )
    m = match(RESULT, listing, cfg)
    assert m is not None
    assert m.method is MatchMethod.BRAND_MODEL
    assert m.confidence == cfg.confidence.manufacturer_disagrees
    assert m.confidence < cfg.confidence.brand_model
    assert "differs" in m.reason and "Ningbo Copycat" in m.reason
    assert classify(m, cfg) is Decision.REVIEW


def test_manufacturer_spelling_differences_still_agree(cfg: MatchingConfig) -> None:
    result = ProductIdentity(brand="Midea", model="KX2000A", manufacturer="美的集团股份有限公司")
    listing = ListingView(brand="美的", model="KX-2000A", manufacturer="美的集团有限公司")
    m = match(result, listing, cfg)
    assert m is not None and m.confidence == cfg.confidence.brand_model_manufacturer_agrees


def test_gtin_match(cfg: MatchingConfig) -> None:
    result = ProductIdentity(brand="Midea", model="KX2000A", gtin="036000291452")
    listing = ListingView(brand="美的", model=None, gtin="0036000291452", title="kettle")
    m = match(result, listing, cfg)
    assert m is not None
    assert m.method is MatchMethod.GTIN
    assert m.confidence == cfg.confidence.gtin
    assert "00036000291452" in m.reason
    assert classify(m, cfg) is Decision.TASK
    # the listing's brand may be missing: the GTIN alone identifies the item
    m2 = match(result, ListingView(gtin="00036000291452"), cfg)
    assert m2 is not None and m2.method is MatchMethod.GTIN


def test_gtin_on_another_brand_goes_to_review(cfg: MatchingConfig) -> None:
    result = ProductIdentity(brand="Midea", model="KX2000A", gtin="4006381333931")
    listing = ListingView(brand="Haier", model="HX-1", gtin="4006381333931")
    m = match(result, listing, cfg)
    assert m is not None
    assert m.method is MatchMethod.GTIN
    assert m.confidence == cfg.confidence.gtin_brand_conflict
    assert "copied barcode" in m.reason
    assert classify(m, cfg) is Decision.REVIEW


def test_invalid_gtins_are_ignored(cfg: MatchingConfig) -> None:
    # the same typo on both sides is not evidence: falls through to brand/model (different)
    result = ProductIdentity(brand="Midea", model="KX2000A", gtin="4006381333932")
    listing = ListingView(brand="Haier", model="HX-1", gtin="4006381333932")
    assert match(result, listing, cfg) is None


def test_different_valid_gtins_do_not_block_brand_model(cfg: MatchingConfig) -> None:
    result = ProductIdentity(brand="Midea", model="KX2000A", gtin="4006381333931")
    listing = ListingView(brand="Midea", model="KX-2000A", gtin="96385074")
    m = match(result, listing, cfg)
    assert m is not None and m.method is MatchMethod.BRAND_MODEL


def test_model_in_title(cfg: MatchingConfig) -> None:
    listing = ListingView(brand="Midea", model=None, title="美的 电热水壶 MK-HJ1705 1.7L")
    m = match(RESULT, listing, cfg)
    assert m is not None
    assert m.method is MatchMethod.MODEL_IN_TITLE
    assert m.confidence == cfg.confidence.model_in_title
    assert m.confidence < cfg.confidence.brand_model
    assert "title" in m.reason and "MKHJ1705" in m.reason
    assert classify(m, cfg) is Decision.REVIEW


def test_model_in_title_with_manufacturer_disagreement(cfg: MatchingConfig) -> None:
    listing = ListingView(
        brand="Midea", model="", title="美的 MK-HJ1705", manufacturer="Other Factory Ltd"
    )
    m = match(RESULT, listing, cfg)
    assert m is not None and m.method is MatchMethod.MODEL_IN_TITLE
    assert m.confidence == min(cfg.confidence.model_in_title, cfg.confidence.manufacturer_disagrees)


def test_title_mention_does_not_override_a_different_model(cfg: MatchingConfig) -> None:
    # spare part "for MK-HJ1705": its own model field names a different product
    listing = ListingView(brand="Midea", model="LID-99", title="适用于美的 MK-HJ1705 壶盖")
    assert match(RESULT, listing, cfg) is None


@pytest.mark.parametrize(
    ("listing_model", "how"),
    [
        ("MK-HJ1705S", "suffix 'S'"),  # suffix variant
        ("MKHJ1705PRO", "suffix 'PRO'"),
        ("MK-HJ1706", "1 edit apart"),  # substitution
        ("MK-HJ1750", "1 edit apart"),  # adjacent swap (Damerau)
        ("MK-HJ17", "suffix '05'"),  # the result is the listing plus a suffix
    ],
)
def test_look_alike_goes_to_review(cfg: MatchingConfig, listing_model: str, how: str) -> None:
    m = match(RESULT, ListingView(brand="美的", model=listing_model), cfg)
    assert m is not None
    assert m.method is MatchMethod.BRAND_MODEL
    assert m.confidence == cfg.confidence.look_alike
    assert "look-alike" in m.reason and how in m.reason
    assert classify(m, cfg) is Decision.REVIEW


def test_look_alike_needs_long_enough_codes(cfg: MatchingConfig) -> None:
    result = ProductIdentity(brand="Midea", model="X5")
    assert match(result, ListingView(brand="Midea", model="X6"), cfg) is None


@pytest.mark.parametrize(
    "listing",
    [
        ListingView(brand="Midea", model="KX-9000Z", title="美的 KX-9000Z"),  # other model
        ListingView(brand="Haier", model="MK-HJ1705"),  # same model code, other brand
        ListingView(brand=None, model="MK-HJ1705"),  # brand unknown
        ListingView(brand="Midea", model=None, title="美的 电热水壶 1.7L"),  # no code in title
        ListingView(brand="Midea", model="MK-HJ1705SUPER"),  # suffix too long for look-alike
    ],
)
def test_other_products_do_not_match(cfg: MatchingConfig, listing: ListingView) -> None:
    m = match(RESULT, listing, cfg)
    assert m is None
    assert classify(m, cfg) is Decision.IGNORE


def test_result_without_brand_or_model_only_matches_by_gtin(cfg: MatchingConfig) -> None:
    listing = ListingView(brand="Midea", model="MK-HJ1705", gtin="4006381333931")
    assert match(ProductIdentity(model="MK-HJ1705"), listing, cfg) is None
    assert match(ProductIdentity(brand="Midea"), listing, cfg) is None
    m = match(ProductIdentity(gtin="4006381333931"), listing, cfg)
    assert m is not None and m.method is MatchMethod.GTIN


def test_classify_thresholds(cfg: MatchingConfig) -> None:
    task, review = cfg.thresholds.task, cfg.thresholds.review
    assert classify(Match(MatchMethod.GTIN, task, "x"), cfg) is Decision.TASK
    assert classify(Match(MatchMethod.GTIN, 1.0, "x"), cfg) is Decision.TASK
    assert classify(Match(MatchMethod.GTIN, review, "x"), cfg) is Decision.REVIEW
    assert classify(Match(MatchMethod.GTIN, task - 1e-9, "x"), cfg) is Decision.REVIEW
    assert classify(Match(MatchMethod.GTIN, review - 1e-9, "x"), cfg) is Decision.IGNORE
    assert classify(None, cfg) is Decision.IGNORE


def test_match_confidence_validated() -> None:
    with pytest.raises(ValueError, match="confidence must be between 0 and 1"):
        Match(MatchMethod.GTIN, 1.5, "x")


def test_views_from_records() -> None:
    class Rec:
        brand = "美的"
        model = "MK-HJ1705"
        gtin = None
        title = "t"
        manufacturer = "m"

    assert ListingView.from_record(Rec()) == ListingView("美的", "MK-HJ1705", None, "t", "m")
    assert ProductIdentity.from_record(Rec()) == ProductIdentity("美的", "MK-HJ1705", "m", None)


# --- config ---------------------------------------------------------------------------


def test_repo_config_loads_and_pickles(cfg: MatchingConfig) -> None:
    assert 0 < cfg.thresholds.review <= cfg.thresholds.task <= 1
    assert cfg.confidence.look_alike < cfg.thresholds.task
    restored = pickle.loads(pickle.dumps(cfg))  # Beam ships config to workers
    assert restored == cfg
    assert restored.brand_aliases.canonical_brand("美的") == "midea"
    assert restored.model_tokens_from_title("美的 MK-HJ1705 1.7L") == ["MKHJ1705"]


def _broken(raw: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(raw)
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        (("thresholds", "task"), 1.5, "thresholds.task must be a number between 0 and 1, got 1.5"),
        (("thresholds", "review"), 0.9, "thresholds.review must be > 0 and <= thresholds.task"),
        (("thresholds", "tsak"), 0.9, "thresholds: unknown key(s) tsak"),
        (("confidence", "gtin"), _DELETE, "confidence: missing key(s) gtin"),
        (("confidence", "gtin"), "high", "confidence.gtin must be a number between 0 and 1"),
        (("confidence", "look_alike"), 0.9, "confidence.look_alike=0.9 must stay below"),
        (("confidence", "gtin_brand_conflict"), 0.95, "gtin_brand_conflict=0.95 must stay below"),
        (("look_alike", "max_edit_distance"), -1, "look_alike.max_edit_distance must be an"),
        (("title_tokens", "max_length"), 3, "title_tokens.max_length must be an integer >= 4"),
        (("title_tokens", "unit_suffixes"), ["L", True], "got True (quote values such as ON"),
        (("title_tokens", "unit_suffixes"), ["L", "1.5"], "'1.5' must be letters only"),
        (("brand_aliases", "mi"), ["Midea"], "alias 'Midea' belongs to both 'midea' and 'mi'"),
        (("brand_aliases",), ["midea"], "brand_aliases must be a mapping"),
        (("colour",), "red", "unknown top-level key(s) colour"),
        (("thresholds",), None, "thresholds must be a mapping, got None"),
    ],
)
def test_config_errors_are_specific(
    raw_config: dict[str, Any], path: tuple[str, ...], value: Any, fragment: str
) -> None:
    with pytest.raises(MatchingConfigError) as excinfo:
        matching_config_from_mapping(_broken(raw_config, path, value))
    assert fragment in str(excinfo.value)


def test_load_errors_name_the_file(tmp_path: Path, raw_config: dict[str, Any]) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(MatchingConfigError, match=r"nope\.yaml: matching config file missing"):
        load_matching_config(missing)
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("thresholds: [unclosed\n", encoding="utf-8")
    with pytest.raises(MatchingConfigError, match=r"bad\.yaml: not valid YAML"):
        load_matching_config(bad_yaml)
    bad_value = tmp_path / "value.yaml"
    bad_value.write_text(
        yaml.safe_dump(_broken(raw_config, ("thresholds", "task"), 2)), encoding="utf-8"
    )
    with pytest.raises(MatchingConfigError, match=r"value\.yaml: thresholds\.task must be"):
        load_matching_config(bad_value)
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(MatchingConfigError, match="top level must be a mapping, got NoneType"):
        load_matching_config(empty)


def test_rules_import_neither_beam_nor_kafka() -> None:
    code = (
        "import sys, pipelines.rules.matching, pipelines.rules.sampling\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('apache_beam', 'kafka'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=CONFIG_PATH.parents[1],
    )
    assert out.stdout.strip() == ""
