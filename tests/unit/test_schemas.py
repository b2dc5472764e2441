"""The shipped Avro contracts: names, conventions, docs. Pure: no Kafka, no Beam."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from schemas.compat import check_backward, missing_docs
from schemas.registry import DEFAULT_ROOT, SchemaRegistry

TS = {"type": "long", "logicalType": "timestamp-millis"}

# Exact field names, in order, that other modules code against (the omm contract).
EXPECTED_FIELDS: dict[str, tuple[str, list[str]]] = {
    "feed_health": (
        "FeedHealth",
        [
            "platform",
            "feed",
            "suite",
            "window_start",
            "window_end",
            "rows",
            "success",
            "on_failure",
            "quarantined",
            "outcomes",
            "validated_at",
        ],
    ),
    "listing": (
        "Listing",
        [
            "listing_id",
            "platform",
            "seller_id",
            "seller_name",
            "title",
            "brand",
            "model",
            "gtin",
            "category",
            "manufacturer",
            "price_minor",
            "currency",
            "url",
            "status",
            "observed_at",
        ],
    ),
    "inspection": (
        "InspectionResult",
        [
            "inspection_id",
            "campaign",
            "product_name",
            "brand",
            "model",
            "gtin",
            "manufacturer",
            "batch",
            "platform",
            "seller_id",
            "listing_id",
            "verdict",
            "failed_items",
            "sample_size",
            "acceptance_number",
            "nonconforming",
            "declared_quality_level",
            "population_size",
            "agency",
            "report_no",
            "status",
            "published_at",
        ],
    ),
    "complaint": (
        "Complaint",
        [
            "complaint_id",
            "platform",
            "channel",
            "consumer_id",
            "seller_id",
            "listing_id",
            "product_name",
            "brand",
            "model",
            "gtin",
            "issue_type",
            "text",
            "status",
            "received_at",
            "resolved_at",
        ],
    ),
    "takedown": (
        "TakedownNotice",
        [
            "notice_id",
            "platform",
            "listing_id",
            "task_id",
            "action",
            "reason",
            "acted_at",
        ],
    ),
    "penalty": (
        "Penalty",
        [
            "penalty_id",
            "enterprise_id",
            "enterprise_name",
            "platform",
            "seller_id",
            "ground",
            "legal_basis",
            "decision_no",
            "authority",
            "decided_at",
            "published_at",
        ],
    ),
    "task": (
        "Task",
        [
            "task_id",
            "kind",
            "platform",
            "seller_id",
            "listing_id",
            "inspection_id",
            "product_key",
            "brand",
            "model",
            "manufacturer",
            "verdict",
            "match_method",
            "match_confidence",
            "legal_basis",
            "reason",
            "state",
            "deadline_at",
            "issued_at",
            "evidence_ref",
        ],
    ),
    "compliance_status": (
        "ComplianceStatus",
        [
            "task_id",
            "platform",
            "listing_id",
            "status",
            "deadline_at",
            "changed_at",
            "evidence_kind",
            "evidence_ref",
            "evidence_at",
        ],
    ),
    "review_decision": (
        "ReviewDecision",
        [
            "decision_id",
            "decision",
            "review_id",
            "task_id",
            "platform",
            "listing_id",
            "inspection_id",
            "brand",
            "model",
            "gtin",
            "decided_by",
            "reason",
            "decided_at",
        ],
    ),
    "scorecard": (
        "Scorecard",
        [
            "platform",
            "period_start",
            "period_end",
            "tasks_issued",
            "completed_on_time",
            "completed_late",
            "overdue",
            "relisted",
            "relisted_removed",
            "median_hours_to_takedown",
            "p90_hours_to_takedown",
            "kpi1_removed_within_deadline",
            "kpi2_relistings_removed",
            "computed_at",
        ],
    ),
    "sampling_recommendation": (
        "SamplingRecommendation",
        [
            "recommendation_id",
            "product_key",
            "brand",
            "model",
            "manufacturer",
            "complaint_count",
            "window_start",
            "window_end",
            "score",
            "rank",
            "last_sampled_at",
            "computed_at",
        ],
    ),
    "case_lead": (
        "CaseLead",
        [
            "lead_id",
            "platform",
            "seller_id",
            "violation_complaints",
            "window_start",
            "window_end",
            "threshold",
            "issue_types",
            "computed_at",
        ],
    ),
    "credit_event": (
        "CreditEvent",
        [
            "event_id",
            "enterprise_id",
            "enterprise_name",
            "event",
            "ground",
            "penalty_ids",
            "effective_at",
            "computed_at",
        ],
    ),
    "match_review": (
        "MatchReview",
        [
            "review_id",
            "platform",
            "listing_id",
            "inspection_id",
            "product_key",
            "listing_title",
            "listing_brand",
            "listing_model",
            "match_method",
            "match_confidence",
            "reason",
            "created_at",
        ],
    ),
    "rejection": (
        "Rejection",
        [
            "rejection_id",
            "platform",
            "source_topic",
            "source_partition",
            "source_offset",
            "record_key",
            "record_id",
            "entity",
            "stage",
            "error_class",
            "field",
            "value",
            "rule",
            "message",
            "rejected_at",
        ],
    ),
}

TIMESTAMP_NAMES = {"period_start", "period_end", "window_start", "window_end"}


def _all_schema_files() -> list[Path]:
    return sorted(DEFAULT_ROOT.glob("*/v*.avsc"))


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _fields(entity: str) -> dict[str, dict[str, Any]]:
    schema = _load(DEFAULT_ROOT / entity / "v1.avsc")
    return {f["name"]: f for f in schema["fields"]}


def _walk_types(node: Any) -> list[dict[str, Any]]:
    """All record and enum definitions in a schema, nested ones included."""
    out: list[dict[str, Any]] = []
    if isinstance(node, list):
        for n in node:
            out += _walk_types(n)
    elif isinstance(node, dict):
        kind = node.get("type")
        if kind in ("record", "enum"):
            out.append(node)
        if kind == "record":
            for f in node["fields"]:
                out += _walk_types(f["type"])
        elif kind == "array":
            out += _walk_types(node["items"])
        elif kind == "map":
            out += _walk_types(node["values"])
    return out


def test_every_entity_is_shipped_and_loads() -> None:
    reg = SchemaRegistry.load()
    assert sorted(reg.entities()) == sorted(EXPECTED_FIELDS)
    for entity in reg.entities():
        versions = [v.version for v in reg.versions(entity)]
        assert versions == list(range(1, len(versions) + 1))
        assert reg.current(entity).version == versions[-1]


@pytest.mark.parametrize("entity", sorted(EXPECTED_FIELDS))
def test_record_name_namespace_and_exact_field_names(entity: str) -> None:
    record_name, field_names = EXPECTED_FIELDS[entity]
    for path in sorted((DEFAULT_ROOT / entity).glob("v*.avsc")):
        schema = _load(path)
        assert schema["type"] == "record"
        assert schema["name"] == record_name
        assert schema["namespace"] == "omm"
    # v1 is frozen: exactly these names in this order. Later versions may only add.
    assert [f["name"] for f in _load(DEFAULT_ROOT / entity / "v1.avsc")["fields"]] == field_names
    current = SchemaRegistry.load().current(entity).schema
    assert [f["name"] for f in current["fields"]][: len(field_names)] == field_names


@pytest.mark.parametrize("path", _all_schema_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_field_and_named_type_has_a_doc(path: Path) -> None:
    assert missing_docs(_load(path)) == []


def test_missing_docs_finds_fields_records_and_enums_without_doc() -> None:
    schema = {
        "type": "record",
        "name": "R",
        "doc": "ok",
        "fields": [
            {"name": "a", "type": "string", "doc": "fine"},
            {"name": "b", "type": "string"},
            {
                "name": "c",
                "doc": "has doc",
                "type": {"type": "enum", "name": "E", "symbols": ["X"]},
            },
            {
                "name": "d",
                "doc": " ",
                "type": {
                    "type": "array",
                    "items": {
                        "type": "record",
                        "name": "Inner",
                        "doc": "inner",
                        "fields": [{"name": "e", "type": "int"}],
                    },
                },
            },
        ],
    }
    assert missing_docs(schema) == ["field b", "enum E (at c)", "field d", "field d[].e"]


@pytest.mark.parametrize("path", _all_schema_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_conventions_timestamps_optionals_enums(path: Path) -> None:
    schema = _load(path)
    for node in _walk_types(schema):
        if node.get("type") == "record":
            for f in node["fields"]:
                t = f["type"]
                if isinstance(t, list):
                    # Optional fields: ["null", T] with default null, nothing else.
                    assert len(t) == 2 and t[0] == "null", f["name"]
                    assert "default" in f and f["default"] is None, f["name"]
                    t = t[1]
                if f["name"].endswith("_at") or f["name"] in TIMESTAMP_NAMES:
                    assert t == TS, f"{f['name']} must be timestamp-millis"
                if t == "long" or (isinstance(t, dict) and t.get("type") == "long"):
                    # Every logical long is timestamp-millis UTC (no micros, no local-*).
                    assert not isinstance(t, dict) or t == TS, f["name"]
        if node.get("type") == "enum":
            assert node["symbols"], node["name"]
            if "default" in node:
                assert node["default"] in node["symbols"]


def test_enum_defaults_where_other_makes_sense() -> None:
    assert _fields("complaint")["issue_type"]["type"]["default"] == "OTHER"
    assert _fields("penalty")["ground"]["type"]["default"] == "OTHER"
    assert _fields("inspection")["failed_items"]["default"] == []


def test_task_verdict_reuses_the_inspection_verdict_enum() -> None:
    inspection_verdict = _fields("inspection")["verdict"]["type"]
    task_verdict = _fields("task")["verdict"]["type"][1]
    assert task_verdict["name"] == inspection_verdict["name"] == "Verdict"
    assert task_verdict["symbols"] == inspection_verdict["symbols"]
    review_method = _fields("match_review")["match_method"]["type"]
    task_method = _fields("task")["match_method"]["type"][1]
    assert review_method["name"] == task_method["name"] == "MatchMethod"
    assert (
        review_method["symbols"]
        == task_method["symbols"]
        == ["GTIN", "BRAND_MODEL", "MODEL_IN_TITLE"]
    )


def test_consumer_id_doc_states_pseudonymisation() -> None:
    doc = _fields("complaint")["consumer_id"]["doc"]
    assert "personal" in doc.lower() and "pseudonym" in doc.lower()


def test_shipped_schemas_are_backward_compatible() -> None:
    problems = check_backward()
    assert problems == [], "\n".join(map(str, problems))
