"""Expectation suites: what a healthy batch of one feed looks like, as data.

Record rules (:mod:`pipelines.rules.record_rules`) judge one record; a suite judges a
*batch*: the records ingest accepted from one platform's feed in one window. A feed whose
listings suddenly arrive 40 % without brand, with prices a hundred times too high, or with
every ``observed_at`` hours stale passes every record rule and still poisons the join.

The suites live in ``config/expectations/<feed>.yaml`` (format documented at the top of
``listings.yaml``): Great Expectations 1.x expectation class names with their kwargs, a
``critical`` flag, a description, optional row conditions (``where``), and the columns omm
derives before validating (``gtin_valid``, ``age_hours``, value shares, ``task_known``).
This module types and checks them; it imports neither Great Expectations nor Beam.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from schemas.feeds import FEED_ENTITIES, REGULATOR_ENTITIES
from schemas.registry import SchemaRegistry

#: The feeds that have a suite, each in ``config/expectations/<feed>.yaml``.
FEEDS: tuple[str, ...] = ("listings", "complaints", "takedowns", "inspections")
#: The Avro entity (schemas/avro/<entity>) of each suite's feed.
SUITE_ENTITIES: dict[str, str] = {
    feed: {**FEED_ENTITIES, **REGULATOR_ENTITIES}[feed] for feed in FEEDS
}
OnFailure = Literal["warn", "quarantine"]

# Keys the config must not set through kwargs: omm sets them itself.
_RESERVED_KWARGS = frozenset(
    {"row_condition", "condition_parser", "result_format", "meta", "description", "batch_id"}
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DerivedColumn(_Strict):
    """A column omm computes from the records before validation (see ``listings.yaml``)."""

    kind: Literal["gtin_valid", "age_hours", "value_share", "known_task", "in_bounds"]
    source: str = Field(min_length=1)
    #: ``age_hours``: the time ages are measured from.
    reference: Literal["validated_at", "window_end"] = "validated_at"
    #: ``in_bounds``: the column whose value picks the bounds, e.g. ``category``.
    by: str | None = None
    #: ``in_bounds``: [min, max] (inclusive, either may be null) per value of ``by``.
    bounds: dict[str, tuple[float | None, float | None]] = Field(default_factory=dict)
    #: ``in_bounds``: bounds for values of ``by`` not in ``bounds``; null = not checked.
    default: tuple[float | None, float | None] | None = None
    #: ``in_bounds``: only rows where these columns equal these values are checked.
    when: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _kind_options(self) -> DerivedColumn:
        if self.kind == "in_bounds":
            if not self.by or not (self.bounds or self.default):
                raise ValueError("kind in_bounds needs `by` and `bounds` (or `default`)")
        elif self.by or self.bounds or self.default or self.when:
            raise ValueError(f"by/bounds/default/when apply to kind in_bounds, not {self.kind}")
        return self

    @property
    def inputs(self) -> tuple[str, ...]:
        """Record fields this column is computed from."""
        cols = [self.source, *([self.by] if self.by else []), *self.when]
        return tuple(dict.fromkeys(cols))


class ExpectationSpec(_Strict):
    """One entry of a suite config: a GX 1.x expectation class, its kwargs, and omm's flags."""

    expectation: str = Field(pattern=r"^Expect[A-Za-z0-9]+$")
    kwargs: dict[str, Any] = Field(default_factory=dict)
    where: dict[str, Any] | None = None
    value_set_from: Literal["platforms"] | None = None
    min_rows: int = Field(default=1, ge=0)
    critical: bool = False
    description: str = Field(min_length=1)

    @field_validator("kwargs")
    @classmethod
    def _no_reserved_kwargs(cls, v: dict[str, Any]) -> dict[str, Any]:
        reserved = sorted(set(v) & _RESERVED_KWARGS)
        if reserved:
            raise ValueError(
                f"kwargs may not set {', '.join(reserved)}: use `where` for a row condition; "
                "description, meta and result format are set by omm"
            )
        return v

    @field_validator("where")
    @classmethod
    def _where_shape(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("where must name at least one column")
        for column, test in v.items():
            if isinstance(test, Mapping):
                if len(test) != 1 or next(iter(test)) not in ("in", "not_in"):
                    raise ValueError(
                        f"where.{column}: use a value (equality) or {{in: [...]}} / "
                        f"{{not_in: [...]}}, got {dict(test)!r}"
                    )
                values = next(iter(test.values()))
                if not isinstance(values, list) or not values:
                    raise ValueError(f"where.{column}: expected a non-empty list of values")
            elif test is None or isinstance(test, list):
                raise ValueError(
                    f"where.{column}: expected a value, {{in: ...}} or {{not_in: ...}}"
                )
        return v

    @field_validator("description")
    @classmethod
    def _no_dollar(cls, v: str) -> str:
        # Data Docs render descriptions as string templates, where "$name" is a parameter.
        if "$" in v:
            raise ValueError("description may not contain '$' (Data Docs treat it as a parameter)")
        return v.strip()

    @property
    def column(self) -> str | None:
        """The single column the expectation is about, if it has one."""
        col = self.kwargs.get("column")
        return str(col) if col is not None else None

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column the expectation reads (domain columns and row-condition columns)."""
        cols: list[str] = []
        if self.column is not None:
            cols.append(self.column)
        cols.extend(str(c) for c in self.kwargs.get("column_list", ()) or ())
        cols.extend(str(self.kwargs[k]) for k in ("column_A", "column_B") if k in self.kwargs)
        cols.extend(self.where or ())
        return tuple(dict.fromkeys(cols))


class SuiteConfig(_Strict):
    """The expectation suite of one feed, as read from ``config/expectations/<feed>.yaml``."""

    suite: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    feed: Literal["listings", "complaints", "takedowns", "inspections"]
    on_failure: OnFailure = "warn"
    derived: dict[str, DerivedColumn] = Field(default_factory=dict)
    expectations: list[ExpectationSpec] = Field(min_length=1)

    @property
    def source_columns(self) -> tuple[str, ...]:
        """Record fields the DataFrame needs: what the expectations read, minus derived ones,
        plus the sources of the derived columns."""
        cols: list[str] = []
        for spec in self.expectations:
            cols.extend(c for c in spec.columns if c not in self.derived)
        for d in self.derived.values():
            cols.extend(d.inputs)
        return tuple(dict.fromkeys(cols))


def load_suite_config(path: Path) -> SuiteConfig:
    """Read and validate one suite config; errors name the file and the key."""
    try:
        with path.open(encoding="utf-8") as handle:
            raw = yaml.safe_load(handle)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"expectation suite config missing: {path}") from exc
    try:
        return SuiteConfig.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(f"{path}: invalid expectation suite config:\n{exc}") from exc


def load_suites(directory: Path) -> dict[str, SuiteConfig]:
    """Every feed's suite from ``directory`` (``config/expectations``), checked against the
    contracts: a column that is neither a field of the feed's entity nor derived is an error
    naming the file."""
    registry = SchemaRegistry.load()
    suites: dict[str, SuiteConfig] = {}
    for feed in FEEDS:
        path = directory / f"{feed}.yaml"
        cfg = load_suite_config(path)
        if cfg.feed != feed:
            raise ValueError(f"{path}: declares feed {cfg.feed!r}, expected {feed!r}")
        entity = SUITE_ENTITIES[feed]
        fields = {f["name"] for f in registry.current(entity).schema["fields"]}
        unknown = sorted(set(cfg.source_columns) - fields)
        if unknown:
            raise ValueError(
                f"{path}: column(s) {', '.join(unknown)} are neither fields of "
                f"{entity} nor derived columns ({', '.join(cfg.derived)})"
            )
        suites[feed] = cfg
    return suites


class FeedHealthConfig(_Strict):
    """``feed_health`` in ``config/rules.yaml``: how batches are cut."""

    enabled: bool = True
    # a batch closes at this many rows, or when its window ends
    batch_rows: int = Field(default=20_000, gt=0)
    # streaming runs: fixed event-time windows of this length
    window_seconds: int = Field(default=600, gt=0)
