"""Building the protected periodic report for a staff page, or saying there is nothing to report.

``referrals.reporting.build_report`` fails on a national report (every commune) when no commune
has a count or a target in the period: its tables then have no rows and no columns. The staff
pages ask first whether such a report has any row, and show "nothing yet" instead.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession

from content.geo import CommuneIndex
from content.pack import ContentPack
from referrals.counters import monthly_sums
from referrals.counting import REFERRAL_ISSUED, REFERRAL_REDEEMED, unique_metric
from referrals.indicators import Policy, targets_for
from referrals.periods import Period
from referrals.report import INDICATORS, UNKNOWN_COMMUNE, PeriodReport, Scope, ScopeKind
from referrals.reporting import build_report


async def has_rows(session: AsyncSession, *, period: Period, scope: Scope, communes: CommuneIndex) -> bool:
    """Whether the report would have a row: always for a commune or a province; for everywhere,
    when a known commune (or the "commune not known" line) has a count or a target."""
    if scope.kind is not ScopeKind.ALL:
        return True
    metrics = [unique_metric(indicator, period.kind) for indicator in INDICATORS] + [REFERRAL_ISSUED, REFERRAL_REDEEMED]
    counted = {key[0] for key in await monthly_sums(session, months=period.months(), metrics=metrics)}
    counted |= {code for code, _ in await targets_for(session, year=period.start.year)}
    return any(code == UNKNOWN_COMMUNE or communes.get(code) is not None for code in counted)


async def report_or_none(
    session: AsyncSession,
    *,
    period: Period,
    scope: Scope,
    communes: CommuneIndex,
    policy: Policy,
    now: dt.datetime,
    pack: ContentPack | None,
) -> PeriodReport | None:
    """The protected report, or None when it would have no row at all."""
    if not await has_rows(session, period=period, scope=scope, communes=communes):
        return None
    return await build_report(session, period=period, scope=scope, communes=communes, policy=policy, now=now, pack=pack)
