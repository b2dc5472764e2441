"""Which feeds exist and which contract (Avro entity) each one carries.

A feed is what a producer pushes: platforms push listings, complaints and
takedown notices; the regulator publishes inspection results and penalties.
Topic names, the CLI's ``push``/``publish`` and the expectation suites all
spell feeds this way.
"""

from __future__ import annotations

# feed (as in topic names and `omm push <feed>`) -> Avro entity
FEED_ENTITIES: dict[str, str] = {
    "listings": "listing",
    "complaints": "complaint",
    "takedowns": "takedown",
}
# what the regulator publishes (`omm publish <feed>`) -> Avro entity
REGULATOR_ENTITIES: dict[str, str] = {
    "inspections": "inspection",
    "penalties": "penalty",
}
# entity -> its feed's name, as in omm.valid.<feed>
FEED_NAMES: dict[str, str] = {
    entity: feed for feed, entity in {**FEED_ENTITIES, **REGULATOR_ENTITIES}.items()
}
