"""The home page: the overview of the viewer's area for a period, and the parts of the app they may use.

What it shows, every count protected (docs/architecture.md, "Privacy invariants") before it reaches the template: the share of
the population estimate reached against the target, per commune and for the whole area when
that can be published; the people reached, informed and connected; the monthly trend of people
reached; referral codes issued and used by kind of service; and reach by channel and by peer
link. Staff see their commune; a province admin the communes of their province; a national
admin everywhere, or one province they choose.

The order is the page's: the period switch and the figure a commune is judged by (reached
against the target, met or not) fit the first screen of a phone, the details follow. On a phone
each commune is a card, on a wider screen a row of a table; both come from the same cards and
rows here, so what is hidden is hidden in both.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import web

from bot.channels.registry import SHOWN
from bot.clock import today
from bot.staff.auth import Viewer
from bot.staff.figures import (
    NO_VALUE,
    Chart,
    Figure,
    default_period,
    figure,
    number,
    percent_text,
    period_choices,
    trend_chart,
    trend_months,
)
from bot.staff.places import chosen_province, province_choices, report_scope
from bot.staff.render import locale_of, render
from bot.staff.state import SERVICES
from content.geo import CommuneIndex
from content.i18n import Catalogs
from counselling.cases import CaseCounts, case_counts
from content.intents import strip_diacritics
from referrals.labels import commune_label, period_label, service_label, spike_text
from referrals.periods import Period, PeriodError, PeriodKind
from referrals.published import overview
from referrals.report import INDICATORS, PeriodReport, Progress, Scope, ScopeKind
from referrals.suppression import protect
from referrals.tables import Cell

DONE = {"password", "totp"}
CHANNELS = SHOWN  # the registry's: shown even at 0; others (the console) only when counted


@dataclass(frozen=True)
class ProgressCard:
    """One commune's (or the whole area's) "% reached" against its target."""

    name: str
    count: Figure
    estimate: str | None
    percent: float | None  # the bar's value; None when hidden or without an estimate
    percent_text: str
    target_text: str
    met: bool | None


@dataclass(frozen=True)
class PeopleRow:
    name: str
    counts: tuple[Figure, ...]  # reached, informed, connected
    percents: tuple[str, ...]


@dataclass(frozen=True)
class CountRow:
    name: str
    counts: tuple[Figure, ...]


@dataclass(frozen=True)
class CheckRow:
    """A commune whose figures need a look: people not counted (limit), days of unusual rise."""

    name: str
    not_counted: Figure
    spikes: str  # "12/03/2026, 15/03/2026", or empty


def parse_period(raw: str | None, day: dt.date) -> Period:
    if raw is None or raw.strip() == "":
        return default_period(day)
    try:
        return Period.parse(raw)
    except PeriodError as exc:
        raise web.HTTPBadRequest() from exc


def _card(name: str, progress: Progress, count: Cell | None, threshold: int, locale: str) -> ProgressCard:
    shown = figure(count, threshold, locale)
    # The report leaves the percentage out of a hidden count; not showing it here either keeps
    # "estimate × percent" from ever rebuilding a hidden count.
    percent = None if shown.hidden else progress.percent
    return ProgressCard(
        name=name,
        count=shown,
        estimate=None if progress.estimate is None else number(progress.estimate, locale),
        percent=percent,
        percent_text=percent_text(percent, locale),
        target_text=percent_text(progress.target_percent, locale),
        met=None if percent is None else progress.met,
    )


def _names(report: PeriodReport, catalogs: Catalogs, locale: str) -> list[str]:
    several = len({line.province_code for line in report.communes if line.code}) > 1
    names = []
    for line in report.communes:
        label = commune_label(line, catalogs, locale)
        names.append(f"{label} ({line.province_name})" if several and line.code and line.province_name else label)
    return names


def _people(report: PeriodReport, names: list[str], catalogs: Catalogs, locale: str) -> tuple[list[PeopleRow], PeopleRow | None]:
    threshold = report.threshold
    rows = []
    for r, name in enumerate(names):
        cells = report.people.body[r]
        rows.append(
            PeopleRow(
                name,
                tuple(figure(cell, threshold, locale) for cell in cells),
                tuple(
                    percent_text(None if cell.hidden else report.progress[r][c].percent, locale)
                    for c, cell in enumerate(cells)
                ),
            )
        )
    totals = report.people.column_totals
    if not totals or not rows or report.scope.kind is ScopeKind.COMMUNE:
        return rows, None
    total = PeopleRow(
        catalogs.text(locale, "staff.overview.total"),
        tuple(figure(cell, threshold, locale) for cell in totals),
        tuple(
            percent_text(None if cell.hidden else report.total_progress[c].percent, locale)
            for c, cell in enumerate(totals)
        ),
    )
    return rows, total


def _services(report: PeriodReport, catalogs: Catalogs, locale: str) -> tuple[list[CountRow], CountRow | None]:
    issued, redeemed, threshold = report.issued, report.redeemed, report.threshold
    if issued.column_totals is None or redeemed.column_totals is None or not report.service_types:
        return [], None
    rows = [
        CountRow(
            service_label(kind, catalogs, locale),
            (figure(issued.column_totals[c], threshold, locale), figure(redeemed.column_totals[c], threshold, locale)),
        )
        for c, kind in enumerate(report.service_types)
    ]
    # Kinds with nothing issued or used (two shown zeros) only make the table long on a phone.
    rows = [row for row in rows if any(f.hidden or f.shown for f in row.counts)]
    if not rows:
        return [], None
    total = CountRow(
        catalogs.text(locale, "staff.overview.total"),
        (figure(issued.grand_total, threshold, locale), figure(redeemed.grand_total, threshold, locale)),
    )
    return rows, total


def _count_rows(
    names: list[str], cells: Sequence[Cell], total: Cell, threshold: int, catalogs: Catalogs, locale: str
) -> tuple[list[CountRow], CountRow]:
    rows = [CountRow(name, (figure(cell, threshold, locale),)) for name, cell in zip(names, cells, strict=True)]
    return rows, CountRow(catalogs.text(locale, "staff.overview.total"), (figure(total, threshold, locale),))


def _channel_label(channel: str, catalogs: Catalogs, locale: str) -> str:
    key = f"staff.channel.{channel or 'unknown'}"
    return catalogs.text(locale, key) if key in catalogs.keys() else channel


async def home(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    services = request.app[SERVICES]
    communes = services.context.communes
    catalogs = services.renderer.catalogs
    locale = locale_of(request)
    day = today(services.clock)
    period = parse_period(request.query.get("period"), day)
    province = chosen_province(viewer, communes, request.query.get("province"))
    scope = report_scope(viewer, communes, province)
    months = trend_months(period, day)
    async with services.db.transaction() as db:
        figures = await overview(
            db, period=period, scope=scope, months=months, communes=communes, now=services.clock.now(),
            pack=services.context.pack, listed_channels=CHANNELS,
        )
        counted = await case_counts(
            db, since=period.start, until=period.end,
            province=scope.code if scope.kind is ScopeKind.PROVINCE else None,
            commune=scope.code if scope.kind is ScopeKind.COMMUNE else None,
        )
    threshold = figures.threshold
    parts = _report_parts(figures.report, catalogs, locale)
    counselling = _counselling_rows(counted, threshold, catalogs, locale, communes, by_commune=scope.kind is not ScopeKind.COMMUNE)
    short = [catalogs.text(locale, f"staff.month.short.{m.month}") for m in months]
    long = [period_label(Period.containing(m, PeriodKind.MONTH), catalogs, locale) for m in months]
    chart: Chart = trend_chart(
        [(label, figures.trend[i][1]) for i, label in enumerate(short)], threshold=threshold, locale=locale,
        month_names=long,
    )
    channels = figures.by_channel
    channel_rows, channel_total = _count_rows(
        [_channel_label(c, catalogs, locale) for c in channels.keys], channels.cells, channels.total,
        threshold, catalogs, locale,
    )
    peers = figures.by_peer
    inactive = " " + catalogs.text(locale, "staff.overview.inactive")
    peer_names = [link.alias + ("" if link.active else inactive) for link in peers.links]
    peer_cells = list(peers.cells)
    if peers.elsewhere is not None:
        peer_names.append(catalogs.text(locale, "staff.overview.peer_elsewhere"))
        peer_cells.append(peers.elsewhere)
    peer_names.append(catalogs.text(locale, "staff.overview.no_peer"))
    peer_cells.append(peers.no_peer)
    peer_rows, peer_total = _count_rows(peer_names, peer_cells, peers.total, threshold, catalogs, locale)

    done = request.query.get("done")
    context = {
        "done": done if done in DONE else None,
        "period": period,
        "period_name": period_label(period, catalogs, locale),
        "periods": period_choices(day, catalogs, locale, extra=period),
        "provinces": province_choices(viewer, communes) if viewer.scope.everywhere else [],
        "province": province,
        "threshold": threshold,
        "small": f"<{threshold}",
        **parts,
        "targets_link": _targets_link(viewer, scope, period),
        "indicators": INDICATORS,
        "chart": chart,
        "channel_rows": channel_rows,
        "channel_total": channel_total,
        "peer_rows": peer_rows,
        "peer_total": peer_total,
        "no_value": NO_VALUE,
        **counselling,
    }
    return await render(request, "home.html", context)


def _counselling_rows(
    counted: CaseCounts, threshold: int, catalogs: Catalogs, locale: str, communes: CommuneIndex, *, by_commune: bool
) -> dict[str, object]:
    """Closed counsellor chats by outcome and by channel, small cells hidden as everywhere; the
    median wait only when at least ``threshold`` chats were claimed (a single wait is a person's)."""
    outcomes = list(counted.by_outcome)
    by_outcome = protect([[counted.by_outcome[o]] for o in outcomes], threshold=threshold, row_totals=False, column_totals=True)
    names = [catalogs.text(locale, f"staff.counselling.outcome.{o}") for o in outcomes]
    assert by_outcome.column_totals is not None
    outcome_rows, outcome_total = _count_rows(
        names, [row[0] for row in by_outcome.body], by_outcome.column_totals[0], threshold, catalogs, locale
    )
    channels = sorted(counted.by_channel)
    channel_rows: list[CountRow] = []
    if channels:
        by_channel = protect([[counted.by_channel[c]] for c in channels], threshold=threshold, row_totals=False, column_totals=False)
        channel_rows = [
            CountRow(_channel_label(c, catalogs, locale), (figure(row[0], threshold, locale),))
            for c, row in zip(channels, by_channel.body, strict=True)
        ]
    commune_rows: list[CountRow] = []
    def name(code: int) -> str:
        found = communes.get(code) if code else None
        return found.name if found is not None else catalogs.text(locale, "report.unknown_commune")

    places = sorted(counted.by_commune, key=lambda code: (code == 0, name(code)))
    if by_commune and places:
        by_place = protect([[counted.by_commune[c]] for c in places], threshold=threshold, row_totals=False, column_totals=False)
        commune_rows = [
            CountRow(name(c), (figure(row[0], threshold, locale),)) for c, row in zip(places, by_place.body, strict=True)
        ]
    median = counted.median_wait_minutes() if len(counted.waits) >= threshold else None
    return {
        "case_rows": outcome_rows,
        "case_total": outcome_total,
        "case_channel_rows": channel_rows,
        "case_commune_rows": commune_rows,
        "case_median": number(float(median), locale) if median is not None else None,
        "case_any": counted.total > 0,
    }


def _report_parts(report: PeriodReport | None, catalogs: Catalogs, locale: str) -> dict[str, object]:
    """The report's figures for the page: progress cards, people by indicator, referrals."""
    if report is None:  # nothing counted and no target anywhere yet
        return {
            "cards": [], "total_card": None, "missing_estimates": [], "people": [], "people_total": None,
            "service_rows": [], "service_total": None, "uptake": NO_VALUE, "checks": [], "not_counted_total": None,
        }
    threshold = report.threshold
    names = _names(report, catalogs, locale)
    cards = [_card(name, report.progress[r][0], report.people.body[r][0], threshold, locale) for r, name in enumerate(names)]
    total_card = None
    if report.scope.kind is not ScopeKind.COMMUNE and report.communes and report.people.column_totals:
        total_card = _card(
            catalogs.text(locale, "staff.overview.whole_area"), report.total_progress[0],
            report.people.column_totals[0], threshold, locale,
        )
    people, people_total = _people(report, names, catalogs, locale)
    # By name, the "commune not known" line last (the report lists communes by code).
    order = sorted(range(len(names)), key=lambda r: (report.communes[r].code == 0, strip_diacritics(names[r].lower())))
    cards = [cards[r] for r in order]
    people = [people[r] for r in order]
    service_rows, service_total = _services(report, catalogs, locale)
    checks, not_counted_total = _checks(report, names, locale)
    checks = [checks[r] for r in order]
    issued, redeemed = report.issued.grand_total, report.redeemed.grand_total
    uptake = None if issued is None or redeemed is None or issued.hidden or redeemed.hidden else report.total_uptake
    return {
        "cards": cards,
        "total_card": total_card,
        "missing_estimates": [card.name for card in cards if card.estimate is None],
        "people": people,
        "people_total": people_total,
        "service_rows": service_rows,
        "service_total": service_total,
        "uptake": percent_text(uptake, locale),
        "checks": [row for row in checks if row.spikes or row.not_counted.hidden or row.not_counted.shown],
        "not_counted_total": not_counted_total,
    }


def _checks(report: PeriodReport, names: list[str], locale: str) -> tuple[list[CheckRow], Figure | None]:
    """Per commune, people not counted because of the limit per address block, and spike days.

    Both come from the report, protected there: the counts as a table of their own, and spike
    days only for communes whose count is shown.
    """
    table, threshold = report.not_counted, report.threshold
    if table is None:
        return [CheckRow(name, Figure(NO_VALUE, None), "") for name in names], None
    rows = [
        CheckRow(name, figure(table.body[r][0], threshold, locale), spike_text(report.spikes[r]))
        for r, name in enumerate(names)
    ]
    total = figure(table.column_totals[0], threshold, locale) if table.column_totals else None
    return rows, total


def _targets_link(viewer: Viewer, scope: Scope, period: Period) -> str | None:
    """Where an admin enters the missing estimates (staff ask their admin instead)."""
    if not viewer.is_admin:
        return None
    province = scope.code if scope.kind is ScopeKind.PROVINCE else viewer.scope.province
    query = f"?year={period.start.year}" + (f"&province={province}" if province is not None else "")
    return "/staff/targets" + query
