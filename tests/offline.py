"""The static half of the reports' no-network check: what a page would fetch elsewhere.

Written apart from ``pipelines.feed_health.report.make_offline`` (which removes such
references) so the check does not share its blind spots: every attribute that makes a
browser fetch or navigate, every ``<script>`` and ``<link>``, every CSS ``url()`` and
``@import`` that names another origin.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

# http:, https:, ftp:, ws: with or without slashes, or any scheme (or none) before "//".
OTHER_ORIGIN = re.compile(r"^\s*(?:(?:https?|ftps?|wss?):|(?:[a-z][a-z0-9+.-]*:)?//)", re.I)
URL_ATTRIBUTES = {"src", "href", "srcset", "action", "poster", "data", "background", "xlink:href"}
CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")]*)", re.I)
CSS_IMPORT = re.compile(r"@import\s+(?:url\()?\s*['\"]?([^'\");\s]*)", re.I)


class _References(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self.scripts = 0
        self.stylesheets = 0
        self._style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts += 1
        if tag == "link":
            self.stylesheets += 1
        for name, value in attrs:
            if value is None:
                continue
            if name in URL_ATTRIBUTES:
                parts = value.split(",") if name == "srcset" else [value]
                self.found += [f"{tag} {name}={value}" for p in parts if OTHER_ORIGIN.match(p)]
            if name == "style":
                self.found += css_references(value)
        self._style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._style = False

    def handle_data(self, data: str) -> None:
        if self._style:
            self.found += css_references(data)


def css_references(css: str) -> list[str]:
    """``url()`` and ``@import`` targets on another origin."""
    targets = CSS_URL.findall(css) + CSS_IMPORT.findall(css)
    return [f"css {t}" for t in targets if OTHER_ORIGIN.match(t)]


def other_origin_references(html: str) -> list[str]:
    """Everything in ``html`` a browser would fetch from (or link to) another origin."""
    parser = _References()
    parser.feed(html)
    parser.close()
    return parser.found


def self_contained_problems(html: str) -> list[str]:
    """For omm's own pages, stricter: no reference elsewhere, and no script, no
    ``<link>``, no ``url()`` and no absolute URL anywhere in the text."""
    parser = _References()
    parser.feed(html)
    parser.close()
    problems = list(parser.found)
    if parser.scripts:
        problems.append(f"{parser.scripts} <script> element(s)")
    if parser.stylesheets:
        problems.append(f"{parser.stylesheets} <link> element(s)")
    problems += [f"text {m}" for m in re.findall(r"url\(|https?://|@import", html, re.I)]
    return problems
