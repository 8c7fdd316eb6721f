"""The outbox: messages the bot starts, written in the transaction of the change that causes
them, delivered afterwards by whichever worker holds the channel, deleted once delivered.

A row holds only what delivery needs, sealed: the reply address and the rendered replies (one
AES-GCM value, its context naming the row's random dedupe key). In plain columns: the channel
name, when the row was made, when it may next be tried, and how often it was — no pseudonym,
so a row does not say whose it is.

Delivery takes a lease (``claim``): the row's ``not_before`` moves past the lease in a short
transaction, the send happens outside any transaction, then the row is deleted (``finish``) or
moved later (``postpone``). A worker killed mid-delivery loses nothing: once the lease ends the
row is due again.

Order: one person's messages on one channel go out in the order they were written. ``claim``
leases a row only when no earlier row to the same address is still there (leased by a worker,
waiting for a retry): a second message waits until the first is delivered or given up, and two
rows to one address are never in flight at once, so a batch may be sent in parallel. Workers
lease one at a time (``take_turn``: a PostgreSQL advisory lock for the rest of the transaction;
SQLite's one writer at a time does the same in process), so two never lease the same row, nor
two rows of one person.

Wake-ups: a row written (``enqueue``) or done (``finish``, which may free the person's next
row) wakes the workers of this process once the transaction commits (``watch``), and on
PostgreSQL every worker through NOTIFY on ``NOTIFY_CHANNEL`` (the payload is the channel's
name), delivered at commit. Workers still poll: a notification may be missed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import DateTime, Engine, Integer, String, delete, event, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, Session as SyncSession, mapped_column

# The session a caller outside storage/ passes in (bot/outbox.py writes in the runtime's transaction).
Session = AsyncSession

from storage.crypto import KeyRing, sealed_key_id
from storage.db import wipe_after_commit
from storage.models import Base, SealedBytes, sealed_with_key
from storage.notify import notify

CLAIM_BATCH = 20
# How many rows one claim looks at, oldest first: rows of people whose earlier message is still
# on its way are passed over, so a long backlog needs more than one batch's worth.
CLAIM_SCAN = 1000
NOTIFY_CHANNEL = "antam_outbox"
_CLAIM_LOCK = 0x616E_7461_6D6F_7862  # pg_advisory_xact_lock key: one worker leases at a time
_WRITTEN = "antam.outbox_written"  # session.info: channels to wake once this transaction commits
_WATCHERS: dict[Engine, set[Callable[[str], None]]] = {}


def watch(engine: Engine, wake: Callable[[str], None]) -> None:
    """Call ``wake(channel)`` after every commit in this process, on ``engine``, that wrote or
    finished a row of ``channel``."""
    _WATCHERS.setdefault(engine, set()).add(wake)


def unwatch(engine: Engine, wake: Callable[[str], None]) -> None:
    watchers = _WATCHERS.get(engine)
    if watchers is not None:
        watchers.discard(wake)
        if not watchers:
            del _WATCHERS[engine]


def _committed(session: SyncSession) -> None:
    channels = session.info.pop(_WRITTEN, set())
    bind = session.get_bind()
    for wake in list(_WATCHERS.get(bind, ())) if isinstance(bind, Engine) else ():
        for channel in channels:
            wake(channel)


def _rolled_back(session: SyncSession) -> None:
    session.info.pop(_WRITTEN, None)


async def _changed(session: AsyncSession, channel: str) -> None:
    """Wake the workers once this transaction commits: this process's, and (PostgreSQL) all."""
    pending: set[str] | None = session.info.get(_WRITTEN)
    if pending is None:
        pending = session.info[_WRITTEN] = set()
        if not event.contains(session.sync_session, "after_commit", _committed):
            event.listen(session.sync_session, "after_commit", _committed)
            event.listen(session.sync_session, "after_rollback", _rolled_back)
    if channel not in pending:
        pending.add(channel)
        await notify(session, NOTIFY_CHANNEL, channel)


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
    await _changed(session, channel)
    return row.id


async def take_turn(session: AsyncSession) -> None:
    """Wait until no other worker is leasing, and hold the turn until this transaction ends
    (PostgreSQL; SQLite's transactions take turns anyway)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CLAIM_LOCK})


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
    """Lease the due rows of ``channels`` that ``accept(channel, address)`` takes, oldest first,
    at most one per address, and none whose address has an earlier row still waiting.

    A row not accepted (a web-chat page open on another worker) is left for another worker.
    """
    await take_turn(session)
    # Every row is locked, due or not: a row being postponed by its worker is waited for, not
    # skipped (skipping it would let the person's next row go first).
    query = (
        select(OutboxMessage)
        .where(OutboxMessage.channel.in_(list(channels)))
        .order_by(OutboxMessage.id)
        .limit(CLAIM_SCAN)
        .with_for_update()
    )
    claimed: list[Claimed] = []
    earlier: set[tuple[str, str]] = set()  # (channel, address) with an older row still here
    for row in (await session.scalars(query)).all():
        opened = json.loads(ring.open(row.sealed, outbox_context(row.dedupe)))
        person = (row.channel, str(opened["a"]))
        if person in earlier:
            continue
        earlier.add(person)
        if _aware(row.not_before) > now or not accept(row.channel, opened["a"]):
            continue
        row.not_before = now + lease
        row.attempts += 1
        until = dt.datetime.fromtimestamp(opened["w"], dt.UTC) if isinstance(opened.get("w"), int) else None
        claimed.append(
            Claimed(row.id, row.dedupe, row.channel, opened["a"], opened["r"], _aware(row.created_at), row.attempts, until)
        )
        if len(claimed) >= limit:
            break
    return claimed


async def finish(session: AsyncSession, row_id: int, channel: str | None = None) -> None:
    """Delivered, or given up: the row goes, and with it the last copy of the address.

    With ``channel``, the workers are woken at commit: the person's next row may go now.
    """
    await session.execute(delete(OutboxMessage).where(OutboxMessage.id == row_id))
    wipe_after_commit(session)
    if channel is not None:
        await _changed(session, channel)


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
