"""Great Expectations Data Docs views that work offline (used by ``write_data_docs``).

GX 1.24 Data Docs pull jQuery, Bootstrap and bootstrap-table from CDNs, and the site index
is *only* a ``<table>`` that bootstrap-table fills from a script: opened without network
(a regulator's air-gapped workstation, a CI artifact) the index page is empty. GX's own
``custom_views_directory`` cannot fix that, because its loader is consulted *after* the
packaged templates. These views put a small set of replacement templates *first*:

- ``bootstrap_table.j2``: the same table rendered as static HTML, each row linking to its
  validation page (the platform is in the run name and asset name columns, the suite in
  the suite column);
- ``top_navbar.j2``: the navbar without GX's logo from S3 (a text brand instead);
- ``cloud-footer.j2``: no newsletter footer;
- ``js_script_imports.j2``: none of the CDN scripts (jQuery, Bootstrap, Vega, ...);
- ``page_action_card.j2``: no "Show All / Failed Only" card, whose buttons need jQuery;
- ``data_docs_custom_styles.css`` (GX inlines it into every page): enough styling for
  tables, cards and status icons, since the CDN stylesheets never load.

``write_data_docs`` then strips whatever still refers to another origin (``make_offline``
in :mod:`pipelines.feed_health.report`), so the pages make no network request at all.
This module imports Great Expectations at import time; ``pipelines.feed_health`` only
names it in the site config, so it is imported only when Data Docs are built.
"""

from __future__ import annotations

from typing import Any

from great_expectations.render.view import DefaultJinjaIndexPageView, DefaultJinjaPageView
from jinja2 import ChoiceLoader, DictLoader

__all__ = ["OFFLINE_TEMPLATES", "OfflineIndexPageView", "OfflinePageView"]

_STATIC_TABLE = """\
{% include 'content_block_header.j2' %}
{%- set table_columns = content_block["table_columns"] %}
{%- set rows = content_block["table_data"] | render_bootstrap_table_data %}
{%- set fields = table_columns | map(attribute="field") | list %}
{%- set link_field = "run_name" if "run_name" in fields else fields[0] %}
<table class="table table-sm omm-static-table">
  <thead>
    <tr>{% for col in table_columns %}<th>{{ col["title"] | e }}</th>{% endfor %}</tr>
  </thead>
  <tbody>
  {%- for row in rows %}
    <tr>
    {%- for fld in fields %}
      {%- if fld == "expectation_suite_name" and "_expectation_suite_name_sort" in row %}
        {%- set cell = row["_expectation_suite_name_sort"] | e %}
      {%- else %}
        {%- set cell = row.get(fld, "") %}
      {%- endif %}
      <td>
      {%- if fld == link_field and row.get("_table_row_link_path") -%}
        <a href="{{ row["_table_row_link_path"] }}">{{ cell }}</a>
      {%- else -%}
        {{ cell }}
      {%- endif -%}
      </td>
    {%- endfor %}
    </tr>
  {%- endfor %}
  </tbody>
</table>
"""

_NAVBAR = """\
{% if expectation_suite_name %}
  {% set expectation_suite_name_dot_count = expectation_suite_name.count(".") -%}
{% endif %}
{% if "ValidationResults" in renderer_type or "ProfilingResults" in renderer_type %}
  {% set home_url = ((expectation_suite_name_dot_count + 4) * "../") + "index.html" -%}
{% elif "ExpectationSuite" in renderer_type %}
  {% set home_url = ((expectation_suite_name_dot_count + 1) * "../") + "index.html" -%}
{% else %}
  {% set home_url = "#" -%}
{% endif %}
<nav class="navbar navbar-expand-md border-bottom omm-navbar">
  <a class="navbar-brand" href="{{ home_url }}">omm feed health</a>
  {% if page_title %}
    <ol class="ge-breadcrumbs breadcrumb bg-light ml-2 mb-0">
      <li class="ge-breadcrumbs-item breadcrumb-item"><a href="{{ home_url }}">Home</a></li>
      <li class="ge-breadcrumbs-item breadcrumb-item active">{{ page_title }}</li>
    </ol>
  {% endif %}
</nav>
"""

_STYLES = """\
body { font-family: system-ui, sans-serif; margin: 0; color: #1f2328; }
.omm-navbar { padding: .5rem 1rem; display: flex; gap: 1rem; align-items: center;
              background: #f6f8fa; border-bottom: 1px solid #d0d7de; }
.omm-navbar .navbar-brand { font-weight: 600; text-decoration: none; }
.breadcrumb { display: inline-flex; list-style: none; gap: .5rem; padding: 0; margin: 0; }
.container-fluid { padding: 1rem 1.5rem; }
.row { display: flex; flex-wrap: wrap; gap: 1rem; }
.col-lg-2 { flex: 0 0 14rem; } .col-md-10 { flex: 1 1 40rem; min-width: 0; }
.col-6 { flex: 1 1 20rem; } .col-12 { flex: 1 1 100%; }
.card { border: 1px solid #d0d7de; border-radius: 6px; margin-bottom: 1rem; }
.card-header { background: #f6f8fa; padding: .4rem .6rem; border-bottom: 1px solid #d0d7de; }
.card-body { padding: .4rem .6rem; }
.nav { list-style: none; padding: 0; margin: 0; }
.alert-secondary { background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 6px;
                   padding: .5rem .75rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem 0; }
th, td { border: 1px solid #ccc; padding: .25rem .5rem; text-align: left;
         vertical-align: top; }
th { background: #f3f3f3; }
.table-responsive { overflow-x: auto; }
.fa-check-circle::before { content: "\\2714"; color: #1a7f37; }
.fa-times::before { content: "\\2718"; color: #cf222e; }
"""

#: Templates consulted before GX's own (name -> source).
OFFLINE_TEMPLATES: dict[str, str] = {
    "bootstrap_table.j2": _STATIC_TABLE,
    "top_navbar.j2": _NAVBAR,
    "cloud-footer.j2": "",
    "js_script_imports.j2": "",
    "page_action_card.j2": "",
    "data_docs_custom_styles.css": _STYLES,
}


def _prefer_offline_templates(view: Any) -> None:
    view.env.loader = ChoiceLoader([DictLoader(OFFLINE_TEMPLATES), view.env.loader])


class OfflinePageView(DefaultJinjaPageView):
    """GX's page view (validation result pages) with the offline templates first."""

    def __init__(
        self, custom_styles_directory: str | None = None, custom_views_directory: str | None = None
    ) -> None:
        super().__init__(custom_styles_directory, custom_views_directory)
        _prefer_offline_templates(self)


class OfflineIndexPageView(DefaultJinjaIndexPageView):
    """GX's site index view with the offline templates first (a static index table)."""

    def __init__(
        self, custom_styles_directory: str | None = None, custom_views_directory: str | None = None
    ) -> None:
        super().__init__(custom_styles_directory, custom_views_directory)
        _prefer_offline_templates(self)
