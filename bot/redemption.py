"""Redeeming a referral code at a service — the one path used by the command line and the staff app.

In one transaction: check the throttle, find the code by its keyed hash, and either mark it
used today and count it, or say exactly why not (unknown, used, cancelled, expired, for another
commune) and change nothing but the failure count. A valid code counts one "referral
redeemed" event and — once per person and period — one person "connected", found through the
code's sealed holder link, which is cleared right after.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from bot import metrics
from bot.bootstrap import Services
from bot.clock import today
from bot.record import PersonRecord
from referrals import codes, counting
from referrals.counters import apply_increments
from referrals.counting import Increment, Marks, Where
from referrals.periods import Period, periods_of
from referrals.store import Holder, Status, lock_referral, share_counted_periods
from storage.crypto import KeyRing
from storage.db import insert_for
from storage.persons import load_record, reseal_record
from storage.referral_models import RedeemFailure

# Failed attempts allowed per place (or staff account) in one window; then attempts are
# refused until the window ends. With 40-bit codes this makes guessing hopeless.
MAX_FAILURES = 10
WINDOW = dt.timedelta(minutes=15)


class Outcome(StrEnum):
    REDEEMED = "redeemed"
    MALFORMED = "malformed"
    UNKNOWN = "unknown"
    ALREADY_USED = "already_used"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    OTHER_PLACE = "other_place"
    THROTTLED = "throttled"


@dataclass(frozen=True)
class Place:
    """Where the code is being used: a commune, or a whole province (a provincial service)."""

    commune: int | None = None
    province: int | None = None

    def accepts(self, commune: int, province: int) -> bool:
        if self.commune is not None:
            return commune == self.commune
        return province == self.province

    @property
    def throttle_scope(self) -> str:
        return f"ward:{self.commune}" if self.commune is not None else f"province:{self.province}"


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    service_type: str | None = None
    commune: int | None = None
    day: dt.date | None = None  # redeemed on (today, or the earlier day it was used) / expired on
    retry_after: dt.timedelta | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.REDEEMED


_DEADLOCK = "40P01"


def _window_start(now: dt.datetime) -> dt.datetime:
    seconds = int(now.timestamp()) // int(WINDOW.total_seconds()) * int(WINDOW.total_seconds())
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


async def _failures(session: AsyncSession, scope: str, start: dt.datetime) -> int:
    found = await session.scalar(
        select(RedeemFailure.failures).where(RedeemFailure.scope == scope, RedeemFailure.window_start == start)
    )
    return int(found or 0)


async def _record_failure(session: AsyncSession, scope: str, start: dt.datetime) -> None:
    statement = insert_for(session.get_bind().dialect.name)(RedeemFailure).values(scope=scope, window_start=start, failures=1)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["scope", "window_start"], set_={"failures": RedeemFailure.failures + 1}
        )
    )


async def redeem(services: Services, text: str, place: Place, *, actor: str | None = None) -> Result:
    """Redeem a typed code at ``place``; ``actor`` (a staff account) throttles per account too."""
    now = services.clock.now()
    day = today(services.clock)
    start = _window_start(now)
    scopes = [place.throttle_scope] + ([f"staff:{actor}"] if actor else [])

    for attempt in range(3):
        try:
            async with services.db.transaction() as session:
                for scope in scopes:
                    if await _failures(session, scope, start) >= MAX_FAILURES:
                        return Result(Outcome.THROTTLED, retry_after=start + WINDOW - now)
                result = await _redeem(services, session, text, place, day)
                if not result.ok:
                    for scope in scopes:
                        await _record_failure(session, scope, start)
            break
        except DBAPIError as exc:
            # Two codes of one erased person used at the same moment lock each other's rows
            # (share_counted_periods); PostgreSQL aborts one of them: run it again.
            if attempt == 2 or getattr(exc.orig, "sqlstate", None) != _DEADLOCK:
                raise
    if result.ok and result.service_type:
        metrics.REFERRALS_REDEEMED.inc()
    return result


async def _redeem(services: Services, session: AsyncSession, text: str, place: Place, day: dt.date) -> Result:
    try:
        code = codes.normalise(text)
    except codes.CodeFormatError:
        return Result(Outcome.MALFORMED)
    code_hash = codes.code_hash(services.secrets.pepper, code)
    row = await lock_referral(session, code_hash)
    if row is None:
        return Result(Outcome.UNKNOWN)
    if row.status == Status.REDEEMED.value:
        return Result(Outcome.ALREADY_USED, row.service_type, row.commune, row.redeemed_on)
    if row.status == Status.CANCELLED.value:
        return Result(Outcome.CANCELLED, row.service_type, row.commune)
    if row.expires_on < day:
        return Result(Outcome.EXPIRED, row.service_type, row.commune, row.expires_on)
    if not place.accepts(row.commune, row.province):
        return Result(Outcome.OTHER_PLACE, row.service_type, row.commune)

    ring = await services.keys.get(session)
    where = Where(row.commune, row.province, row.channel, row.peer)
    increments = [Increment(day, where, counting.REFERRAL_REDEEMED, row.service_type)]
    increments.extend(await _count_connected(session, ring, row.code_hash, row.holder, day, where))
    row.status = Status.REDEEMED.value
    row.redeemed_on = day
    row.holder = None  # whom to count is no longer needed
    await session.flush()
    await apply_increments(session, increments)
    return Result(Outcome.REDEEMED, row.service_type, row.commune, day)


async def _count_connected(
    session: AsyncSession,
    ring: KeyRing,
    code_hash: bytes,
    sealed_holder: bytes | None,
    day: dt.date,
    where: Where,
) -> list[Increment]:
    """Count the code's holder as connected in each period they were not yet counted in."""
    holder = Holder.open(ring, sealed_holder, code_hash) if sealed_holder is not None else Holder()
    if holder.pseudonym is not None:
        raw = await load_record(session, ring, holder.pseudonym)
        if raw is not None:
            record = PersonRecord.from_bytes(raw)
            marks, found = counting.count_unique(record.marks.current(day), "connected", day, where)
            if found:
                updated = PersonRecord(record.state, record.messages, marks)
                await reseal_record(session, ring, holder.pseudonym, updated.to_bytes())
            return found
        # The record expired meanwhile: nothing says this person was counted already.
        return counting.count_unique(Marks(), "connected", day, where)[1]
    # After erasure: the periods counted before it, and those in which another of the same
    # person's codes was used since (its use wrote them into this holder).
    increments = []
    for period in periods_of(day):
        if period.key not in holder.prior_periods:
            increments.append(Increment(day, where, counting.unique_metric("connected", period.kind)))
    if sealed_holder is not None:
        await share_counted_periods(
            session, ring, holder.siblings, frozenset(period.key for period in periods_of(day))
        )
    return increments


__all__ = ["MAX_FAILURES", "Outcome", "Period", "Place", "Result", "WINDOW", "redeem"]
