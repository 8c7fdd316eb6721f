"""Writing and reading the aggregate counters (daily, and the monthly roll-up reports read).

Daily rows are kept for the current and the previous month only (what the staff overview's
trend needs); the housekeeping sums older ones by month, commune, metric, channel and peer link
into ``counter_month_links`` and deletes them (roll_up_old_days), and daily_sums reads those
monthly rows for whole months that have no daily rows left.

Increments are applied with one upsert statement per table (a row of parameters per counter),
``count = count + n`` in the database, inside the caller's transaction, so a count changes
together with the event that caused it, and concurrent workers lose no increment. Rows are
written in a fixed order so two transactions touching the same counters cannot deadlock.
An increment may be negative (a count moved from "Chưa rõ xã" to the commune a person named,
referrals/counting.py ``attribute``): it lands on a row that already holds that count.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import Counter as Tally
from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from referrals.counting import Increment, Where
from storage.db import insert_for
from storage.db import wipe_after_commit
from storage.referral_models import Counter, CounterMonth, CounterMonthLink

DayKey = tuple[dt.date, int, str, str, str, str, int]
MonthKey = tuple[dt.date, int, str, str, int]
LinkKey = tuple[dt.date, int, str, str, str, int]


_COUNTERS = cast(Table, Counter.__table__)
_MONTHS = cast(Table, CounterMonth.__table__)
_LINKS = cast(Table, CounterMonthLink.__table__)
# The columns daily_sums can group by: both the daily rows and the monthly link rows have them.
_SUMMED_BY = ("metric", "channel", "peer", "commune", "province")


async def apply_increments(
    session: AsyncSession, increments: Iterable[Increment], *, today: dt.date | None = None
) -> None:
    """Add the increments to the daily counters and the monthly roll-up.

    ``today``: increments on days the housekeeping no longer keeps daily (before
    keep_daily_from(today): a count moved to the commune a person named, on the day it was
    made) go to the monthly link rows those days were summed into, never to a new daily row.
    Such a row would bring back an older day the housekeeping had removed (README, "Counting":
    no older day in a database copy), and could be inserted while roll_up_old_days is between
    summing and deleting its days, then be deleted unsummed. A count may be negative (one taken from
    "Chưa rõ xã").
    """
    cutoff = keep_daily_from(today) if today is not None else None
    days: Tally[DayKey] = Tally()
    months: Tally[MonthKey] = Tally()
    links: Tally[LinkKey] = Tally()
    for inc in increments:
        w = inc.where
        month = inc.day.replace(day=1)
        if cutoff is not None and inc.day < cutoff:
            # The link rows have no detail column: the housekeeping drops it the same way.
            links[(month, w.commune, inc.metric, w.channel, w.peer, w.province)] += inc.count
        else:
            days[(inc.day, w.commune, inc.metric, inc.detail, w.channel, w.peer, w.province)] += inc.count
        months[(month, w.commune, inc.metric, inc.detail, w.province)] += inc.count
    if not months:
        return
    connection = await session.connection()
    daily, monthly = _upserts(connection.dialect.name)
    # Sorted: the order rows are locked in, the same in every transaction.
    if days:
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
    if links:
        await connection.execute(
            _link_upsert(connection.dialect.name),
            [
                {"month": month, "commune": commune, "metric": metric, "channel": channel, "peer": peer,
                 "province": province, "n": n}
                for (month, commune, metric, channel, peer, province), n in sorted(links.items())
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


async def sums_by_day(
    session: AsyncSession,
    *,
    start: dt.date,
    end: dt.date,
    metrics: Sequence[str],
    by: Sequence[str],
    province: int | None = None,
    commune: int | None = None,
) -> dict[tuple[object, ...], int]:
    """Sums from the daily counters only, grouped by the named columns (``day`` among them).

    Days older than the housekeeping keeps daily (the current and the previous month) have been
    summed into months and are simply absent here: for questions that need single days, such
    as the spike marker, never for a period's totals (daily_sums answers those).
    """
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
    return {tuple(row[:-1]): int(row[-1]) for row in (await session.execute(query)).all()}


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
    """Sums between two days (inclusive), grouped by the named columns.

    Recent days come from the daily counters; months rolled up by the housekeeping come from
    their monthly rows, for each month wholly inside the range (every period is). Those keep
    only the columns in _SUMMED_BY: grouping by ``day`` or ``detail`` works for the days still
    kept daily, and raises ValueError if the range reaches a rolled-up month.
    """
    found: Tally[tuple[object, ...]] = Tally()
    monthly = set(by) <= set(_SUMMED_BY)
    for table, when, since, until in (
        (Counter, Counter.day, start, end),
        (CounterMonthLink, CounterMonthLink.month, start, _first_of_month(end + dt.timedelta(days=1))),
    ):
        columns = [getattr(table, name) for name in by] if table is Counter or monthly else []
        query = (
            select(*columns, func.sum(table.count))
            .where(when >= since, table.metric.in_(list(metrics)))
            .where(when <= until if table is Counter else when < until)
        )
        if columns:
            query = query.group_by(*columns)
        if province is not None:
            query = query.where(table.province == province)
        if commune is not None:
            query = query.where(table.commune == commune)
        if peer is not None:
            query = query.where(table.peer == peer)
        for row in (await session.execute(query)).all():
            if row[-1] is None:
                continue  # an ungrouped sum over no rows
            if not columns and table is not Counter:
                raise ValueError(
                    f"cannot sum by {', '.join(by)} over months already rolled up "
                    f"(they keep only {', '.join(_SUMMED_BY)})"
                )
            found[tuple(row[:-1])] += int(row[-1])
    return dict(found)


def _first_of_month(day: dt.date) -> dt.date:
    return day.replace(day=1)


def keep_daily_from(today: dt.date) -> dt.date:
    """The first day whose daily counters are kept: the first of the previous month."""
    return _first_of_month(_first_of_month(today) - dt.timedelta(days=1))


async def roll_up_old_days(session: AsyncSession, *, today: dt.date) -> int:
    """Sum daily counters older than the previous month into monthly link rows; delete them.

    Returns how many daily rows were deleted. The monthly roll-up (counter_months) already holds
    the same counts: it is written with every increment.
    """
    cutoff = keep_daily_from(today)
    oldest = await session.scalar(select(func.min(Counter.day)).where(Counter.day < cutoff))
    if oldest is None:
        return 0
    connection = await session.connection()
    upsert = _link_upsert(connection.dialect.name)
    month = _first_of_month(oldest)
    while month < cutoff:
        following = _first_of_month(month + dt.timedelta(days=32))
        sums = await session.execute(
            select(Counter.commune, Counter.metric, Counter.channel, Counter.peer, Counter.province, func.sum(Counter.count))
            .where(Counter.day >= month, Counter.day < following)
            .group_by(Counter.commune, Counter.metric, Counter.channel, Counter.peer, Counter.province)
            .order_by(Counter.commune, Counter.metric, Counter.channel, Counter.peer)
        )
        rows = [
            {"month": month, "commune": c, "metric": m, "channel": ch, "peer": pe, "province": pr, "n": int(n)}
            for c, m, ch, pe, pr, n in sums.all()
        ]
        if rows:
            await connection.execute(upsert, rows)
        month = following
    deleted = await session.execute(delete(Counter).where(Counter.day < cutoff))
    removed = int(getattr(deleted, "rowcount", 0))
    if removed:
        wipe_after_commit(session)
    return removed


@functools.cache
def _link_upsert(dialect: str) -> Any:
    columns = ("month", "commune", "metric", "channel", "peer", "province")
    statement = insert_for(dialect)(_LINKS).values({c: bindparam(c) for c in columns} | {"count": bindparam("n")})
    return statement.on_conflict_do_update(
        index_elements=["month", "commune", "metric", "channel", "peer"],
        set_={"count": _LINKS.c.count + statement.excluded.count},
    )


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


__all__ = ["Where", "apply_increments", "daily_sums", "keep_daily_from", "month_series", "monthly_sums", "roll_up_old_days"]
