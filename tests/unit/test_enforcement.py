"""Enforcement rules (docs/design.md §3 rules 1-5): join keys, scope, finality, task ids,
pair decisions, withdrawals and the folding of listing observations.

Records start from omm.generate.FeedGenerator (realistic Avro-shaped dicts) with the
fields a test is about set explicitly. Expected keys and deadlines are hand-computed
in comments (Asia/Shanghai = UTC+8: the end of local day D is D 15:59:59.999Z).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from omm.generate import CATALOG, FeedGenerator
from pipelines.rules.enforcement import (
    EnforcementConfig,
    ListingFact,
    ResultFact,
    Scope,
    decide,
    ever_active,
    in_scope,
    is_final,
    listing_fact,
    listing_keys,
    live_listings,
    load_enforcement_config,
    model_stem,
    owning_key,
    result_fact,
    result_keys,
    scope_of,
    task_id,
    withdrawals,
)
from pipelines.rules.matching import Decision, MatchMethod

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
NOW = datetime(2026, 3, 5, 4, 0, tzinfo=UTC)
KETTLE = CATALOG[0]  # 美的 MK-HJ1705
COOKER = CATALOG[1]  # Midea KX-2000A, GTIN 6900000001028

# Midea KX-2000A: brand -> canonical "midea"; model -> "KX2000A" -> stem drops the
# trailing letter -> "KX2000" (6 >= min_model_stem_length 4).
COOKER_BM = "bm:midea|KX2000"
# gtin13("690000000102"): weights 1,3,1,3,... from the left over 12 digits:
# 6*1 + 9*3 + 1*3 (10th digit) + 2*3 (12th) = 42 -> check (10 - 2) % 10 = 8.
# GTIN-13 6900000001028, zero-padded to GTIN-14:
COOKER_GTIN = "gtin:06900000001028"

T_PUBLISHED = datetime(2026, 3, 5, 2, 0, tzinfo=UTC)  # Thu 10:00 Shanghai
T_OBSERVED = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)  # Wed 18:00 Shanghai


@pytest.fixture(scope="module")
def cfg() -> EnforcementConfig:
    return load_enforcement_config(CONFIG_DIR)


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def result(n: int = 1, product: Any = COOKER, **fields: Any) -> ResultFact:
    record = FeedGenerator(seed=n, now=NOW).inspection(n, product=product)
    record.update({"published_at": T_PUBLISHED, **fields})
    return result_fact(record, f"omm.valid.inspections/0/{n}")


def listing(n: int = 1, product: Any = COOKER, **fields: Any) -> ListingFact:
    record = FeedGenerator(seed=n, now=NOW).listing("tmall", n, product=product)
    record.update({"seller_id": "tmall-s007", "observed_at": T_OBSERVED, **fields})
    return listing_fact(record, f"omm.valid.listings/0/{n}")


def test_facts_from_generator_records() -> None:
    lst, res = listing(), result()
    assert (lst.platform, lst.listing_id, lst.active) == ("tmall", "tmall-L0000001", True)
    assert lst.observed_ms == 1772618400000  # 2026-03-04T10:00Z
    assert res.inspection_id == "SAMR-2026-00001"
    assert (res.verdict, res.status, res.published_ms) == ("FAIL", "PRELIMINARY", 1772676000000)
    assert listing(status="REMOVED").active is False


# --- join keys (rules 2, 3) ---------------------------------------------------------


@pytest.mark.parametrize("model", ["KX-2000A", "kx 2000a", "KX2000A", "ＫＸ－２０００Ａ"])
def test_model_spellings_share_the_brand_model_key(cfg: EnforcementConfig, model: str) -> None:
    assert result_keys(result(model=model, gtin=None), cfg) == [COOKER_BM]
    assert listing_keys(listing(model=model, gtin=None), cfg) == [COOKER_BM]


def test_result_keys_brand_model_and_gtin(cfg: EnforcementConfig) -> None:
    # sorted: "bm:" < "gtin:"
    assert result_keys(result(), cfg) == [COOKER_BM, COOKER_GTIN]
    # an invalid check digit is no GTIN at all (...1028 is valid, ...1027 is not)
    assert result_keys(result(gtin="6900000001027"), cfg) == [COOKER_BM]


def test_model_stem() -> None:
    assert model_stem("KX2000A", 4) == "KX2000"
    assert model_stem("KX2000AS", 4) == "KX2000"
    assert model_stem("MKHJ1705", 4) == "MKHJ1705"  # ends in a digit: unchanged
    # "X5A" -> "X5" is shorter than 4: never below the minimum (here: the whole code)
    assert model_stem("X5A", 4) == "X5A"
    assert model_stem("ABCDEF", 4) == "ABCD"  # letters only: cut at the minimum


def test_suffix_variant_shares_a_key_a_different_model_does_not(
    cfg: EnforcementConfig,
) -> None:
    assert listing_keys(listing(model="KX2000AS", gtin=None), cfg) == [COOKER_BM]
    # KX3000A -> stem KX3000
    assert listing_keys(listing(model="KX-3000A", gtin=None), cfg) == ["bm:midea|KX3000"]


@pytest.mark.parametrize("brand", ["美的", "Midea", "MIDEA", "ＭＩＤＥＡ", "美的集团"])
def test_brand_aliases_share_a_key(cfg: EnforcementConfig, brand: str) -> None:
    # MK-HJ1705 -> MKHJ1705 (ends in a digit, no stem cut); all aliases -> "midea"
    assert listing_keys(listing(product=KETTLE, brand=brand, gtin=None), cfg) == [
        "bm:midea|MKHJ1705"
    ]


def test_title_only_listing_is_keyed_by_title_tokens(cfg: EnforcementConfig) -> None:
    lst = listing(
        model=None,
        gtin=None,
        title="Midea 电饭煲 KX-2000A 4L 2024新款 正品 另有 KX 3000B",
    )
    # tokens: KX2000A (stem KX2000); the spaced "KX 3000B" joined -> KX3000B (stem
    # KX3000) and, generously, its tail 3000B alone (stem 3000, length 4 = minimum);
    # "4L" is a quantity, "2024" has no letter, "MIDEA" no digit: no keys from them
    assert listing_keys(lst, cfg) == ["bm:midea|3000", COOKER_BM, "bm:midea|KX3000"]
    # a model field with nothing model-like in it (" - " normalises to "") falls back to
    # the title too
    blank_model = listing(model=" - ", gtin=None, title="Midea 电饭煲 KX-2000A")
    assert listing_keys(blank_model, cfg) == [COOKER_BM]


def test_never_a_brand_only_key(cfg: EnforcementConfig) -> None:
    # brand but neither model nor a model-like title token nor a GTIN: no key at all
    assert listing_keys(listing(model=None, gtin=None, title="Midea 电饭煲 4L 正品"), cfg) == []
    # a blank model falls back to the title, which has nothing either
    assert listing_keys(listing(model=" - ", gtin=None, title="美的 电饭煲"), cfg) == []


def test_listing_without_brand_or_gtin_gets_no_keys(cfg: EnforcementConfig) -> None:
    assert listing_keys(listing(brand=None, gtin=None), cfg) == []
    assert listing_keys(listing(brand="  ", gtin=None), cfg) == []
    # with a GTIN it is keyed by the GTIN only
    assert listing_keys(listing(brand=None), cfg) == [COOKER_GTIN]


def test_owning_key_is_one_shared_key(cfg: EnforcementConfig) -> None:
    # shares both keys: the smaller one ("bm:..." < "gtin:...") owns the pair
    assert owning_key(result(), listing(), cfg) == COOKER_BM
    # listing with another brand spelling but the same GTIN: shares only the GTIN key
    other = listing(brand="Acme", model="Z-1")
    assert owning_key(result(), other, cfg) == COOKER_GTIN
    assert owning_key(result(), listing(model="KX-3000A", gtin=None), cfg) is None


# --- scope (rule 1) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"verdict": "FAIL", "sample_size": 1, "acceptance_number": 0, "nonconforming": 1},
            Scope.POPULATION,
        ),  # d=1 > c=0
        (
            {"verdict": "FAIL", "sample_size": 5, "acceptance_number": 1, "nonconforming": 2},
            Scope.POPULATION,
        ),  # d=2 > c=1
        (
            {"verdict": "FAIL", "sample_size": 5, "acceptance_number": 1, "nonconforming": 1},
            Scope.SAMPLED_SELLER,
        ),  # d=1 <= c=1: no population finding
        (
            {"verdict": "FAIL", "sample_size": 5, "acceptance_number": 1, "nonconforming": 0},
            Scope.SAMPLED_SELLER,
        ),  # d=0 <= c=1
        ({"verdict": "THREE_NO"}, Scope.SAMPLED_SELLER),
        ({"verdict": "COUNTERFEIT"}, Scope.SAMPLED_SELLER),
        ({"verdict": "PASS", "nonconforming": 0}, Scope.NONE),
        ({"verdict": "FAIL", "status": "OVERTURNED"}, Scope.NONE),
        ({"verdict": "FAIL", "status": "FINAL"}, Scope.POPULATION),
    ],
)
def test_scope_of(fields: dict[str, Any], expected: Scope) -> None:
    assert scope_of(result(**fields)) is expected


def test_in_scope_population_and_sampled_seller() -> None:
    here = listing(platform="tmall", seller_id="tmall-s001")
    other_seller = listing(platform="tmall", seller_id="tmall-s002")
    other_platform = listing(platform="jd", seller_id="tmall-s001")
    population = result(platform="tmall", seller_id="tmall-s001")  # FAIL, d=1 > c=0
    assert all(in_scope(population, x) for x in (here, other_seller, other_platform))
    for sampled in (
        result(platform="tmall", seller_id="tmall-s001", verdict="THREE_NO"),
        result(platform="tmall", seller_id="tmall-s001", verdict="COUNTERFEIT"),
        result(
            platform="tmall",
            seller_id="tmall-s001",
            sample_size=5,
            acceptance_number=1,
            nonconforming=1,
        ),
    ):
        assert in_scope(sampled, here)
        assert not in_scope(sampled, other_seller)
        assert not in_scope(sampled, other_platform)  # same seller id, other platform
    assert not in_scope(result(verdict="PASS", nonconforming=0), here)
    assert not in_scope(result(status="OVERTURNED"), here)


def test_is_final(cfg: EnforcementConfig) -> None:
    # objection window 15 days: published 2026-03-05T02:00Z -> final at 2026-03-20T02:00Z
    prelim = result(status="PRELIMINARY")
    assert not is_final(prelim, datetime(2026, 3, 20, 1, 59, 59, 999000, tzinfo=UTC), cfg)
    assert is_final(prelim, datetime(2026, 3, 20, 2, 0, tzinfo=UTC), cfg)
    assert is_final(result(status="FINAL"), T_PUBLISHED, cfg)
    # an overturned result is never final, however old
    assert not is_final(result(status="OVERTURNED"), T_PUBLISHED + timedelta(days=400), cfg)


# --- task ids (rule 4) --------------------------------------------------------------


def test_task_id_is_deterministic_and_sensitive_to_every_part() -> None:
    base = ("tmall", "tmall-L0000001", "SAMR-2026-00001", "DELIST")
    assert task_id(*base) == task_id(*base)
    assert task_id(*base).startswith("DEL-")
    variants = [
        ("jd", *base[1:]),
        (base[0], "tmall-L0000002", *base[2:]),
        (*base[:2], "SAMR-2026-00002", base[3]),
        (*base[:3], "REMEDIATION"),
    ]
    ids = {task_id(*v) for v in [base, *variants]}
    assert len(ids) == 5
    # the whole kind is hashed, not just the 3-letter prefix of the id
    assert task_id(*base[:3], "DELIST") != task_id(*base[:3], "DELIST_AGAIN")
    # the separator keeps the fields apart: shifting text between fields changes the id
    assert task_id("tm", "all-L1", "X", "DELIST") != task_id("tmall", "-L1", "X", "DELIST")


# --- decide (rules 1-5) -------------------------------------------------------------


def test_same_identity_gives_delist_and_remediation(cfg: EnforcementConfig) -> None:
    res, lst = result(), listing()
    outcome = decide(res, lst, COOKER_BM, cfg)
    assert outcome.decision is Decision.TASK
    assert outcome.match is not None and outcome.match.method is MatchMethod.GTIN
    assert outcome.review is None
    delist, remediation = outcome.tasks
    assert (delist["kind"], remediation["kind"]) == ("DELIST", "REMEDIATION")
    assert delist["listing_id"] == "tmall-L0000001"
    assert remediation["listing_id"] is None
    for task in outcome.tasks:
        assert task["state"] == "ISSUED"
        assert task["platform"] == "tmall"
        assert task["seller_id"] == "tmall-s007"
        assert task["inspection_id"] == "SAMR-2026-00001"
    assert delist["task_id"] == task_id("tmall", "tmall-L0000001", "SAMR-2026-00001", "DELIST")
    assert remediation["task_id"] == task_id(
        "tmall", "tmall-s007", "SAMR-2026-00001", "REMEDIATION"
    )
    # issued = max(published Thu 03-05 02:00Z, observed Wed 03-04 10:00Z) = published.
    # DELIST, 2 working days from Thu 03-05: Fri 03-06, Mon 03-09 -> 03-09T15:59:59.999Z.
    # REMEDIATION, 10: Fri 6, Mon 9, Tue 10, Wed 11, Thu 12, Fri 13, Mon 16, Tue 17,
    # Wed 18, Thu 19 -> 03-19T15:59:59.999Z.
    assert delist["issued_at"] == remediation["issued_at"] == T_PUBLISHED
    assert delist["deadline_at"] == datetime(2026, 3, 9, 15, 59, 59, 999000, tzinfo=UTC)
    assert remediation["deadline_at"] == datetime(2026, 3, 19, 15, 59, 59, 999000, tzinfo=UTC)
    assert all(t["deadline_at"] > t["issued_at"] for t in outcome.tasks)


def test_issued_at_is_the_later_event_whichever_side_came_last(
    cfg: EnforcementConfig,
) -> None:
    # listing (re)appears after the result: Fri 03-06 11:00 local = 03:00Z.
    # issued = max(Thu 03-05 02:00Z, Fri 03-06 03:00Z) = Fri; DELIST: Mon 03-09, Tue 03-10.
    later = datetime(2026, 3, 6, 3, 0, tzinfo=UTC)
    res, lst = result(), listing(observed_at=later)
    first = decide(res, lst, COOKER_BM, cfg)
    assert [t["issued_at"] for t in first.tasks] == [later, later]
    assert first.tasks[0]["deadline_at"] == datetime(2026, 3, 10, 15, 59, 59, 999000, tzinfo=UTC)
    # the same facts give the same tasks however often (and from whichever side) decided
    assert decide(res, lst, COOKER_BM, cfg) == first
    # result published after the listing was observed: issued = published
    res_later = result(published_at=later)
    assert [t["issued_at"] for t in decide(res_later, listing(), COOKER_BM, cfg).tasks] == [
        later,
        later,
    ]


def test_look_alike_goes_to_review_only(cfg: EnforcementConfig) -> None:
    # KX2000AS vs KX2000A: same brand, 1-character suffix -> look-alike (0.45 < 0.85)
    lst = listing(model="KX-2000AS", gtin=None)
    assert owning_key(result(), lst, cfg) == COOKER_BM  # they do meet
    outcome = decide(result(), lst, COOKER_BM, cfg)
    assert outcome.decision is Decision.REVIEW
    assert outcome.tasks == ()
    assert outcome.review is not None
    assert outcome.review["listing_id"] == "tmall-L0000001"
    assert outcome.review["inspection_id"] == "SAMR-2026-00001"
    assert outcome.review["match_confidence"] == 0.45
    assert outcome.review["created_at"] == T_PUBLISHED


def test_pass_gives_nothing(cfg: EnforcementConfig) -> None:
    outcome = decide(result(verdict="PASS", nonconforming=0), listing(), COOKER_BM, cfg)
    assert outcome.decision is Decision.IGNORE
    assert (outcome.tasks, outcome.review) == ((), None)


def test_three_no_applies_to_the_sampled_seller_only(cfg: EnforcementConfig) -> None:
    res = result(verdict="THREE_NO", platform="tmall", seller_id="tmall-s001")
    elsewhere = decide(res, listing(seller_id="tmall-s002"), COOKER_BM, cfg)
    assert elsewhere.decision is Decision.IGNORE
    assert (elsewhere.tasks, elsewhere.review) == ((), None)
    # the sampled seller's own listing of the product does get tasks
    own = decide(res, listing(seller_id="tmall-s001"), COOKER_BM, cfg)
    assert [t["kind"] for t in own.tasks] == ["DELIST", "REMEDIATION"]


def test_removed_listing_gives_nothing(cfg: EnforcementConfig) -> None:
    outcome = decide(result(), listing(status="REMOVED"), COOKER_BM, cfg)
    assert outcome.decision is Decision.IGNORE
    assert (outcome.tasks, outcome.review) == ((), None)


def test_pair_is_decided_only_under_its_owning_key(cfg: EnforcementConfig) -> None:
    res, lst = result(), listing()
    assert set(result_keys(res, cfg)) & set(listing_keys(lst, cfg)) == {COOKER_BM, COOKER_GTIN}
    assert len(decide(res, lst, COOKER_BM, cfg).tasks) == 2
    other = decide(res, lst, COOKER_GTIN, cfg)  # the same pair meets here too
    assert other.decision is Decision.IGNORE
    assert (other.tasks, other.review) == ((), None)


# --- withdrawals (rule 1: OVERTURNED withdraws its open tasks) ------------------------

T_OVERTURNED = datetime(2026, 3, 12, 2, 0, tzinfo=UTC)


def overturn() -> ResultFact:
    return result(status="OVERTURNED", published_at=T_OVERTURNED)


def test_listing_active_before_the_overturn_gets_its_tasks_withdrawn(
    cfg: EnforcementConfig,
) -> None:
    lst = listing()  # observed 03-04, a week before the overturn
    issued = decide(result(), lst, COOKER_BM, cfg).tasks
    withdrawn = withdrawals(overturn(), lst, COOKER_BM, cfg)
    assert [t["task_id"] for t in withdrawn] == [t["task_id"] for t in issued]
    assert [t["kind"] for t in withdrawn] == ["DELIST", "REMEDIATION"]
    assert all(t["state"] == "WITHDRAWN" for t in withdrawn)
    assert all("overturned" in t["reason"] for t in withdrawn)
    # "no later than": observed exactly at the overturn's published time still counts
    at_overturn = listing(observed_at=T_OVERTURNED)
    assert len(withdrawals(overturn(), at_overturn, COOKER_BM, cfg)) == 2


def test_listing_seen_only_after_the_overturn_gets_nothing(cfg: EnforcementConfig) -> None:
    after = listing(observed_at=T_OVERTURNED + timedelta(milliseconds=1))
    assert withdrawals(overturn(), after, COOKER_BM, cfg) == []
    assert withdrawals(overturn(), listing(status="REMOVED"), COOKER_BM, cfg) == []
    # and never under a key that does not own the pair
    assert withdrawals(overturn(), listing(), COOKER_GTIN, cfg) == []


def test_overturn_withdraws_even_if_the_listing_was_seen_again_after_it(
    cfg: EnforcementConfig,
) -> None:
    # Replay order: the stage folds a key's observations with ever_active() and asks
    # withdrawals() about each folded listing (pipelines/enforce.py, _on_result). The
    # listing was ACTIVE on 03-04 (so the FAIL result issued tasks for it) and is seen
    # ACTIVE again on 03-13, after the 03-12 overturn. The tasks existed and must be
    # withdrawn: the rule is "observed ACTIVE no later than the overturn".
    before = listing()
    again = listing(observed_at=T_OVERTURNED + timedelta(days=1))
    issued = decide(result(), before, COOKER_BM, cfg).tasks
    withdrawn = [
        task
        for folded in ever_active([before, again]).values()
        for task in withdrawals(overturn(), folded, COOKER_BM, cfg)
    ]
    assert sorted(t["task_id"] for t in withdrawn) == sorted(t["task_id"] for t in issued)


# --- folding listing observations (order-independent) -------------------------------


def test_live_listings_latest_observation_wins_in_any_order() -> None:
    t = T_OBSERVED
    a1 = listing(1, observed_at=t)
    a2 = listing(1, observed_at=t + timedelta(hours=1), title="Midea 电饭煲 KX-2000A 新")
    b1 = listing(2, observed_at=t)
    b2 = listing(2, status="REMOVED", observed_at=t + timedelta(hours=1))
    c1 = listing(3, status="REMOVED", observed_at=t)
    c2 = listing(3, observed_at=t + timedelta(hours=2))  # re-listed after removal
    for order in itertools.permutations([a1, a2, b1, b2, c1, c2]):
        live = live_listings(order)
        # listing 2's latest observation is REMOVED: dropped
        assert live == {("tmall", "tmall-L0000001"): a2, ("tmall", "tmall-L0000003"): c2}


def test_ever_active_keeps_listings_removed_since() -> None:
    t = T_OBSERVED
    b1 = listing(2, observed_at=t)
    b2 = listing(2, status="REMOVED", observed_at=t + timedelta(hours=1))
    d = listing(4, status="REMOVED", observed_at=t)  # never active
    for order in itertools.permutations([b1, b2, d]):
        assert ever_active(order) == {("tmall", "tmall-L0000002"): b1}


def test_folding_is_order_independent_on_equal_timestamps() -> None:
    # Two observations of one listing with the same observed_at (millisecond clock):
    # whatever the fold keeps, it must keep the same thing in either input order.
    active = listing(observed_at=T_OBSERVED)
    removed = listing(status="REMOVED", observed_at=T_OBSERVED, evidence="x")
    assert live_listings([active, removed]) == live_listings([removed, active])
    retitled = listing(observed_at=T_OBSERVED, title="Midea 电饭煲 KX-2000A 新")
    assert ever_active([active, retitled]) == ever_active([retitled, active])
