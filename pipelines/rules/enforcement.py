"""Enforcement rules (docs/design.md §3 rules 1-5): scope, join keys, task ids, tasks.

What the stateful enforce stage keeps per product key, and what it decides
when a result meets a listing, from either side. Pure: imports neither Beam
nor Kafka, so every decision here is unit-tested without either.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
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
from pipelines.rules.review import DecisionFact, DecisionKind, decision_order, supersedes
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


def gtin_key(gtin: str | None) -> str | None:
    """A product's key by its GTIN (GTIN-14 form), when the GTIN is valid."""
    normalised = normalise_gtin(gtin)
    return f"gtin:{normalised}" if normalised else None


def result_keys(result: ResultFact, cfg: EnforcementConfig) -> list[str]:
    keys = [_brand_model_key(result.brand, result.model, cfg), gtin_key(result.gtin)]
    return sorted({k for k in keys if k})


def listing_keys(listing: ListingFact, cfg: EnforcementConfig) -> list[str]:
    """Brand + model (or, without a model, brand + each model-like title token), and GTIN.

    Never brand alone: a big brand would make one hot key of all its listings.
    """
    keys: set[str | None] = {gtin_key(listing.gtin)}
    if listing.model and normalise_model(listing.model):
        keys.add(_brand_model_key(listing.brand, listing.model, cfg))
    else:
        for token in cfg.matching.model_tokens_from_title(listing.title):
            keys.add(_brand_model_key(listing.brand, token, cfg))
    return sorted(k for k in keys if k)


def decision_keys(decision: DecisionFact, cfg: EnforcementConfig) -> list[str]:
    """Where a decision on a match must go: every join key of the inspected product it
    names. The pair it decides is owned by one of them (:func:`owning_key` is among
    the result's keys), and under the others it meets no pair and does nothing."""
    keys = [_brand_model_key(decision.brand, decision.model, cfg), gtin_key(decision.gtin)]
    return sorted({k for k in keys if k})


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


def review_id(platform: str, listing_id: str, inspection_id: str) -> str:
    """The MatchReview id of a (listing, result) pair; decisions on the pair name it."""
    return task_id(platform, listing_id, inspection_id, "REVIEW")


@dataclass(frozen=True)
class PairOutcome:
    decision: Decision
    match: Match | None
    tasks: tuple[dict[str, Any], ...] = ()
    review: dict[str, Any] | None = None


def decide(
    result: ResultFact,
    listing: ListingFact,
    key: str,
    cfg: EnforcementConfig,
    issued_ms: int | None = None,
) -> PairOutcome:
    """What a result and a live listing meeting under ``key`` produce.

    ``issued_ms``: the event time at which the pair met (the result's publication
    if the listing was live then, else the observation that put it on sale
    after). Without it, the later of the two event times.
    """
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
    if issued_ms is None:
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
        "review_id": review_id(listing.platform, listing.listing_id, result.inspection_id),
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


# ------------------------------------------------------------------ a regulator's decision
#
# A CONFIRM or REJECT (pipelines.rules.review) stands for its pair of listing and
# result from whenever it is read: whichever of the decision and the pair is read
# first, the pair is decided with the decision in force when it is, so every read
# order ends with the same tasks.


def decide_ruled(
    result: ResultFact,
    listing: ListingFact,
    key: str,
    cfg: EnforcementConfig,
    decisions: Mapping[str, DecisionFact],
    issued_ms: int | None = None,
) -> PairOutcome:
    """:func:`decide`, then the regulator's decision in force on the pair, if any.

    REJECT: the pair never becomes a task, even if a later observation of the
    listing would match it confidently (the regulator has the last word on the
    pair; a later CONFIRM takes it back). CONFIRM of an uncertain match: the
    tasks a confident match would have produced, with the same ids, issued
    when the match was confirmed (the platform cannot act on it before: its
    deadline counts from then) or, for a pair that meets only after the
    decision, when it meets. The review is published either way, so what is
    published does not depend on whether the decision was read first.
    """
    if issued_ms is None:
        issued_ms = max(result.published_ms, listing.observed_ms)
    outcome = decide(result, listing, key, cfg, issued_ms)
    if outcome.decision is Decision.IGNORE:
        return outcome
    ruling = decisions.get(review_id(listing.platform, listing.listing_id, result.inspection_id))
    if ruling is None:
        return outcome
    if ruling.kind is DecisionKind.REJECT:
        return PairOutcome(outcome.decision, outcome.match, review=outcome.review)
    if (
        ruling.kind is DecisionKind.CONFIRM
        and outcome.match
        and outcome.decision is Decision.REVIEW
    ):
        tasks = confirmed(result, listing, outcome.match, issued_ms, ruling, cfg)
        return PairOutcome(outcome.decision, outcome.match, tasks=tasks, review=outcome.review)
    return outcome  # confirmed, and since matched confidently: the usual tasks


_DECIDED = {DecisionKind.CONFIRM: "confirmed", DecisionKind.REJECT: "rejected"}


def _on_review(decision: DecisionFact) -> str:
    return (
        f"{_DECIDED[decision.kind]} on review by {decision.decided_by} at "
        f"{decision.decided_at().isoformat()}: {decision.reason}"
    )


def confirmed(
    result: ResultFact,
    listing: ListingFact,
    found: Match,
    met_ms: int,
    decision: DecisionFact,
    cfg: EnforcementConfig,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The DELIST and REMEDIATION tasks of an uncertain match a regulator confirmed.

    Ids, match method and confidence as the match made them; issued at the later
    of the meeting and the decision; the reason says who confirmed it and why.
    """
    issued_ms = max(met_ms, decision.decided_ms)
    delist = _delist(result, listing, found, issued_ms, cfg)
    remediation = _remediation(result, listing, issued_ms, cfg)
    on_review = _on_review(decision)
    decision_ref = f"; decision {decision.evidence}"
    return (
        {
            **delist,
            "reason": f"{delist['reason']}; below the automatic threshold, {on_review}",
            "evidence_ref": delist["evidence_ref"] + decision_ref,
        },
        {
            **remediation,
            "reason": (
                f"{remediation['reason']} (listing {listing.platform}/{listing.listing_id} "
                f"{on_review})"
            ),
            "evidence_ref": remediation["evidence_ref"] + decision_ref,
        },
    )


def rejected(task: Mapping[str, Any], decision: DecisionFact) -> dict[str, Any]:
    """A task withdrawn because the regulator rejected the match it came from."""
    return {
        **task,
        "state": "WITHDRAWN",
        "reason": (
            f"withdrawn: the match of listing {decision.platform}/{decision.listing_id} with "
            f"result {decision.inspection_id} was {_on_review(decision)}"
        ),
        "evidence_ref": f"decision {decision.evidence}",
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
    decisions: Mapping[str, DecisionFact] | None = None,
) -> list[dict[str, Any]]:
    """The tasks an overturned result had caused for this listing, as withdrawn.

    Decided from event times, not from what this run happened to issue, so a
    replay that sees the overturn before the listing still withdraws: a task
    existed if the listing was live before the overturn was published (give
    the listing's earliest ACTIVE observation, see :func:`ever_active`).
    ``issued_as`` is the version of the result that issued the tasks, so the
    withdrawn tasks keep their original dates; without it they are rebuilt from
    the overturn record. ``decisions``: the regulator's decisions in force (a
    confirmed match had tasks too, a rejected one none).

    Known approximation: a listing live and removed again entirely before the
    original result was published gets a WITHDRAWN record for a task it never
    had; harmless for a platform (nothing to restore), and rare.
    """
    if not listing.active or listing.observed_ms > overturned.published_ms:
        return []
    basis = (issued_as or overturned)._replace(status="PRELIMINARY")
    outcome = decide_ruled(basis, listing, key, cfg, decisions or {})
    return [withdrawn(t, overturned) for t in outcome.tasks]


def _latest_key(obs: ListingFact) -> tuple[int, int, tuple[str, ...], str]:
    # ties on the millisecond: REMOVED wins, then the content, then the position
    # (last: the same inputs written to other partitions must choose the same
    # observation), so the fold never depends on the order observations arrive in
    return (obs.observed_ms, 0 if obs.active else 1, _content(obs), obs.evidence)


def _content(obs: ListingFact) -> tuple[str, ...]:
    return (
        obs.platform,
        obs.listing_id,
        obs.seller_id,
        obs.title,
        obs.brand or "",
        obs.model or "",
        obs.gtin or "",
        obs.manufacturer or "",
    )


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


# ------------------------------------------------------------------ the per-key fold
#
# What the enforce stage does per join key, as a pure function: (state, event) ->
# (what to remember, what to emit). Decisions follow event time (a listing's
# observed_at, a result's published_at), not the order the events are read in:
#
# - a result meets a listing if the listing was live when the result was
#   published (its latest observation at or before published_at is ACTIVE), or
#   at the first observation after that puts it (back) on sale; the task is
#   issued at that moment, from the observation that began the listing's live
#   spell (the earliest, so a replay picks the same one);
# - fed in event-time order (:func:`event_order`; the bounded stage sorts a
#   key's events before folding them), the emitted records are a function of
#   the inputs alone, whatever the partitions and read order;
# - fed out of order (the streaming stage cannot wait for the future), an
#   observation older than a result already decided is late evidence: a listing
#   then known to have been live at publication gets its task, and a task the
#   late evidence shows was never due is withdrawn with a reason saying so;
# - a regulator's decision on a pair (CONFIRM, REJECT) stands from when it is
#   read: it is folded at its decision time like any event, and every pair
#   decided after it is decided with it (see :func:`decide_ruled`).

TASK = "task"
REVIEW = "review"
_REVIEW_STATE = "REVIEW"

Emitted = tuple[str, dict[str, Any]]  # (TASK or REVIEW, record)
JoinEvent = ListingFact | ResultFact | DecisionFact


@dataclass(frozen=True)
class JoinState:
    """What one key remembers.

    ``observations`` is any re-iterable (the streaming stage passes a lazy view
    of its state bag: the fold reads it only for a new result or late evidence).
    ``issued``: the latest record emitted per task id (review ids map to the
    review), so each (task, state) is emitted once and a withdrawal repeats the
    task it withdraws field for field.
    ``decisions``: the regulator's decision in force per review id.
    """

    observations: Iterable[ListingFact] = ()
    results: Mapping[str, ResultFact] = field(default_factory=dict)
    issued_as: Mapping[str, ResultFact] = field(default_factory=dict)
    issued: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    decisions: Mapping[str, DecisionFact] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """One event's effect: records to emit and what to add to the state."""

    emitted: tuple[Emitted, ...] = ()
    observation: ListingFact | None = None
    result: ResultFact | None = None
    issued_as: ResultFact | None = None
    decision: DecisionFact | None = None  # the new decision in force on its review


def event_order(event: JoinEvent) -> tuple[Any, ...]:
    """A total order by event time: observations before a result of the same
    millisecond (a listing removed at the very moment of publication was not on
    sale), a decision after both, then content, and the Kafka position last."""
    if isinstance(event, ListingFact):
        return (event.observed_ms, 0, *_latest_key(event)[1:])
    if isinstance(event, DecisionFact):
        return (event.decided_ms, 2, *decision_order(event)[1:])
    return (event.published_ms, 1, *_result_order(event))


_STATUS_RANK = {"PRELIMINARY": 0, "FINAL": 1, "OVERTURNED": 2}


def _result_order(result: ResultFact) -> tuple[Any, ...]:
    return (
        result.inspection_id,
        _STATUS_RANK.get(result.status, 3),
        repr(result._replace(evidence="")),
        result.evidence,
    )


def timeline(observations: Iterable[ListingFact]) -> list[ListingFact]:
    """One listing's observations reduced to the changes, in event-time order.

    An observation that repeats the one before it (same status, same listing
    content) changes nothing: the earlier one stands for the whole spell. So
    dropping repeats (to bound the state) never changes a decision.
    """
    changes: list[ListingFact] = []
    for obs in sorted(observations, key=_latest_key):
        if changes and changes[-1].observed_ms == obs.observed_ms:
            # same millisecond: the later in the order wins the instant
            if changes[-1].active == obs.active and _content(changes[-1]) == _content(obs):
                continue
            changes.pop()
            if changes and _same_spell(changes[-1], obs):
                continue
            changes.append(obs)
        elif not changes or not _same_spell(changes[-1], obs):
            changes.append(obs)
    return changes


def _same_spell(before: ListingFact, after: ListingFact) -> bool:
    return before.active == after.active and _content(before) == _content(after)


def timelines(observations: Iterable[ListingFact]) -> dict[tuple[str, str], list[ListingFact]]:
    """Every listing's :func:`timeline`, by (platform, listing id)."""
    by_ref: dict[tuple[str, str], list[ListingFact]] = {}
    for obs in observations:
        by_ref.setdefault(obs.ref, []).append(obs)
    return {ref: timeline(obs) for ref, obs in sorted(by_ref.items())}


def live_spells(changes: list[ListingFact], since_ms: int) -> list[tuple[int, ListingFact]]:
    """(from when, observation) of each live spell of a listing at or after ``since_ms``.

    The spell in force at ``since_ms`` counts from ``since_ms``; later ones from
    their own observation.
    """
    spells: list[tuple[int, ListingFact]] = []
    in_force: ListingFact | None = None
    for obs in changes:
        if obs.observed_ms <= since_ms:
            in_force = obs
            continue
        if obs.active:
            spells.append((obs.observed_ms, obs))
    if in_force is not None and in_force.active:
        spells.insert(0, (since_ms, in_force))
    return spells


def compact_observations(observations: Iterable[ListingFact]) -> list[ListingFact]:
    """What the state must keep of the observations: each listing's changes."""
    return [obs for changes in timelines(observations).values() for obs in changes]


class _Emitter:
    """Collects one step's records, each (task, state) and each review once."""

    def __init__(self, issued: Mapping[str, Mapping[str, Any]]) -> None:
        self._issued = issued
        self._new: dict[str, Mapping[str, Any]] = {}
        self.emitted: list[Emitted] = []

    def latest(self, record_id: str) -> Mapping[str, Any] | None:
        return self._new.get(record_id) or self._issued.get(record_id)

    def task(self, task: dict[str, Any]) -> None:
        seen = self.latest(task["task_id"])
        if seen is not None and seen["state"] == task["state"]:
            return
        self._new[task["task_id"]] = task
        self.emitted.append((TASK, task))

    def review(self, review: dict[str, Any]) -> None:
        if self.latest(review["review_id"]) is not None:
            return
        self._new[review["review_id"]] = {"state": _REVIEW_STATE}
        self.emitted.append((REVIEW, review))

    def outcome(self, outcome: PairOutcome) -> None:
        for task in outcome.tasks:
            self.task(task)
        if outcome.review is not None:
            self.review(outcome.review)

    def issued_tasks(self) -> list[Mapping[str, Any]]:
        merged = {**self._issued, **self._new}
        return [t for _, t in sorted(merged.items()) if t.get("state") == "ISSUED"]


def step(key: str, state: JoinState, event: JoinEvent, cfg: EnforcementConfig) -> Step:
    """The effect of one event on one key (pure; see the section comment)."""
    if isinstance(event, ListingFact):
        return _on_listing(key, state, event, cfg)
    if isinstance(event, DecisionFact):
        return _on_decision(key, state, event, cfg)
    return _on_result(key, state, event, cfg)


def apply(state: JoinState, change: Step) -> JoinState:
    """The state after ``change`` (the streaming stage writes the same to Beam state)."""
    results, issued_as = dict(state.results), dict(state.issued_as)
    if change.result is not None:
        results[change.result.inspection_id] = change.result
    if change.issued_as is not None:
        issued_as[change.issued_as.inspection_id] = change.issued_as
    decisions = dict(state.decisions)
    if change.decision is not None:
        decisions[change.decision.subject] = change.decision
    issued = dict(state.issued)
    for kind, record in change.emitted:
        if kind == TASK:
            issued[record["task_id"]] = record
        else:
            issued[record["review_id"]] = {"state": _REVIEW_STATE}
    observations = tuple(state.observations)
    if change.observation is not None:
        observations = (*observations, change.observation)
    return JoinState(observations, results, issued_as, issued, decisions)


def fold(
    key: str, events: Iterable[JoinEvent], cfg: EnforcementConfig, state: JoinState | None = None
) -> tuple[JoinState, list[Emitted]]:
    """Every record one key emits for ``events`` taken in the order given.

    Equivalent to threading :func:`apply` through :func:`step`, without copying
    the state at every event (a hot key holds thousands of observations).
    """
    start = state or JoinState()
    observations = list(start.observations)
    results, issued_as = dict(start.results), dict(start.issued_as)
    issued: dict[str, Mapping[str, Any]] = dict(start.issued)
    decisions = dict(start.decisions)
    view = JoinState(observations, results, issued_as, issued, decisions)
    emitted: list[Emitted] = []
    for event in events:
        change = step(key, view, event, cfg)
        emitted.extend(change.emitted)
        if change.observation is not None:
            observations.append(change.observation)
        if change.result is not None:
            results[change.result.inspection_id] = change.result
        if change.issued_as is not None:
            issued_as[change.issued_as.inspection_id] = change.issued_as
        if change.decision is not None:
            decisions[change.decision.subject] = change.decision
        for kind, record in change.emitted:
            if kind == TASK:
                issued[record["task_id"]] = record
            else:
                issued[record["review_id"]] = {"state": _REVIEW_STATE}
    return JoinState(tuple(observations), results, issued_as, issued, decisions), emitted


def fold_in_event_order(
    key: str, events: Iterable[JoinEvent], cfg: EnforcementConfig
) -> list[Emitted]:
    """What one key emits for ``events``, independent of the order they were read in.

    Observations of one listing in the same millisecond are one instant: only
    the one that wins it (see :func:`timeline`) is folded, so a listing put on
    sale and removed at the same moment is not issued a task in between.
    """
    results: list[JoinEvent] = []
    instants: dict[tuple[str, str, int], list[ListingFact]] = {}
    for event in events:
        if isinstance(event, ListingFact):
            instants.setdefault((*event.ref, event.observed_ms), []).append(event)
        else:
            results.append(event)
    winners = [timeline(same)[-1] for same in instants.values()]
    return fold(key, sorted([*winners, *results], key=event_order), cfg)[1]


def _on_listing(key: str, state: JoinState, obs: ListingFact, cfg: EnforcementConfig) -> Step:
    if not state.results:
        return Step(observation=obs)  # the common case: nothing published for this product
    out = _Emitter(state.issued)
    history: list[ListingFact] | None = None
    for result_id, res in sorted(state.results.items()):
        if res.status == "OVERTURNED":
            # a listing first seen after the overturn: its tasks, if it had any, are withdrawn
            issued_as = state.issued_as.get(result_id)
            for task in withdrawals(res, obs, key, cfg, issued_as, state.decisions):
                out.task(task)
            continue
        if scope_of(res) is Scope.NONE:
            continue
        if obs.observed_ms > res.published_ms:
            if obs.active:
                out.outcome(
                    decide_ruled(res, obs, key, cfg, state.decisions, issued_ms=obs.observed_ms)
                )
            continue
        # Late evidence: this observation is at or before a result already decided.
        if history is None:
            history = timeline([o for o in state.observations if o.ref == obs.ref] + [obs])
        outcomes = [
            decide_ruled(res, basis, key, cfg, state.decisions, issued_ms=since)
            for since, basis in live_spells(history, res.published_ms)
        ]
        for outcome in outcomes:
            out.outcome(outcome)
        delist_id = task_id(obs.platform, obs.listing_id, res.inspection_id, "DELIST")
        if not any(t["task_id"] == delist_id for o in outcomes for t in o.tasks):
            _withdraw_late(res, obs, delist_id, out)
    return Step(tuple(out.emitted), observation=obs)


def _withdraw_late(res: ResultFact, evidence: ListingFact, delist_id: str, out: _Emitter) -> None:
    """Withdraw what a result issued for a listing that late evidence shows was never due."""
    _withdraw_pair(delist_id, evidence.seller_id, out, lambda t: late_withdrawn(t, res, evidence))


def _withdraw_pair(
    delist_id: str,
    seller_id: str,
    out: _Emitter,
    withdraw: Callable[[Mapping[str, Any]], dict[str, Any]],
) -> None:
    """Withdraw a listing's DELIST if in force, and its seller's REMEDIATION for the same
    result unless another of the seller's DELISTs for it stays in force."""
    delist = out.latest(delist_id)
    if delist is None or delist["state"] != "ISSUED":
        return
    out.task(withdraw(delist))
    platform, inspection_id = delist["platform"], delist["inspection_id"]
    remediation = out.latest(task_id(platform, seller_id, inspection_id, "REMEDIATION"))
    still_delisting = any(
        t["kind"] == "DELIST"
        and t["inspection_id"] == inspection_id
        and t["platform"] == platform
        and t["seller_id"] == seller_id
        for t in out.issued_tasks()
    )
    if remediation is not None and remediation["state"] == "ISSUED" and not still_delisting:
        out.task(withdraw(remediation))


def late_withdrawn(
    task: Mapping[str, Any], result: ResultFact, evidence: ListingFact
) -> dict[str, Any]:
    """A task withdrawn because an observation read after it shows it was never due."""
    seen = (
        "was already removed"
        if not evidence.active
        else f"was already listed as something else (model {evidence.model!r})"
    )
    return {
        **task,
        "state": "WITHDRAWN",
        "reason": (
            f"withdrawn: listing {evidence.platform}/{evidence.listing_id} {seen} at "
            f"{_at(evidence.observed_ms).isoformat()}, before result {result.inspection_id} "
            f"was published at {_at(result.published_ms).isoformat()}; that observation "
            "was read after the task was issued"
        ),
        "evidence_ref": f"listing {evidence.evidence}",
    }


def _on_result(key: str, state: JoinState, res: ResultFact, cfg: EnforcementConfig) -> Step:
    previous = state.results.get(res.inspection_id)
    if previous is not None and event_order(res) < event_order(previous):
        # an older version read after a newer one (versions share a partition, so
        # only if the feed sent them out of order): the newer stands; an overturn
        # keeps its dates for withdrawals
        stale_basis = (
            res
            if previous.status == "OVERTURNED" and res.inspection_id not in state.issued_as
            else None
        )
        return Step(issued_as=stale_basis)
    new_issued_as = None
    if (
        res.status == "OVERTURNED"
        and previous is not None
        and res.inspection_id not in state.issued_as
    ):
        new_issued_as = previous  # the version that issued the tasks: withdrawals keep its dates
    out = _Emitter(state.issued)
    if res.status == "OVERTURNED":
        issuing = state.issued_as.get(res.inspection_id) or new_issued_as
        if issuing is not None:
            # withdraw exactly what was issued, field for field
            for task in out.issued_tasks():
                if task["inspection_id"] == res.inspection_id:
                    out.task(withdrawn(task, res))
        else:
            # the issuing version was never seen (e.g. compacted away): rebuild from event times
            for listing in ever_active(compact_observations(state.observations)).values():
                for task in withdrawals(res, listing, key, cfg, decisions=state.decisions):
                    out.task(task)
        return Step(tuple(out.emitted), result=res, issued_as=new_issued_as)
    if scope_of(res) is not Scope.NONE:
        meetings: list[tuple[int, tuple[Any, ...], ListingFact]] = []
        for changes in timelines(state.observations).values():
            for since, basis in live_spells(changes, res.published_ms):
                meetings.append((since, _latest_key(basis), basis))
        # earliest first: a seller's REMEDIATION comes from its earliest matching listing
        for since, _, basis in sorted(meetings, key=lambda m: (m[0], m[1])):
            out.outcome(decide_ruled(res, basis, key, cfg, state.decisions, issued_ms=since))
    return Step(tuple(out.emitted), result=res, issued_as=new_issued_as)


def _on_decision(
    key: str, state: JoinState, decision: DecisionFact, cfg: EnforcementConfig
) -> Step:
    """A regulator's CONFIRM or REJECT: decide its pair again with it, if the pair is here.

    An older decision read after a newer one changes nothing (the newer stands).
    A pair not met yet (its listing or result not read, or owned by another of
    the product's keys) is decided with the decision when it meets.
    """
    if not decision.decides_a_match or not supersedes(
        decision, state.decisions.get(decision.subject)
    ):
        return Step()
    decisions = {**state.decisions, decision.subject: decision}
    out = _Emitter(state.issued)
    res = state.results.get(decision.inspection_id or "")
    if res is not None and res.status != "OVERTURNED" and scope_of(res) is not Scope.NONE:
        ref = (decision.platform, decision.listing_id)
        history = timeline([o for o in state.observations if o.ref == ref])
        for since, basis in live_spells(history, res.published_ms):
            out.outcome(decide_ruled(res, basis, key, cfg, decisions, issued_ms=since))
    if decision.kind is DecisionKind.REJECT and decision.inspection_id is not None:
        delist_id = task_id(
            decision.platform, decision.listing_id, decision.inspection_id, "DELIST"
        )
        delist = out.latest(delist_id)
        if delist is not None:
            _withdraw_pair(delist_id, delist["seller_id"], out, lambda t: rejected(t, decision))
    return Step(tuple(out.emitted), decision=decision)
