"""Tables for referrals, peer links, aggregate counters, indicator targets and settings.

None of these holds a person. A referral names a service, a commune and a day; the only link
back to whoever holds the code is ``holder``, sealed with the key ring, and erasure removes it.
Counters are sums keyed by day, commune, metric, channel and peer link — there is no row per
person anywhere in them.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, Date, DateTime, Float, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models import Base, SealedBytes


def holder_context(code_hash: bytes) -> bytes:
    """Associated data binding a sealed holder to its referral row."""
    return b"referrals.holder:" + code_hash


# Every sealed holder opens to exactly this many bytes (JSON, padded with spaces), so the size
# of the column says nothing: not whether a code still names a person or belongs to someone who
# erased, nor how many codes they held.
HOLDER_BYTES = 384


def pad_holder(plaintext: bytes) -> bytes:
    """``plaintext`` padded with spaces to HOLDER_BYTES (JSON ignores trailing whitespace)."""
    if len(plaintext) > HOLDER_BYTES:
        raise ValueError(f"a holder link is at most {HOLDER_BYTES} bytes")
    return plaintext + b" " * (HOLDER_BYTES - len(plaintext))


class Referral(Base):
    """One referral code, kept as a keyed hash: the database alone cannot redeem it."""

    __tablename__ = "referrals"

    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    service: Mapped[str] = mapped_column(String(48), nullable=False)
    service_type: Mapped[str] = mapped_column(String(24), nullable=False)
    commune: Mapped[int] = mapped_column(Integer, nullable=False)
    province: Mapped[int] = mapped_column(Integer, nullable=False)
    channel: Mapped[str] = mapped_column(String(16), nullable=False)
    peer: Mapped[str] = mapped_column(String(32), nullable=False, default="")
    issued_on: Mapped[dt.date] = mapped_column(Date, nullable=False)
    expires_on: Mapped[dt.date] = mapped_column(Date, nullable=False, index=True)
    status: Mapped[str] = mapped_column(String(12), nullable=False)
    redeemed_on: Mapped[dt.date | None] = mapped_column(Date)
    # Sealed, always HOLDER_BYTES before sealing: whom to count as "connected" at redemption
    # (a pseudonym, or after erasure only the periods that person was already counted in and
    # the hashes of their other open codes). Associated data: the code hash.
    holder: Mapped[bytes | None] = mapped_column(SealedBytes)


class PeerLink(Base):
    """A peer educator's link: a code that travels in bot links, and the commune they work in."""

    __tablename__ = "peer_links"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    alias: Mapped[str] = mapped_column(String(64), nullable=False)
    commune: Mapped[int] = mapped_column(Integer, nullable=False)
    province: Mapped[int] = mapped_column(Integer, nullable=False, index=True)
    created_on: Mapped[dt.date] = mapped_column(Date, nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    # Keyed hash of the secret that opens the peer educator's own counts page.
    stats_token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False, unique=True)


class Counter(Base):
    """How many times something happened on one day, in one commune, through one channel and link."""

    __tablename__ = "counters"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    commune: Mapped[int] = mapped_column(Integer, primary_key=True)
    metric: Mapped[str] = mapped_column(String(32), primary_key=True)
    detail: Mapped[str] = mapped_column(String(32), primary_key=True, default="")
    channel: Mapped[str] = mapped_column(String(16), primary_key=True, default="")
    peer: Mapped[str] = mapped_column(String(32), primary_key=True, default="")
    province: Mapped[int] = mapped_column(Integer, nullable=False)
    count: Mapped[int] = mapped_column(BigInteger, nullable=False)

    __table_args__ = (Index("ix_counters_province_day", "province", "day"), Index("ix_counters_peer_day", "peer", "day"))


class CounterMonth(Base):
    """The same counts summed by month, commune and metric: what reports read.

    Kept in the same transaction as ``counters``; a province's annual report reads a few
    thousand of these rows instead of millions of daily ones.
    """

    __tablename__ = "counter_months"

    month: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    commune: Mapped[int] = mapped_column(Integer, primary_key=True)
    metric: Mapped[str] = mapped_column(String(32), primary_key=True)
    detail: Mapped[str] = mapped_column(String(32), primary_key=True, default="")
    province: Mapped[int] = mapped_column(Integer, nullable=False)
    count: Mapped[int] = mapped_column(BigInteger, nullable=False)

    __table_args__ = (Index("ix_counter_months_province_month", "province", "month"),)


class CounterMonthLink(Base):
    """Daily counters older than the previous month, summed by month, commune, metric, channel
    and peer link (without the detail), then deleted: a copy of the database holds no day on
    which one person came through a peer link and a channel, except for the last two months
    (what the staff overview's trend needs), yet the overview's and the peer pages' breakdowns
    by channel and link still add up for older periods.
    """

    __tablename__ = "counter_month_links"

    month: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    commune: Mapped[int] = mapped_column(Integer, primary_key=True)
    metric: Mapped[str] = mapped_column(String(32), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True, default="")
    peer: Mapped[str] = mapped_column(String(32), primary_key=True, default="")
    province: Mapped[int] = mapped_column(Integer, nullable=False)
    count: Mapped[int] = mapped_column(BigInteger, nullable=False)

    __table_args__ = (
        Index("ix_counter_month_links_province_month", "province", "month"),
        Index("ix_counter_month_links_peer_month", "peer", "month"),
    )


class IndicatorTarget(Base):
    """An admin's population-size estimate and target for one commune, year and indicator."""

    __tablename__ = "indicator_targets"

    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    commune: Mapped[int] = mapped_column(Integer, primary_key=True)
    indicator: Mapped[str] = mapped_column(String(16), primary_key=True)
    province: Mapped[int] = mapped_column(Integer, nullable=False, index=True)
    estimate: Mapped[int | None] = mapped_column(Integer)
    target_percent: Mapped[float] = mapped_column(Float, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class Setting(Base):
    """A setting an admin can change while An Tâm runs (JSON value)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class RedeemFailure(Base):
    """Failed redemption attempts per place (or staff account) and 15-minute window."""

    __tablename__ = "redeem_failures"

    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, nullable=False)
