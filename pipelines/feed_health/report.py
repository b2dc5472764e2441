"""The feed-health report: Great Expectations Data Docs from ``omm.feed.health`` records.

:func:`write_data_docs` turns the latest health record per (platform, feed) back into Data
Docs, from the records alone, viewable offline (:mod:`pipelines.feed_health.offline_views`).
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pipelines.feed_health.results import FeedHealth

_SITE = "omm_feed_health"


def write_data_docs(results: Iterable[FeedHealth], out_dir: Path) -> Path:
    """Great Expectations Data Docs for ``results``, viewable offline; returns index.html.

    Works from the health records alone (what ``omm.feed.health`` carries): each FeedHealth
    becomes a GX ``ExpectationSuiteValidationResult`` again (expectation type and kwargs from
    the outcome's ``expectation`` and ``kwargs_json``, the observed value and threshold in
    the result and description), stored in a throw-away ephemeral context whose only Data
    Docs site is a filesystem site in ``out_dir``; GX's own ``SiteBuilder`` renders it.
    The views are GX's with four templates replaced (:mod:`pipelines.feed_health.offline_views`) so
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
    views = "pipelines.feed_health.offline_views"
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
