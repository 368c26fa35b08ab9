"""The date histogram above the table, drawn on the server as SVG.

Stacked bars per bucket, one colour per category (CSS classes ``cat-<category>``), a legend with
each category's count over the range, and axis labels in the view's timezone. The bars live in a
nested ``<svg>`` stretched to the width of the card (``preserveAspectRatio="none"``), so the chart
fills any screen while its text keeps its size. Each bucket is a link that narrows the view to
its time (whole days as the custom range; an hour or a minute as ``after:``/``before:`` in the
search) and carries its date and counts as its name and ``<title>``; the page's script shows them
beside the chart on focus or a first tap. Each legend item toggles its source. The chart has an
accessible name and description.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from math import ceil
from zoneinfo import ZoneInfo

from service.page.html import attrs, esc
from service.page.view import PageView
from service.search.histogram import Histogram
from service.vocabulary import CATEGORIES, CATEGORY_LABELS

PLOT_TOP = 6
PLOT_HEIGHT = 140
SVG_HEIGHT = 172
BAR_UNITS = 10
BAR_WIDTH = 8
MAX_LABELS = 8
INTERVAL_WORDS = {
    "minute": "minute",
    "hour": "hour",
    "day": "day",
    "week": "week",
    "month": "month",
}


def nice_ceiling(value: int) -> int:
    """The smallest of 2, 4, 6, 8, 10, 20, 40... at least ``value`` (halves stay whole)."""
    exponent = 0
    while True:
        for mantissa in (1, 2, 4, 6, 8):
            candidate = int(mantissa * 10**exponent)
            if candidate >= max(value, 2):
                return candidate
        exponent += 1


def _short_label(start: datetime, interval: str, first: bool) -> str:
    month_day = f"{start.strftime('%b')} {start.day}"
    if interval in ("minute", "hour"):
        if first or (start.hour == 0 and start.minute == 0):
            return f"{month_day} {start.strftime('%H:%M')}" if first else month_day
        return start.strftime("%H:%M")
    if interval == "month":
        return start.strftime("%b %Y") if first or start.month == 1 else start.strftime("%b")
    return month_day


def _long_label(start: datetime, interval: str) -> str:
    day = f"{start.strftime('%a')}, {start.strftime('%b')} {start.day}, {start.year}"
    if interval == "minute":
        return f"{day} {start.strftime('%H:%M')}"
    if interval == "hour":
        return f"{day} {start.strftime('%H:00')}\N{EN DASH}{(start.hour + 1) % 24:02d}:00"
    if interval == "week":
        return f"Week of {day}"
    if interval == "month":
        return start.strftime("%B %Y")
    return day


def _category_counts(buckets: list[dict[str, object]]) -> dict[str, int]:
    totals = dict.fromkeys(CATEGORIES, 0)
    for bucket in buckets:
        split = bucket.get("split") or {}
        assert isinstance(split, dict)
        for category, count in split.items():
            totals[category] = totals.get(category, 0) + int(count)
    return {c: n for c, n in totals.items() if n}


def _last_day(start: datetime, interval: str) -> date:
    if interval == "week":
        return start.date() + timedelta(days=6)
    if interval == "month":
        following = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
        return following.date() - timedelta(days=1)
    return start.date()


def bucket_view(view: PageView, start: datetime, interval: str) -> PageView:
    """``view`` narrowed to the bucket starting at ``start`` (local time)."""
    if interval in ("minute", "hour"):
        if "after:" in view.q.lower() or "before:" in view.q.lower():
            return replace(view, start=start.date().isoformat(), end=start.date().isoformat(),
                           cursor="")  # fmt: skip
        end = start + (timedelta(minutes=1) if interval == "minute" else timedelta(hours=1))
        bounds = f"after:{start.isoformat()} before:{end.isoformat()}"
        return replace(view, q=f"{view.q} {bounds}".strip(), cursor="")
    return replace(view, start=start.date().isoformat(),
                   end=_last_day(start, interval).isoformat(), cursor="")  # fmt: skip


def _bucket_group(
    index: int, bucket: dict[str, object], top: int, interval: str, view: PageView
) -> str:
    start = datetime.fromisoformat(str(bucket["start"]))
    split = bucket.get("split") or {}
    assert isinstance(split, dict)
    count = int(str(bucket["count"]))
    parts = [f"{CATEGORY_LABELS.get(c, c)} {split[c]:,}" for c in CATEGORIES if split.get(c)]
    title = f"{_long_label(start, interval)}: {count:,} entr{'y' if count == 1 else 'ies'}"
    title += f" ({', '.join(parts)})" if parts else ""
    x = index * BAR_UNITS
    rects = [f'<rect class="hit" x="{x}" y="0" width="{BAR_UNITS}" height="{top}"/>']
    stacked = 0
    for category in CATEGORIES:
        n = int(split.get(category, 0))
        if not n:
            continue
        stacked += n
        rects.append(
            f'<rect class="bar cat-{category}" x="{x + (BAR_UNITS - BAR_WIDTH) / 2:g}" '
            f'y="{top - stacked}" width="{BAR_WIDTH}" height="{n}"/>'
        )
    href = bucket_view(view, start, interval).url()
    return (
        f'<a class="bucket" href="{esc(href)}" aria-label="{esc(title)}" data-tip="{esc(title)}">'
        f"<title>{esc(title)}</title>{''.join(rects)}</a>"
    )


def _x_labels(buckets: list[dict[str, object]], interval: str) -> str:
    n = len(buckets)
    step = max(1, ceil(n / MAX_LABELS))
    out = []
    for shown, index in enumerate(range(0, n, step)):
        start = datetime.fromisoformat(str(buckets[index]["start"]))
        percent = (index + 0.5) / n * 100
        anchor = "start" if percent < 5 else "end" if percent > 95 else "middle"
        x = 0 if anchor == "start" else 100 if anchor == "end" else percent
        label = _short_label(start, interval, index == 0)
        klass = "x-label" + (" x-minor" if shown % 2 else "")
        out.append(
            f"<text{attrs({'class': klass, 'x': f'{x:.2f}%', 'y': SVG_HEIGHT - 6})}"
            f' text-anchor="{anchor}">{esc(label)}</text>'
        )
    return "".join(out)


def histogram_svg(histogram: Histogram, range_text: str, view: PageView | None = None) -> str:
    """The chart card: heading, y-axis, the SVG and its legend (links of ``view``)."""
    view = view or PageView()
    interval = histogram.interval
    word = INTERVAL_WORDS.get(interval, interval)
    heading = f"Entries per {word} by source"
    tz = ZoneInfo(histogram.tz)
    head = (
        f'<div class="chart-head"><h2 id="chart-title">{esc(heading)}</h2>'
        f'<p class="chart-range">{esc(range_text)} · {esc(tz.key)}</p></div>'
    )
    if not histogram.buckets or histogram.total == 0:
        empty = '<p class="chart-empty">No entries in this range.</p>'
        return f'<section class="card chart" aria-labelledby="chart-title">{head}{empty}</section>'
    buckets = histogram.buckets
    top = nice_ceiling(max(int(str(b["count"])) for b in buckets))
    totals = _category_counts(buckets)
    summary = ", ".join(f"{CATEGORY_LABELS[c]} {n:,}" for c, n in totals.items())
    title = f"{heading}, {range_text} ({tz.key}): {histogram.total:,} entries"
    grid = "".join(
        f'<line class="grid{" grid-base" if y == PLOT_TOP + PLOT_HEIGHT else ""}" x1="0" '
        f'x2="100%" y1="{y + 0.5}" y2="{y + 0.5}"/>'
        for y in (PLOT_TOP, PLOT_TOP + PLOT_HEIGHT // 2, PLOT_TOP + PLOT_HEIGHT)
    )
    bars = "".join(_bucket_group(i, b, top, interval, view) for i, b in enumerate(buckets))
    svg = (
        f'<svg class="plot" role="img" aria-labelledby="chart-svg-title chart-svg-desc" '
        f'width="100%" height="{SVG_HEIGHT}">'
        f'<title id="chart-svg-title">{esc(title)}</title>'
        f'<desc id="chart-svg-desc">By source: {esc(summary)}.</desc>{grid}'
        f'<svg x="0" y="{PLOT_TOP}" width="100%" height="{PLOT_HEIGHT}" '
        f'viewBox="0 0 {len(buckets) * BAR_UNITS} {top}" preserveAspectRatio="none">{bars}</svg>'
        f"{_x_labels(buckets, interval)}</svg>"
    )
    y_axis = (
        '<div class="y-axis" aria-hidden="true">'
        f'<span class="y-top">{top:,}</span><span class="y-mid">{top // 2:,}</span>'
        '<span class="y-zero">0</span></div>'
    )
    legend = "".join(_legend_item(view, c, n) for c, n in totals.items())
    tip = '<p class="chart-tip" aria-live="polite"></p>'
    return (
        f'<section class="card chart" aria-labelledby="chart-title">{head}'
        f'<div class="chart-body">{y_axis}{svg}</div>{tip}'
        f'<ul class="legend" aria-label="Sources in the chart">{legend}</ul></section>'
    )


def _legend_item(view: PageView, category: str, count: int) -> str:
    """A source of the chart: a link that toggles it in the view."""
    on = category in view.categories
    label = CATEGORY_LABELS[category]
    title = f"{'Stop showing only' if on else 'Show only'} {label}"
    return (
        f'<li><a class="legend-item{" is-selected" if on else ""}" '
        f'href="{esc(view.toggled("category", category).url())}" title="{esc(title)}" '
        f"{'aria-current=' + chr(34) + 'true' + chr(34) if on else ''}>"
        f'<span class="swatch cat-{category}" aria-hidden="true"></span>{esc(label)}'
        f' <span class="legend-count">{count:,}</span></a></li>'
    )
