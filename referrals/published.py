"""The figures staff see, already protected: the overview of an area, its reach by channel and
by peer link, one peer link's own page, and the periodic report.

Every function here returns cells that went through referrals/suppression.py (small counts
hidden, and secondary suppression wherever a published total could give a hidden count back).
Views and commands render these cells; they never call the suppression functions themselves,
so a page cannot publish a count that the report would hide.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from content.geo import CommuneIndex
from content.pack import ContentPack
from referrals.counters import daily_sums, month_series
from referrals.counting import REFERRAL_ISSUED, REFERRAL_REDEEMED, unique_metric
from referrals.indicators import load_policy
from referrals.peers import list_peers
from referrals.periods import Period, PeriodKind
from referrals.report import PeriodReport, Scope, ScopeKind
from referrals.reporting import build_report
from referrals.suppression import protect
from referrals.tables import Cell
from storage.referral_models import PeerLink

NO_PEER = ""  # the peer column of counts made without a peer link
# What a peer link's own figures are, in order.
PEER_LINK_FIGURES = ("reached", "referred", "redeemed")


def scope_filters(scope: Scope) -> tuple[int | None, int | None]:
    """(province, commune) to narrow a counter query to the scope; (None, None) is everywhere."""
    return (
        scope.code if scope.kind is ScopeKind.PROVINCE else None,
        scope.code if scope.kind is ScopeKind.COMMUNE else None,
    )


async def period_report(
    session: AsyncSession,
    *,
    period: Period,
    scope: Scope,
    communes: CommuneIndex,
    now: dt.datetime,
    pack: ContentPack | None,
) -> PeriodReport | None:
    """The protected report under the current policy, or None when it has no row at all (a
    national report before anything was counted or any target set)."""
    policy = await load_policy(session)
    report = await build_report(session, period=period, scope=scope, communes=communes, policy=policy, now=now, pack=pack)
    return report if report.communes else None


@dataclass(frozen=True)
class Column:
    """A protected column of counts with its published total, one cell per key."""

    keys: tuple[str, ...]
    cells: tuple[Cell, ...]
    total: Cell


def _column(keys: Sequence[str], counts: Sequence[int], threshold: int) -> Column:
    table = protect([[count] for count in counts], threshold=threshold, row_totals=False, column_totals=True)
    assert table.column_totals is not None
    return Column(tuple(keys), tuple(row[0] for row in table.body), table.column_totals[0])


@dataclass(frozen=True)
class PeerColumn:
    """People reached by peer link: the area's links (in ``links`` order), those reached through
    links of other areas (None when there were none), and those reached without a link."""

    links: tuple[PeerLink, ...]
    cells: tuple[Cell, ...]
    elsewhere: Cell | None
    no_peer: Cell
    total: Cell


@dataclass(frozen=True)
class Overview:
    """The overview of an area for a period, every figure protected."""

    threshold: int
    report: PeriodReport | None  # None: nothing to report yet
    trend: tuple[tuple[dt.date, Cell], ...]  # months, with no total (primary suppression only)
    by_channel: Column
    by_peer: PeerColumn


async def overview(
    session: AsyncSession,
    *,
    period: Period,
    scope: Scope,
    months: Sequence[dt.date],
    communes: CommuneIndex,
    now: dt.datetime,
    pack: ContentPack | None,
    listed_channels: Sequence[str] = (),
) -> Overview:
    """The home page's figures: the report, the monthly trend of people reached, and reach by
    channel and by peer link."""
    threshold = (await load_policy(session)).threshold
    report = await period_report(session, period=period, scope=scope, communes=communes, now=now, pack=pack)
    province, commune = scope_filters(scope)
    reached = unique_metric("reached", period.kind)
    series = await month_series(
        session, months=months, metric=unique_metric("reached", PeriodKind.MONTH), province=province, commune=commune
    )
    # The trend: months × 1 with no total, so primary suppression is all it needs.
    trend = protect([[series[m]] for m in months], threshold=threshold, row_totals=False, column_totals=False)
    by_channel = await daily_sums(
        session, start=period.start, end=period.end, metrics=[reached], by=("channel",), province=province,
        commune=commune,
    )
    channel_counts = {str(key[0] or ""): count for key, count in by_channel.items()}
    # Channels listed even when nothing was counted through them (the registry's, given by the
    # caller); others (the console) appear only when counted.
    channels = list(listed_channels) + sorted(set(channel_counts) - set(listed_channels))
    by_peer = await daily_sums(
        session, start=period.start, end=period.end, metrics=[reached], by=("peer",), province=province,
        commune=commune,
    )
    links = await list_peers(session, province=province, commune=commune)
    return Overview(
        threshold=threshold,
        report=report,
        trend=tuple((month, trend.body[i][0]) for i, month in enumerate(months)),
        by_channel=_column(channels, [channel_counts.get(c, 0) for c in channels], threshold),
        by_peer=_peer_column(links, {str(key[0] or ""): count for key, count in by_peer.items()}, threshold),
    )


def _peer_column(links: Sequence[PeerLink], counts: dict[str, int], threshold: int) -> PeerColumn:
    own = {link.code for link in links}
    values = [counts.get(link.code, 0) for link in links]
    elsewhere = sum(count for code, count in counts.items() if code and code not in own)
    keys = [link.code for link in links] + (["elsewhere"] if elsewhere else []) + [NO_PEER]
    column = _column(keys, values + ([elsewhere] if elsewhere else []) + [counts.get(NO_PEER, 0)], threshold)
    return PeerColumn(
        links=tuple(links),
        cells=column.cells[: len(links)],
        elsewhere=column.cells[len(links)] if elsewhere else None,
        no_peer=column.cells[-1],
        total=column.total,
    )


@dataclass(frozen=True)
class PeerLinkFigures:
    """One peer link's own counts per period: reached, referred, redeemed (PEER_LINK_FIGURES)."""

    threshold: int
    periods: tuple[Period, ...]
    cells: tuple[tuple[Cell, ...], ...]  # periods × PEER_LINK_FIGURES


async def peer_link_figures(session: AsyncSession, *, code: str, periods: Sequence[Period]) -> PeerLinkFigures:
    """The counts a peer educator sees for their link; never who."""
    threshold = (await load_policy(session)).threshold
    values = []
    for period in periods:
        reached = unique_metric("reached", period.kind)
        metrics = [reached, REFERRAL_ISSUED, REFERRAL_REDEEMED]
        sums = await daily_sums(
            session, start=period.start, end=period.end, metrics=metrics, by=("metric",), peer=code
        )
        values.append([sums.get((metric,), 0) for metric in metrics])
    # Separate figures with no published total: primary suppression is all they need.
    table = protect(values, threshold=threshold, row_totals=False, column_totals=False)
    return PeerLinkFigures(threshold, tuple(periods), table.body)


__all__ = [
    "Column", "NO_PEER", "Overview", "PEER_LINK_FIGURES", "PeerColumn", "PeerLinkFigures",
    "overview", "peer_link_figures", "period_report", "scope_filters",
]
