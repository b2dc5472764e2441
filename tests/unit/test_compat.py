"""Schema evolution: BACKWARD compatibility check and decoding old data into new versions.

Each test works on a tmp_path copy of schemas/avro, so the shipped tree is never touched.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipelines.rules.record_rules import RuleViolation, check_record
from schemas.compat import CompatProblem, check_backward, check_schemas, main
from schemas.drift import check_models
from schemas.models import RuleContext
from schemas.registry import DEFAULT_ROOT, SchemaRegistry

LISTING = {
    "listing_id": "600123456789",
    "platform": "tmall",
    "seller_id": "shop-88231",
    "seller_name": "美的官方旗舰店",
    "title": "美的 电热水壶 MK-HJ1705 1.7L",
    "brand": "Midea",
    "model": "MK-HJ1705",
    "gtin": "6901234567892",
    "category": "家用电器/厨房小电/电水壶",
    "manufacturer": "广东美的生活电器制造有限公司",
    "price_minor": 12900,
    "currency": "CNY",
    "url": "https://detail.tmall.com/item.htm?id=600123456789",
    "status": "ACTIVE",
    "observed_at": datetime(2026, 3, 2, 8, 15, tzinfo=UTC),
}

Mutator = Callable[[dict[str, Any]], None]


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "avro"
    shutil.copytree(DEFAULT_ROOT, root)
    return root


def _read(root: Path, entity: str, version: int) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / entity / f"v{version}.avsc").read_text("utf-8"))
    return data


def _add_version(
    root: Path, entity: str, mutate: Mutator, base: int = 1, version: int | None = None
) -> int:
    schema = _read(root, entity, base)
    mutate(schema)
    n = version or max(int(p.stem[1:]) for p in (root / entity).glob("v*.avsc")) + 1
    (root / entity / f"v{n}.avsc").write_text(json.dumps(schema, ensure_ascii=False, indent=2))
    return n


def _field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


def _add_field(field: dict[str, Any]) -> Mutator:
    def mutate(schema: dict[str, Any]) -> None:
        schema["fields"].append(field)

    return mutate


ENERGY_LABEL = {
    "name": "energy_label",
    "type": ["null", "string"],
    "default": None,
    "doc": 'China energy label grade 1-5 as printed. Example: "1".',
}


# ------------------------------------------------------------------ compatible evolution


def test_shipped_tree_is_clean() -> None:
    assert check_backward() == []
    assert main([]) == 0


def test_new_optional_field_old_data_decodes_into_v2_with_default(tree: Path) -> None:
    old_reg = SchemaRegistry.load(tree)  # what a v1 producer has
    v1_bytes = old_reg.encode("listing", LISTING)

    assert _add_version(tree, "listing", _add_field(ENERGY_LABEL)) == 2
    assert check_backward(tree) == []

    reg = SchemaRegistry.load(tree)
    assert reg.current("listing").version == 2
    assert [v.version for v in reg.versions("listing")] == [1, 2]
    v1, v2 = reg.versions("listing")
    assert v1.fingerprint != v2.fingerprint
    assert v1_bytes[2:10] == v1.fingerprint

    entity, record = reg.decode(v1_bytes, expected_entity="listing")
    assert entity == "listing"
    assert record == {**LISTING, "energy_label": None}

    # Writing with v2 carries the v2 fingerprint and the new field.
    v2_bytes = reg.encode("listing", {**LISTING, "energy_label": "1"})
    assert v2_bytes[2:10] == v2.fingerprint
    assert reg.decode(v2_bytes)[1]["energy_label"] == "1"
    # An old producer can still be emulated explicitly.
    assert reg.encode("listing", LISTING, version=1) == v1_bytes


def test_new_field_with_non_null_default_and_int_to_long_promotion(tree: Path) -> None:
    def mutate(schema: dict[str, Any]) -> None:
        schema["fields"].append(
            {
                "name": "stock",
                "type": "long",
                "default": -1,
                "doc": "Units in stock; -1 when unknown.",
            }
        )

    v1_bytes = SchemaRegistry.load(tree).encode("listing", LISTING)
    _add_version(tree, "listing", mutate)

    def promote(schema: dict[str, Any]) -> None:
        _field(schema, "sample_size")["type"] = "long"
        _field(schema, "declared_quality_level")["type"] = ["null", "double"]

    _add_version(tree, "inspection", promote)
    assert check_backward(tree) == []
    assert SchemaRegistry.load(tree).decode(v1_bytes)[1]["stock"] == -1


def test_enum_symbol_added_is_backward_compatible(tree: Path) -> None:
    def mutate(schema: dict[str, Any]) -> None:
        _field(schema, "status")["type"]["symbols"].append("SUSPENDED")

    _add_version(tree, "listing", mutate)
    assert check_backward(tree) == []


# ------------------------------------------------------------------ incompatible evolution


def _only(problems: list[CompatProblem]) -> CompatProblem:
    assert len(problems) == 1, "\n".join(map(str, problems))
    return problems[0]


def test_new_field_without_default_is_caught(tree: Path) -> None:
    _add_version(
        tree,
        "listing",
        _add_field({"name": "energy_label", "type": "string", "doc": "Energy label grade."}),
    )
    p = _only(check_backward(tree))
    assert (p.entity, p.version, p.against_version) == ("listing", 2, 1)
    assert "'energy_label'" in p.message and "default" in p.message
    assert "listing v2 reading v1 data" in str(p)


def test_type_change_string_to_int_is_caught(tree: Path) -> None:
    def mutate(schema: dict[str, Any]) -> None:
        _field(schema, "title")["type"] = "int"

    _add_version(tree, "listing", mutate)
    p = _only(check_backward(tree))
    assert (p.entity, p.version, p.against_version) == ("listing", 2, 1)
    assert "'title'" in p.message and "string" in p.message and "int" in p.message


def test_type_change_inside_optional_union_is_caught(tree: Path) -> None:
    def mutate(schema: dict[str, Any]) -> None:
        _field(schema, "gtin")["type"] = ["null", "long"]

    _add_version(tree, "listing", mutate)
    p = _only(check_backward(tree))
    assert "'gtin'" in p.message and "string" in p.message


def test_optional_made_required_is_caught(tree: Path) -> None:
    def mutate(schema: dict[str, Any]) -> None:
        f = _field(schema, "brand")
        f["type"] = "string"
        del f["default"]

    _add_version(tree, "listing", mutate)
    p = _only(check_backward(tree))
    assert "'brand'" in p.message and "null" in p.message and "optional" in p.message


def test_removed_enum_symbol_in_nested_record_is_caught(tree: Path) -> None:
    def mutate(schema: dict[str, Any]) -> None:
        kind = _field(schema, "failed_items")["type"]["items"]["fields"][2]["type"]
        kind["symbols"].remove("MARKING")

    _add_version(tree, "inspection", mutate)
    p = _only(check_backward(tree))
    assert "'failed_items[].kind'" in p.message and "MARKING" in p.message


def test_removed_enum_symbol_is_fine_when_enum_has_a_default(tree: Path) -> None:
    def mutate(schema: dict[str, Any]) -> None:
        _field(schema, "issue_type")["type"]["symbols"].remove("FAKE_REVIEWS")

    old = SchemaRegistry.load(tree)
    complaint = {
        "complaint_id": "C-1",
        "platform": "jd",
        "channel": "PLATFORM",
        "consumer_id": "ps:1",
        "seller_id": "s",
        "issue_type": "FAKE_REVIEWS",
        "text": "t",
        "status": "OPEN",
        "received_at": 0,
    }
    v1_bytes = old.encode("complaint", complaint)
    _add_version(tree, "complaint", mutate)
    assert check_backward(tree) == []
    # ... and the codec agrees with the checker: the lost symbol reads as the default.
    assert SchemaRegistry.load(tree).decode(v1_bytes)[1]["issue_type"] == "OTHER"


def test_rename_with_aliases_is_compatible_and_decodes(tree: Path) -> None:
    def mutate(schema: dict[str, Any]) -> None:
        schema["name"] = "Offer"
        schema["aliases"] = ["omm.Listing"]
        title = _field(schema, "title")
        title["name"] = "headline"
        title["aliases"] = ["title"]

    v1_bytes = SchemaRegistry.load(tree).encode("listing", LISTING)
    _add_version(tree, "listing", mutate)
    assert check_backward(tree) == []
    record = SchemaRegistry.load(tree).decode(v1_bytes)[1]
    assert record["headline"] == LISTING["title"] and "title" not in record


def test_renamed_record_is_caught(tree: Path) -> None:
    def mutate(schema: dict[str, Any]) -> None:
        schema["name"] = "Offer"

    _add_version(tree, "listing", mutate)
    p = _only(check_backward(tree))
    assert "renamed" in p.message and "omm.Listing" in p.message


def test_every_earlier_version_is_checked_not_only_the_previous(tree: Path) -> None:
    # v2 adds `stock` with a default; v3 drops the default. v3 reads v2 data (which has
    # `stock`) but not v1 data (which lacks it): only the v3-vs-v1 pair fails.
    stock = {"name": "stock", "type": "long", "default": 0, "doc": "Units in stock."}
    _add_version(tree, "listing", _add_field(stock))
    _add_version(tree, "listing", _add_field({k: v for k, v in stock.items() if k != "default"}))
    p = _only(check_backward(tree))
    assert (p.entity, p.version, p.against_version) == ("listing", 3, 1)
    assert "'stock'" in p.message


# ------------------------------------------------------------------ tree hygiene


def test_gap_in_version_numbers_is_caught(tree: Path) -> None:
    _add_version(
        tree,
        "takedown",
        _add_field({"name": "note", "type": ["null", "string"], "default": None, "doc": "A note."}),
        version=3,
    )
    p = _only(check_backward(tree))
    assert p.entity == "takedown" and "v2" in p.message and p.against_version is None


def test_missing_doc_is_caught(tree: Path) -> None:
    _add_version(
        tree, "takedown", _add_field({"name": "note", "type": ["null", "string"], "default": None})
    )
    p = _only(check_backward(tree))
    assert (p.entity, p.version) == ("takedown", 2) and "field note" in p.message


def test_unparsable_schema_and_bad_file_name_are_reported(tree: Path) -> None:
    (tree / "takedown" / "v2.avsc").write_text('{"type": "record", "name": "TakedownNotice"}')
    p = _only(check_backward(tree))
    assert p.version == 2 and "does not parse" in p.message

    (tree / "takedown" / "v2.avsc").unlink()
    (tree / "takedown" / "v2-draft.avsc").write_text("{}")
    p = _only(check_backward(tree))
    assert "v<N>.avsc" in p.message


def test_main_exits_nonzero_and_prints_problems(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _add_version(
        tree,
        "listing",
        _add_field({"name": "energy_label", "type": "string", "doc": "Energy label grade."}),
    )
    assert main([str(tree)]) == 1
    assert "listing v2 reading v1 data: field 'energy_label'" in capsys.readouterr().out


# ------------------------------------------------------------------ models vs schemas (drift)


def _drift(problems: list[CompatProblem]) -> list[str]:
    return [p.message for p in problems if p.message.startswith("model drift")]


def test_shipped_models_match_the_current_schemas() -> None:
    assert check_models() == []
    assert check_schemas() == []


def test_compatible_new_version_without_a_model_change_is_caught_naming_the_field(
    tree: Path,
) -> None:
    """Issue 8 (8a): a BACKWARD-compatible v2 that `schemas check` accepted dead-lettered
    every record, old or new, until schemas/models.py was edited too."""
    old_bytes = SchemaRegistry.load(tree).encode("listing", LISTING)
    _add_version(tree, "listing", _add_field(ENERGY_LABEL))
    assert check_backward(tree) == []  # compatible: the old check passes it

    # what the drift would have done: the v1 record decodes into v2 and is refused
    decoded = SchemaRegistry.load(tree).decode(old_bytes, expected_entity="listing")[1]
    with pytest.raises(RuleViolation) as refused:
        check_record("listing", decoded, _context())
    assert refused.value.first.rule == "unknown_field"

    (message,) = _drift(check_schemas(tree))
    assert "field 'energy_label'" in message
    assert "not in model Listing" in message
    assert main([str(tree)]) == 1


def test_schemas_check_command_fails_on_model_drift(tree: Path) -> None:
    from typer.testing import CliRunner

    from omm.cli import app

    _add_version(tree, "listing", _add_field(ENERGY_LABEL))
    result = CliRunner().invoke(app, ["schemas", "check", "--root", str(tree)])
    assert result.exit_code == 1
    assert "energy_label" in result.output


@pytest.mark.parametrize(
    ("entity", "mutate", "expected"),
    [
        (  # an enum symbol the model lacks: records holding it would be refused
            "listing",
            lambda s: _field(s, "status")["type"]["symbols"].append("SUSPENDED"),
            "field 'status' enum ListingStatus symbol(s) SUSPENDED are missing",
        ),
        (  # long -> double is an Avro promotion, but the model still says int
            "listing",
            lambda s: _field(s, "price_minor").update(type="double"),
            "field 'price_minor' type differs: schema double, model Listing int",
        ),
        (  # a default added to a required field: the model still requires it
            "listing",
            lambda s: _field(s, "currency").update(default="CNY"),
            "field 'currency' the schema gives it default 'CNY' but model Listing requires",
        ),
        (  # required -> optional with a default
            "takedown",
            lambda s: _field(s, "reason").update(type=["null", "string"], default=None),
            "field 'reason' the schema makes it optional (null allowed) but model",
        ),
        (  # nested record inside an array
            "inspection",
            lambda s: _field(s, "failed_items")["type"]["items"]["fields"].append(
                {"name": "lab", "type": ["null", "string"], "default": None, "doc": "Lab."}
            ),
            "field 'failed_items[].lab' is in the schema but not in model FailedItem",
        ),
    ],
)
def test_each_kind_of_drift_is_named(
    tree: Path, entity: str, mutate: Mutator, expected: str
) -> None:
    _add_version(tree, entity, mutate)
    assert check_backward(tree) == []
    messages = _drift(check_schemas(tree))
    assert any(expected in m for m in messages), messages


def test_a_field_only_in_the_model_is_drift(tree: Path) -> None:
    def drop(schema: dict[str, Any]) -> None:
        schema["fields"] = [f for f in schema["fields"] if f["name"] != "manufacturer"]

    _add_version(tree, "listing", drop)
    assert check_backward(tree) == []  # dropping an optional field is compatible
    (drift,) = check_models(tree)
    assert drift.field == "manufacturer"
    assert "in model Listing but not in the schema" in drift.message


def _context() -> RuleContext:
    return RuleContext(
        now=datetime(2026, 3, 3, tzinfo=UTC),
        max_future_skew=timedelta(minutes=5),
        max_price_minor=10**11,
        currencies=frozenset({"CNY"}),
        platforms=frozenset({"tmall"}),
    )


def test_a_model_integer_without_the_avro_bound_is_drift(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model that accepts 2**64 for an Avro long validates records the codec cannot
    write (found by the fuzz suite): the drift check asks for the bound."""
    from pydantic import Field

    import schemas.drift
    from schemas.models import ENTITY_MODELS, Listing

    class Unbounded(Listing):
        price_minor: int = Field(ge=0)

    monkeypatch.setattr(schemas.drift, "ENTITY_MODELS", {**ENTITY_MODELS, "listing": Unbounded})
    (drift,) = check_models()
    assert drift.field == "price_minor"
    assert "above the Avro long maximum 9223372036854775807" in drift.message
