"""The shared shell of omm's HTML reports: styles, header, tables, formats, SVG charts.

Everything a page needs is in the page: the stylesheet is a ``<style>`` element, the
fonts are the reader's system fonts, the charts are SVG drawn here. Nothing refers
to another origin, so a page renders the same offline and opening it makes no
network request (``tests/integration/test_reports.py`` proves it in Chromium).

Every value from a record is escaped on its way in: cells and labels are text unless
they are :class:`Markup`, which only the helpers here produce from escaped parts.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

NOT_AVAILABLE = "n/a"


class Markup(str):
    """HTML that is already safe: built by this module's helpers from escaped parts."""

    __slots__ = ()


def esc(value: object) -> str:
    """``value`` as HTML text, quotes included (so it is safe in attributes too)."""
    return html.escape(str(value), quote=True)


def cell(value: object) -> str:
    """A table cell or label: Markup as it is, anything else escaped."""
    return value if isinstance(value, Markup) else esc(value)


# --------------------------------------------------------------------------- formats


def as_utc(value: datetime) -> datetime:
    """Avro timestamp-millis decode to aware UTC datetimes; a naive one is taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def timestamp(value: datetime | None) -> str:
    """``2026-04-18 03:04 UTC``: minutes are enough for deadlines measured in days."""
    if value is None:
        return NOT_AVAILABLE
    return as_utc(value).strftime("%Y-%m-%d %H:%M UTC")


def percent(fraction: float | None) -> str:
    """A KPI fraction in [0, 1] as a percentage with one decimal: ``0.872 -> 87.2%``."""
    if fraction is None or math.isnan(fraction):
        return NOT_AVAILABLE
    return f"{100.0 * fraction:.1f}%"


def hours(value: float | None) -> str:
    """Hours with one decimal (``20.5``); n/a when nothing was taken down."""
    if value is None or math.isnan(value):
        return NOT_AVAILABLE
    return f"{value:.1f}"


def count(value: int) -> str:
    """A count with thousands separated by a thin space, as the SI brochure writes them."""
    return f"{value:,}".replace(",", "\u2009")


# --------------------------------------------------------------------------- markup


def link(href: str, label: object) -> Markup:
    return Markup(f'<a href="{esc(href)}">{cell(label)}</a>')


def badge(label: str, tone: str) -> Markup:
    """A status word in a coloured outline; ``tone`` is bad, warn, good or neutral."""
    return Markup(f'<span class="badge {esc(tone)}">{esc(label)}</span>')


def mono(value: object) -> Markup:
    """Ids and references, which read better in a monospace font."""
    return Markup(f"<code>{esc(value)}</code>")


def items(values: Iterable[object]) -> Markup:
    """A short list in a cell (example values, say)."""
    lis = "".join(f"<li>{cell(v)}</li>" for v in values)
    return Markup(f'<ul class="plain">{lis}</ul>' if lis else "")


@dataclass(frozen=True)
class Column:
    title: str
    numeric: bool = False  # right-aligned, tabular figures
    css: str = ""  # a class for the column's cells, e.g. "note" for long text

    def td(self, value: object) -> str:
        classes = " ".join(c for c in ("num" if self.numeric else "", self.css) if c)
        attr = f' class="{esc(classes)}"' if classes else ""
        return f"<td{attr}>{cell(value)}</td>"


def table(
    columns: Sequence[Column],
    rows: Iterable[Sequence[object]],
    *,
    empty: str = "None.",
    css_class: str = "",
) -> Markup:
    """A table in a horizontally scrolling box (wide tables stay readable on a laptop)."""
    body = []
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"row of {len(row)} cells for {len(columns)} columns")
        tds = "".join(c.td(v) for c, v in zip(columns, row, strict=True))
        body.append(f"<tr>{tds}</tr>")
    if not body:
        return Markup(f'<p class="empty">{esc(empty)}</p>')
    ths = "".join(
        f'<th class="num" scope="col">{esc(c.title)}</th>'
        if c.numeric
        else f'<th scope="col">{esc(c.title)}</th>'
        for c in columns
    )
    cls = f' class="{esc(css_class)}"' if css_class else ""
    return Markup(
        f'<div class="scroll"><table{cls}><thead><tr>{ths}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def section(title: str, body: str, *, anchor: str, intro: str = "") -> Markup:
    lead = f'<p class="intro">{esc(intro)}</p>' if intro else ""
    return Markup(f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{lead}{body}</section>')


def figures(pairs: Iterable[tuple[str, str]]) -> Markup:
    """Headline numbers in boxes: (label, value)."""
    boxes = "".join(
        f'<div class="figure"><span class="n">{esc(value)}</span>{esc(label)}</div>'
        for label, value in pairs
    )
    return Markup(f'<div class="figures">{boxes}</div>')


def write_page(out_dir: Path, text: str) -> Path:
    """``out_dir/index.html`` (the folder made when missing); returns its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    index = out_dir / "index.html"
    index.write_text(text, encoding="utf-8")
    return index


def figure(heading: str, svg: str, caption: str) -> Markup:
    return Markup(
        f"<figure><h3>{esc(heading)}</h3>{svg}<figcaption>{esc(caption)}</figcaption></figure>"
    )


# --------------------------------------------------------------------------- the shell

_STYLES = """
:root { --ink: #1f2328; --muted: #57606a; --line: #d0d7de; --panel: #f6f8fa;
  --accent: #0b5cad; --bad: #b42318; --warn: #9a6700; --good: #1a7f37; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", "Noto Sans", "PingFang SC",
    "Microsoft YaHei", sans-serif; }
header.report { padding: 1.25rem 2rem 1rem; background: var(--panel);
  border-bottom: 1px solid var(--line); }
header.report h1 { margin: 0 0 .25rem; font-size: 1.5rem; }
header.report p { margin: .15rem 0; color: var(--muted); }
nav.links { margin-top: .5rem; display: flex; flex-wrap: wrap; gap: .25rem 1.25rem; }
a { color: var(--accent); }
main { padding: .5rem 2rem 3rem; max-width: 1500px; }
section { margin: 1.75rem 0; }
h2 { font-size: 1.2rem; margin: 0 0 .6rem; padding-bottom: .3rem;
  border-bottom: 1px solid var(--line); }
h3 { font-size: 1.05rem; margin: 1.25rem 0 .4rem; }
p.intro, p.empty { color: var(--muted); margin: .25rem 0 .75rem; max-width: 70rem; }
.figures { display: flex; flex-wrap: wrap; gap: .75rem; }
.figure { border: 1px solid var(--line); border-radius: 6px; padding: .5rem .9rem;
  background: var(--panel); min-width: 9rem; color: var(--muted); }
.figure .n { display: block; font-size: 1.45rem; font-weight: 600; color: var(--ink); }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: .875rem; margin: .25rem 0; }
th, td { border-bottom: 1px solid var(--line); padding: .35rem .6rem; text-align: left;
  vertical-align: top; }
th { background: var(--panel); }
th.num { text-align: right; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafbfc; }
td.note { min-width: 18rem; }
ul.plain { margin: 0; padding-left: 1.1rem; }
td code { white-space: nowrap; }  /* an id or reference reads as one piece */
code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
  font-size: .85em; overflow-wrap: break-word; }
.badge { display: inline-block; padding: 0 .5rem; border: 1px solid; border-radius: 999px;
  font-size: .8rem; font-weight: 600; white-space: nowrap; }
.badge.bad { color: var(--bad); background: #fff1f0; }
.badge.warn { color: var(--warn); background: #fff8e6; }
.badge.good { color: var(--good); background: #eefbf0; }
.badge.neutral { color: var(--muted); }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(34rem, 1fr));
  gap: 1.5rem 2.5rem; }
figure { margin: 0; }
figcaption { color: var(--muted); font-size: .85rem; margin-top: .35rem; max-width: 760px; }
figure h3 { margin-top: 0; }
svg.chart { display: block; width: 100%; max-width: 760px; height: auto; }
svg.chart text { font: 13px system-ui, -apple-system, "Segoe UI", sans-serif; fill: var(--ink); }
svg.chart text.muted { fill: var(--muted); }
svg.chart .bar { fill: var(--accent); }
svg.chart .grid { stroke: var(--line); stroke-width: 1; }
svg.chart .axis { stroke: var(--muted); stroke-width: 1; }
footer { color: var(--muted); font-size: .8rem; padding: 0 2rem 2rem; }
@media print { .scroll { overflow: visible; } header.report { background: none; } }
"""


def page(
    *,
    title: str,
    lead: str,
    generated_at: datetime,
    links: Sequence[tuple[str, str]],
    body: str,
) -> str:
    """A whole HTML document: ``links`` are (label, href), relative to the page."""
    nav = "".join(str(link(href, label)) for label, href in links)
    made = timestamp(generated_at)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{_STYLES}</style>\n</head>\n<body>\n"
        f'<header class="report"><h1>{esc(title)}</h1><p>{esc(lead)}</p>'
        f'<p>Report made <time datetime="{esc(as_utc(generated_at).isoformat())}">'
        f"{esc(made)}</time> by omm.</p>"
        f'<nav class="links">{nav}</nav></header>\n'
        f"<main>\n{body}\n</main>\n"
        "<footer>Self-contained: styles and charts are in this file; it loads nothing "
        "from the network.</footer>\n</body>\n</html>\n"
    )


# --------------------------------------------------------------------------- charts


@dataclass(frozen=True)
class Bar:
    """One bar: its label, its value (None: nothing to draw) and the figure written by it."""

    label: str
    value: float | None
    text: str


_CHAR_PX = 8.0  # generous width of a 13px system-font character, for laying out labels


def _fit(label: str, limit: int) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _open_svg(chart_id: str, width: float, height: float, title: str, summary: str) -> str:
    return (
        # no xmlns: SVG inside HTML needs none, and the page then holds no URL at all
        f'<svg class="chart" id="{esc(chart_id)}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        f'aria-labelledby="{esc(chart_id)}-title {esc(chart_id)}-desc">'
        f'<title id="{esc(chart_id)}-title">{esc(title)}</title>'
        f'<desc id="{esc(chart_id)}-desc">{esc(summary)}</desc>'
    )


def horizontal_bars(
    bars: Sequence[Bar],
    *,
    chart_id: str,
    title: str,
    scale_max: float = 1.0,
    ticks: Sequence[tuple[float, str]] = ((0, "0%"), (0.5, "50%"), (1.0, "100%")),
    missing: str = NOT_AVAILABLE,
) -> Markup:
    """One bar per label, drawn left to right from 0 to ``scale_max`` (e.g. a KPI per
    platform). A bar whose value is None is left out and ``missing`` written instead."""
    width, row, top, bottom = 720.0, 30.0, 8.0, 28.0
    label_chars = min(28, max((len(b.label) for b in bars), default=4))
    left = max(60.0, label_chars * _CHAR_PX + 20)
    plot = width - left - 70  # room on the right for the figure after a full bar
    height = top + row * max(len(bars), 1) + bottom
    summary = "; ".join(f"{b.label}: {b.text}" for b in bars) or "no data"
    out = [_open_svg(chart_id, width, height, title, summary)]
    axis_y = top + row * max(len(bars), 1)
    for at, text in ticks:
        x = left + plot * (at / scale_max)
        out.append(
            f'<line class="grid" x1="{x:.1f}" y1="{top:.1f}" x2="{x:.1f}" y2="{axis_y:.1f}"/>'
            f'<text class="muted" x="{x:.1f}" y="{axis_y + 16:.1f}" '
            f'text-anchor="middle">{esc(text)}</text>'
        )
    for i, b in enumerate(bars):
        y = top + i * row
        mid = y + row / 2 + 4
        out.append(
            f"<g><title>{esc(b.label)}: {esc(b.text)}</title>"
            f'<text x="{left - 8:.1f}" y="{mid:.1f}" text-anchor="end">'
            f"{esc(_fit(b.label, 28))}</text>"
        )
        if b.value is None:
            out.append(
                f'<text class="muted" x="{left + 4:.1f}" y="{mid:.1f}">{esc(missing)}</text></g>'
            )
            continue
        share = min(max(b.value / scale_max, 0.0), 1.0)
        w = plot * share
        out.append(
            f'<rect class="bar" x="{left:.1f}" y="{y + 4:.1f}" width="{w:.1f}" '
            f'height="{row - 8:.1f}"/>'
            f'<text x="{left + w + 6:.1f}" y="{mid:.1f}">{esc(b.text)}</text></g>'
        )
    out.append(
        f'<line class="axis" x1="{left:.1f}" y1="{top:.1f}" x2="{left:.1f}" y2="{axis_y:.1f}"/>'
    )
    out.append("</svg>")
    return Markup("".join(out))


def _nice_step(largest: float, steps: int = 4) -> float:
    """A round step (1, 2 or 5 times a power of ten, at least 1) giving about ``steps`` ticks."""
    if largest <= steps:
        return 1.0
    raw = largest / steps
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * power:
            return float(m * power)
    return float(10 * power)


def columns(
    bars: Sequence[Bar],
    *,
    chart_id: str,
    title: str,
    x_title: str,
    y_title: str,
) -> Markup:
    """Vertical columns of counts over ordered categories (histogram bins, days)."""
    width, height = 720.0, 280.0
    left, right, top, bottom = 52.0, 12.0, 16.0, 58.0
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [b.value or 0.0 for b in bars]
    step = _nice_step(max(values, default=0.0))
    y_max = max(step, math.ceil(max(values, default=0.0) / step) * step)
    summary = "; ".join(f"{b.label}: {b.text}" for b in bars) or "no data"
    out = [_open_svg(chart_id, width, height, title, summary)]
    base = top + plot_h
    tick = 0.0
    while tick <= y_max + 1e-9:
        y = base - plot_h * tick / y_max
        out.append(
            f'<line class="grid" x1="{left:.1f}" y1="{y:.1f}" x2="{width - right:.1f}" '
            f'y2="{y:.1f}"/><text class="muted" x="{left - 6:.1f}" y="{y + 4:.1f}" '
            f'text-anchor="end">{tick:g}</text>'
        )
        tick += step
    n = max(len(bars), 1)
    band = plot_w / n
    label_px = max((len(b.label) for b in bars), default=1) * _CHAR_PX + 10
    every = max(1, math.ceil(label_px / band))  # label every k-th column so labels never overlap
    for i, b in enumerate(bars):
        value = b.value or 0.0
        h = plot_h * value / y_max
        x = left + i * band
        bar_w = max(band * 0.78, 1.0)
        out.append(f"<g><title>{esc(b.label)}: {esc(b.text)}</title>")
        out.append(
            f'<rect class="bar" x="{x + (band - bar_w) / 2:.2f}" y="{base - h:.2f}" '
            f'width="{bar_w:.2f}" height="{h:.2f}"/>'
        )
        if value and band >= 16:
            out.append(
                f'<text x="{x + band / 2:.1f}" y="{base - h - 4:.1f}" '
                f'text-anchor="middle">{esc(b.text)}</text>'
            )
        if i % every == 0:
            out.append(
                f'<text class="muted" x="{x + band / 2:.1f}" y="{base + 16:.1f}" '
                f'text-anchor="middle">{esc(b.label)}</text>'
            )
        out.append("</g>")
    out.append(
        f'<line class="axis" x1="{left:.1f}" y1="{base:.1f}" x2="{width - right:.1f}" '
        f'y2="{base:.1f}"/>'
        f'<text class="muted" x="{left + plot_w / 2:.1f}" y="{height - 12:.1f}" '
        f'text-anchor="middle">{esc(x_title)}</text>'
        f'<text class="muted" transform="translate(14 {top + plot_h / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle">{esc(y_title)}</text>'
    )
    out.append("</svg>")
    return Markup("".join(out))
