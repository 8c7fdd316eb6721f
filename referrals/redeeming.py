"""Redeeming a referral code at a service: the one rule behind `antam referral redeem` and the
staff app's redeem page.

In the caller's transaction: check the throttle, find the code by its keyed hash, and either
mark it used today and count it, or say exactly why not (unknown, used, cancelled, expired, for
another commune) and change nothing but the failure count. A valid code counts one "referral
redeemed" event and — once per person and period — one person "connected", found through the
code's sealed holder link, which is cleared right after.

The holder's record belongs to the layer above (bot/record.py): it is read and written through
``RecordMarks``, which knows where in the sealed record the counted periods are kept.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from referrals import codes, counting
from referrals.localtime import local_day
from referrals.counters import apply_increments
from referrals.counting import Increment, Marks, Where
from referrals.periods import periods_of
from referrals.store import (
    Holder,
    Status,
    add_redeem_failure,
    lock_referral,
    redeem_failures,
    share_counted_periods,
)
from storage.crypto import KeyRing
from storage.persons import load_record, reseal_record

# Failed attempts allowed per place (or staff account) in one window; then attempts are
# refused until the window ends. With 40-bit codes this makes guessing hopeless.
MAX_FAILURES = 10
WINDOW = dt.timedelta(minutes=15)


class Redemption(StrEnum):
    """What came of one attempt to redeem a code."""

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
        # "ward:" is the stored key of existing throttle rows; renaming it would reset them.
        return f"ward:{self.commune}" if self.commune is not None else f"province:{self.province}"


@dataclass(frozen=True)
class Result:
    outcome: Redemption
    service_type: str | None = None
    commune: int | None = None
    day: dt.date | None = None  # redeemed on (today, or the earlier day it was used) / expired on
    retry_after: dt.timedelta | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is Redemption.REDEEMED


class RecordMarks(Protocol):
    """Reads and replaces the counted periods inside a person's (unsealed) record bytes."""

    def marks(self, raw: bytes) -> Marks: ...

    def with_marks(self, raw: bytes, marks: Marks) -> bytes: ...


def window_start(now: dt.datetime) -> dt.datetime:
    seconds = int(now.timestamp()) // int(WINDOW.total_seconds()) * int(WINDOW.total_seconds())
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


async def redeem(
    session: AsyncSession,
    ring: KeyRing,
    records: RecordMarks,
    *,
    pepper: bytes,
    text: str,
    place: Place,
    now: dt.datetime,
    actor: str | None = None,
) -> Result:
    """Redeem a typed code at ``place``; ``actor`` (a staff account) throttles per account too."""
    day = local_day(now)
    start = window_start(now)
    scopes = [place.throttle_scope] + ([f"staff:{actor}"] if actor else [])
    for scope in scopes:
        if await redeem_failures(session, scope, start) >= MAX_FAILURES:
            return Result(Redemption.THROTTLED, retry_after=start + WINDOW - now)
    result = await _redeem(session, ring, records, pepper, text, place, day)
    if not result.ok:
        for scope in scopes:
            await add_redeem_failure(session, scope, start)
    return result


async def _redeem(
    session: AsyncSession, ring: KeyRing, records: RecordMarks, pepper: bytes, text: str, place: Place, day: dt.date
) -> Result:
    try:
        code = codes.normalise(text)
    except codes.CodeFormatError:
        return Result(Redemption.MALFORMED)
    code_hash = codes.code_hash(pepper, code)
    row = await lock_referral(session, code_hash)
    if row is None:
        return Result(Redemption.UNKNOWN)
    if row.status == Status.REDEEMED.value:
        return Result(Redemption.ALREADY_USED, row.service_type, row.commune, row.redeemed_on)
    if row.status == Status.CANCELLED.value:
        return Result(Redemption.CANCELLED, row.service_type, row.commune)
    if row.expires_on < day:
        return Result(Redemption.EXPIRED, row.service_type, row.commune, row.expires_on)
    if not place.accepts(row.commune, row.province):
        return Result(Redemption.OTHER_PLACE, row.service_type, row.commune)

    where = Where(row.commune, row.province, row.channel, row.peer)
    increments = [Increment(day, where, counting.REFERRAL_REDEEMED, row.service_type)]
    increments.extend(await _count_connected(session, ring, records, row.code_hash, row.holder, day, where))
    row.status = Status.REDEEMED.value
    row.redeemed_on = day
    row.holder = None  # whom to count is no longer needed
    await session.flush()
    await apply_increments(session, increments)
    return Result(Redemption.REDEEMED, row.service_type, row.commune, day)


async def _count_connected(
    session: AsyncSession,
    ring: KeyRing,
    records: RecordMarks,
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
            marks, found = counting.count_unique(records.marks(raw).current(day), "connected", day, where)
            if found:
                await reseal_record(session, ring, holder.pseudonym, records.with_marks(raw, marks))
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


__all__ = ["MAX_FAILURES", "Place", "RecordMarks", "Redemption", "Result", "WINDOW", "redeem", "window_start"]
