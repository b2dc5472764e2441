"""A regulator's decisions on review items (ReviewDecision on omm.review.decisions).

Two kinds of item wait for a person: an uncertain match (a MatchReview, decided
CONFIRM or REJECT) and a task its platform DISPUTED (decided UPHOLD or
WITHDRAW). A decision is a record, never an edit: the latest per item wins, by
when it was decided (a total order, so every reader picks the same one
whatever order it read them in).

This module holds what the decisions are as values: the fact enforce keeps of
one, which decision is in force, the record a command publishes, and what is
still undecided. Where a decision takes effect (tasks) is
:mod:`pipelines.rules.enforcement` (CONFIRM, REJECT) and the compliance rules
(UPHOLD, WITHDRAW). Pure: imports neither Beam nor Kafka.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple


class DecisionKind(StrEnum):
    CONFIRM = "CONFIRM"  # the reviewed match is right: issue the task
    REJECT = "REJECT"  # it is not: the pair never becomes a task
    UPHOLD = "UPHOLD"  # the disputed task stands
    WITHDRAW = "WITHDRAW"  # the disputed task is withdrawn


MATCH_DECISIONS = frozenset({DecisionKind.CONFIRM, DecisionKind.REJECT})
DISPUTE_DECISIONS = frozenset({DecisionKind.UPHOLD, DecisionKind.WITHDRAW})
DISPUTED = "DISPUTED"  # ComplianceStatus.status of a task its platform contests


class DecisionFact(NamedTuple):
    """What enforce keeps of one decision (compact: it is kept in state per join key)."""

    decision_id: str
    kind: DecisionKind
    review_id: str | None
    task_id: str | None
    platform: str
    listing_id: str
    inspection_id: str | None
    decided_by: str
    reason: str
    decided_ms: int
    # the inspected product: where the reviewed pair is decided (enforcement.decision_keys)
    brand: str | None
    model: str | None
    gtin: str | None
    evidence: str  # topic/partition/offset of the decision

    @property
    def decides_a_match(self) -> bool:
        """CONFIRM or REJECT of a named review: enforce's to act on (disputes are comply's)."""
        return (
            self.kind in MATCH_DECISIONS
            and self.review_id is not None
            and self.inspection_id is not None
        )

    @property
    def subject(self) -> str:
        """The review or task decided on: the record's Kafka key, and what "latest" is per."""
        return self.review_id or self.task_id or ""

    def decided_at(self) -> datetime:
        return datetime.fromtimestamp(self.decided_ms / 1000, UTC)


def _ms(value: datetime | int) -> int:
    return value if isinstance(value, int) else int(value.timestamp() * 1000)


def decision_fact(record: Mapping[str, Any], evidence: str) -> DecisionFact:
    return DecisionFact(
        decision_id=record["decision_id"],
        kind=DecisionKind(str(record["decision"])),
        review_id=record.get("review_id"),
        task_id=record.get("task_id"),
        platform=record["platform"],
        listing_id=record["listing_id"],
        inspection_id=record.get("inspection_id"),
        decided_by=record["decided_by"],
        reason=record["reason"],
        decided_ms=_ms(record["decided_at"]),
        brand=record.get("brand"),
        model=record.get("model"),
        gtin=record.get("gtin"),
        evidence=evidence,
    )


def decision_order(decision: DecisionFact) -> tuple[Any, ...]:
    """Latest wins by this order: when it was decided, then its id and content, and the
    Kafka position last (a copy of the same decision elsewhere must sort the same)."""
    return (
        decision.decided_ms,
        decision.decision_id,
        repr(decision._replace(evidence="")),
        decision.evidence,
    )


def supersedes(decision: DecisionFact, previous: DecisionFact | None) -> bool:
    """Whether ``decision`` replaces ``previous`` as the one in force for its item."""
    return previous is None or decision_order(decision) > decision_order(previous)


def in_force(decisions: Iterable[DecisionFact]) -> dict[str, DecisionFact]:
    """The latest decision per item (review or task id), whatever order they come in."""
    latest: dict[str, DecisionFact] = {}
    for decision in decisions:
        if supersedes(decision, latest.get(decision.subject)):
            latest[decision.subject] = decision
    return latest


# ------------------------------------------------------------------ what a command publishes


def match_decision(
    kind: DecisionKind,
    review: Mapping[str, Any],
    result: Mapping[str, Any],
    *,
    decided_by: str,
    reason: str,
    decided_at: datetime,
    decision_id: str,
) -> dict[str, Any]:
    """The ReviewDecision record deciding ``review`` (a MatchReview record); ``result`` is
    the inspection result it names (its latest version), whose product routes it."""
    if kind not in MATCH_DECISIONS:
        raise ValueError(f"{kind} decides a disputed task, not a match review")
    return {
        "decision_id": decision_id,
        "decision": kind.value,
        "review_id": review["review_id"],
        "task_id": None,
        "platform": review["platform"],
        "listing_id": review["listing_id"],
        "inspection_id": review["inspection_id"],
        "brand": result["brand"],
        "model": result["model"],
        "gtin": result.get("gtin"),
        "decided_by": decided_by,
        "reason": reason,
        "decided_at": decided_at,
    }


def dispute_decision(
    kind: DecisionKind,
    status: Mapping[str, Any],
    listing_id: str,
    inspection_id: str | None,
    *,
    decided_by: str,
    reason: str,
    decided_at: datetime,
    decision_id: str,
) -> dict[str, Any]:
    """The ReviewDecision record deciding the disputed task of ``status`` (its latest
    ComplianceStatus record)."""
    if kind not in DISPUTE_DECISIONS:
        raise ValueError(f"{kind} decides a match review, not a disputed task")
    return {
        "decision_id": decision_id,
        "decision": kind.value,
        "review_id": None,
        "task_id": status["task_id"],
        "platform": status["platform"],
        "listing_id": listing_id,
        "inspection_id": inspection_id,
        "brand": None,
        "model": None,
        "gtin": None,
        "decided_by": decided_by,
        "reason": reason,
        "decided_at": decided_at,
    }


# ------------------------------------------------------------------ what is still undecided


def latest_by(records: Iterable[Mapping[str, Any]], key: str) -> dict[str, Mapping[str, Any]]:
    """The last record per ``key`` in the order given (a topic's order: one key, one partition)."""
    latest: dict[str, Mapping[str, Any]] = {}
    for record in records:
        latest[record[key]] = record
    return latest


def undecided_reviews(
    reviews: Iterable[Mapping[str, Any]], decisions: Iterable[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """The latest MatchReview per review id that no CONFIRM or REJECT has decided yet.

    Any decision takes a review off the list: deciding again (the latest wins) is
    for someone who knows the id, not a list of work waiting.
    """
    decided = {
        d["review_id"]
        for d in decisions
        if d.get("review_id") and DecisionKind(str(d["decision"])) in MATCH_DECISIONS
    }
    pending = [r for rid, r in latest_by(reviews, "review_id").items() if rid not in decided]
    return sorted(pending, key=lambda r: (_ms(r["created_at"]), r["review_id"]))


def undecided_disputes(
    statuses: Iterable[Mapping[str, Any]], decisions: Iterable[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """Tasks whose latest ComplianceStatus is DISPUTED with no UPHOLD or WITHDRAW decided
    at or after it (a platform disputing again after a decision is a new dispute)."""
    last_decided: dict[str, int] = {}
    for d in decisions:
        if d.get("task_id") and DecisionKind(str(d["decision"])) in DISPUTE_DECISIONS:
            at = _ms(d["decided_at"])
            last_decided[d["task_id"]] = max(at, last_decided.get(d["task_id"], at))
    pending = [
        s
        for tid, s in latest_by(statuses, "task_id").items()
        if s["status"] == DISPUTED and last_decided.get(tid, -1) < _ms(s["changed_at"])
    ]
    return sorted(pending, key=lambda s: (_ms(s["changed_at"]), s["task_id"]))
