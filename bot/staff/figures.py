"""Figures on staff pages: protected counts as text, numbers in the page's language, periods to
choose from, and the monthly trend drawn as an SVG on the server.

The rule that keeps small cells hidden (docs/architecture.md, "Privacy invariants") is the one referrals/exports.py follows: a
count is read through ``Cell.shown`` or ``Cell.text()``, never ``Cell.value``. Everything here
turns cells into ``Figure``s — a string, and a number only when it may be shown — so templates
never hold a cell: a hidden value cannot reach the HTML, an SVG coordinate, a title or a data-
attribute. Where the trend chart needs a height for a hidden month, it uses the threshold (the
most the hidden count can be), never the count; the scale of the chart depends on shown values
and the threshold only.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

from babel.numbers import format_decimal

from content.i18n import Catalogs
from referrals.labels import period_label
from referrals.periods import Period, PeriodKind
from referrals.tables import Cell

NO_VALUE = "—"


def number(value: int | float, locale: str) -> str:
    """1234 → "1.234" (vi) or "1,234" (en); a float keeps one decimal: "12,5"."""
    pattern = "#,##0.0" if isinstance(value, float) else "#,##0"
    return format_decimal(value, format=pattern, locale=locale)


def percent_text(value: float | None, locale: str) -> str:
    return NO_VALUE if value is None else f"{number(float(value), locale)} %"


def day_text(day: dt.date | None) -> str:
    """A calendar day the Vietnamese way, also on English pages: 02/03/2026."""
    return NO_VALUE if day is None else day.strftime("%d/%m/%Y")


@dataclass(frozen=True)
class Figure:
    """What a page shows for one protected count: its text, and the number only when shown."""

    text: str
    shown: int | None

    @property
    def hidden(self) -> bool:
        return self.shown is None


def figure(cell: Cell | None, threshold: int, locale: str) -> Figure:
    if cell is None:
        return Figure(NO_VALUE, None)
    shown = cell.shown
    if shown is None:
        return Figure(cell.text(threshold), None)
    return Figure(number(shown, locale), shown)


# --- periods ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeriodChoice:
    key: str
    label: str
    group: str  # "half", "year" or "month": an <optgroup>


def default_period(day: dt.date) -> Period:
    """What the overview opens on: the current half-year (the plans report every six months)."""
    return Period.containing(day, PeriodKind.HALF)


def period_choices(day: dt.date, catalogs: Catalogs, locale: str, *, extra: Period | None = None) -> list[PeriodChoice]:
    """Recent periods: this and last half-year, this and last year, the last twelve months."""
    half = Period.containing(day, PeriodKind.HALF)
    previous_half = Period.containing(half.start - dt.timedelta(days=1), PeriodKind.HALF)
    year = Period.containing(day, PeriodKind.YEAR)
    previous_year = Period.containing(year.start - dt.timedelta(days=1), PeriodKind.YEAR)
    found: list[Period] = [half, previous_half, year, previous_year]
    month = Period.containing(day, PeriodKind.MONTH)
    for _ in range(12):
        found.append(month)
        month = Period.containing(month.start - dt.timedelta(days=1), PeriodKind.MONTH)
    if extra is not None and extra not in found:
        found.append(extra)
    groups = {PeriodKind.HALF: "half", PeriodKind.YEAR: "year", PeriodKind.MONTH: "month"}
    return [PeriodChoice(p.key, period_label(p, catalogs, locale), groups[p.kind]) for p in found]


def trend_months(period: Period, day: dt.date) -> list[dt.date]:
    """The months the trend shows: the period's (for one month, the six up to it), none after today."""
    if period.kind is PeriodKind.MONTH:
        months = [period.start]
        while len(months) < 6:
            months.insert(0, (months[0] - dt.timedelta(days=1)).replace(day=1))
    else:
        months = period.months()
    current = day.replace(day=1)
    return [m for m in months if m <= current] or months[:1]


# --- the trend chart ----------------------------------------------------------------------------

WIDTH, HEIGHT = 360.0, 210.0
LEFT, RIGHT, TOP, BOTTOM = 40.0, 8.0, 22.0, 28.0


def _coordinate(value: float) -> str:
    # One decimal always ("40.0"): no coordinate reads like a bare count.
    return f"{value:.1f}"


@dataclass(frozen=True)
class ChartBar:
    label: str  # the month, under the bar
    text: str  # the count above it: "12", "0", "<5"
    hidden: bool
    x: str
    y: str
    width: str
    height: str
    centre: str
    text_y: str


@dataclass(frozen=True)
class ChartTick:
    y: str
    text: str


@dataclass(frozen=True)
class Chart:
    width: str
    height: str
    left: str
    right: str
    baseline: str
    label_y: str
    tick_x: str
    bars: tuple[ChartBar, ...]
    ticks: tuple[ChartTick, ...]
    description: str  # every month and its text, for screen readers
    any_hidden: bool


def _nice_step(largest: float) -> int:
    """A round step (1, 2, 5, 10, 20, …) giving at most four steps up to ``largest``."""
    raw = max(largest / 4, 1.0)
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * power >= raw:
            return int(factor * power)
    return int(10 * power)  # pragma: no cover - the loop always returns


def trend_chart(
    months: Sequence[tuple[str, Cell]], *, threshold: int, locale: str, month_names: Sequence[str] | None = None
) -> Chart:
    """Bars for (month label, protected count) pairs; hidden months are hatched up to the threshold."""
    figures = [figure(cell, threshold, locale) for _, cell in months]
    shown = [f.shown for f in figures if f.shown is not None]
    step = _nice_step(float(max([threshold, *shown])))
    top_value = step * math.ceil(max([threshold, *shown]) / step)
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    baseline = TOP + plot_height
    slot = plot_width / max(len(months), 1)
    bar_width = slot * 0.62

    def height_of(value: float) -> float:
        return plot_height * value / top_value

    bars = []
    for index, ((label, _), fig) in enumerate(zip(months, figures, strict=True)):
        # A hidden month is drawn up to the threshold, the most it can be: never its own value.
        height = height_of(threshold) if fig.hidden else height_of(fig.shown or 0)
        x = LEFT + index * slot + (slot - bar_width) / 2
        bars.append(
            ChartBar(
                label=label,
                text=fig.text,
                hidden=fig.hidden,
                x=_coordinate(x),
                y=_coordinate(baseline - height),
                width=_coordinate(bar_width),
                height=_coordinate(height),
                centre=_coordinate(x + bar_width / 2),
                text_y=_coordinate(baseline - height - 5),
            )
        )
    ticks = tuple(
        ChartTick(_coordinate(baseline - height_of(value)), number(value, locale))
        for value in range(0, top_value + 1, step)
    )
    names = month_names or [label for label, _ in months]
    description = "; ".join(f"{name}: {fig.text}" for name, fig in zip(names, figures, strict=True))
    return Chart(
        width=_coordinate(WIDTH),
        height=_coordinate(HEIGHT),
        left=_coordinate(LEFT),
        right=_coordinate(WIDTH - RIGHT),
        baseline=_coordinate(baseline),
        label_y=_coordinate(HEIGHT - 9),
        tick_x=_coordinate(LEFT - 5),
        bars=tuple(bars),
        ticks=ticks,
        description=description,
        any_hidden=any(f.hidden for f in figures),
    )
