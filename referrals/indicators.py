"""What the indicators are measured against, all of it data an admin edits (docs/architecture.md, "Indicators"):
population-size estimates and targets per commune, year and indicator; the minimum package
that counts a person as "reached"; the small-cell threshold.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from referrals.counting import DEFAULT_PACKAGE, ENGAGEMENTS, UNIQUE_INDICATORS
from referrals.report import DEFAULT_TARGET_PERCENT
from referrals.tables import DEFAULT_THRESHOLD
from storage.db import insert_for
from storage.referral_models import IndicatorTarget, Setting

PACKAGE_KEY = "reach_package"
THRESHOLD_KEY = "small_cell_threshold"
MAX_THRESHOLD = 50


class IndicatorError(ValueError):
    """A target, estimate or setting is not acceptable; the message says why."""


@dataclass(frozen=True)
class Policy:
    package: frozenset[str] = DEFAULT_PACKAGE
    threshold: int = DEFAULT_THRESHOLD


@dataclass(frozen=True)
class Target:
    estimate: int | None
    target_percent: float


async def _put(session: AsyncSession, key: str, value: object, now: dt.datetime) -> None:
    statement = insert_for(session.get_bind().dialect.name)(Setting).values(key=key, value=json.dumps(value), updated_at=now)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["key"], set_={"value": statement.excluded.value, "updated_at": now}
        )
    )


async def load_policy(session: AsyncSession) -> Policy:
    rows = {row.key: row.value for row in (await session.scalars(select(Setting))).all()}
    package = DEFAULT_PACKAGE
    threshold = DEFAULT_THRESHOLD
    try:
        if PACKAGE_KEY in rows:
            stored = json.loads(rows[PACKAGE_KEY])
            package = frozenset(kind for kind in stored if kind in ENGAGEMENTS) or DEFAULT_PACKAGE
        if THRESHOLD_KEY in rows:
            threshold = max(2, min(MAX_THRESHOLD, int(json.loads(rows[THRESHOLD_KEY]))))
    except (ValueError, TypeError):
        pass  # a damaged setting falls back to the default, never to "no suppression"
    return Policy(package, threshold)


async def set_package(session: AsyncSession, kinds: Iterable[str], *, now: dt.datetime) -> frozenset[str]:
    chosen = frozenset(kind.strip() for kind in kinds if kind.strip())
    unknown = chosen - set(ENGAGEMENTS)
    if unknown or not chosen:
        raise IndicatorError(
            f"the minimum package is one or more of: {', '.join(ENGAGEMENTS)}"
            + (f" (unknown: {', '.join(sorted(unknown))})" if unknown else "")
        )
    await _put(session, PACKAGE_KEY, sorted(chosen), now)
    return chosen


async def set_threshold(session: AsyncSession, threshold: int, *, now: dt.datetime) -> int:
    if not 2 <= threshold <= MAX_THRESHOLD:
        raise IndicatorError(f"the small-cell threshold must be between 2 and {MAX_THRESHOLD}")
    await _put(session, THRESHOLD_KEY, threshold, now)
    return threshold


async def set_target(
    session: AsyncSession,
    *,
    year: int,
    commune: int,
    province: int,
    indicator: str,
    estimate: int | None,
    target_percent: float | None,
    now: dt.datetime,
) -> Target:
    """Set a commune's estimate and/or target for a year; what is not given stays as it was."""
    if indicator not in UNIQUE_INDICATORS:
        raise IndicatorError(f"the indicator is one of: {', '.join(UNIQUE_INDICATORS)}")
    if not 2000 <= year <= 2100:
        raise IndicatorError("the year must be between 2000 and 2100")
    if estimate is not None and not 1 <= estimate <= 10_000_000:
        raise IndicatorError("the population-size estimate must be a whole number from 1 to 10,000,000")
    if target_percent is not None and not 0 < target_percent <= 100:
        raise IndicatorError("the target is a percentage above 0 and at most 100")
    row = await session.get(IndicatorTarget, (year, commune, indicator), with_for_update=True)
    if row is None:
        row = IndicatorTarget(
            year=year,
            commune=commune,
            indicator=indicator,
            province=province,
            estimate=estimate,
            target_percent=DEFAULT_TARGET_PERCENT if target_percent is None else target_percent,
            updated_at=now,
        )
        session.add(row)
    else:
        if estimate is not None:
            row.estimate = estimate
        if target_percent is not None:
            row.target_percent = target_percent
        row.updated_at = now
    await session.flush()
    return Target(row.estimate, row.target_percent)


async def targets_for(
    session: AsyncSession, *, year: int, province: int | None = None, commune: int | None = None
) -> dict[tuple[int, str], Target]:
    """{(commune, indicator): target} for a year; absent ones use no estimate and the default target."""
    query = select(IndicatorTarget).where(IndicatorTarget.year == year)
    if province is not None:
        query = query.where(IndicatorTarget.province == province)
    if commune is not None:
        query = query.where(IndicatorTarget.commune == commune)
    return {
        (row.commune, row.indicator): Target(row.estimate, row.target_percent)
        for row in (await session.scalars(query)).all()
    }
