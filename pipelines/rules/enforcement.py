"""Enforcement rules (DESIGN.md §3 rules 1-5): scope, join keys, task ids, tasks.

What the stateful enforce stage keeps per product key, and what it decides
when a result meets a listing, from either side. Pure: imports neither Beam
nor Kafka, so every decision here is unit-tested without either.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from pipelines.rules.calendar import WorkingCalendar, load_calendar
from pipelines.rules.matching import (
    Decision,
    ListingView,
    Match,
    MatchingConfig,
    ProductIdentity,
    classify,
    load_matching_config,
    match,
    normalise_gtin,
    normalise_model,
)
from pipelines.rules.sampling import PopulationVerdict, SamplingPlan, verdict


@dataclass(frozen=True)
class EnforcementConfig:
    matching: MatchingConfig
    calendar: WorkingCalendar
    delist_working_days: int
    remediation_working_days: int
    objection_window: timedelta
    min_model_stem_length: int
    legal_basis: Mapping[str, str]


def load_enforcement_config(config_dir: Path) -> EnforcementConfig:
    with (config_dir / "enforcement.yaml").open(encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    deadlines = raw["deadlines"]
    return EnforcementConfig(
        matching=load_matching_config(config_dir / "matching.yaml"),
        calendar=load_calendar(config_dir / "calendars" / f"{raw['calendar']}.yaml"),
        delist_working_days=int(deadlines["delist_working_days"]),
        remediation_working_days=int(deadlines["remediation_working_days"]),
        objection_window=timedelta(days=int(raw["objection_window_days"])),
        min_model_stem_length=int(raw["min_model_stem_length"]),
        legal_basis=dict(raw["legal_basis"]),
    )


# ------------------------------------------------------------------ facts kept in state


class ListingFact(NamedTuple):
    """What enforcement keeps of one listing observation (compact: it is kept per live listing)."""

    platform: str
    listing_id: str
    seller_id: str
    title: str
    brand: str | None
    model: str | None
    gtin: str | None
    manufacturer: str | None
    active: bool
    observed_ms: int
    evidence: str  # topic/partition/offset of the observation

    @property
    def ref(self) -> tuple[str, str]:
        return (self.platform, self.listing_id)

    def view(self) -> ListingView:
        return ListingView(
            brand=self.brand,
            model=self.model,
            gtin=self.gtin,
            title=self.title,
            manufacturer=self.manufacturer,
        )


class ResultFact(NamedTuple):
    inspection_id: str
    brand: str
    model: str
    gtin: str | None
    manufacturer: str | None
    verdict: str
    status: str
    platform: str | None
    seller_id: str | None
    sample_size: int
    acceptance_number: int
    nonconforming: int
    report_no: str
    published_ms: int
    evidence: str

    def identity(self) -> ProductIdentity:
        return ProductIdentity(
            brand=self.brand, model=self.model, manufacturer=self.manufacturer, gtin=self.gtin
        )


def _ms(value: datetime | int) -> int:
    return value if isinstance(value, int) else int(value.timestamp() * 1000)


def listing_fact(record: Mapping[str, Any], evidence: str) -> ListingFact:
    return ListingFact(
        platform=record["platform"],
        listing_id=record["listing_id"],
        seller_id=record["seller_id"],
        title=record["title"],
        brand=record.get("brand"),
        model=record.get("model"),
        gtin=record.get("gtin"),
        manufacturer=record.get("manufacturer"),
        active=record["status"] == "ACTIVE",
        observed_ms=_ms(record["observed_at"]),
        evidence=evidence,
    )


def result_fact(record: Mapping[str, Any], evidence: str) -> ResultFact:
    return ResultFact(
        inspection_id=record["inspection_id"],
        brand=record["brand"],
        model=record["model"],
        gtin=record.get("gtin"),
        manufacturer=record.get("manufacturer"),
        verdict=str(record["verdict"]),
        status=str(record["status"]),
        platform=record.get("platform"),
        seller_id=record.get("seller_id"),
        sample_size=record["sample_size"],
        acceptance_number=record["acceptance_number"],
        nonconforming=record["nonconforming"],
        report_no=record["report_no"],
        published_ms=_ms(record["published_at"]),
        evidence=evidence,
    )


# ------------------------------------------------------------------ join keys


def model_stem(model: str, min_length: int) -> str:
    """Drop trailing letters of a normalised model code, never below ``min_length``.

    KX2000A and KX2000AS share the stem KX2000, so a suffix look-alike lands in
    the same key as the result and can be sent to review.
    """
    stem = model.rstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    return stem if len(stem) >= min_length else model[: max(min_length, len(stem))]


def _brand_model_key(brand: str | None, model: str | None, cfg: EnforcementConfig) -> str | None:
    if not brand or not model or not brand.strip():
        return None
    normalised = normalise_model(model)
    if not normalised:
        return None
    canonical = cfg.matching.brand_aliases.canonical_brand(brand)
    return f"bm:{canonical}|{model_stem(normalised, cfg.min_model_stem_length)}"


def _gtin_key(gtin: str | None) -> str | None:
    normalised = normalise_gtin(gtin)
    return f"gtin:{normalised}" if normalised else None


def result_keys(result: ResultFact, cfg: EnforcementConfig) -> list[str]:
    keys = [_brand_model_key(result.brand, result.model, cfg), _gtin_key(result.gtin)]
    return sorted({k for k in keys if k})


def listing_keys(listing: ListingFact, cfg: EnforcementConfig) -> list[str]:
    """Brand + model (or, without a model, brand + each model-like title token), and GTIN.

    Never brand alone: a big brand would make one hot key of all its listings.
    """
    keys: set[str | None] = {_gtin_key(listing.gtin)}
    if listing.model and normalise_model(listing.model):
        keys.add(_brand_model_key(listing.brand, listing.model, cfg))
    else:
        for token in cfg.matching.model_tokens_from_title(listing.title):
            keys.add(_brand_model_key(listing.brand, token, cfg))
    return sorted(k for k in keys if k)


def owning_key(result: ResultFact, listing: ListingFact, cfg: EnforcementConfig) -> str | None:
    """The one key under which this pair is decided (a pair may meet under several)."""
    shared = set(result_keys(result, cfg)) & set(listing_keys(listing, cfg))
    return min(shared) if shared else None


# ------------------------------------------------------------------ scope (rule 1)


class Scope(StrEnum):
    POPULATION = "POPULATION"  # every live listing of the product, every platform and seller
    SAMPLED_SELLER = "SAMPLED_SELLER"  # the sampled seller's listings of the product
    NONE = "NONE"


def scope_of(result: ResultFact) -> Scope:
    if result.status == "OVERTURNED" or result.verdict == "PASS":
        return Scope.NONE
    if result.verdict in ("THREE_NO", "COUNTERFEIT"):
        return Scope.SAMPLED_SELLER
    # FAIL: the population is "not passed" only when d > c (GB/T 28863). A failed
    # sample with d <= c is no finding for the population; the sampled seller's
    # goods still failed, so their own listings are in scope.
    plan = SamplingPlan(n=result.sample_size, c=result.acceptance_number)
    if verdict(plan, result.nonconforming) is PopulationVerdict.NOT_PASSED:
        return Scope.POPULATION
    return Scope.SAMPLED_SELLER


def in_scope(result: ResultFact, listing: ListingFact) -> bool:
    scope = scope_of(result)
    if scope is Scope.POPULATION:
        return True
    if scope is Scope.SAMPLED_SELLER:
        return listing.platform == result.platform and listing.seller_id == result.seller_id
    return False


def is_final(result: ResultFact, now: datetime, cfg: EnforcementConfig) -> bool:
    """FINAL when declared so, or once the objection window has passed without objection."""
    if result.status == "FINAL":
        return True
    if result.status == "OVERTURNED":
        return False
    published = datetime.fromtimestamp(result.published_ms / 1000, UTC)
    return now >= published + cfg.objection_window


# ------------------------------------------------------------------ tasks (rule 4)


class TaskKind(StrEnum):
    DELIST = "DELIST"
    REMEDIATION = "REMEDIATION"


def task_id(platform: str, subject: str, inspection_id: str, kind: str) -> str:
    """Deterministic: the same (platform, listing or seller, inspection, kind) is the same task."""
    digest = hashlib.sha256(f"{platform}\x1f{subject}\x1f{inspection_id}\x1f{kind}".encode())
    return f"{kind[:3]}-{digest.hexdigest()[:24]}"


@dataclass(frozen=True)
class PairOutcome:
    decision: Decision
    match: Match | None
    tasks: tuple[dict[str, Any], ...] = ()
    review: dict[str, Any] | None = None


def decide(
    result: ResultFact, listing: ListingFact, key: str, cfg: EnforcementConfig
) -> PairOutcome:
    """What a result and a live listing meeting under ``key`` produce."""
    if (
        not listing.active
        or not in_scope(result, listing)
        or owning_key(result, listing, cfg) != key
    ):
        return PairOutcome(Decision.IGNORE, None)
    found = match(result.identity(), listing.view(), cfg.matching)
    decision = classify(found, cfg.matching)
    if found is None or decision is Decision.IGNORE:
        return PairOutcome(Decision.IGNORE, found)
    issued_ms = max(result.published_ms, listing.observed_ms)
    if decision is Decision.REVIEW:
        return PairOutcome(decision, found, review=_review(result, listing, found, issued_ms, cfg))
    return PairOutcome(
        decision,
        found,
        tasks=(
            _delist(result, listing, found, issued_ms, cfg),
            _remediation(result, listing, issued_ms, cfg),
        ),
    )


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _common(result: ResultFact, cfg: EnforcementConfig) -> dict[str, Any]:
    return {
        "inspection_id": result.inspection_id,
        "product_key": cfg.matching.product_key(result.brand, result.model) or "",
        "brand": result.brand,
        "model": result.model,
        "manufacturer": result.manufacturer,
        "verdict": result.verdict,
        "state": "ISSUED",
    }


def _delist(
    result: ResultFact, listing: ListingFact, found: Match, issued_ms: int, cfg: EnforcementConfig
) -> dict[str, Any]:
    issued = _at(issued_ms)
    return {
        **_common(result, cfg),
        "task_id": task_id(listing.platform, listing.listing_id, result.inspection_id, "DELIST"),
        "kind": "DELIST",
        "platform": listing.platform,
        "seller_id": listing.seller_id,
        "listing_id": listing.listing_id,
        "match_method": found.method.value,
        "match_confidence": round(found.confidence, 4),
        "legal_basis": cfg.legal_basis[result.verdict],
        "reason": (
            f"{result.verdict} result {result.inspection_id} (report {result.report_no}, "
            f"{result.status.lower()}, scope {scope_of(result).value.lower()}) matches this "
            f"listing by {found.method.value} ({found.confidence:.2f}): {found.reason}"
        ),
        "deadline_at": cfg.calendar.add_working_days(issued, cfg.delist_working_days).at,
        "issued_at": issued,
        "evidence_ref": f"inspection {result.evidence}; listing {listing.evidence}",
    }


def _remediation(
    result: ResultFact, listing: ListingFact, issued_ms: int, cfg: EnforcementConfig
) -> dict[str, Any]:
    issued = _at(issued_ms)
    return {
        **_common(result, cfg),
        "task_id": task_id(
            listing.platform, listing.seller_id, result.inspection_id, "REMEDIATION"
        ),
        "kind": "REMEDIATION",
        "platform": listing.platform,
        "seller_id": listing.seller_id,
        "listing_id": None,
        "match_method": None,
        "match_confidence": None,
        "legal_basis": cfg.legal_basis["REMEDIATION"],
        "reason": (
            f"seller {listing.seller_id} sells a product of {result.verdict} result "
            f"{result.inspection_id}: submit the remediation plan"
        ),
        "deadline_at": cfg.calendar.add_working_days(issued, cfg.remediation_working_days).at,
        "issued_at": issued,
        "evidence_ref": f"inspection {result.evidence}; first listing {listing.evidence}",
    }


def _review(
    result: ResultFact, listing: ListingFact, found: Match, issued_ms: int, cfg: EnforcementConfig
) -> dict[str, Any]:
    return {
        "review_id": task_id(listing.platform, listing.listing_id, result.inspection_id, "REVIEW"),
        "platform": listing.platform,
        "listing_id": listing.listing_id,
        "inspection_id": result.inspection_id,
        "product_key": cfg.matching.product_key(result.brand, result.model) or "",
        "listing_title": listing.title,
        "listing_brand": listing.brand,
        "listing_model": listing.model,
        "match_method": found.method.value,
        "match_confidence": round(found.confidence, 4),
        "reason": found.reason,
        "created_at": _at(issued_ms),
    }


def withdrawn(task: Mapping[str, Any], result: ResultFact) -> dict[str, Any]:
    """The task as withdrawn because its result was overturned on re-inspection."""
    return {
        **task,
        "state": "WITHDRAWN",
        "reason": (
            f"withdrawn: result {result.inspection_id} was overturned on re-inspection "
            f"(report {result.report_no}); the listing may be restored"
        ),
        "evidence_ref": f"inspection {result.evidence}",
    }


def withdrawals(
    overturned: ResultFact,
    listing: ListingFact,
    key: str,
    cfg: EnforcementConfig,
    issued_as: ResultFact | None = None,
) -> list[dict[str, Any]]:
    """The tasks an overturned result had caused for this listing, as withdrawn.

    Decided from event times, not from what this run happened to issue, so a
    replay that sees the overturn before the listing still withdraws: a task
    existed if the listing was live before the overturn was published (give
    the listing's earliest ACTIVE observation, see :func:`ever_active`).
    ``issued_as`` is the version of the result that issued the tasks, so the
    withdrawn tasks keep their original dates; without it they are rebuilt from
    the overturn record.

    Known approximation: a listing live and removed again entirely before the
    original result was published gets a WITHDRAWN record for a task it never
    had; harmless for a platform (nothing to restore), and rare.
    """
    if not listing.active or listing.observed_ms > overturned.published_ms:
        return []
    basis = (issued_as or overturned)._replace(status="PRELIMINARY")
    return [withdrawn(t, overturned) for t in decide(basis, listing, key, cfg).tasks]


def _latest_key(obs: ListingFact) -> tuple[int, int, str, str]:
    # ties on the millisecond: REMOVED wins, then the later position, then the
    # content, so the fold never depends on the order state hands observations back
    return (obs.observed_ms, 0 if obs.active else 1, obs.evidence, repr(obs))


def ever_active(observations: Iterable[ListingFact]) -> dict[tuple[str, str], ListingFact]:
    """Earliest ACTIVE observation per listing, whatever happened to it since.

    The earliest, because what an overturn must undo depends on whether the
    listing was on sale before it, not on how it looks now.
    """
    first: dict[tuple[str, str], ListingFact] = {}
    for obs in observations:
        if not obs.active:
            continue
        seen = first.get(obs.ref)
        if seen is None or _latest_key(obs) < _latest_key(seen):
            first[obs.ref] = obs
    return first


def latest_observations(
    observations: Iterable[ListingFact],
) -> dict[tuple[str, str], ListingFact]:
    latest: dict[tuple[str, str], ListingFact] = {}
    for obs in observations:
        seen = latest.get(obs.ref)
        if seen is None or _latest_key(obs) > _latest_key(seen):
            latest[obs.ref] = obs
    return latest


def live_listings(observations: Iterable[ListingFact]) -> dict[tuple[str, str], ListingFact]:
    """Latest observation per listing, kept only when ACTIVE. Order-independent."""
    return {ref: obs for ref, obs in latest_observations(observations).items() if obs.active}


def compacted(observations: list[ListingFact]) -> list[ListingFact]:
    """What the state must keep: each listing's latest and earliest ACTIVE observation."""
    keep = {*latest_observations(observations).values(), *ever_active(observations).values()}
    return sorted(keep, key=_latest_key)
