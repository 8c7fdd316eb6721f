"""Referral rows: issue, look up, cancel, orphan on erasure, forget when long expired.

A row is keyed by the code's keyed hash. ``holder`` is sealed with the key ring and bound to
the row (associated data: the code hash); it says whom to count as "connected" when the code
is used, and is cleared as soon as it is no longer needed: at use, at cancellation, at
expiry, and at erasure (when it keeps only the periods the person was already counted in, and
the hashes of their other open codes, so that using two of them still counts one person).
Every holder is padded to one size before sealing (storage.referral_models.HOLDER_BYTES), and
no column links one erased person's codes to each other: only the sealed holders do.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.crypto import KeyRing
from storage.db import insert_for, wipe_after_commit
from storage.referral_models import HOLDER_BYTES, RedeemFailure, Referral, holder_context, pad_holder

# Rows are kept this long after expiry or use, so a late visitor hears "expired" or "already
# used" rather than "unknown"; reports read the counters, not these rows.
KEEP_AFTER = dt.timedelta(days=60)


class Status(StrEnum):
    ISSUED = "issued"
    REDEEMED = "redeemed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Holder:
    """Whom a code counts for: a person's pseudonym, or (after erasure) only the periods that
    person had already been counted as connected in and the hashes of their other open codes
    (``siblings``), whose holders learn the periods this one counts when it is used."""

    pseudonym: bytes | None = None
    prior_periods: frozenset[str] = frozenset()
    siblings: tuple[bytes, ...] = ()

    def seal(self, ring: KeyRing, code_hash: bytes) -> bytes:
        return ring.seal(pad_holder(self._json()), holder_context(code_hash))

    def _json(self) -> bytes:
        if self.pseudonym is not None:
            return json.dumps({"p": self.pseudonym.hex()}).encode("ascii")
        siblings = list(self.siblings)
        while True:
            data = {"m": sorted(self.prior_periods), "s": [sibling.hex() for sibling in siblings]}
            encoded = json.dumps(data, separators=(",", ":")).encode("ascii")
            # Three open codes per person leave room to spare; were there ever more, a sibling
            # left out could count the person twice, never leak anything.
            if len(encoded) <= HOLDER_BYTES or not siblings:
                return encoded
            siblings.pop()

    @classmethod
    def open(cls, ring: KeyRing, sealed: bytes, code_hash: bytes) -> Holder:
        data = json.loads(ring.open(sealed, holder_context(code_hash)))
        if "p" in data:
            return cls(pseudonym=bytes.fromhex(data["p"]))
        return cls(
            prior_periods=frozenset(str(key) for key in data.get("m", [])),
            siblings=tuple(bytes.fromhex(str(sibling)) for sibling in data.get("s", [])),
        )


async def insert_referral(
    session: AsyncSession,
    ring: KeyRing,
    *,
    code_hash: bytes,
    service: str,
    service_type: str,
    commune: int,
    province: int,
    channel: str,
    peer: str,
    issued_on: dt.date,
    expires_on: dt.date,
    holder: bytes,
) -> None:
    """Store a new code; a hash collision raises IntegrityError (the caller draws another)."""
    session.add(
        Referral(
            code_hash=code_hash,
            service=service,
            service_type=service_type,
            commune=commune,
            province=province,
            channel=channel,
            peer=peer,
            issued_on=issued_on,
            expires_on=expires_on,
            status=Status.ISSUED.value,
            holder=Holder(pseudonym=holder).seal(ring, code_hash),
        )
    )
    await session.flush()


async def usable(session: AsyncSession, code_hashes: Sequence[bytes], *, today: dt.date) -> set[bytes]:
    """Which of these codes can still be used (issued, not expired)."""
    if not code_hashes:
        return set()
    rows = await session.scalars(
        select(Referral.code_hash).where(
            Referral.code_hash.in_(list(code_hashes)),
            Referral.status == Status.ISSUED.value,
            Referral.expires_on >= today,
        )
    )
    return set(rows.all())


async def lock_referral(session: AsyncSession, code_hash: bytes) -> Referral | None:
    return await session.scalar(select(Referral).where(Referral.code_hash == code_hash).with_for_update())


async def cancel_referral(session: AsyncSession, ring: KeyRing, code_hash: bytes, pseudonym: bytes) -> Referral | None:
    """Cancel a code its holder gave up; None when it is not theirs or no longer open."""
    row = await lock_referral(session, code_hash)
    if row is None or row.status != Status.ISSUED.value or row.holder is None:
        return None
    if Holder.open(ring, row.holder, code_hash).pseudonym != pseudonym:
        return None
    row.status = Status.CANCELLED.value
    row.holder = None
    await session.flush()
    return row


async def orphan_referrals(
    session: AsyncSession, ring: KeyRing, code_hashes: Sequence[bytes], *, connected_periods: frozenset[str]
) -> int:
    """On erasure: cut the codes' link to the person, keeping them usable and counted once.

    Each open code keeps, sealed, only the periods the person was already counted as connected
    in and the hashes of the person's other open codes (see share_counted_periods).
    """
    rows = (
        await session.scalars(
            select(Referral)
            .where(Referral.code_hash.in_(list(code_hashes)), Referral.status == Status.ISSUED.value)
            .order_by(Referral.code_hash)
            .with_for_update()
        )
    ).all()
    for row in rows:
        siblings = tuple(other.code_hash for other in rows if other.code_hash != row.code_hash)
        row.holder = Holder(prior_periods=connected_periods, siblings=siblings).seal(ring, row.code_hash)
    await session.flush()
    return len(rows)


async def share_counted_periods(
    session: AsyncSession, ring: KeyRing, siblings: Sequence[bytes], periods: frozenset[str]
) -> None:
    """A code of an erased person was used: its still-open siblings learn the periods it
    counted in, so using one of them later in the same period counts nobody new."""
    if not siblings or not periods:
        return
    rows = (
        await session.scalars(
            select(Referral)
            .where(
                Referral.code_hash.in_(list(siblings)),
                Referral.status == Status.ISSUED.value,
                Referral.holder.is_not(None),
            )
            .order_by(Referral.code_hash)
            .with_for_update()
        )
    ).all()
    for row in rows:
        assert row.holder is not None
        holder = Holder.open(ring, row.holder, row.code_hash)
        if holder.pseudonym is not None or periods <= holder.prior_periods:
            continue
        row.holder = Holder(prior_periods=holder.prior_periods | periods, siblings=holder.siblings).seal(
            ring, row.code_hash
        )
    await session.flush()


async def forget_referrals(session: AsyncSession, *, today: dt.date) -> tuple[int, int]:
    """Clear links of expired codes; delete rows long expired. Returns (unlinked, deleted)."""
    unlinked = await session.execute(
        update(Referral)
        .where(Referral.expires_on < today, Referral.holder.is_not(None))
        .values(holder=None)
    )
    deleted = await session.execute(delete(Referral).where(Referral.expires_on < today - KEEP_AFTER))
    if getattr(unlinked, "rowcount", 0):
        wipe_after_commit(session)  # the sealed links must not survive in the SQLite log
    return int(getattr(unlinked, "rowcount", 0)), int(getattr(deleted, "rowcount", 0))


# --- failed redemptions (the throttle of referrals/redeeming.py) ------------------------------


async def redeem_failures(session: AsyncSession, scope: str, window_start: dt.datetime) -> int:
    """Failed redemptions counted for ``scope`` (a place or a staff account) in one window."""
    found = await session.scalar(
        select(RedeemFailure.failures).where(
            RedeemFailure.scope == scope, RedeemFailure.window_start == window_start
        )
    )
    return int(found or 0)


async def add_redeem_failure(session: AsyncSession, scope: str, window_start: dt.datetime) -> None:
    statement = insert_for(session.get_bind().dialect.name)(RedeemFailure).values(
        scope=scope, window_start=window_start, failures=1
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["scope", "window_start"], set_={"failures": RedeemFailure.failures + 1}
        )
    )


async def forget_redeem_failures(session: AsyncSession, *, before: dt.datetime) -> None:
    """Forget the failure counts of windows that started before ``before``."""
    await session.execute(delete(RedeemFailure).where(RedeemFailure.window_start < before))
