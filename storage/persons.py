"""The per-person record: load, save and erase one sealed record by pseudonym."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import cast

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.crypto import KeyRing
from storage.db import wipe_after_commit
from storage.models import Person

_PERSONS = cast(Table, Person.__table__)
# Built once: these run on every update, and building a statement costs more than running it.
_SELECT = select(_PERSONS.c.record).where(_PERSONS.c.pseudonym == bindparam("p"))
_SELECT_LOCKED = _SELECT.with_for_update()
_UPDATE = (
    update(_PERSONS)
    .where(_PERSONS.c.pseudonym == bindparam("p"))
    .values(record=bindparam("record"), last_active_on=bindparam("day"))
)
_INSERT = insert(_PERSONS).values(pseudonym=bindparam("p"), record=bindparam("record"), last_active_on=bindparam("day"))


def record_context(pseudonym: bytes) -> bytes:
    """Associated data binding a sealed record to its row."""
    return b"persons.record:" + pseudonym


async def load_record(
    session: AsyncSession, ring: KeyRing, pseudonym: bytes, *, lock: bool = True
) -> bytes | None:
    """Return the opened record of a person, or None when nothing is stored.

    Core statements on the session's connection: this runs on every update, and the ORM's
    identity map would only add work (nothing else in the transaction reads the row).
    """
    connection = await session.connection()
    found = await connection.execute(_SELECT_LOCKED if lock else _SELECT, {"p": pseudonym})
    sealed = found.scalar()
    if sealed is None:
        return None
    return ring.open(sealed, record_context(pseudonym))


async def save_record(
    session: AsyncSession, ring: KeyRing, pseudonym: bytes, record: bytes, *, today: dt.date, new: bool = False
) -> None:
    """Seal and store a person's record, marking them active today.

    ``new``: the caller found no row in this transaction, so skip straight to the INSERT.
    Otherwise an UPDATE, and an INSERT only if it changed nothing. Two first writes of one
    person racing each other end in an IntegrityError for the later one, which the caller
    retries.
    """
    sealed = ring.seal(record, record_context(pseudonym))
    connection = await session.connection()
    values = {"p": pseudonym, "record": sealed, "day": today}
    if not new:
        changed = await connection.execute(_UPDATE, values)
        if changed.rowcount:
            return
    await connection.execute(_INSERT, values)


async def erase_person(session: AsyncSession, pseudonym: bytes) -> bool:
    """Delete everything stored under a pseudonym; return whether anything was there.

    Once the transaction commits, earlier versions of the row are wiped from the SQLite log.
    """
    wipe_after_commit(session)
    result = await session.execute(delete(Person).where(Person.pseudonym == pseudonym))
    return bool(getattr(result, "rowcount", 0))


async def purge_inactive(session: AsyncSession, *, today: dt.date, retention_days: int) -> int:
    """Delete the records of people inactive for more than ``retention_days``."""
    cutoff = today - dt.timedelta(days=retention_days)
    result = await session.execute(delete(Person).where(Person.last_active_on < cutoff))
    removed = int(getattr(result, "rowcount", 0))
    if removed:
        wipe_after_commit(session)
    return removed


async def reseal_record(session: AsyncSession, ring: KeyRing, pseudonym: bytes, record: bytes) -> None:
    """Replace a person's record without marking them active (a change they did not make)."""
    sealed = ring.seal(record, record_context(pseudonym))
    connection = await session.connection()
    await connection.execute(update(_PERSONS).where(_PERSONS.c.pseudonym == pseudonym).values(record=sealed))


async def rewrite_records(
    session: AsyncSession, ring: KeyRing, *, active_since: dt.date, change: Callable[[bytes], bytes | None]
) -> int:
    """Reseal the records of people active since ``active_since`` that ``change`` rewrites
    (it returns None for a record it leaves alone); return how many changed. The rows stay
    locked until the transaction ends, so no update of the same person is lost."""
    people = (
        await session.scalars(select(Person).where(Person.last_active_on >= active_since).with_for_update())
    ).all()
    changed = 0
    for person in people:
        context = record_context(person.pseudonym)
        rewritten = change(ring.open(person.record, context))
        if rewritten is not None:
            person.record = ring.seal(rewritten, context)
            changed += 1
    return changed
