"""Running a pipeline and reading its account, the same way for every stage."""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeVar

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


def run(label: str, transform: beam.PTransform, pipeline_args: list[str]) -> Any:
    """Build a pipeline of one root transform, run it to the end; the runner's result."""
    pipeline = beam.Pipeline(options=PipelineOptions(pipeline_args))
    _ = pipeline | label >> transform
    result = pipeline.run()
    result.wait_until_finish()
    return result


def counters(result: Any, namespace: str) -> dict[str, int]:
    """The stage's counters by name (committed where the runner commits, else attempted)."""
    counts: dict[str, int] = {}
    for counter in result.metrics().query()["counters"]:
        if counter.key.metric.namespace == namespace:
            name = counter.key.metric.name
            counts[name] = counts.get(name, 0) + (counter.committed or counter.attempted or 0)
    return counts


A = TypeVar("A", bound="DataclassInstance")


def account(kind: type[A], result: Any, namespace: str) -> A:
    """A stage's account (a dataclass) from its counters: each field is the counter of
    its name, ``read`` the counter ``in``; a counter never incremented is 0."""
    counts = counters(result, namespace)
    names = [f.name for f in fields(kind)]
    return kind(**{n: counts.get("in" if n == "read" else n, 0) for n in names})
