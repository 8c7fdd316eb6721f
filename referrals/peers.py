"""Peer-educator links: a code for bot links and QR codes, and the educator's own counts.

A link belongs to one commune. People who start through it are attributed to it only in
aggregate counters (and inside their own sealed record); the educator sees how many people
their link reached, referred and connected — never who. Those counts open with a separate
secret (the stats token), kept here only as a keyed hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.referral_models import PeerLink

# Lower-case letters and digits without look-alikes: easy to read aloud, valid in every link
# format (Telegram start payloads allow A-Za-z0-9_-, at most 64).
_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
CODE_LENGTH = 10
ALIAS = re.compile(r"^[\w .\-]{2,64}$")


class PeerError(ValueError):
    """A peer link cannot be created or changed as asked."""


@dataclass(frozen=True)
class NewPeer:
    link: PeerLink
    stats_token: str  # shown once; only its keyed hash is stored


def new_peer_code() -> str:
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(CODE_LENGTH))


def stats_token_hash(pepper: bytes, token: str) -> bytes:
    return hmac.new(pepper, b"peer-stats:" + token.encode("ascii", "replace"), hashlib.sha256).digest()


async def add_peer(
    session: AsyncSession, pepper: bytes, *, alias: str, commune: int, province: int, today: dt.date
) -> NewPeer:
    alias = " ".join(alias.split())
    if not ALIAS.match(alias):
        raise PeerError("the alias must be 2-64 letters, digits, spaces, dots or dashes (use a nickname, not a real name)")
    token = secrets.token_urlsafe(24)
    link = PeerLink(
        code=new_peer_code(),
        alias=alias,
        commune=commune,
        province=province,
        created_on=today,
        active=True,
        stats_token_hash=stats_token_hash(pepper, token),
    )
    session.add(link)
    await session.flush()
    return NewPeer(link, token)


async def active_peer(session: AsyncSession, code: str | None) -> PeerLink | None:
    """The active link with this code, or None (unknown and deactivated links attribute nothing)."""
    if not code:
        return None
    link = await session.get(PeerLink, code)
    return link if link is not None and link.active else None


async def peer_by_stats_token(session: AsyncSession, pepper: bytes, token: str) -> PeerLink | None:
    if not token or len(token) > 64:
        return None
    return await session.scalar(select(PeerLink).where(PeerLink.stats_token_hash == stats_token_hash(pepper, token)))


async def list_peers(
    session: AsyncSession, *, province: int | None = None, commune: int | None = None
) -> list[PeerLink]:
    query = select(PeerLink).order_by(PeerLink.province, PeerLink.commune, PeerLink.alias)
    if province is not None:
        query = query.where(PeerLink.province == province)
    if commune is not None:
        query = query.where(PeerLink.commune == commune)
    return list((await session.scalars(query)).all())


async def set_active(session: AsyncSession, code: str, active: bool) -> PeerLink:
    link = await session.get(PeerLink, code)
    if link is None:
        raise PeerError(f"no peer link with code {code}")
    link.active = active
    await session.flush()
    return link
