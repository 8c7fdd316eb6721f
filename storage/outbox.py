"""The outbox: messages the bot starts, written in the transaction of the change that causes
them, delivered afterwards by whichever worker holds the channel, deleted once delivered.

A row holds only what delivery needs, sealed: the reply address and the rendered replies (one
AES-GCM value, its context naming the row's random dedupe key). In plain columns: the channel
name, when the row was made, when it may next be tried, and how often it was — no pseudonym,
so a row does not say whose it is.

Delivery takes a lease (``claim``): the row's ``not_before`` moves past the lease in a short
transaction, the send happens outside any transaction, then the row is deleted (``finish``) or
moved later (``postpone``). A worker killed mid-delivery loses nothing: once the lease ends the
row is due again. On PostgreSQL two workers never lease the same row (``FOR UPDATE SKIP
LOCKED``); SQLite's one writer at a time does the same in process.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import DateTime, Integer, String, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

# The session a caller outside storage/ passes in (bot/outbox.py writes in the runtime's transaction).
Session = AsyncSession

from storage.crypto import KeyRing, sealed_key_id
from storage.db import wipe_after_commit
from storage.models import Base, SealedBytes, sealed_with_key

CLAIM_BATCH = 20


class OutboxMessage(Base):
    """One message the bot starts, waiting to be delivered."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dedupe: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)
    channel: Mapped[str] = mapped_column(String(32), nullable=False)
    sealed: Mapped[bytes] = mapped_column(SealedBytes, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    not_before: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, index=True)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


@dataclass(frozen=True, repr=False)
class Claimed:
    """A leased row, opened: where it goes and what it says."""

    id: int
    dedupe: str
    channel: str
    address: str
    replies: list[dict[str, Any]]
    created_at: dt.datetime
    attempts: int
    until: dt.datetime | None = None  # the channel's reply window ends: not sent after this

    def __repr__(self) -> str:  # never print an address or a text, even in a traceback
        return f"Claimed(id={self.id}, channel={self.channel!r}, attempts={self.attempts})"


def outbox_context(dedupe: str) -> bytes:
    return b"outbox:" + dedupe.encode("ascii")


def _aware(value: dt.datetime) -> dt.datetime:
    # SQLite hands back naive datetimes; every stored time is UTC.
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


async def enqueue(
    session: AsyncSession,
    ring: KeyRing,
    *,
    channel: str,
    address: str,
    replies: list[dict[str, Any]],
    now: dt.datetime,
    until: dt.datetime | None = None,
) -> int:
    """Add a message to the outbox inside the caller's transaction; its row id.

    ``until``: when the person's reply window ends (sealed with the address: it dates the
    person's last message).
    """
    dedupe = os.urandom(16).hex()
    content: dict[str, Any] = {"a": address, "r": replies}
    if until is not None:
        content["w"] = int(until.timestamp())
    plain = json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()
    row = OutboxMessage(
        dedupe=dedupe,
        channel=channel,
        sealed=ring.seal(plain, outbox_context(dedupe)),
        created_at=now,
        not_before=now,
        attempts=0,
    )
    session.add(row)
    await session.flush()
    return row.id


async def claim(
    session: AsyncSession,
    ring: KeyRing,
    *,
    channels: Collection[str],
    now: dt.datetime,
    lease: dt.timedelta,
    accept: Callable[[str, str], bool] = lambda channel, address: True,
    limit: int = CLAIM_BATCH,
) -> list[Claimed]:
    """Lease the due rows of ``channels`` that ``accept(channel, address)`` takes, oldest first.

    A row not accepted (a web-chat page open on another worker) is left for another worker.
    """
    query = (
        select(OutboxMessage)
        .where(OutboxMessage.channel.in_(list(channels)), OutboxMessage.not_before <= now)
        .order_by(OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed: list[Claimed] = []
    for row in (await session.scalars(query)).all():
        opened = json.loads(ring.open(row.sealed, outbox_context(row.dedupe)))
        if not accept(row.channel, opened["a"]):
            continue
        row.not_before = now + lease
        row.attempts += 1
        until = dt.datetime.fromtimestamp(opened["w"], dt.UTC) if isinstance(opened.get("w"), int) else None
        claimed.append(
            Claimed(row.id, row.dedupe, row.channel, opened["a"], opened["r"], _aware(row.created_at), row.attempts, until)
        )
    return claimed


async def finish(session: AsyncSession, row_id: int) -> None:
    """Delivered, or given up: the row goes, and with it the last copy of the address."""
    await session.execute(delete(OutboxMessage).where(OutboxMessage.id == row_id))
    wipe_after_commit(session)


async def postpone(session: AsyncSession, row_id: int, until: dt.datetime) -> None:
    row = await session.get(OutboxMessage, row_id)
    if row is not None:
        row.not_before = until


async def expired(session: AsyncSession, *, channel: str, before: dt.datetime, now: dt.datetime) -> list[int]:
    """Delete the rows of ``channel`` made before ``before`` that are not leased now; their ids."""
    query = (
        select(OutboxMessage.id)
        .where(OutboxMessage.channel == channel, OutboxMessage.created_at < before, OutboxMessage.not_before <= now)
        .with_for_update(skip_locked=True)
    )
    ids = list((await session.scalars(query)).all())
    if ids:
        await session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(ids)))
        wipe_after_commit(session)
    return ids


async def pending(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(OutboxMessage)) or 0)


async def outbox_using_key(session: AsyncSession, key_id: int) -> int:
    query = select(func.count()).select_from(OutboxMessage).where(sealed_with_key(OutboxMessage.sealed, key_id))
    return int(await session.scalar(query) or 0)


async def reencrypt_outbox(session: AsyncSession, ring: KeyRing) -> int:
    """Seal waiting messages again under the active key (for key rotation)."""
    count = 0
    for row in (await session.scalars(select(OutboxMessage).with_for_update())).all():
        if sealed_key_id(row.sealed) != ring.active_id:
            context = outbox_context(row.dedupe)
            row.sealed = ring.seal(ring.open(row.sealed, context), context)
            count += 1
    return count
