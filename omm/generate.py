"""Synthetic feed records for the demo, the benchmark and tests.

Records are Avro-shaped dicts (datetimes as aware UTC datetimes). No real
person or company appears: sellers, consumers and reports are made up, and
phone numbers in complaint text use the reserved-looking 1380000xxxx range.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

Record = dict[str, Any]


@dataclass(frozen=True)
class Product:
    brand: str
    model: str
    manufacturer: str
    category: str
    name: str
    gtin: str | None
    price_minor: int


def gtin13(body12: str) -> str:
    """Append the GS1 mod-10 check digit to 12 digits."""
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body12))
    return body12 + str((10 - total % 10) % 10)


CATALOG: tuple[Product, ...] = (
    Product(
        "美的",
        "MK-HJ1705",
        "美的集团股份有限公司",
        "kitchen",
        "电热水壶",
        gtin13("690000000101"),
        12900,
    ),
    Product(
        "Midea",
        "KX-2000A",
        "Midea Group Co., Ltd.",
        "kitchen",
        "电饭煲 rice cooker",
        gtin13("690000000102"),
        29900,
    ),
    Product(
        "Sunbeam Toys",
        "ST-88",
        "Sunbeam Toys Co., Ltd.",
        "toys",
        "儿童滑板车 scooter",
        gtin13("690000000103"),
        15900,
    ),
    Product(
        "Brightlite",
        "BL-40W",
        "Brightlite Lighting Co., Ltd.",
        "lighting",
        "LED台灯 desk lamp",
        None,
        8900,
    ),
    Product(
        "Kidsafe",
        "KS-CS01",
        "Kidsafe Products Co., Ltd.",
        "baby",
        "儿童安全座椅 car seat",
        gtin13("690000000105"),
        89900,
    ),
    Product(
        "PowerGo",
        "PG-20000",
        "PowerGo Electronics Co., Ltd.",
        "electronics",
        "移动电源 power bank",
        gtin13("690000000106"),
        9900,
    ),
    Product(
        "Aqua",
        "AQ-300",
        "Aqua Appliances Co., Ltd.",
        "kitchen",
        "净水器 water purifier",
        None,
        59900,
    ),
    Product(
        "WarmHome",
        "WH-H2",
        "WarmHome Heating Co., Ltd.",
        "heating",
        "电暖器 heater",
        gtin13("690000000108"),
        19900,
    ),
)

ISSUE_TYPES = (
    "QUALITY",
    "COUNTERFEIT",
    "FALSE_ADVERTISING",
    "RETURN_REFUSED",
    "AFTER_SALES",
    "OTHER",
)


class FeedGenerator:
    """Deterministic generator of valid records (same seed, same data)."""

    def __init__(self, seed: int = 2016, now: datetime | None = None) -> None:
        self.rng = random.Random(seed)
        self.now = now or datetime.now(UTC)

    def _ago(self, max_hours: float = 48.0) -> datetime:
        at = self.now - timedelta(hours=self.rng.uniform(0.01, max_hours))
        return at.replace(microsecond=(at.microsecond // 1000) * 1000)

    def listing(self, platform: str, n: int, product: Product | None = None) -> Record:
        p = product or self.rng.choice(CATALOG)
        seller = f"{platform}-s{self.rng.randint(1, 40):03d}"
        return {
            "listing_id": f"{platform}-L{n:07d}",
            "platform": platform,
            "seller_id": seller,
            "seller_name": f"Shop {seller}",
            "title": f"{p.brand} {p.name} {p.model} 正品",
            "brand": p.brand,
            "model": p.model,
            "gtin": p.gtin,
            "category": p.category,
            "manufacturer": p.manufacturer,
            "price_minor": p.price_minor + self.rng.randint(-2000, 2000),
            "currency": "CNY",
            "url": f"https://{platform}.example/item/{n}",
            "status": "ACTIVE",
            "observed_at": self._ago(),
        }

    def complaint(self, platform: str, n: int) -> Record:
        p = self.rng.choice(CATALOG)
        return {
            "complaint_id": f"{platform}-C{n:07d}",
            "platform": platform,
            "channel": self.rng.choice(("PLATFORM", "HOTLINE_12315")),
            "consumer_id": f"consumer-{self.rng.randint(1, 10**6)}",
            "seller_id": f"{platform}-s{self.rng.randint(1, 40):03d}",
            "listing_id": f"{platform}-L{self.rng.randint(0, 999):07d}",
            "product_name": p.name,
            "brand": p.brand,
            "model": p.model,
            "gtin": p.gtin,
            "issue_type": self.rng.choice(ISSUE_TYPES),
            "text": f"产品有问题, 请联系我 1380000{self.rng.randint(1000, 9999)}",
            "status": "OPEN",
            "received_at": self._ago(),
            "resolved_at": None,
        }

    def takedown(self, platform: str, n: int) -> Record:
        return {
            "notice_id": f"{platform}-N{n:07d}",
            "platform": platform,
            "listing_id": f"{platform}-L{self.rng.randint(0, 999):07d}",
            "task_id": None,
            "action": "REMOVED",
            "reason": "own-initiative quality review",
            "acted_at": self._ago(),
        }

    def inspection(
        self,
        n: int,
        product: Product | None = None,
        verdict: str = "FAIL",
        platform: str | None = None,
    ) -> Record:
        p = product or self.rng.choice(CATALOG)
        failed = verdict != "PASS"
        return {
            "inspection_id": f"SAMR-2026-{n:05d}",
            "campaign": "2026 e-commerce product quality campaign",
            "product_name": p.name,
            "brand": p.brand,
            "model": p.model,
            "gtin": p.gtin,
            "manufacturer": p.manufacturer,
            "batch": f"B{self.rng.randint(1000, 9999)}",
            "platform": platform,
            "seller_id": f"{platform}-s001" if platform else None,
            "listing_id": None,
            "verdict": verdict,
            "failed_items": (
                [{"item": "electrical safety", "standard": "GB 4706.1-2005", "kind": "INTRINSIC"}]
                if failed
                else []
            ),
            "sample_size": 1,
            "acceptance_number": 0,
            "nonconforming": 1 if failed else 0,
            "declared_quality_level": 0.05,
            "population_size": None,
            "agency": "Provincial Product Quality Inspection Institute",
            "report_no": f"R-{n:06d}",
            "status": "PRELIMINARY",
            "published_at": self._ago(2.0),
        }


# Ten ways a listing can be wrong that Avro itself still accepts: only the
# record rules catch them. Each returns (broken record, the rule expected).
ListingBreaker = Callable[[Record, datetime], tuple[Record, str]]

LISTING_BREAKERS: dict[str, ListingBreaker] = {
    "blank_listing_id": lambda r, now: ({**r, "listing_id": "  "}, "not_blank"),
    "blank_seller_id": lambda r, now: ({**r, "seller_id": ""}, "not_blank"),
    "bad_gtin_check_digit": lambda r, now: ({**r, "gtin": "6900000001012"}, "gtin_check_digit"),
    "gtin_not_digits": lambda r, now: ({**r, "gtin": "69000ABC01012"}, "gtin_check_digit"),
    "negative_price": lambda r, now: ({**r, "price_minor": -100}, "min_value"),
    "implausible_price": lambda r, now: ({**r, "price_minor": 10**13}, "max_price"),
    "unknown_currency": lambda r, now: ({**r, "currency": "XYZ"}, "currency_known"),
    "future_observed_at": lambda r, now: (
        {**r, "observed_at": now + timedelta(days=2)},
        "future_timestamp",
    ),
    "spoofed_platform": lambda r, now: (
        {**r, "platform": "jd" if r["platform"] != "jd" else "tmall"},
        "platform_matches_topic",
    ),
    "blank_title": lambda r, now: ({**r, "title": " "}, "not_blank"),
}


def broken_listings(
    gen: FeedGenerator, platform: str, count: int, start: int = 0
) -> Iterator[tuple[Record, str]]:
    """``count`` listings, cycling through every breaker: (record, expected rule)."""
    names = sorted(LISTING_BREAKERS)
    for i in range(count):
        breaker = LISTING_BREAKERS[names[i % len(names)]]
        yield breaker(gen.listing(platform, start + i), gen.now)


GARBAGE = b"\x00\x01not avro at all \xff\xfe"
