"""Writing and reading the aggregate counters (daily, and the monthly roll-up reports read).

Increments are applied with one upsert statement per table (a row of parameters per counter),
``count = count + n`` in the database, inside the caller's transaction, so a count changes
together with the event that caused it, and concurrent workers lose no increment. Rows are
written in a fixed order so two transactions touching the same counters cannot deadlock.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import Counter as Tally
from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from referrals.counting import Increment, Where
from storage.db import insert_for
from storage.referral_models import Counter, CounterMonth

DayKey = tuple[dt.date, int, str, str, str, str, int]
MonthKey = tuple[dt.date, int, str, str, int]


_COUNTERS = cast(Table, Counter.__table__)
_MONTHS = cast(Table, CounterMonth.__table__)


async def apply_increments(session: AsyncSession, increments: Iterable[Increment]) -> None:
    """Add the increments to the daily counters and the monthly roll-up."""
    days: Tally[DayKey] = Tally()
    months: Tally[MonthKey] = Tally()
    for inc in increments:
        w = inc.where
        days[(inc.day, w.commune, inc.metric, inc.detail, w.channel, w.peer, w.province)] += inc.count
        months[(inc.day.replace(day=1), w.commune, inc.metric, inc.detail, w.province)] += inc.count
    if not days:
        return
    connection = await session.connection()
    daily, monthly = _upserts(connection.dialect.name)
    # Sorted: the order rows are locked in, the same in every transaction.
    await connection.execute(
        daily,
        [
            {"day": day, "commune": commune, "metric": metric, "detail": detail, "channel": channel,
             "peer": peer, "province": province, "n": n}
            for (day, commune, metric, detail, channel, peer, province), n in sorted(days.items())
        ],
    )
    await connection.execute(
        monthly,
        [
            {"month": month, "commune": commune, "metric": metric, "detail": detail, "province": province, "n": n}
            for (month, commune, metric, detail, province), n in sorted(months.items())
        ],
    )


@functools.cache
def _upserts(dialect: str) -> tuple[Any, Any]:
    """INSERT … ON CONFLICT DO UPDATE SET count = count + n, for both tables, built once per dialect."""
    insert = insert_for(dialect)
    day_columns = ("day", "commune", "metric", "detail", "channel", "peer", "province")
    daily = insert(_COUNTERS).values({c: bindparam(c) for c in day_columns} | {"count": bindparam("n")})
    daily = daily.on_conflict_do_update(
        index_elements=["day", "commune", "metric", "detail", "channel", "peer"],
        set_={"count": _COUNTERS.c.count + daily.excluded.count},
    )
    month_columns = ("month", "commune", "metric", "detail", "province")
    monthly = insert(_MONTHS).values({c: bindparam(c) for c in month_columns} | {"count": bindparam("n")})
    monthly = monthly.on_conflict_do_update(
        index_elements=["month", "commune", "metric", "detail"],
        set_={"count": _MONTHS.c.count + monthly.excluded.count},
    )
    return daily, monthly


async def monthly_sums(
    session: AsyncSession,
    *,
    months: Sequence[dt.date],
    metrics: Sequence[str],
    province: int | None = None,
    commune: int | None = None,
) -> dict[tuple[int, int, str, str], int]:
    """Sums from the monthly roll-up: {(commune, province, metric, detail): count}."""
    query = (
        select(CounterMonth.commune, CounterMonth.province, CounterMonth.metric, CounterMonth.detail,
               func.sum(CounterMonth.count))
        .where(CounterMonth.month.in_(list(months)), CounterMonth.metric.in_(list(metrics)))
        .group_by(CounterMonth.commune, CounterMonth.province, CounterMonth.metric, CounterMonth.detail)
    )
    if province is not None:
        query = query.where(CounterMonth.province == province)
    if commune is not None:
        query = query.where(CounterMonth.commune == commune)
    rows = await session.execute(query)
    return {(c, p, m, d): int(n) for c, p, m, d, n in rows.all()}


async def daily_sums(
    session: AsyncSession,
    *,
    start: dt.date,
    end: dt.date,
    metrics: Sequence[str],
    by: Sequence[str] = ("metric", "detail"),
    province: int | None = None,
    commune: int | None = None,
    peer: str | None = None,
) -> dict[tuple[object, ...], int]:
    """Sums from the daily counters between two days (inclusive), grouped by the named columns."""
    columns = [getattr(Counter, name) for name in by]
    query = (
        select(*columns, func.sum(Counter.count))
        .where(Counter.day >= start, Counter.day <= end, Counter.metric.in_(list(metrics)))
        .group_by(*columns)
    )
    if province is not None:
        query = query.where(Counter.province == province)
    if commune is not None:
        query = query.where(Counter.commune == commune)
    if peer is not None:
        query = query.where(Counter.peer == peer)
    rows = await session.execute(query)
    return {tuple(row[:-1]): int(row[-1]) for row in rows.all()}


async def month_series(
    session: AsyncSession,
    *,
    months: Sequence[dt.date],
    metric: str,
    province: int | None = None,
    commune: int | None = None,
) -> dict[dt.date, int]:
    """One metric per month from the monthly roll-up: {first day of the month: count}.

    Every month asked for is in the answer (0 when nothing was counted); ``province`` and
    ``commune`` narrow it to one province or one commune (neither: everywhere).
    """
    wanted = sorted(set(months))
    query = (
        select(CounterMonth.month, func.sum(CounterMonth.count))
        .where(CounterMonth.month.in_(wanted), CounterMonth.metric == metric)
        .group_by(CounterMonth.month)
    )
    if province is not None:
        query = query.where(CounterMonth.province == province)
    if commune is not None:
        query = query.where(CounterMonth.commune == commune)
    found = {month: int(count) for month, count in (await session.execute(query)).all()}
    return {month: found.get(month, 0) for month in wanted}


__all__ = ["Where", "apply_increments", "daily_sums", "month_series", "monthly_sums"]
