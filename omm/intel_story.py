"""The demo's complaint-intelligence chapter (issue 12): the records behind each intel rule.

Pure and deterministic (fixed dates, a seeded generator): what the platforms and the
regulator publish, shaped as the demo's other records and checked against
config/intel.yaml by tests/unit/test_intel_story.py.

- **A hotspot.** Twelve complaints about the Kidsafe KS-CS01 car seat, 9-12 March 2026,
  on six platforms and both channels (the platforms' own and the 12315 hotline): enough
  for the 7-day and the 30-day sampling windows. Each is resolved the next day, so none
  is a compensation-first claim. The demo inspects every catalog product, the car seat
  too, but today: a result counts against a window only if it was published before the
  window's end, so it does not hide March's windows.
- **A case lead.** Five violation complaints against suning-s901 in the first week of
  February, one a RETURN_REFUSED about the kettle it sells (a 7-day return right: it
  counts), and a sixth, RETURN_REFUSED about its fresh fruit: refusing to take fresh food
  back is lawful, so that one does not count.
- **A stalled claim.** An AFTER_SALES complaint on tmall (bound by compensation-first)
  received on Monday 2 March and still open when its 7-day period ends (24:00, Monday
  9 March): a COMPENSATION_FIRST task, issued once the allowed lateness has passed
  (13 March). Later, tmall resolves it (:data:`RESOLVED_AT`, 16 March), before the
  task's deadline: :func:`resolution` is that later version of the complaint.
- **The serious-violation list.** Hearthglow's third product-safety penalty within two
  years (24 February 2026) lists it; its sellers on taobao and jd have live listings
  (one taobao listing was taken down before): each live one is flagged.

Dates are in the past of the demo's spring campaign (published 29 April 2026), whose
records share the demo's topics: intel's watermark is at least that late whatever the
wall clock says, so every window, period and list event here is final in a bounded run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from omm.campaign import CST, at
from omm.generate import CATALOG, FeedGenerator, Product, Record, gtin13

SEED = 12
HOTSPOT = next(p for p in CATALOG if p.model == "KS-CS01")  # the Kidsafe car seat
KETTLE = next(p for p in CATALOG if p.model == "MK-HJ1705")
FRUIT = Product(
    "Orchard Fresh", "OF-APPLE-5KG", "Orchard Fresh Farms Co., Ltd.", "fresh_food/fruit",
    "新鲜苹果 fresh apples 5 kg", gtin13("690000000201"), 6900,
)  # fmt: skip
HEATER = Product(
    "Hearthglow", "HG-1800", "Hearthglow Electric Appliances Co., Ltd.", "heating",
    "暖风机 fan heater", gtin13("690000000202"), 15900,
)  # fmt: skip

# (platform, local day of March 2026, hour, issue type): three a day, twelve in all
HOT_COMPLAINTS: tuple[tuple[str, int, int, str], ...] = (
    ("suning", 9, 10, "QUALITY"),
    ("jd", 9, 14, "QUALITY"),
    ("gome", 9, 20, "FALSE_ADVERTISING"),
    ("taobao", 10, 9, "QUALITY"),
    ("vip", 10, 15, "QUALITY"),
    ("dangdang", 10, 21, "COUNTERFEIT"),
    ("suning", 11, 11, "QUALITY"),
    ("jd", 11, 16, "QUALITY"),
    ("gome", 11, 19, "QUALITY"),
    ("taobao", 12, 10, "FALSE_ADVERTISING"),
    ("vip", 12, 13, "QUALITY"),
    ("suning", 12, 18, "QUALITY"),
)
LEAD_PLATFORM, LEAD_SELLER = "suning", "suning-s901"
LEAD_KETTLE, LEAD_FRUIT = "suning-IS9901", "suning-IS9902"
# (local day of February 2026, issue type, listing named): five that count, then the fruit
LEAD_COMPLAINTS: tuple[tuple[int, str, str], ...] = (
    (2, "QUALITY", LEAD_KETTLE),
    (3, "FALSE_ADVERTISING", LEAD_KETTLE),
    (4, "QUALITY", LEAD_KETTLE),
    (5, "RETURN_REFUSED", LEAD_KETTLE),
    (6, "COUNTERFEIT", LEAD_KETTLE),
    (6, "RETURN_REFUSED", LEAD_FRUIT),
)
CLAIM_PLATFORM, CLAIM_SELLER, CLAIM_ID = "tmall", "tmall-s902", "tmall-IC0001"
CLAIM_RECEIVED = at(3, 2, 10)  # Monday 2 March 2026, 10:00 in Beijing
RESOLVED_AT = at(3, 16, 10)  # after the task is issued (13 March), before its deadline
ENTERPRISE_ID = "91330106MA2HGL0001"  # shaped like a unified social credit code
ENTERPRISE_NAME = HEATER.manufacturer
# (penalty id, decided (year, month, day), platform, seller): 3 on product safety in 2 years
PENALTIES: tuple[tuple[str, tuple[int, int, int], str, str], ...] = (
    ("PEN-2024-000917", (2024, 11, 20), "taobao", "taobao-s950"),
    ("PEN-2025-000433", (2025, 8, 12), "jd", "jd-s950"),
    ("PEN-2026-000088", (2026, 2, 24), "taobao", "taobao-s950"),
)
LISTINGS_SEEN = at(3, 20, 9)


@dataclass
class IntelStory:
    """What the platforms push (per platform feed) and the regulator publishes."""

    complaints: dict[str, list[Record]] = field(default_factory=dict)
    listings: dict[str, list[Record]] = field(default_factory=dict)
    penalties: list[Record] = field(default_factory=list)

    @property
    def hotspot(self) -> list[Record]:
        return [c for cs in self.complaints.values() for c in cs if c["model"] == HOTSPOT.model]

    @property
    def lead(self) -> list[Record]:
        return self.complaints[LEAD_PLATFORM][-len(LEAD_COMPLAINTS) :]

    @property
    def excluded(self) -> Record:
        """The lead seller's RETURN_REFUSED about fresh food: lawful, not counted."""
        return self.lead[-1]

    @property
    def claim(self) -> Record:
        return next(c for c in self.complaints[CLAIM_PLATFORM] if c["complaint_id"] == CLAIM_ID)


def claim_key() -> str:
    """The stalled claim's id across channels, as COMPENSATION_FIRST tasks name it."""
    return f"{CLAIM_PLATFORM}:{CLAIM_ID}"


def intel_story() -> IntelStory:
    gen = FeedGenerator(seed=SEED, now=CLAIM_RECEIVED)
    story = IntelStory()

    def complaint(
        platform: str,
        n: int,
        seller: str,
        issue: str,
        received: datetime,
        channel: str = "PLATFORM",
        product: Product | None = None,
        listing_id: str | None = None,
        resolved: datetime | None = None,
    ) -> None:
        # the generator's consumer id and text (a phone number ingest redacts), nothing more
        base = gen.complaint(platform, n)
        story.complaints.setdefault(platform, []).append(
            {
                **base,
                "complaint_id": f"{platform}-IC{n:04d}",
                "channel": channel,
                "seller_id": seller,
                "listing_id": listing_id,
                "product_name": product.name if product else None,
                "brand": product.brand if product else None,
                "model": product.model if product else None,
                "gtin": product.gtin if product else None,
                "issue_type": issue,
                "status": "RESOLVED" if resolved else "OPEN",
                "received_at": received,
                "resolved_at": resolved,
            }
        )

    def listing(
        platform: str, lid: str, seller: str, product: Product, seen: datetime, active: bool = True
    ) -> None:
        story.listings.setdefault(platform, []).append(
            {
                **gen.listing(platform, 0, product),
                "listing_id": lid,
                "seller_id": seller,
                "seller_name": f"Shop {seller}",
                "url": f"https://{platform}.example/item/{lid.lower()}",
                "status": "ACTIVE" if active else "REMOVED",
                "observed_at": seen,
            }
        )

    complaint(CLAIM_PLATFORM, 1, CLAIM_SELLER, "AFTER_SALES", CLAIM_RECEIVED)
    for i, (platform, day, hour, issue) in enumerate(HOT_COMPLAINTS):
        received = at(3, day, hour)
        complaint(
            platform,
            100 + i,
            f"{platform}-s{910 + i}",  # one seller each: a product's cluster, no seller's
            issue,
            received,
            channel="HOTLINE_12315" if i % 3 == 2 else "PLATFORM",
            product=HOTSPOT,
            resolved=received + timedelta(days=1),
        )
    listing(LEAD_PLATFORM, LEAD_KETTLE, LEAD_SELLER, KETTLE, at(2, 1, 9))
    listing(LEAD_PLATFORM, LEAD_FRUIT, LEAD_SELLER, FRUIT, at(2, 1, 9))
    for i, (day, issue, lid) in enumerate(LEAD_COMPLAINTS):
        complaint(LEAD_PLATFORM, 200 + i, LEAD_SELLER, issue, at(2, day, 11), listing_id=lid)
    for n, (_, _, platform, seller) in enumerate(PENALTIES):
        listing(platform, f"{platform}-IS99{50 + n}", seller, HEATER, LISTINGS_SEEN)
    # taken down before the list: not live, so not flagged
    taken_down = story.listings["taobao"][-1]
    story.listings["taobao"].append(
        {**taken_down, "status": "REMOVED", "observed_at": LISTINGS_SEEN + timedelta(days=2)}
    )
    for pid, (year, month, day), platform, seller in PENALTIES:
        decided = datetime(year, month, day, 10, tzinfo=CST).astimezone(UTC)
        story.penalties.append(
            {
                "penalty_id": pid,
                "enterprise_id": ENTERPRISE_ID,
                "enterprise_name": ENTERPRISE_NAME,
                "platform": platform,
                "seller_id": seller,
                "ground": "PRODUCT_SAFETY",
                "legal_basis": "Product Quality Law Art. 49",
                "decision_no": f"D-{pid}",
                "authority": "Zhejiang Provincial AMR",
                "decided_at": decided,
                "published_at": decided + timedelta(days=5),
            }
        )
    return story


def resolution(story: IntelStory) -> Record:
    """tmall resolves the stalled claim after the task: a later version of the complaint."""
    return {**story.claim, "status": "RESOLVED", "resolved_at": RESOLVED_AT}
