"""The enforce join stage in a real Beam pipeline (FnApiRunner), both ways of folding.

Streaming (``in_event_order=False``): each event folded as it arrives, in Beam
state (bags read lazily, compacted on the result path). Bounded (``True``): a
GroupByKey, then the key's events folded in event-time order. Whatever order
the runner hands the events over in, the bounded stage must emit exactly what
the pure fold emits in event order, and the streaming stage must end with the
same tasks in force.
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that

from omm.beam_runtime import pipeline_args_with_defaults
from pipelines.enforce import JoinResultsAndListings, ReviewOut, TaskOut
from pipelines.rules.enforcement import JoinEvent, fold_in_event_order
from pipelines.rules.review import DecisionKind
from tests.unit.test_enforcement_order import CFG, KEY, in_force, observation, result
from tests.unit.test_review_decisions import LOOK_ALIKE, decision


def market() -> list[JoinEvent]:
    events: list[JoinEvent] = []
    # 40 listings seen again and again (enough repeats for the stage to compact
    # its bag), half taken down before the result, a few back on sale after it
    for n in range(1, 41):
        for crawl in range(6):  # 240 observations, 64 changes: compacted
            events.append(observation(n, crawl, position=n * 10 + crawl))
        if n % 2:
            events.append(observation(n, 60, active=False, position=n * 10 + 5))
        if n % 10 == 1:
            events.append(observation(n, 150, position=n * 10 + 6))
    events.append(result(1, minutes=120))
    events.append(result(2, minutes=125, verdict="COUNTERFEIT", platform="tmall"))
    events.append(
        result(
            2, minutes=200, verdict="COUNTERFEIT", platform="tmall", status="OVERTURNED", position=9
        )
    )
    return events


def emitted(outputs: list[TaskOut | ReviewOut]) -> list[tuple[str, dict[str, Any]]]:
    return [("task" if isinstance(o, TaskOut) else "review", o.record) for o in outputs]


def matches(expected: list[tuple[str, dict[str, Any]]], exactly: bool) -> Any:
    """An assert_that matcher (it runs inside the pipeline, so it carries what it compares)."""

    def check(outputs: list[TaskOut | ReviewOut]) -> None:
        got = emitted(outputs)
        assert in_force(got) == in_force(expected), (in_force(got), in_force(expected))
        if exactly:
            assert sorted(map(repr, got)) == sorted(map(repr, expected))

    return check


@pytest.mark.parametrize("in_event_order", [True, False])
def test_join_stage_matches_the_pure_fold(in_event_order: bool) -> None:
    events = market()
    expected = fold_in_event_order(KEY, events, CFG)
    assert in_force(expected)  # the world issues tasks at all

    options = PipelineOptions(pipeline_args_with_defaults(None, streaming=False))
    with beam.Pipeline(options=options) as pipeline:
        outputs = (
            pipeline
            | "Events" >> beam.Create([(KEY, e) for e in reversed(events)])
            | "Join" >> JoinResultsAndListings(CFG, in_event_order)
        )
        assert_that(outputs, matches(expected, exactly=in_event_order))


def market_with_decisions() -> list[JoinEvent]:
    """The market above, plus look-alikes (reviews) a regulator confirmed or rejected,
    one decided twice (the later REJECT wins), and one confirmed before it met."""
    events = market()
    fail = result(1, minutes=120)
    for n in range(101, 111):
        look_alike = observation(n, 10, model=LOOK_ALIKE, position=n * 10)
        events.append(look_alike)
        kind = DecisionKind.CONFIRM if n % 2 else DecisionKind.REJECT
        events.append(decision(kind, look_alike, fail, 300 + n, n=n, position=n))
    twice = observation(111, 10, model=LOOK_ALIKE, position=1110)
    events += [
        twice,
        decision(DecisionKind.CONFIRM, twice, fail, 400, n=201, position=201),
        decision(DecisionKind.REJECT, twice, fail, 450, n=202, position=202),
    ]
    late = observation(112, 500, model=LOOK_ALIKE, position=1120)  # on sale after it was confirmed
    events += [late, decision(DecisionKind.CONFIRM, late, fail, 350, n=203, position=203)]
    return events


@pytest.mark.parametrize("in_event_order", [True, False])
def test_join_stage_with_decisions_matches_the_pure_fold(in_event_order: bool) -> None:
    events = market_with_decisions()
    expected = fold_in_event_order(KEY, events, CFG)
    confirmed = [r for k, r in expected if k == "task" and "confirmed on review" in r["reason"]]
    assert len({t["listing_id"] for t in confirmed if t["kind"] == "DELIST"}) == 7

    options = PipelineOptions(pipeline_args_with_defaults(None, streaming=False))
    with beam.Pipeline(options=options) as pipeline:
        outputs = (
            pipeline
            | "Events" >> beam.Create([(KEY, e) for e in reversed(events)])
            | "Join" >> JoinResultsAndListings(CFG, in_event_order)
        )
        assert_that(outputs, matches(expected, exactly=in_event_order))
