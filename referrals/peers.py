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
import io
import re
import random
import secrets
from dataclasses import dataclass

import segno
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from referrals.localtime import local_day
from storage.referral_models import PeerLink
from storage.staff import add_audit

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


def new_peer_code(rng: random.Random | None = None) -> str:
    chooser = rng or secrets.SystemRandom()
    return "".join(chooser.choice(_CODE_ALPHABET) for _ in range(CODE_LENGTH))


def stats_token_hash(pepper: bytes, token: str) -> bytes:
    return hmac.new(pepper, b"peer-stats:" + token.encode("ascii", "replace"), hashlib.sha256).digest()


async def add_peer(
    session: AsyncSession,
    pepper: bytes,
    *,
    alias: str,
    commune: int,
    province: int,
    today: dt.date,
    rng: random.Random | None = None,
) -> NewPeer:
    alias = " ".join(alias.split())
    if not ALIAS.match(alias):
        raise PeerError("the alias must be 2-64 letters, digits, spaces, dots or dashes (use a nickname, not a real name)")
    token = secrets.token_urlsafe(24)
    link = PeerLink(
        code=new_peer_code(rng),
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


async def peer_link(session: AsyncSession, code: str) -> PeerLink | None:
    """The link with this code (active or not), or None; an overlong code is no code."""
    return await session.get(PeerLink, code) if 0 < len(code) <= 32 else None


# --- use cases shared by `antam peer …` and the staff app's peer pages -----------------------

AUDIT_ACTION = "peer_link"
# A Telegram bot's username: 5-32 letters, digits or underscores.
BOT_USERNAME = re.compile(r"^[A-Za-z0-9_]{5,32}$")


def bot_username(raw: str | None) -> str | None:
    """A Telegram bot username as typed ("@antam_bot" or "antam_bot"); None when empty."""
    cleaned = (raw or "").strip().lstrip("@")
    if not cleaned:
        return None
    if not BOT_USERNAME.match(cleaned):
        raise PeerError("a Telegram bot username has 5-32 letters, digits or _")
    return cleaned


@dataclass(frozen=True)
class PeerUrls:
    """Where a peer link leads: the web chat always, the Telegram bot when its name is known."""

    web: str
    telegram: str | None

    @classmethod
    def of(cls, base_url: str, code: str, bot: str | None) -> PeerUrls:
        return cls(f"{base_url.rstrip('/')}/?p={code}", f"https://t.me/{bot}?start={code}" if bot else None)

    def by_name(self) -> dict[str, str]:
        return {"web": self.web} | ({"telegram": self.telegram} if self.telegram else {})


def stats_url(base_url: str, token: str) -> str:
    """The peer educator's own counts page (the token is its capability)."""
    return f"{base_url.rstrip('/')}/staff/peer/{token}"


def qr_image(url: str, kind: str, *, title: str | None = None) -> bytes:
    """The QR code of ``url`` as ``"png"`` (to print) or ``"svg"`` (to scale)."""
    qr = segno.make(url, error="m")
    buffer = io.BytesIO()
    if kind == "svg":
        qr.save(buffer, kind="svg", scale=8, border=4, title=title, dark="#000", light="#fff")
    elif kind == "png":
        qr.save(buffer, kind="png", scale=10, border=4)
    else:
        raise PeerError(f"no QR code image of kind {kind!r}")
    return buffer.getvalue()


async def create_peer_link(
    session: AsyncSession,
    pepper: bytes,
    *,
    alias: str,
    commune: int,
    province: int,
    now: dt.datetime,
    rng: random.Random | None = None,
    actor: str | None = None,
) -> NewPeer:
    """A new active link for a commune; audited when a staff account (``actor``) made it."""
    created = await add_peer(
        session, pepper, alias=alias, commune=commune, province=province, today=local_day(now), rng=rng
    )
    if actor is not None:
        await add_audit(
            session, now=now, actor=actor, action=AUDIT_ACTION,
            detail=f"created peer link {created.link.code} for commune {commune}", province=province,
        )
    return created


async def switch_peer_link(
    session: AsyncSession, link: PeerLink, active: bool, *, now: dt.datetime, actor: str | None = None
) -> PeerLink:
    """Stop a link attributing new counts (what it counted stays), or turn it on again."""
    link.active = active
    await session.flush()
    if actor is not None:
        done = "activated" if active else "deactivated"
        await add_audit(
            session, now=now, actor=actor, action=AUDIT_ACTION,
            detail=f"{done} peer link {link.code} of commune {link.commune}", province=link.province,
        )
    return link
