"""Build the periodic report of one commune, one province or everywhere, from the counters.

It reads the monthly roll-up (a few thousand rows for a province's year, whatever the number
of events), the targets and estimates, and protects every table before anything leaves this
module: exports and the staff app only ever see a ``PeriodReport``.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from content.geo import CommuneIndex
from content.pack import NOT_REFERRABLE, SERVICE_TYPES, ContentPack
from referrals.counters import monthly_sums, sums_by_day
from referrals.counting import NOT_COUNTED_LIMIT, REFERRAL_ISSUED, REFERRAL_REDEEMED, unique_metric
from referrals.periods import PeriodKind
from referrals.indicators import Policy, Target, targets_for
from referrals.periods import Period
from referrals.report import (
    DEFAULT_TARGET_PERCENT,
    INDICATORS,
    SPIKE_BASELINE,
    SPIKE_FACTOR,
    SPIKE_FLOOR,
    UNKNOWN_COMMUNE,
    CommuneLine,
    PeriodReport,
    Progress,
    Scope,
    ScopeKind,
    spike_floor,
)
from referrals.suppression import protect
from referrals.tables import Cell, ProtectedTable
from storage.referral_models import CounterMonth, IndicatorTarget

# Kinds of place, not of help: never a referral column.

def spike_days(daily: Mapping[dt.date, int], start: dt.date, end: dt.date, *, floor: int = SPIKE_FLOOR) -> list[dt.date]:
    """The days from ``start`` to ``end`` whose count is above max(3 × median of the 14 days before, floor)."""
    found = []
    # Only a day above the floor can be a spike: the others need no baseline.
    for day in sorted(d for d, count in daily.items() if start <= d <= end and count > floor):
        baseline = [daily.get(day - dt.timedelta(days=n), 0) for n in range(1, SPIKE_BASELINE + 1)]
        if daily[day] > SPIKE_FACTOR * statistics.median(baseline):
            found.append(day)
    return found


async def commune_spikes(
    session: AsyncSession,
    *,
    start: dt.date,
    end: dt.date,
    floor: int,
    province: int | None = None,
    commune: int | None = None,
) -> dict[int, list[dt.date]]:
    """Spike days per commune between two days, from the daily "reached" counters (so only over
    the days still kept daily: the current and the previous month)."""
    sums = await sums_by_day(
        session,
        start=start - dt.timedelta(days=SPIKE_BASELINE),
        end=end,
        metrics=[unique_metric("reached", PeriodKind.MONTH)],
        by=("commune", "day"),
        province=province,
        commune=commune,
    )
    by_commune: dict[int, dict[dt.date, int]] = {}
    for (code, day), count in sums.items():
        assert isinstance(code, int) and isinstance(day, dt.date)
        by_commune.setdefault(code, {})[day] = count
    found = {code: spike_days(daily, start, end, floor=floor) for code, daily in by_commune.items()}
    return {code: days for code, days in found.items() if days}


class ScopeError(ValueError):
    """The commune or province does not exist."""


def commune_scope(communes: CommuneIndex, code: int) -> Scope:
    commune = communes.get(code)
    if commune is None:
        raise ScopeError(f"{code} is not a 2025 commune code")
    return Scope(ScopeKind.COMMUNE, code, commune.label)


def province_scope(communes: CommuneIndex, code: int) -> Scope:
    name = communes.provinces.get(code)
    if name is None:
        raise ScopeError(f"{code} is not a 2025 province code")
    return Scope(ScopeKind.PROVINCE, code, name)


def _line(communes: CommuneIndex, code: int) -> CommuneLine:
    commune = communes.get(code)
    if commune is None:
        return CommuneLine(UNKNOWN_COMMUNE, "", 0, "")
    return CommuneLine(commune.code, commune.name, commune.province_code, commune.province_name)


async def _rows(
    session: AsyncSession, scope: Scope, period: Period, communes: CommuneIndex, counted: Iterable[int]
) -> list[int]:
    if scope.kind is ScopeKind.COMMUNE:
        assert scope.code is not None
        return [scope.code]
    if scope.kind is ScopeKind.PROVINCE:
        return sorted(code for code, c in communes.by_code.items() if c.province_code == scope.code)
    with_targets = await session.scalars(
        select(IndicatorTarget.commune).where(IndicatorTarget.year == period.start.year).distinct()
    )
    found = set(counted) | set(with_targets.all())
    known = sorted(code for code in found if code != UNKNOWN_COMMUNE and communes.get(code) is not None)
    return known + ([UNKNOWN_COMMUNE] if UNKNOWN_COMMUNE in found else [])


def _service_types(pack: ContentPack | None, communes: CommuneIndex, rows: list[int], counted: Iterable[str]) -> tuple[str, ...]:
    """Referral columns: kinds with any count, and kinds the scope's services offer."""
    kinds = {kind for kind in counted if kind}
    if pack is not None and len(rows) <= 200:
        for code in rows:
            commune = communes.get(code)
            if commune is None:
                continue
            for service in pack.services_for(commune.code, commune.province_code):
                kinds.update(kind for kind in service.types if kind not in NOT_REFERRABLE)
    return tuple(kind for kind in SERVICE_TYPES if kind in kinds) + tuple(sorted(kinds - set(SERVICE_TYPES)))


def _protect(body: list[list[int]], columns: int, threshold: int, *, row_totals: bool) -> ProtectedTable:
    """Protect a communes × columns table; with no commune at all, totals of zero."""
    if body:
        return protect(body, threshold=threshold, row_totals=row_totals, column_totals=True)
    zeros = tuple(Cell(0) for _ in range(columns))
    return ProtectedTable(body=(), row_totals=() if row_totals else None, column_totals=zeros,
                          grand_total=Cell(0) if row_totals else None, threshold=threshold)


def _percent(count: Cell, estimate: int | None) -> float | None:
    if estimate is None or estimate <= 0 or count.shown is None:
        return None
    return round(count.shown * 100 / estimate, 1)


def _uptake(issued: Cell, redeemed: Cell) -> float | None:
    if issued.shown is None or redeemed.shown is None or issued.shown == 0:
        return None
    return round(redeemed.shown * 100 / issued.shown, 1)


def _total_progress(
    rows: list[int], targets: dict[tuple[int, str], Target], indicator: str, total: Cell
) -> Progress:
    """The scope's own line: only when every commune in it has an estimate, so the percentage
    cannot be combined with the published counts to give back a hidden one."""
    found = [targets.get((code, indicator)) for code in rows]
    estimates = [t.estimate for t in found if t is not None and t.estimate is not None]
    if not rows or UNKNOWN_COMMUNE in rows or len(estimates) != len(rows):
        shared = {t.target_percent if t else DEFAULT_TARGET_PERCENT for t in found}
        return Progress(None, shared.pop() if len(shared) == 1 else DEFAULT_TARGET_PERCENT, None)
    estimate = sum(estimates)
    target = sum((t.target_percent * t.estimate) for t in found if t and t.estimate) / estimate
    return Progress(estimate, round(target, 1), _percent(total, estimate))


async def build_report(
    session: AsyncSession,
    *,
    period: Period,
    scope: Scope,
    communes: CommuneIndex,
    policy: Policy,
    now: dt.datetime,
    pack: ContentPack | None = None,
) -> PeriodReport:
    """The protected report for ``scope`` and ``period``."""
    people_metrics = [unique_metric(indicator, period.kind) for indicator in INDICATORS]
    sums = await monthly_sums(
        session,
        months=period.months(),
        metrics=[*people_metrics, REFERRAL_ISSUED, REFERRAL_REDEEMED, NOT_COUNTED_LIMIT],
        province=scope.code if scope.kind is ScopeKind.PROVINCE else None,
        commune=scope.code if scope.kind is ScopeKind.COMMUNE else None,
    )
    by_key: dict[tuple[int, str, str], int] = {}
    for (commune, _province, metric, detail), count in sums.items():
        by_key[(commune, metric, detail)] = by_key.get((commune, metric, detail), 0) + count
    rows = await _rows(session, scope, period, communes, {key[0] for key in by_key})
    kinds = _service_types(
        pack, communes, rows, {key[2] for key in by_key if key[1] in (REFERRAL_ISSUED, REFERRAL_REDEEMED)}
    )
    threshold = policy.threshold
    people = _protect(
        [[by_key.get((code, metric, ""), 0) for metric in people_metrics] for code in rows],
        len(people_metrics),
        threshold,
        row_totals=False,
    )
    issued = _protect(
        [[by_key.get((code, REFERRAL_ISSUED, kind), 0) for kind in kinds] for code in rows],
        len(kinds),
        threshold,
        row_totals=True,
    )
    redeemed = _protect(
        [[by_key.get((code, REFERRAL_REDEEMED, kind), 0) for kind in kinds] for code in rows],
        len(kinds),
        threshold,
        row_totals=True,
    )
    not_counted = _protect(
        [[by_key.get((code, NOT_COUNTED_LIMIT, ""), 0)] for code in rows], 1, threshold, row_totals=False
    )
    spikes = await commune_spikes(
        session,
        start=period.start,
        end=period.end,
        floor=spike_floor(threshold),
        province=scope.code if scope.kind is ScopeKind.PROVINCE else None,
        commune=scope.code if scope.kind is ScopeKind.COMMUNE else None,
    )
    # A marker says "this commune's count is large": only where that count is published.
    spike_lines = tuple(
        () if people.body[r][0].hidden else tuple(spikes.get(code, ())) for r, code in enumerate(rows)
    )
    targets = await targets_for(
        session,
        year=period.start.year,
        province=scope.code if scope.kind is ScopeKind.PROVINCE else None,
        commune=scope.code if scope.kind is ScopeKind.COMMUNE else None,
    )
    progress = []
    for r, code in enumerate(rows):
        line = []
        for c, indicator in enumerate(INDICATORS):
            target = targets.get((code, indicator))
            estimate = target.estimate if target else None
            percent_target = target.target_percent if target else DEFAULT_TARGET_PERCENT
            line.append(Progress(estimate, percent_target, _percent(people.body[r][c], estimate)))
        progress.append(tuple(line))
    assert people.column_totals is not None and issued.row_totals is not None and redeemed.row_totals is not None
    total_progress = tuple(
        _total_progress(rows, targets, indicator, people.column_totals[c]) for c, indicator in enumerate(INDICATORS)
    )
    uptake = tuple(_uptake(issued.row_totals[r], redeemed.row_totals[r]) for r in range(len(rows)))
    total_uptake = (
        _uptake(issued.grand_total, redeemed.grand_total)
        if issued.grand_total is not None and redeemed.grand_total is not None
        else None
    )
    return PeriodReport(
        period=period,
        scope=scope,
        generated_at=now,
        threshold=threshold,
        communes=tuple(_line(communes, code) for code in rows),
        people=people,
        progress=tuple(progress),
        total_progress=total_progress,
        service_types=kinds,
        issued=issued,
        redeemed=redeemed,
        uptake=uptake,
        total_uptake=total_uptake,
        not_counted=not_counted,
        spikes=spike_lines,
    )


__all__ = ["ScopeError", "build_report", "province_scope", "commune_scope", "CounterMonth"]
