"""A spring sampling campaign, modelled on the 2016 one (docs/design.md §1), for the demo.

503 sampled batches across ten platforms: 497 judged on quality, of which 172
FAIL, plus 4 THREE_NO and 2 COUNTERFEIT; about two thousand listings. The
results are published on Wednesday 29 April 2026, so the two-working-day
delisting deadline crosses Labour Day (1-5 May): it is the end of 6 May.

Then each platform acts on its tasks in its own way (:data:`BEHAVIOURS`), and
what it does becomes evidence: takedown notices on its takedowns feed, and
observations on its listings feed. Deterministic for a seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from omm.generate import FeedGenerator, Product, Record, gtin13

CST = ZoneInfo("Asia/Shanghai")
PUBLISHED = datetime(2026, 4, 29, 10, 0, tzinfo=CST).astimezone(UTC)
OBSERVED = PUBLISHED - timedelta(days=1)
BATCHES, THREE_NO, COUNTERFEIT, FAILED = 503, 4, 2, 172
LISTINGS_PER_FAILED_PRODUCT = 4
OTHER_LISTINGS = 1300
CATEGORIES = ("kitchen", "toys", "lighting", "baby", "electronics", "heating")

# How each platform acts on its delisting tasks (the demo's cast):
BEHAVIOURS: dict[str, str] = {
    "tmall": "prompt",  # notices within hours
    "jd": "feed",  # no notices: its listing feed shows the listings removed the next day
    "taobao": "slow",  # notices, but a week late
    "suning": "contradicted",  # says REMOVED; its own feed shows the listings still on sale
    "gome": "relists",  # takes them down, then they come back; half are caught again
    "vip": "disputes",  # disputes every task; the regulator upholds some, withdraws others
    "dangdang": "mostly",  # prompt, but ignores one task in five
    "yihaodian": "prompt",
    "yixun": "half-late",  # half on time, half late
    "amazon_cn": "feed",
}


def at(month: int, day: int, hour: int = 12) -> datetime:
    """A local (China Standard Time) moment of 2026, in UTC."""
    return datetime(2026, month, day, hour, 0, tzinfo=CST).astimezone(UTC)


@dataclass
class Campaign:
    products: list[Product]
    verdicts: list[str]
    listings: dict[str, list[Record]] = field(default_factory=dict)
    results: list[Record] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        return {v: self.verdicts.count(v) for v in ("FAIL", "PASS", "THREE_NO", "COUNTERFEIT")}


def campaign(platforms: list[str], seed: int = 2016) -> Campaign:
    rng = random.Random(seed)
    gen = FeedGenerator(seed=seed, now=PUBLISHED)
    products = [
        Product(
            brand=f"Spring{n % 40:02d}",
            model=f"SC-{n:04d}",
            manufacturer=f"Spring Manufacturing No. {n % 40:02d} Co., Ltd.",
            category=CATEGORIES[n % len(CATEGORIES)],
            name=f"抽检商品 sampled product {n}",
            gtin=gtin13(f"69100{n:07d}"),
            price_minor=5000 + 100 * (n % 300),
        )
        for n in range(BATCHES)
    ]
    verdicts = (
        ["FAIL"] * FAILED
        + ["THREE_NO"] * THREE_NO
        + ["COUNTERFEIT"] * COUNTERFEIT
        + ["PASS"] * (BATCHES - FAILED - THREE_NO - COUNTERFEIT)
    )
    rng.shuffle(verdicts)
    out = Campaign(products, verdicts, {p: [] for p in platforms})
    n = 0

    def listing(platform: str, product: Product, seller: str | None = None) -> None:
        nonlocal n
        n += 1
        seller = seller or f"{platform}-s{rng.randint(1, 60):03d}"
        out.listings[platform].append(
            {
                "listing_id": f"{platform}-SC{n:06d}",
                "platform": platform,
                "seller_id": seller,
                "seller_name": f"Shop {seller}",
                "title": f"{product.brand} {product.name} {product.model}",
                "brand": product.brand,
                "model": product.model,
                "gtin": product.gtin,
                "category": product.category,
                "manufacturer": product.manufacturer,
                "price_minor": product.price_minor,
                "currency": "CNY",
                "url": f"https://{platform}.example/item/sc{n}",
                "status": "ACTIVE",
                "observed_at": OBSERVED - timedelta(minutes=rng.randint(0, 600)),
            }
        )

    for i, (product, verdict) in enumerate(zip(products, verdicts, strict=True)):
        sampled_on = platforms[i % len(platforms)]
        seller = f"{sampled_on}-s{i % 60:03d}"
        if verdict == "FAIL":
            for platform in rng.sample(platforms, LISTINGS_PER_FAILED_PRODUCT):
                listing(platform, product)
        elif verdict in ("THREE_NO", "COUNTERFEIT"):
            listing(sampled_on, product, seller)  # the sampled seller's own listing
        out.results.append(_result(i, product, verdict, sampled_on, seller, gen))
    passed = [p for p, v in zip(products, verdicts, strict=True) if v == "PASS"]
    for _ in range(OTHER_LISTINGS):
        listing(rng.choice(platforms), rng.choice(passed))
    return out


def _result(
    i: int, product: Product, verdict: str, platform: str, seller: str, gen: FeedGenerator
) -> Record:
    return {
        **gen.inspection(i, product, verdict, platform),
        "inspection_id": f"SAMR-2026-S{i:04d}",
        "campaign": "2026 spring e-commerce product quality campaign",
        "seller_id": seller,
        "report_no": f"R-S{i:05d}",
        "status": "FINAL",
        "published_at": PUBLISHED,
    }


@dataclass
class Evidence:
    """What the platforms send after their tasks arrive, per platform feed."""

    notices: dict[str, list[Record]] = field(default_factory=dict)
    observations: dict[str, list[Record]] = field(default_factory=dict)
    # (task, decision) the regulator takes on the disputed tasks, and what follows an upholding
    decisions: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    after_decisions: dict[str, list[Record]] = field(default_factory=dict)


def behaviour_evidence(
    tasks: Iterable[dict[str, Any]], listings: dict[str, Record], seed: int = 2016
) -> Evidence:
    """The platforms' responses to their DELIST tasks, as feed records."""
    rng = random.Random(seed + 1)
    ev = Evidence()
    for i, task in enumerate(sorted(tasks, key=lambda t: str(t["task_id"]))):
        listing = listings.get(task["listing_id"])
        if listing is None:
            continue
        platform = task["platform"]
        soon = PUBLISHED + timedelta(hours=rng.randint(2, 20))
        notices: list[tuple[datetime, str]] = []
        seen: list[tuple[datetime, bool]] = []
        behaviour = BEHAVIOURS.get(platform, "prompt")
        if behaviour == "prompt" or (behaviour == "mostly" and i % 5):
            notices.append((soon, "REMOVED"))
        elif behaviour == "feed":
            seen.append((at(4, 30, 9), False))
        elif behaviour == "slow":
            notices.append((at(5, 11 + i % 3, 10), "REMOVED"))
        elif behaviour == "contradicted":
            notices.append((soon, "REMOVED"))
            seen.append((at(5, 8, 9), True))  # its own feed: still on sale after the deadline
        elif behaviour == "relists":
            seen += [(at(4, 30, 9), False), (at(5, 9, 9), True)]  # down, then back on sale
            if i % 2:
                seen.append((at(5, 11, 15), False))  # caught within the new deadline
        elif behaviour == "disputes":
            notices.append((soon, "DISPUTED"))
            upheld = i % 3 != 0
            ev.decisions.append((task, "UPHOLD" if upheld else "WITHDRAW"))
            if upheld:
                ev.after_decisions.setdefault(platform, []).append(
                    {**listing, "status": "REMOVED", "observed_at": at(5, 13, 10)}
                )
        elif behaviour == "half-late":
            notices.append((soon if i % 2 else at(5, 8, 10), "REMOVED"))
        # "mostly", one in five: nothing at all, it goes overdue
        for k, (when, action) in enumerate(notices):
            ev.notices.setdefault(platform, []).append(
                {
                    "notice_id": f"{platform}-TN{i:05d}-{k}",
                    "platform": platform,
                    "listing_id": task["listing_id"],
                    "task_id": task["task_id"],
                    "action": action,
                    "reason": _REASONS[action],
                    "acted_at": when,
                }
            )
        for when, active in seen:
            ev.observations.setdefault(platform, []).append(
                {**listing, "status": "ACTIVE" if active else "REMOVED", "observed_at": when}
            )
    return ev


_REASONS = {
    "REMOVED": "delisted on the regulator's order",
    "DISPUTED": "the listed product is a different model than the one sampled",
}


def decision_record(task: dict[str, Any], decision: str, n: int) -> Record:
    """A regulator's decision on a disputed task (as `omm review uphold|withdraw` publishes)."""
    return {
        "decision_id": f"d-demo-{n:05d}",
        "decision": decision,
        "review_id": None,
        "task_id": task["task_id"],
        "platform": task["platform"],
        "listing_id": task["listing_id"],
        "inspection_id": task.get("inspection_id"),
        "decided_by": "samr-market-supervision-office",
        "reason": (
            "the listing is the sampled model: the task stands"
            if decision == "UPHOLD"
            else "the listing is a different model: withdrawn"
        ),
        "decided_at": at(5, 12, 9),
    }
