"""Feed health: Great Expectations suites over batches of one platform's feed (issue 4).

Record rules (:mod:`pipelines.rules.record_rules`) judge one record; this module judges a
*batch*: the records ingest accepted from one platform's feed in one window. A feed whose
listings suddenly arrive 40 % without brand, with prices a hundred times too high, or with
every ``observed_at`` hours stale passes every record rule and still poisons the join.

The suites are data, in ``config/expectations/<feed>.yaml`` (format documented at the top of
``listings.yaml``): Great Expectations 1.x expectation class names with their kwargs, a
``critical`` flag, a description, optional row conditions (``where``), and the columns omm
derives before validating (``gtin_valid``, ``age_hours``, value shares, ``task_known``).

Pure of Beam and Kafka. Great Expectations itself is imported lazily, inside
:class:`FeedValidator` and :func:`write_data_docs`: importing it costs ~3 s and ~130 MB, so
only the stage that validates pays for it, once per worker (one validator, one ephemeral
context, suites built once per feed).

:class:`FeedHealth` is what ingest publishes on ``omm.feed.health``
(``schemas/avro/feed_health/v1.avsc``); :func:`write_data_docs` turns the latest health record
per (platform, feed) back into Great Expectations Data Docs, from the records alone.
"""

from __future__ import annotations

import html
import json
import math
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, datetime
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

from schemas.gtin import gtin_is_valid
from schemas.registry import SchemaRegistry

__all__ = [
    "FEEDS",
    "FEED_ENTITIES",
    "DerivedColumn",
    "ExpectationOutcome",
    "ExpectationSpec",
    "FeedHealth",
    "FeedValidator",
    "SuiteConfig",
    "load_suite_config",
    "write_data_docs",
]

#: The feeds that have a suite, each in ``config/expectations/<feed>.yaml``.
FEEDS: tuple[str, ...] = ("listings", "complaints", "takedowns", "inspections")
#: The Avro entity (schemas/avro/<entity>) of each feed's records.
FEED_ENTITIES: dict[str, str] = {
    "listings": "listing",
    "complaints": "complaint",
    "takedowns": "takedown",
    "inspections": "inspection",
}
OnFailure = Literal["warn", "quarantine"]

# Keys the config must not set through kwargs: omm sets them itself.
_RESERVED_KWARGS = frozenset(
    {"row_condition", "condition_parser", "result_format", "meta", "description", "batch_id"}
)
# Only a few example values per failing expectation: enough to name the problem in a
# health record, cheap to compute, and no long lists of (possibly personal) values.
_RESULT_FORMAT: dict[str, Any] = {"result_format": "BASIC", "partial_unexpected_count": 5}
_MAX_EXAMPLES = 3
_MS_PER_HOUR = 3_600_000.0


# --------------------------------------------------------------------------- config


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


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ExpectationOutcome:
    """The result of one expectation on one batch, as published on ``omm.feed.health``."""

    expectation: str  # e.g. "expect_column_values_to_not_be_null(brand)"
    column: str | None
    success: bool
    observed: str  # observed value rendered, e.g. "0.62 of 9 rows non-null (3 unexpected)"
    threshold: str  # e.g. "mostly >= 0.90"
    critical: bool
    description: str
    #: The observed value as a number: share of rows meeting a row-by-row expectation, or
    #: the statistic of an aggregate one; None when there is none (e.g. an error).
    observed_value: float | None = None
    #: The GX kwargs as JSON, so Data Docs can be rebuilt from the record alone.
    kwargs_json: str = "{}"

    @property
    def expectation_type(self) -> str:
        """The snake-case GX expectation type, e.g. ``expect_column_values_to_not_be_null``."""
        return self.expectation.split("(", 1)[0]

    def to_record(self) -> dict[str, Any]:
        return {
            "expectation": self.expectation,
            "column": self.column,
            "success": self.success,
            "observed": self.observed,
            "observed_value": self.observed_value,
            "threshold": self.threshold,
            "critical": self.critical,
            "description": self.description,
            "kwargs_json": self.kwargs_json,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ExpectationOutcome:
        value = record.get("observed_value")
        return cls(
            expectation=str(record["expectation"]),
            column=record.get("column"),
            success=bool(record["success"]),
            observed=str(record["observed"]),
            threshold=str(record["threshold"]),
            critical=bool(record["critical"]),
            description=str(record["description"]),
            observed_value=float(value) if value is not None else None,
            kwargs_json=str(record.get("kwargs_json") or "{}"),
        )


@dataclass(frozen=True)
class FeedHealth:
    """Health of one platform's feed over one window (an ``omm.feed.health`` record)."""

    platform: str
    feed: str
    window_start: datetime
    window_end: datetime
    rows: int
    success: bool
    outcomes: tuple[ExpectationOutcome, ...]
    validated_at: datetime
    suite: str = ""
    on_failure: str = "warn"

    @property
    def key(self) -> str:
        """Kafka key on ``omm.feed.health``: the latest record per key is the current health."""
        return f"{self.platform}:{self.feed}"

    def failing(self) -> list[ExpectationOutcome]:
        """The expectations the batch did not meet, critical or not, in suite order."""
        return [o for o in self.outcomes if not o.success]

    def critical_failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if o.critical and not o.success]

    def quarantine(self, on_failure: str | None = None) -> bool:
        """True when ``on_failure`` (default: the suite's) is ``quarantine`` and a critical
        expectation failed."""
        mode = self.on_failure if on_failure is None else on_failure
        return mode == "quarantine" and bool(self.critical_failures())

    def summary(self) -> str:
        """One line for logs and the demo, naming the failing expectations."""
        head = f"{self.platform}/{self.feed}: {self.rows} rows"
        failing = self.failing()
        if not failing:
            return f"{head}, all {len(self.outcomes)} expectations met"
        parts = [
            f"{o.expectation} observed {o.observed}, expected {o.threshold}"
            + (" [critical]" if o.critical else "")
            for o in failing
        ]
        verdict = "QUARANTINED" if self.quarantine() else "warning"
        return f"{head}, {verdict}: " + "; ".join(parts)

    def to_record(self) -> dict[str, Any]:
        """The record for ``SchemaRegistry.encode("feed_health", ...)`` (feed_health v1)."""
        return {
            "platform": self.platform,
            "feed": self.feed,
            "suite": self.suite,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "rows": self.rows,
            "success": self.success,
            "on_failure": self.on_failure,
            "quarantined": self.quarantine(),
            "outcomes": [o.to_record() for o in self.outcomes],
            "validated_at": self.validated_at,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> FeedHealth:
        """Rebuild from a decoded ``feed_health`` record (e.g. read back from the topic)."""
        return cls(
            platform=str(record["platform"]),
            feed=str(record["feed"]),
            window_start=_as_utc(record["window_start"]),
            window_end=_as_utc(record["window_end"]),
            rows=int(record["rows"]),
            success=bool(record["success"]),
            outcomes=tuple(ExpectationOutcome.from_record(o) for o in record["outcomes"]),
            validated_at=_as_utc(record["validated_at"]),
            suite=str(record.get("suite") or ""),
            on_failure=str(record.get("on_failure") or "warn"),
        )


# --------------------------------------------------------------------------- validator


@dataclass
class _Prepared:
    """A batch turned into columns, with what had to be skipped."""

    columns: dict[str, list[Any]]
    skipped_columns: set[str] = field(default_factory=set)
    #: Per derived column, what its failing rows were (named in the observed value).
    examples: dict[str, str] = field(default_factory=dict)


class FeedValidator:
    """Validates batches of feed records against the suites in ``<config_dir>/expectations``.

    One instance per worker (e.g. created in a DoFn's ``setup``): it holds one ephemeral
    Great Expectations context, created on first use, and builds each feed's suite once.
    ``known_task_ids`` returns the task ids omm has issued; takedowns claiming another task
    fail ``task_known``; while it is None or returns an empty set that check is skipped.
    Ingest passes the ids issued to the batch's platform to :meth:`validate` instead: there
    an empty set is an answer (no task was issued) and the check runs.
    Calls are serialised by a lock (a GX context is not meant to be shared by threads).
    """

    def __init__(
        self, config_dir: Path, known_task_ids: Callable[[], set[str]] | None = None
    ) -> None:
        self.config_dir = Path(config_dir)
        self._known_task_ids = known_task_ids
        self._configs: dict[str, SuiteConfig] = {}
        registry = SchemaRegistry.load()
        for feed in FEEDS:
            path = self.config_dir / "expectations" / f"{feed}.yaml"
            cfg = load_suite_config(path)
            if cfg.feed != feed:
                raise ValueError(f"{path}: declares feed {cfg.feed!r}, expected {feed!r}")
            fields = {f["name"] for f in registry.current(FEED_ENTITIES[feed]).schema["fields"]}
            unknown = sorted(set(cfg.source_columns) - fields)
            if unknown:
                raise ValueError(
                    f"{path}: column(s) {', '.join(unknown)} are neither fields of "
                    f"{FEED_ENTITIES[feed]} nor derived columns ({', '.join(cfg.derived)})"
                )
            self._configs[feed] = cfg
        self._platform_ids: list[str] | None = None
        self._lock = threading.Lock()
        self._context: Any = None
        self._datasource: Any = None
        self._gx_suites: dict[tuple[str, tuple[int, ...]], Any] = {}
        self._batch_definitions: dict[tuple[str, str], Any] = {}
        self._last: dict[tuple[str, str], Any] = {}

    # ------------------------------------------------------------------ public

    def suite_for(self, feed: str) -> SuiteConfig:
        try:
            return self._configs[feed]
        except KeyError:
            raise KeyError(f"no expectation suite for feed {feed!r}; feeds: {FEEDS}") from None

    def prepare(self) -> None:
        """Import Great Expectations, create the context and build every suite now.

        Optional: :meth:`validate` does this lazily. Call it at worker start to pay the
        import once up front and to fail fast on a suite config GX rejects.
        """
        with self._lock:
            for feed, cfg in self._configs.items():
                self._suite(feed, tuple(range(len(cfg.expectations))))

    def validate(
        self,
        platform: str,
        feed: str,
        records: list[dict[str, Any]],
        window_start: datetime,
        window_end: datetime,
        known_task_ids: AbstractSet[str] | None = None,
    ) -> FeedHealth:
        """Validate one batch of Avro-shaped records of ``feed`` from ``platform``.

        ``known_task_ids``: the ids of the tasks omm issued to ``platform``; None falls
        back to the validator's ``known_task_ids`` callable.
        """
        cfg = self.suite_for(feed)
        validated_at = _now_ms()
        rows = len(records)
        prepared = self._prepare_columns(
            cfg, records, validated_at, _as_utc(window_end), known_task_ids
        )
        active = tuple(
            i
            for i, spec in enumerate(cfg.expectations)
            if rows >= max(spec.min_rows, 1) and not set(spec.columns) & prepared.skipped_columns
        )
        outcomes: list[ExpectationOutcome] = []
        if active:
            import pandas as pd

            frame = pd.DataFrame(prepared.columns)
            with self._lock:
                suite = self._suite(feed, active)
                batch = self._batch_definition(platform, feed).get_batch(
                    batch_parameters={"dataframe": frame}
                )
                result = batch.validate(suite, result_format=_RESULT_FORMAT)
                self._last[(platform, feed)] = result
            by_index = {int(r.expectation_config.meta["omm_index"]): r for r in result.results}
            outcomes = [
                _outcome(
                    cfg.expectations[i],
                    by_index[i],
                    self._kwargs(cfg.expectations[i]),
                    prepared.examples.get(cfg.expectations[i].column or ""),
                )
                for i in active
            ]
        return FeedHealth(
            platform=platform,
            feed=feed,
            window_start=_to_ms(window_start),
            window_end=_to_ms(window_end),
            rows=rows,
            success=all(o.success for o in outcomes),
            outcomes=tuple(outcomes),
            validated_at=validated_at,
            suite=cfg.suite,
            on_failure=cfg.on_failure,
        )

    def last_results(self) -> dict[tuple[str, str], Any]:
        """The latest GX ``ExpectationSuiteValidationResult`` per (platform, feed)."""
        with self._lock:
            return dict(self._last)

    # ------------------------------------------------------------------ columns

    def _prepare_columns(
        self,
        cfg: SuiteConfig,
        records: Sequence[Mapping[str, Any]],
        validated_at: datetime,
        window_end: datetime,
        known_task_ids: AbstractSet[str] | None = None,
    ) -> _Prepared:
        raw = {c: [r.get(c) for r in records] for c in cfg.source_columns}
        used = {c for spec in cfg.expectations for c in spec.columns if c not in cfg.derived}
        prepared = _Prepared(columns={c: raw[c] for c in raw if c in used})
        for name, spec in cfg.derived.items():
            values = raw[spec.source]
            if spec.kind == "gtin_valid":
                validity: dict[str, bool] = {}
                for g in set(values):
                    if g is not None:
                        validity[g] = gtin_is_valid(str(g))
                prepared.columns[name] = [None if g is None else validity[g] for g in values]
            elif spec.kind == "age_hours":
                ref = validated_at if spec.reference == "validated_at" else window_end
                prepared.columns[name] = _age_hours(values, ref)
            elif spec.kind == "value_share":
                prepared.columns[name] = _value_share(values)
            elif spec.kind == "in_bounds":
                flags = _in_bounds(spec, raw)
                prepared.columns[name] = flags
                prepared.examples[name] = _out_of_bounds_examples(spec, raw, flags)
            else:  # known_task
                if known_task_ids is not None:
                    known: AbstractSet[str] = known_task_ids
                elif self._known_task_ids is not None and self._known_task_ids():
                    known = self._known_task_ids()
                else:  # nobody told this validator which tasks exist: not judged
                    prepared.skipped_columns.add(name)
                    continue
                prepared.columns[name] = [None if t is None else t in known for t in values]
        return prepared

    # ------------------------------------------------------------------ GX objects

    def _gx_context(self) -> Any:
        if self._context is None:
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig

            context = gx.get_context(mode="ephemeral")
            # tqdm bars on every validation would flood worker logs.
            context.variables.progress_bars = ProgressBarsConfig(
                globally=False, metric_calculations=False
            )
            self._datasource = context.data_sources.add_pandas("omm")
            self._context = context
        return self._context

    def _batch_definition(self, platform: str, feed: str) -> Any:
        key = (platform, feed)
        if key not in self._batch_definitions:
            self._gx_context()
            asset = self._datasource.add_dataframe_asset(name=f"{platform}.{feed}")
            self._batch_definitions[key] = asset.add_batch_definition_whole_dataframe("window")
        return self._batch_definitions[key]

    def _platforms(self) -> list[str]:
        if self._platform_ids is None:
            from omm.config import load_platforms

            self._platform_ids = list(load_platforms(self.config_dir).ids)
        return self._platform_ids

    def _kwargs(self, spec: ExpectationSpec) -> dict[str, Any]:
        kwargs = dict(spec.kwargs)
        if spec.value_set_from == "platforms":
            kwargs["value_set"] = self._platforms()
        return kwargs

    def _suite(self, feed: str, active: tuple[int, ...]) -> Any:
        key = (feed, active)
        if key in self._gx_suites:
            return self._gx_suites[key]
        self._gx_context()
        import great_expectations as gx
        import great_expectations.expectations as gxe

        cfg = self._configs[feed]
        expectations = []
        for i in active:
            spec = cfg.expectations[i]
            cls = getattr(gxe, spec.expectation, None)
            if cls is None or not isinstance(cls, type):
                raise ValueError(
                    f"config/expectations/{feed}.yaml expectation #{i + 1}: "
                    f"{spec.expectation} is not a Great Expectations expectation class"
                )
            kwargs = self._kwargs(spec)
            if spec.where:
                kwargs["row_condition"] = _gx_condition(spec.where)
            try:
                expectations.append(
                    cls(
                        **kwargs,
                        description=spec.description,
                        meta={"omm_index": i, "critical": spec.critical},
                    )
                )
            except Exception as exc:  # pydantic validation of the kwargs
                raise ValueError(
                    f"config/expectations/{feed}.yaml expectation #{i + 1} "
                    f"({spec.expectation}): invalid kwargs {spec.kwargs}: {exc}"
                ) from exc
        skipped = len(cfg.expectations) - len(active)
        name = cfg.suite if not skipped else f"{cfg.suite}.partial{len(self._gx_suites)}"
        suite = gx.ExpectationSuite(name=name, expectations=expectations)
        self._gx_suites[key] = suite
        return suite


# --------------------------------------------------------------------------- helpers


def _as_utc(value: datetime | int) -> datetime:
    if isinstance(value, int):
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _to_ms(value: datetime) -> datetime:
    """UTC, truncated to milliseconds: what Avro timestamp-millis keeps."""
    value = _as_utc(value)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _now_ms() -> datetime:
    return _to_ms(datetime.now(UTC))


def _epoch_ms(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return _as_utc(value).timestamp() * 1000.0
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"expected a datetime or epoch milliseconds, got {type(value).__name__}")


def _age_hours(values: Sequence[Any], reference: datetime) -> list[float]:
    ref = reference.timestamp() * 1000.0
    out: list[float] = []
    for v in values:
        ms = _epoch_ms(v)
        out.append(math.nan if ms is None else (ref - ms) / _MS_PER_HOUR)
    return out


def _value_share(values: Sequence[Any]) -> list[float]:
    counts = Counter(v for v in values if v is not None)
    total = sum(counts.values())
    return [math.nan if v is None or not total else counts[v] / total for v in values]


def _in_bounds(spec: DerivedColumn, raw: Mapping[str, list[Any]]) -> list[bool | None]:
    """Per row: is ``source`` within the bounds for its ``by`` value? None = not checked."""
    values, keys = raw[spec.source], raw[spec.by or spec.source]
    checked = [all(raw[c][i] == v for c, v in spec.when.items()) for i in range(len(values))]
    out: list[bool | None] = []
    for value, key, check in zip(values, keys, checked, strict=True):
        band = spec.bounds.get(str(key), spec.default) if key is not None else spec.default
        if not check or band is None or value is None:
            out.append(None)
            continue
        lo, hi = band
        out.append((lo is None or value >= lo) and (hi is None or value <= hi))
    return out


def _out_of_bounds_examples(
    spec: DerivedColumn, raw: Mapping[str, list[Any]], flags: Sequence[bool | None]
) -> str:
    """E.g. ``kitchen 1290000 (12 rows), toys 1590000 (3 rows)``: the worst groups first."""
    keys, values = raw[spec.by or spec.source], raw[spec.source]
    counts: Counter[str] = Counter()
    first: dict[str, Any] = {}
    for key, value, ok in zip(keys, values, flags, strict=True):
        if ok is False:
            counts[str(key)] += 1
            first.setdefault(str(key), value)
    return ", ".join(
        f"{key} {_short(first[key])} ({n} rows)" for key, n in counts.most_common(_MAX_EXAMPLES)
    )


def _gx_condition(where: Mapping[str, Any]) -> Any:
    from great_expectations.expectations.row_conditions import AndCondition, Column

    parts: list[Any] = []
    for column, test in where.items():
        col = Column(column)
        if isinstance(test, Mapping):
            op, values = next(iter(test.items()))
            parts.append(col.is_in(values) if op == "in" else col.is_not_in(values))
        else:
            parts.append(col == test)
    return parts[0] if len(parts) == 1 else AndCondition(conditions=parts)


def _where_text(where: Mapping[str, Any]) -> str:
    parts = []
    for column, test in where.items():
        if isinstance(test, Mapping):
            op, values = next(iter(test.items()))
            word = "in" if op == "in" else "not in"
            parts.append(f"{column} {word} ({', '.join(map(str, values))})")
        else:
            parts.append(f"{column} == {test}")
    return " AND ".join(parts)


def _label(type_: str, spec: ExpectationSpec) -> str:
    cols = [c for c in spec.columns if not spec.where or c not in spec.where]
    inner = ", ".join(cols)
    if spec.where:
        inner += f" where {_where_text(spec.where)}"
    return f"{type_}({inner})"


def _num(x: Any) -> str:
    """A number for people: integers as such, other values to 4 significant digits."""
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, int) or (isinstance(x, float) and x.is_integer() and abs(x) < 1e15):
        return str(int(x))
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def _share(x: float) -> str:
    """A share with two decimals, three when the third one matters (0.62, 0.995)."""
    s = f"{x:.3f}"
    return s[:-1] if s.endswith("0") else s


def _short(value: Any, limit: int = 40) -> str:
    s = _num(value) if isinstance(value, int | float) else repr(value)
    return s if len(s) <= limit else s[: limit - 1] + "…"


_STATS = {
    "mean": "mean",
    "median": "median",
    "max": "max",
    "min": "min",
    "sum": "sum",
    "stdev": "stdev",
    "unique_value_count": "distinct values",
    "proportion_of_unique_values": "share of distinct values",
}


def _subject(type_: str) -> str:
    """What min_value/max_value bound: "value" for row-by-row expectations, else the stat."""
    if type_.startswith("expect_table_row_count"):
        return "row count"
    if type_.startswith("expect_column_") and type_.endswith("_to_be_between"):
        middle = type_[len("expect_column_") : -len("_to_be_between")]
        if middle in _STATS:
            return _STATS[middle]
        if middle == "value_lengths":
            return "length"
    return "value"


def _threshold(type_: str, kwargs: Mapping[str, Any]) -> str:
    parts: list[str] = []
    lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
    if lo is not None or hi is not None:
        what = _subject(type_)
        lo_op = "<" if kwargs.get("strict_min") else "<="
        hi_op = "<" if kwargs.get("strict_max") else "<="
        if lo is not None and hi is not None:
            parts.append(f"{_num(lo)} {lo_op} {what} {hi_op} {_num(hi)}")
        elif lo is not None:
            parts.append(f"{what} {'>' if kwargs.get('strict_min') else '>='} {_num(lo)}")
        else:
            parts.append(f"{what} {hi_op} {_num(hi)}")
    if "value_set" in kwargs:
        values = list(kwargs["value_set"])
        shown = ", ".join(_num(v) if not isinstance(v, str) else v for v in values[:12])
        more = f", … ({len(values)} values)" if len(values) > 12 else ""
        parts.append(f"in {{{shown}{more}}}")
    if "column_A" in kwargs and "column_B" in kwargs:
        op = ">=" if kwargs.get("or_equal") else ">"
        parts.append(f"{kwargs['column_A']} {op} {kwargs['column_B']}")
    unique = type_ in ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique")
    mostly = kwargs.get("mostly")
    if mostly is not None and float(mostly) < 1.0:
        if unique:
            parts.append("unique")
        parts.append(f"mostly >= {float(mostly):.2f}")
    elif unique:
        parts.append("all values unique")
    elif type_.startswith(("expect_column_values_", "expect_column_pair_", "expect_compound_")):
        parts.append("all rows")
    return "; ".join(parts) if parts else "see description"


_VERBS = {
    "expect_column_values_to_not_be_null": "non-null",
    "expect_column_values_to_be_null": "null",
    "expect_column_values_to_be_unique": "unique",
    "expect_compound_columns_to_be_unique": "unique",
    "expect_column_values_to_be_in_set": "in set",
    "expect_column_values_to_not_be_in_set": "outside the set",
    "expect_column_values_to_be_between": "in range",
}


def _observed(
    type_: str,
    kwargs: Mapping[str, Any],
    result: Mapping[str, Any],
    error: str | None,
    examples: str | None = None,
) -> tuple[str, float | None]:
    """The observed value rendered for people, and as a number."""
    if error is not None:
        return f"error: {error}", None
    if "observed_value" in result:
        value = result["observed_value"]
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
            if math.isnan(number):
                return "no values", None
            note = ""
            if type_ == "expect_column_max_to_be_between" and 0.0 <= number <= 1.0:
                note = " (largest value)"
            return _num(value) + note, number
        return _short(value, 200), None
    if "unexpected_percent" in result or "element_count" in result:
        total = int(result.get("element_count") or 0)
        considered = total - int(result.get("missing_count") or 0)
        if type_ in ("expect_column_values_to_not_be_null", "expect_column_values_to_be_null"):
            considered = total
        unexpected = int(result.get("unexpected_count") or 0)
        if considered <= 0:
            return f"no values to check ({total} rows, all null or excluded)", None
        share = 1.0 - unexpected / considered
        verb = _VERBS.get(type_, "as expected")
        if type_ == "expect_column_values_to_be_in_set" and list(kwargs.get("value_set", ())) == [
            True
        ]:
            verb = "true"
        rows = "rows" if considered == total else "non-null rows"
        text = f"{_share(share)} of {considered} {rows} {verb}"
        if unexpected:
            text += f" ({unexpected} unexpected"
            if examples:
                text += f": {examples}"
            elif type_ != "expect_column_values_to_not_be_null":
                partial = result.get("partial_unexpected_list") or ()
                shown = list(dict.fromkeys(_short(v) for v in partial))[:_MAX_EXAMPLES]
                if shown:
                    text += ", e.g. " + ", ".join(shown)
            text += ")"
        return text, share
    return "--", None


def _error_message(info: Any) -> str | None:
    """The first error in a GX ``exception_info``: flat, or keyed by metric (GX 1.x)."""
    if not isinstance(info, Mapping):
        return None
    candidates = [info, *(v for v in info.values() if isinstance(v, Mapping))]
    for candidate in candidates:
        if candidate.get("raised_exception"):
            lines = str(candidate.get("exception_message") or "").strip().splitlines()
            return (lines[0] if lines else "exception raised")[:200]
    return None


def _outcome(
    spec: ExpectationSpec, evr: Any, kwargs: Mapping[str, Any], examples: str | None = None
) -> ExpectationOutcome:
    config = evr.expectation_config
    type_ = str(config.type)
    error = _error_message(evr.exception_info)
    observed, value = _observed(type_, kwargs, dict(evr.result or {}), error, examples)
    gx_kwargs = {k: v for k, v in dict(config.kwargs).items() if k != "batch_id"}
    return ExpectationOutcome(
        expectation=_label(type_, spec),
        column=spec.column,
        success=bool(evr.success) and error is None,
        observed=observed,
        threshold=_threshold(type_, kwargs),
        critical=spec.critical,
        description=spec.description,
        observed_value=value,
        kwargs_json=json.dumps(gx_kwargs, default=str, ensure_ascii=False, sort_keys=True),
    )


# --------------------------------------------------------------------------- data docs

_SITE = "omm_feed_health"


def write_data_docs(results: Iterable[FeedHealth], out_dir: Path) -> Path:
    """Great Expectations Data Docs for ``results``, viewable offline; returns index.html.

    Works from the health records alone (what ``omm.feed.health`` carries): each FeedHealth
    becomes a GX ``ExpectationSuiteValidationResult`` again (expectation type and kwargs from
    the outcome's ``expectation`` and ``kwargs_json``, the observed value and threshold in
    the result and description), stored in a throw-away ephemeral context whose only Data
    Docs site is a filesystem site in ``out_dir``; GX's own ``SiteBuilder`` renders it.
    The views are GX's with four templates replaced (:mod:`pipelines.feed_health_docs`) so
    the index table and page headers need no CDN: offline, the pages are plain but complete.
    Pages of results no longer given are removed from ``out_dir``.
    """
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    views = "pipelines.feed_health_docs"
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    site: Any = {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {
            "class_name": "TupleFilesystemStoreBackend",
            "base_directory": str(out_dir),
        },
        "site_index_builder": {
            "class_name": "DefaultSiteIndexBuilder",
            "show_cta_footer": False,
            "view": {"module_name": views, "class_name": "OfflineIndexPageView"},
        },
        "site_section_builders": {
            "expectations": "None",
            "profiling": "None",
            "validations": {
                "view": {"module_name": views, "class_name": "OfflinePageView"},
            },
        },
    }
    # GX's TypedDict for site configs lacks keys SiteBuilder accepts (site_section_builders).
    context.add_data_docs_site(_SITE, site)
    store = context.validation_results_store
    for health in results:
        suite_name = health.suite or f"omm.{health.feed}"
        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite_name),
            run_id=RunIdentifier(run_name=_run_name(health), run_time=health.validated_at),
            batch_identifier=f"{health.platform}.{health.feed}",
        )
        store.set(key, _suite_result(health, suite_name))
    context.build_data_docs(site_names=[_SITE])
    return out_dir / "index.html"


def _run_name(health: FeedHealth) -> str:
    """``<platform>-<feed>-<window start>-<window end>``: no spaces (it becomes a path)."""
    fmt = "%Y%m%dT%H%M%SZ"
    return (
        f"{health.platform}-{health.feed}-"
        f"{health.window_start.strftime(fmt)}-{health.window_end.strftime(fmt)}"
    )


_NULL_RENDERED = frozenset(
    {"expect_column_values_to_not_be_null", "expect_column_values_to_be_null"}
)


def _suite_result(health: FeedHealth, suite_name: str) -> Any:
    """A GX ExpectationSuiteValidationResult rebuilt from a health record."""
    import great_expectations as gx
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    evrs = []
    for o in health.outcomes:
        flag = "critical" if o.critical else "non-critical"
        # GX renders the description as an HTML string template: escape it, and "$".
        description = html.escape(
            f"{o.description} [{flag}; {o.expectation}; threshold: {o.threshold}]"
        ).replace("$", "$$")
        meta = {"critical": o.critical, "threshold": o.threshold, "omm_expectation": o.expectation}
        try:
            kwargs = json.loads(o.kwargs_json or "{}")
            config = ExpectationConfiguration(
                type=o.expectation_type, kwargs=kwargs, description=description, meta=meta
            )
            config.to_domain_obj()  # the renderers need it; fall back when it cannot be built
        except Exception:
            config = ExpectationConfiguration(
                type="expect_column_to_exist",
                kwargs={"column": o.column or "(table)"},
                description=description,
                meta=meta,
            )
        result: dict[str, Any] = {"observed_value": o.observed}
        if config.type in _NULL_RENDERED and o.observed_value is not None:
            # These two render their observed value from unexpected_percent instead.
            result["unexpected_percent"] = 100.0 * (1.0 - o.observed_value)
        evrs.append(
            ExpectationValidationResult(success=o.success, expectation_config=config, result=result)
        )
    successful = sum(1 for o in health.outcomes if o.success)
    evaluated = len(health.outcomes)
    return ExpectationSuiteValidationResult(
        success=health.success,
        results=evrs,
        suite_name=suite_name,
        statistics={
            "evaluated_expectations": evaluated,
            "successful_expectations": successful,
            "unsuccessful_expectations": evaluated - successful,
            "success_percent": 100.0 * successful / evaluated if evaluated else None,
        },
        meta={
            "great_expectations_version": gx.__version__,
            "run_id": {"run_name": _run_name(health), "run_time": health.validated_at.isoformat()},
            "active_batch_definition": {
                "datasource_name": "omm",
                "data_connector_name": "fluent",
                "data_asset_name": f"{health.platform}.{health.feed}",
                "batch_identifiers": {},
            },
            "batch_spec": {
                "data_asset_name": f"{health.platform}.{health.feed}",
                "platform": health.platform,
                "feed": health.feed,
                "window_start": health.window_start.isoformat(),
                "window_end": health.window_end.isoformat(),
                "rows": health.rows,
                "on_failure": health.on_failure,
                "quarantined": health.quarantine(),
            },
            "validation_time": health.validated_at.isoformat(),
        },
    )
