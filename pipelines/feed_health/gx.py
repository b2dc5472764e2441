"""The Great Expectations adapter: a suite and a batch of records in, a :class:`FeedHealth` out.

Great Expectations is imported lazily, inside :class:`FeedValidator`: importing it costs
~3 s and ~130 MB, so only the stage that validates pays for it, once per worker (one
validator, one ephemeral context, suites built once per feed). The observed values and
thresholds are put in words here, so a health record reads without GX at hand.
"""

from __future__ import annotations

import json
import math
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipelines.feed_health.results import (
    ExpectationOutcome,
    FeedHealth,
    as_utc,
    now_millis,
    to_millis,
)
from pipelines.feed_health.suites import (
    FEEDS,
    DerivedColumn,
    ExpectationSpec,
    SuiteConfig,
)
from schemas.gtin import gtin_is_valid

# Only a few example values per failing expectation: enough to name the problem in a
# health record, cheap to compute, and no long lists of (possibly personal) values.
_RESULT_FORMAT: dict[str, Any] = {"result_format": "BASIC", "partial_unexpected_count": 5}
_MAX_EXAMPLES = 3
_MS_PER_HOUR = 3_600_000.0


@dataclass
class _Prepared:
    """A batch turned into columns, with what had to be skipped."""

    columns: dict[str, list[Any]]
    skipped_columns: set[str] = field(default_factory=set)
    #: Per derived column, what its failing rows were (named in the observed value).
    examples: dict[str, str] = field(default_factory=dict)


class FeedValidator:
    """Validates batches of feed records against their feed's suite (:func:`load_suites`).

    One instance per worker (e.g. created in a DoFn's ``setup``): it holds one ephemeral
    Great Expectations context, created on first use, and builds each feed's suite once.
    ``known_task_ids`` returns the task ids omm has issued; takedowns claiming another task
    fail ``task_known``; while it is None or returns an empty set that check is skipped.
    Ingest passes the ids issued to the batch's platform to :meth:`validate` instead: there
    an empty set is an answer (no task was issued) and the check runs.
    Calls are serialised by a lock (a GX context is not meant to be shared by threads).
    """

    def __init__(
        self,
        suites: Mapping[str, SuiteConfig],
        platform_ids: Sequence[str],
        known_task_ids: Callable[[], set[str]] | None = None,
    ) -> None:
        self._known_task_ids = known_task_ids
        self._configs: dict[str, SuiteConfig] = dict(suites)
        # what `value_set_from: platforms` expands to
        self._platform_ids = list(platform_ids)
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
        validated_at = now_millis()
        rows = len(records)
        prepared = self._prepare_columns(
            cfg, records, validated_at, as_utc(window_end), known_task_ids
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
            window_start=to_millis(window_start),
            window_end=to_millis(window_end),
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


def _epoch_ms(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return as_utc(value).timestamp() * 1000.0
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
