"""The feed-health report: Great Expectations Data Docs from ``omm.feed.health`` records.

:func:`write_data_docs` turns the latest health record per (platform, feed) back into Data
Docs, from the records alone, viewable offline (:mod:`pipelines.feed_health.offline_views`)
and making no network request (:func:`make_offline`). :func:`data_docs_page` finds a
record's page in the site, for the overview that links to it (``omm/reports/feeds.py``).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from html.parser import HTMLParser
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
    The views are GX's with a few templates replaced (:mod:`pipelines.feed_health.offline_views`)
    so the index table and page headers need no CDN; then :func:`make_offline` takes every
    reference to another origin out of the pages and stylesheets, so opening them makes no
    network request at all. Pages of results no longer given are removed from ``out_dir``.
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
    make_offline(out_dir)
    return out_dir / "index.html"


def data_docs_page(health: FeedHealth, site_dir: Path) -> Path | None:
    """The validation page of ``health`` in a site :func:`write_data_docs` built, or None.

    GX stores it as ``validations/<suite parts>/<run name>/<run time>/<batch id>.html``;
    the run name and batch id (``<platform>.<feed>``) are ours, so they find it.
    """
    run = _run_name(health)
    for path in sorted((site_dir / "validations").rglob(f"{health.platform}.{health.feed}.html")):
        if path.parent.parent.name == run:
            return path
    return None


# --------------------------------------------------------------------------- offline

# A reference to another origin: a scheme followed by "//" (http:, https:, ftp:, ...), a
# protocol-relative "//host", or a web scheme without slashes ("http:host" is absolute to
# a browser too). Relative paths, fragments and data: URIs stay on the page.
_OTHER_ORIGIN = re.compile(r"^\s*(?:(?:https?|ftps?|wss?):|(?:[a-z][a-z0-9+.-]*:)?//)", re.I)
_CSS_URL = re.compile(r"url\(\s*(?P<q>['\"]?)(?P<url>.*?)(?P=q)\s*\)", re.I | re.S)
_CSS_IMPORT = re.compile(r"@import\s+[^;]*;", re.I)
# Attributes that make a browser fetch something (or navigate, for href and action).
_URL_ATTRIBUTES = frozenset({"href", "src", "srcset", "action", "poster", "data", "background"})
# Elements that are nothing but the thing they fetch: dropped whole when it is elsewhere.
_FETCHING_ELEMENTS = frozenset(
    {"link", "img", "iframe", "embed", "object", "source", "track", "video", "audio"}
)


def is_other_origin(url: str) -> bool:
    return bool(_OTHER_ORIGIN.match(url)) or any(
        _OTHER_ORIGIN.match(part.strip()) for part in url.split(",")[1:]
    )


def offline_css(css: str) -> str:
    """``css`` with every ``url()`` to another origin replaced by ``none`` and every
    ``@import`` of one removed (GX's default styles put its logo behind an S3 URL)."""

    def _url(match: re.Match[str]) -> str:
        return "none" if is_other_origin(match["url"]) else match[0]

    def _import(match: re.Match[str]) -> str:
        target = re.sub(r"^@import\s+(?:url\()?\s*['\"]?", "", match[0], flags=re.I)
        return "" if is_other_origin(target) else match[0]

    return _CSS_URL.sub(_url, _CSS_IMPORT.sub(_import, css))


class _OfflineHTML(HTMLParser):
    """Copies a page, leaving out what would reach another origin: every ``<script>``
    (GX's inline scripts only drive jQuery, Bootstrap and Vega from CDNs, which never
    load here), elements that fetch from elsewhere (stylesheets, images, frames),
    attributes that point elsewhere (a link to greatexpectations.io keeps its text) and
    CSS ``url()``s to elsewhere in ``<style>`` and ``style=""``. The rest is copied as
    written."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.out: list[str] = []
        self._in_script = False
        self._in_style = False

    def _start(self, tag: str, attrs: list[tuple[str, str | None]], closed: bool) -> None:
        if self._in_script:
            return
        if tag == "script":
            self._in_script = not closed
            return
        fetched = [v for k, v in attrs if k in _URL_ATTRIBUTES and v]
        if tag in _FETCHING_ELEMENTS and any(is_other_origin(v) for v in fetched):
            return
        kept: list[tuple[str, str | None]] = []
        for name, value in attrs:
            if name in _URL_ATTRIBUTES and value and is_other_origin(value):
                continue
            if name == "style" and value:
                value = offline_css(value)
            kept.append((name, value))
        if kept == attrs:
            self.out.append(self.get_starttag_text() or "")
        else:
            rendered = "".join(
                f" {n}" if v is None else f' {n}="{html.escape(v, quote=True)}"' for n, v in kept
            )
            self.out.append(f"<{tag}{rendered}{' /' if closed else ''}>")
        self._in_style = tag == "style" and not closed

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs, closed=False)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs, closed=True)

    def handle_endtag(self, tag: str) -> None:
        if self._in_script:
            self._in_script = tag != "script"
            return
        if tag == "script":
            return
        self._in_style = False
        self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        if not self._in_script:
            self.out.append(offline_css(data) if self._in_style else data)

    def handle_entityref(self, name: str) -> None:
        if not self._in_script:
            self.out.append(f"&{name};")

    def handle_charref(self, name: str) -> None:
        if not self._in_script:
            self.out.append(f"&#{name};")

    def handle_comment(self, data: str) -> None:
        if not self._in_script:
            self.out.append(f"<!--{data}-->")

    def handle_decl(self, decl: str) -> None:
        self.out.append(f"<!{decl}>")

    def handle_pi(self, data: str) -> None:
        self.out.append(f"<?{data}>")

    def unknown_decl(self, data: str) -> None:
        self.out.append(f"<![{data}]>")


def offline_html(text: str) -> str:
    """``text`` without anything that would make a browser reach another origin."""
    parser = _OfflineHTML()
    parser.feed(text)
    parser.close()
    return "".join(parser.out)


def make_offline(site_dir: Path) -> None:
    """Rewrite every page and stylesheet under ``site_dir`` with :func:`offline_html` and
    :func:`offline_css`: GX's templates load jQuery, Bootstrap, Font Awesome and Vega from
    CDNs, which an air-gapped workstation cannot reach and a regulator's report must not
    ask for."""
    for path in sorted(site_dir.rglob("*.html")):
        path.write_text(offline_html(path.read_text(encoding="utf-8")), encoding="utf-8")
    for path in sorted(site_dir.rglob("*.css")):
        path.write_text(offline_css(path.read_text(encoding="utf-8")), encoding="utf-8")


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
