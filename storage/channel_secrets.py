"""Secrets a channel needs at run time (Zalo's rotating OAuth tokens), sealed at rest.

Zalo hands out a new refresh token with every access token, and each refresh token works
once: the newest pair must be kept, and two workers must never both spend the same one. So
the pair lives in one row per channel, sealed with the key ring, read and replaced inside one
transaction that holds the row (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's
``BEGIN IMMEDIATE`` already serialises writers).

The tokens an operator configured (``ZALO_ACCESS_TOKEN`` / ``ZALO_REFRESH_TOKEN``) seed the
row the first time. Each seed is remembered as a keyed hash inside the sealed record, so a
*new* token the operator configures after re-authorising the app replaces the stored chain,
while a worker still started with an old one does not roll the chain back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from dataclasses import dataclass, replace

from sqlalchemy import DateTime, String, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from storage.crypto import KeyRing, sealed_key_id
from storage.db import insert_for
from storage.models import Base, SealedBytes, sealed_with_key

MAX_SEEDS = 16  # how many past operator-given tokens are remembered (as keyed hashes)


class ChannelToken(Base):
    """One channel's current OAuth tokens, sealed; the row's identity is the channel name."""

    __tablename__ = "channel_tokens"

    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    sealed: Mapped[bytes] = mapped_column(SealedBytes, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)


@dataclass(frozen=True, repr=False)
class Tokens:
    """An access token, the refresh token that replaces it, and when it expires (None: unknown)."""

    access_token: str
    refresh_token: str | None = None
    expires_at: dt.datetime | None = None
    # Keyed hashes of the operator-given tokens this chain descends from or has seen.
    seeds: tuple[str, ...] = ()

    def __repr__(self) -> str:  # never print a token, even in a traceback
        return f"Tokens(expires_at={self.expires_at!r})"

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "access_token": self.access_token,
                "refresh_token": self.refresh_token,
                "expires_at": self.expires_at.timestamp() if self.expires_at else None,
                "seeds": list(self.seeds[-MAX_SEEDS:]),
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Tokens:
        data = json.loads(raw)
        expires = data.get("expires_at")
        return cls(
            access_token=str(data["access_token"]),
            refresh_token=data.get("refresh_token"),
            expires_at=dt.datetime.fromtimestamp(expires, dt.UTC) if expires is not None else None,
            seeds=tuple(data.get("seeds") or ()),
        )


def tokens_context(channel: str) -> bytes:
    """Associated data binding sealed tokens to their channel's row."""
    return b"channel_tokens:" + channel.encode()


def seed_of(ring: KeyRing, channel: str, tokens: Tokens) -> str:
    """A keyed hash naming operator-given tokens, so they can be recognised without storing them."""
    secret = tokens.refresh_token or tokens.access_token
    message = f"channel-token-seed:{channel}:{secret}".encode()
    return hmac.new(ring.secrets.pepper, message, hashlib.sha256).hexdigest()[:32]


async def claim_tokens(
    session: AsyncSession, ring: KeyRing, channel: str, configured: Tokens | None, *, now: dt.datetime
) -> Tokens | None:
    """Lock the channel's row for this transaction and return its tokens.

    Seeds the row from ``configured`` when there is none, and replaces the stored chain when
    ``configured`` is new (an operator re-authorised the app). None when nothing is known.
    """
    seed = seed_of(ring, channel, configured) if configured is not None else None
    row = await _locked(session, channel)
    if row is None:
        if configured is None or seed is None:
            return None
        seeded = replace(configured, seeds=(seed,))
        insert = insert_for(session.get_bind().dialect.name)
        # Two workers starting at once: one insert wins, the other reads the winner's row.
        await session.execute(
            insert(ChannelToken)
            .values(channel=channel, sealed=ring.seal(seeded.to_bytes(), tokens_context(channel)), updated_at=now)
            .on_conflict_do_nothing()
        )
        row = await _locked(session, channel)
        assert row is not None
    stored = Tokens.from_bytes(ring.open(row.sealed, tokens_context(channel)))
    if configured is not None and seed is not None and seed not in stored.seeds:
        stored = replace(configured, seeds=(*stored.seeds, seed))
        await store_tokens(session, ring, channel, stored, now=now)
    return stored


async def store_tokens(session: AsyncSession, ring: KeyRing, channel: str, tokens: Tokens, *, now: dt.datetime) -> None:
    """Seal and store the channel's tokens (call inside the transaction that claimed them)."""
    row = await session.get(ChannelToken, channel)
    sealed = ring.seal(tokens.to_bytes(), tokens_context(channel))
    if row is None:
        session.add(ChannelToken(channel=channel, sealed=sealed, updated_at=now))
    else:
        row.sealed = sealed
        row.updated_at = now
    await session.flush()


async def reencrypt_channel_tokens(session: AsyncSession, ring: KeyRing) -> int:
    """Seal every channel's tokens again under the active key (for key rotation)."""
    count = 0
    for row in (await session.scalars(select(ChannelToken).with_for_update())).all():
        if sealed_key_id(row.sealed) != ring.active_id:
            context = tokens_context(row.channel)
            row.sealed = ring.seal(ring.open(row.sealed, context), context)
            count += 1
    await session.flush()
    return count


async def channel_tokens_using_key(session: AsyncSession, key_id: int) -> int:
    """How many channels' tokens are still sealed with data key ``key_id``."""
    query = select(func.count()).select_from(ChannelToken).where(sealed_with_key(ChannelToken.sealed, key_id))
    return int(await session.scalar(query) or 0)


async def _locked(session: AsyncSession, channel: str) -> ChannelToken | None:
    query = select(ChannelToken).where(ChannelToken.channel == channel).with_for_update()
    row: ChannelToken | None = await session.scalar(query.execution_options(populate_existing=True))
    return row
