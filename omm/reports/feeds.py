"""The feed-health report: the latest health of every platform feed, failing feeds first.

:func:`render_feeds` draws the overview from ``omm.feed.health`` records alone
(:class:`~pipelines.feed_health.results.FeedHealth`): feeds with a failed critical
expectation first, then those with warnings, then the healthy ones; for each failing
feed, every failing expectation with what was observed, what was expected and the
example values or record groups the health record names. :func:`write_feeds_report`
puts it in ``DIR/index.html`` with the Great Expectations Data Docs in ``DIR/gx/``
(made offline by :func:`pipelines.feed_health.report.write_data_docs`), linked from
each feed's row.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from omm.reports.page import (
    Column,
    badge,
    count,
    esc,
    figures,
    items,
    link,
    mono,
    page,
    section,
    table,
    timestamp,
    write_page,
)
from pipelines.feed_health.results import ExpectationOutcome, FeedHealth

GX_FOLDER = "gx"

CRITICAL, WARNING, HEALTHY = 0, 1, 2
_VERDICTS = {CRITICAL: ("critical failure", "bad"), WARNING: ("warning", "warn")}


def severity(health: FeedHealth) -> int:
    """CRITICAL when a critical expectation failed, WARNING when only others did."""
    if health.critical_failures():
        return CRITICAL
    return WARNING if health.failing() else HEALTHY


def feed_order(healths: Iterable[FeedHealth]) -> list[FeedHealth]:
    """Failing feeds first (critical failures before warnings), then by platform and feed."""
    return sorted(healths, key=lambda h: (severity(h), h.platform, h.feed))


def verdict(health: FeedHealth) -> tuple[str, str]:
    """(word, tone) for a feed's latest batch."""
    if health.quarantine():
        return "quarantined", "bad"
    return _VERDICTS.get(severity(health), ("healthy", "good"))


# The feed-health adapter (pipelines/feed_health/gx.py, ``_observed``) ends a failing
# row-by-row observation with "(N unexpected)", then either ", e.g. v1, v2" (example
# values) or ": group (n rows), ..." (the groups of records out of bounds).
_UNEXPECTED = re.compile(
    r"^(?P<head>.*?) \((?P<n>\d+) unexpected(?:(?::|, e\.g\.) (?P<examples>.*))?\)$", re.S
)
_OPEN, _CLOSE = "([{", ")]}"


def split_observed(observed: str) -> tuple[str, list[str]]:
    """The observation without its examples, and the examples one by one.

    ``"0.9 of 90 rows in set (9 unexpected, e.g. 'USD', 'EUR')"`` becomes
    ``("0.9 of 90 rows in set (9 unexpected)", ["'USD'", "'EUR'"])``.
    """
    match = _UNEXPECTED.match(observed)
    if match is None or match["examples"] is None:
        return observed, []
    return f"{match['head']} ({match['n']} unexpected)", _split_top_level(match["examples"])


def _split_top_level(text: str) -> list[str]:
    """Split at ", " outside quotes and brackets: the examples are Python reprs (a value
    with a comma inside quotes stays one) or "group value (n rows)". A repr cut short
    ends in "…" without its closing quote; the ellipsis closes it here."""
    parts: list[str] = []
    start, depth, quote, i = 0, 0, "", 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch in (quote, "…"):
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth = max(depth - 1, 0)
        elif ch == "," and depth == 0 and text.startswith(", ", i):
            parts.append(text[start:i])
            start = i + 2
            i += 1
        i += 1
    parts.append(text[start:])
    return [p for p in (p.strip() for p in parts) if p]


# --------------------------------------------------------------------------- the page


def _window(health: FeedHealth) -> str:
    return f"{timestamp(health.window_start)} – {timestamp(health.window_end)}"


def _met(health: FeedHealth) -> str:
    met = sum(1 for o in health.outcomes if o.success)
    return f"{met} of {len(health.outcomes)}"


def _docs_link(health: FeedHealth, data_docs: Mapping[str, str]) -> object:
    href = data_docs.get(health.key)
    return link(href, "Data Docs") if href else "—"


_OUTCOME_COLUMNS = (
    Column("expectation"),
    Column("severity"),
    Column("observed"),
    Column("expected"),
    Column("examples"),
    Column("what it checks", css="note"),
)


def _outcome_row(outcome: ExpectationOutcome) -> list[object]:
    observed, examples = split_observed(outcome.observed)
    return [
        mono(outcome.expectation),
        badge("critical", "bad") if outcome.critical else badge("warning", "warn"),
        observed,
        outcome.threshold,
        items(mono(e) for e in examples),
        outcome.description,
    ]


def _failing_feed(health: FeedHealth, data_docs: Mapping[str, str]) -> str:
    word, tone = verdict(health)
    href = data_docs.get(health.key)
    docs = f" · {link(href, 'Great Expectations Data Docs page')}" if href else ""
    on_failure = (
        "the batch was quarantined"
        if health.quarantine()
        else f"on a critical failure the suite says: {health.on_failure}"
    )
    facts = (
        f"{count(health.rows)} rows in the window {_window(health)}; suite "
        f"{health.suite or '—'}; validated {timestamp(health.validated_at)}; {on_failure}."
    )
    # Critical expectations first, then suite order: the ones that can quarantine matter most.
    failing = sorted(health.failing(), key=lambda o: not o.critical)
    return (
        f'<h3 id="{esc(_anchor(health))}">{esc(health.platform)} / {esc(health.feed)} '
        f"{badge(word, tone)}</h3><p>{esc(facts)}{docs}</p>"
        + table(_OUTCOME_COLUMNS, (_outcome_row(o) for o in failing))
    )


def _anchor(health: FeedHealth) -> str:
    return f"feed-{health.platform}-{health.feed}"


def render_feeds(
    healths: Iterable[FeedHealth],
    *,
    generated_at: datetime,
    data_docs: Mapping[str, str] | None = None,
    data_docs_index: str | None = None,
    source: str = "omm.feed.health",
) -> str:
    """The overview page. ``data_docs`` maps a health record's key (``platform:feed``)
    to the href of its Data Docs page, relative to the page."""
    ordered = feed_order(healths)
    docs = dict(data_docs or {})
    failing = [h for h in ordered if severity(h) != HEALTHY]
    critical = [h for h in ordered if severity(h) == CRITICAL]
    overview_columns = (
        Column("platform"),
        Column("feed"),
        Column("verdict"),
        Column("expectations met", numeric=True),
        Column("rows", numeric=True),
        Column("window"),
        Column("validated at"),
        Column("suite"),
        Column("details"),
    )

    def row(h: FeedHealth) -> list[object]:
        word, tone = verdict(h)
        name = link(f"#{_anchor(h)}", h.feed) if severity(h) != HEALTHY else h.feed
        return [
            h.platform,
            name,
            badge(word, tone),
            _met(h),
            count(h.rows),
            _window(h),
            timestamp(h.validated_at),
            h.suite or "—",
            _docs_link(h, docs),
        ]

    body = [
        section(
            "Every feed",
            figures(
                [
                    ("feeds", count(len(ordered))),
                    ("critical failures", count(len(critical))),
                    ("warnings only", count(len(failing) - len(critical))),
                    ("healthy", count(len(ordered) - len(failing))),
                ]
            )
            + table(overview_columns, (row(h) for h in ordered)),
            anchor="feeds",
            intro=(
                "The latest batch of each platform's feed judged by its expectation suite "
                "(config/expectations). Failing feeds come first, critical failures before "
                "warnings; a critical failure can quarantine the batch."
            ),
        ),
        section(
            "Failing feeds",
            "\n".join(_failing_feed(h, docs) for h in failing)
            or '<p class="empty">Every feed met every expectation.</p>',
            anchor="failing",
            intro=(
                "Each failing expectation: what the batch showed, what the suite requires, "
                "and the example values or groups of records the health record names."
            ),
        ),
    ]
    links = [("Every feed", "#feeds"), ("Failing feeds", "#failing")]
    if data_docs_index:
        links.append(("Great Expectations Data Docs", data_docs_index))
    return page(
        title="Feed health",
        lead=(
            f"{len(ordered)} platform feed(s), {len(failing)} failing. From {source} "
            "(latest record per platform and feed)."
        ),
        generated_at=generated_at,
        links=links,
        body="\n".join(body),
    )


def write_feeds_report(
    healths: Sequence[FeedHealth], out_dir: Path, *, generated_at: datetime, source: str
) -> Path:
    """``out_dir/index.html`` (this overview) and the Data Docs in ``out_dir/gx/``."""
    from pipelines.feed_health.report import data_docs_page, write_data_docs

    out_dir = Path(out_dir).resolve()
    site = out_dir / GX_FOLDER
    gx_index = write_data_docs(healths, site)
    docs: dict[str, str] = {}
    for health in healths:
        found = data_docs_page(health, site)
        if found is not None:
            docs[health.key] = quote(found.relative_to(out_dir).as_posix())
    text = render_feeds(
        healths,
        generated_at=generated_at,
        data_docs=docs,
        data_docs_index=quote(gx_index.relative_to(out_dir).as_posix()),
        source=source,
    )
    return write_page(out_dir, text)
